"""Hypothesis strategies: architectures, batches, inputs and targets for every loss."""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import manual_backprop as mb

ACTIVATIONS = sorted(mb.ACTIVATIONS)
LOSSES = sorted(mb.LOSSES)
DTYPES = [np.float32, np.float64]
PAIRS = [(a, l) for a in ACTIVATIONS for l in LOSSES]
ANALYTIC_PAIRS = [(a, l) for a, l in PAIRS if mb.ACTIVATIONS[a].analytic]


def examples(n: int) -> int:
    """``n`` examples under the ci profile, scaled up under thorough (20x)."""
    return max(1, n * settings().max_examples // 10)


def layer_sizes(min_sizes: int = 2, max_sizes: int = 6, max_width: int = 12):
    return st.lists(st.integers(1, max_width), min_size=min_sizes, max_size=max_sizes)


def finite(magnitude: float):
    return st.floats(-magnitude, magnitude, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def targets(draw, loss: str, batch: int, n_out: int) -> np.ndarray:
    """Targets in the loss's domain: [0, 1] for BCE, probability rows for softmax CE, reals for MSE."""
    if loss == "binary_cross_entropy":
        return draw(arrays(np.float64, (batch, n_out), elements=st.floats(0, 1)))
    if loss == "softmax_cross_entropy":
        w = draw(arrays(np.float64, (batch, n_out), elements=st.floats(0, 1)))
        hot = draw(st.lists(st.integers(0, n_out - 1), min_size=batch, max_size=batch))
        w[np.arange(batch), hot] += 1  # every row has positive mass
        return w / w.sum(axis=1, keepdims=True)
    return draw(arrays(np.float64, (batch, n_out), elements=finite(10)))


@st.composite
def problems(draw, loss: str, *, magnitude: float = 10.0, sizes=None, max_batch: int = 8, dtype=np.float64):
    """(params, x, y): a network from init_params with a drawn seed and weight scale, a batch
    of inputs with |x| <= magnitude (hypothesis favours 0, +-magnitude and tiny values), and
    targets for ``loss``; all in ``dtype`` (drawn in float64, then cast)."""
    sizes = draw(sizes if sizes is not None else layer_sizes())
    params = mb.init_params(sizes, seed=draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1.0, 0.1, 3.0]))
    params = [W * scale for W in params]
    batch = draw(st.integers(1, max_batch))
    x = draw(arrays(np.float64, (batch, sizes[0]), elements=finite(magnitude)))
    y = draw(targets(loss, batch, sizes[-1]))
    dtype = np.dtype(dtype)
    return [W.astype(dtype) for W in params], x.astype(dtype), y.astype(dtype)
