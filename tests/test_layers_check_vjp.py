"""Every layer through ``autodiff_check.check_vjp``, the one-line call a user makes on a layer:
the hand VJP of manual_backprop.layers against finite differences, the complex step where the
layer propagates complex input, and ``jax.vjp`` / ``jax.jvp`` of its twin, on drawn inputs in
float64 and float32 (the checker derives every tolerance itself: measured noise, steps,
rounding; nothing here sets one). tests/test_layers.py holds the same layers to the twin with
tolerances derived per layer; this file is the checker's side of the same claim."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings

import autodiff_check as ac
import autodiff_check.layers as J
import manual_backprop.layers as L
from strategies import examples
from support import release_jax_executables
from test_layers import LAYERS, NAMES


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, strategy", [(n, s) for n, s, *_ in LAYERS], ids=NAMES)
def test_every_layer_passes_check_vjp(name, strategy, dtype):
    @settings(max_examples=examples(2))
    @given(strategy)
    def prop(case):
        primals, options = case
        primals = tuple(p.astype(dtype) if np.asarray(p).dtype.kind == "f" else p for p in primals)
        verdict = ac.check_vjp(partial(getattr(L, name), **options), partial(getattr(L, name + "_vjp"), **options),
                               *primals, jax_fn=partial(J.FORWARD[name], **options))
        release_jax_executables()
        assert verdict.passed, f"{name} {options}:\n{verdict.report(full=True)}"

    prop()
