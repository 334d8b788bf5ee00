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
import layer_strategies as S
import manual_backprop.layers as L
from strategies import examples
from support import release_jax_executables
from test_layers import LAYERS


# softmax with logits of spread up to ~20 here (scale 30 in tests/test_layers.py): at saturated
# logits check_vjp can fail a correct VJP, a known limitation (the test below, xfail).
STRATEGIES = [(n, S.softmax(scales=(1.0, 3.0)) if n == "softmax" else s) for n, s, *_ in LAYERS]


CASES = [pytest.param(n, s, dt, id=f"{n}-{np.dtype(dt).name}") for n, s in STRATEGIES
         for dt in (np.float64, np.float32)]


def _flat(verdict) -> bool:
    """Every oracle's value exactly 0, or (finite differences) below its own tolerance: f is flat
    at the primals (the oracles say so, not the VJP under test), and a verdict there resolves
    nothing. Found by the thorough profile: relu at one float32 input -0.34, where ECNoise of the
    constant f grows its spacing past the kink and the difference reads -0.14 +- 25."""
    def nothing(ref, tol):
        ref, tol = np.asarray(ref, float), np.asarray(tol, float)
        return bool(np.all((ref == 0) | ~(tol < np.abs(ref))))
    return all((r.references is None or nothing(r.references, r.tolerances))
               and nothing([o for _, o, _ in r.directional], [t for _, _, t in r.directional])
               for r in verdict.results)


@pytest.mark.parametrize("name, strategy, dtype", CASES)
def test_every_layer_passes_check_vjp(name, strategy, dtype):
    @settings(max_examples=examples(2))
    @given(strategy)
    def prop(case):
        primals, options = case
        primals = tuple(p.astype(dtype) if np.asarray(p).dtype.kind == "f" else p for p in primals)
        verdict = ac.check_vjp(partial(getattr(L, name), **options), partial(getattr(L, name + "_vjp"), **options),
                               *primals, jax_fn=partial(J.FORWARD[name], **options))
        release_jax_executables()
        if _flat(verdict):   # relu below 0, softmax over one entry: nothing to resolve
            assert verdict.status == "NOT CHECKED", verdict.report(full=True)
        else:
            assert verdict.passed, f"{name} {options}:\n{verdict.report(full=True)}"

    prop()


@pytest.mark.xfail(strict=True, reason="known limitation: a false alarm at saturated softmax logits")
def test_check_vjp_at_saturated_softmax_logits():
    """Found by the thorough profile. Along axis 0 each column is dominated by one logit by 20-50;
    dx = y (dy - sum dy y) then cancels from terms of size 1 to results of 1e-13 (1 - y ~ e^-28),
    and the two exact computations (ours and jax.vjp) differ by 5.5e-17, over the per-entry
    tolerance 1e-8 max|ref| + 8 sigma_g = 5.0e-17: the rounding of y ~ 1 does not vary with x at
    the noise-measuring step, so sigma_g misses it. A black box gives no sum|terms| to bound the
    cancellation with; until the checker estimates it, this is a false alarm (docs/checker.md)."""
    x = np.array([[-34.71238679, -29.48948118, -30.123145], [18.18772335, 15.63074925, -7.12313472],
                  [-3.382939, 35.74033006, 21.189121]])
    options = {"axis": 0}
    verdict = ac.check_vjp(partial(L.softmax, **options), partial(L.softmax_vjp, **options), x,
                           jax_fn=partial(J.FORWARD["softmax"], **options))
    assert verdict.passed, verdict.report(full=True)


def test_check_vjp_of_a_float32_batch_norm_over_two_rows():
    """Found by the thorough profile on 2026-12-02 (present at 1fc38b3 too), a false alarm until
    the float64 evaluation (check.py, step 5): over N = 2 rows the normalised output is +-1
    whatever x, so dx is ~eps-sized (3.8e-6) and cancels from terms ~1; ours and jax.vjp differ by
    3.8e-7 against a per-entry tolerance of 3.0e-7. The VJP's rounding measured over its cotangent
    would cover it (8 rho = 4.2e-7), but dx's Jacobian is so small that the probe's first
    differences round to 0, and the cap on rho (1 / sqrt(u) times their median, there for a mask
    drawn per call) takes it to 0. In float64 both agree with the complex step. Since g's noise is
    read at spacings shrinking until a smaller one agrees (sigma_g 1.2e-7 where one spacing of
    sqrt(u) |x| read 3.7e-8), the tolerance is 9.2e-7 before the float64 evaluation is needed. A
    dx twice as large (3.8e-6 off) still fails."""
    x = np.array([[-1.44387394], [-0.49180604]], np.float32)
    gamma, beta = np.array([-1.92297417], np.float32), np.array([0.44637457], np.float32)
    f, vjp = partial(L.batch_norm, eps=1e-5), partial(L.batch_norm_vjp, eps=1e-5)
    verdict = ac.check_vjp(f, vjp, x, gamma, beta, jax_fn=partial(J.FORWARD["batch_norm"], eps=1e-5))
    assert verdict.passed, verdict.report(full=True)

    def dx_doubled(dy, *primals):
        dx, dgamma, dbeta = vjp(dy, *primals)
        return 2 * dx, dgamma, dbeta

    verdict = ac.check_vjp(f, dx_doubled, x, gamma, beta, jax_fn=partial(J.FORWARD["batch_norm"], eps=1e-5))
    assert verdict.status == "FAIL", verdict.report(full=True)


def test_check_vjp_of_a_float32_rnn_near_saturation():
    """Found by the thorough profile, a false alarm until the float64 evaluation (check.py, step
    5): h = tanh(...) near +-1 in float32 makes 1 - h^2 carry the absolute error of h, about u,
    not u |1 - h^2|; ours and jax.vjp differ by 6.6e-7 on 0.017 where the per-entry tolerance
    64 u max|ref| + 8 sigma_g allows 4.2e-7. In float64 ours and jax.vjp agree."""
    f32 = lambda *a: tuple(np.asarray(v, np.float32) for v in a)  # noqa: E731
    primals = f32([[[-1.72780028, 1.66297484, 0.43962218, 0.82210638], [-1.07233462, -0.22314527, -0.13110428, 1.30985557]]],
                  [[0.96026136]], [[-0.95118226], [0.93062352], [0.23435257], [0.89682137]], [[0.67150603]], [0.10810597])
    verdict = ac.check_vjp(L.rnn, L.rnn_vjp, *primals, jax_fn=J.FORWARD["rnn"])
    assert verdict.passed, verdict.report(full=True)
    assert any("evaluated in float64 (primals and cotangent promoted) agrees" in n for n in verdict.notes)
