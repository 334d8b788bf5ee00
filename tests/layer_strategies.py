"""Hypothesis strategies for the layers: each draws ``(primals, options)`` for one layer.

Hypothesis draws the shapes, strides, paddings, sequence lengths and options; the values come
from ``np.random.default_rng`` with a drawn seed and a drawn scale (arrays of hundreds of
entries drawn element by element would be slow and add little). Inputs stay away from the
points where a layer is not differentiable (ties in a max-pool window, relu's kink) and from
degenerate normalisation (a variance near 0), as the tolerances in layer_checks assume.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

seeds = st.integers(0, 2**32 - 1)
scales = st.sampled_from([1.0, 0.3, 2.0])
pairs_or_ints = lambda lo, hi: st.one_of(st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi)))  # noqa: E731


def _rng(draw):
    return np.random.default_rng(draw(seeds)), draw(scales)


def _two(v):
    return (v, v) if isinstance(v, int) else v


def distinct(rng, shape, scale) -> np.ndarray:
    """Values all different, gaps of 2 scale / size, in random order: no ties anywhere."""
    size = int(np.prod(shape))
    return (rng.permutation(size) * (2.0 / size) - 1.0).reshape(shape) * scale + rng.uniform(-0.1, 0.1) / size


@st.composite
def dense(draw):
    rng, s = _rng(draw)
    N, n_in, n_out = draw(st.integers(1, 6)), draw(st.integers(1, 7)), draw(st.integers(1, 6))
    return (s * rng.standard_normal((N, n_in)), rng.standard_normal((n_in + 1, n_out))), {}


@st.composite
def conv2d(draw, *, max_padding=None):
    rng, s = _rng(draw)
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(pairs_or_ints(1, 3))
    padding = draw(pairs_or_ints(0, 2)) if max_padding is None else draw(pairs_or_ints(0, max_padding))
    ph, pw = _two(padding)
    H = draw(st.integers(max(1, kh - 2 * ph), 8))
    W = draw(st.integers(max(1, kw - 2 * pw), 8))
    return (
        (s * rng.standard_normal((N, C, H, W)), rng.standard_normal((F, C, kh, kw)), rng.standard_normal(F)),
        {"stride": stride, "padding": padding},
    )


@st.composite
def pool(draw, *, ties=False):
    rng, s = _rng(draw)
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    size = draw(pairs_or_ints(1, 3))
    kh, kw = _two(size)
    stride = draw(st.one_of(st.none(), pairs_or_ints(1, 3)))
    H, W = draw(st.integers(kh, 8)), draw(st.integers(kw, 8))
    x = distinct(rng, lead + (H, W), s)
    if ties:  # a window's maximum appears at two positions
        assume(kh * kw > 1)
        x[..., 0, 0] = x[..., :kh, :kw].max(axis=(-2, -1))
        x[..., kh - 1, kw - 1] = x[..., 0, 0]
    return (x,), {"size": size, "stride": stride}


@st.composite
def dropout(draw):
    rng, s = _rng(draw)
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    rate = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
    keep = rng.random(shape) >= rate
    return (s * rng.standard_normal(shape), keep), {"rate": rate}


def _spread(x, axes):
    """Variance of each normalised group: 0.01 at least keeps 1/sigma <= 10."""
    return x.var(axis=axes).min()


@st.composite
def batch_norm(draw):
    rng, s = _rng(draw)
    N, C = draw(st.integers(2, 5)), draw(st.integers(1, 4))
    spatial = tuple(draw(st.sampled_from([(), (1, 1), (2, 3), (3, 1)])))
    x = s * rng.standard_normal((N, C) + spatial) + rng.uniform(-3, 3, (1, C) + (1,) * len(spatial))
    assume(_spread(x, (0,) + tuple(range(2, x.ndim))) > 0.01)
    eps = draw(st.sampled_from([1e-5, 1e-3, 0.1]))
    return (x, rng.uniform(0.5, 2, C) * rng.choice([-1, 1], C), rng.standard_normal(C)), {"eps": eps}


@st.composite
def layer_norm(draw):
    rng, s = _rng(draw)
    lead = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
    D = draw(st.integers(2, 7))
    x = s * rng.standard_normal(lead + (D,)) + rng.uniform(-3, 3, lead + (1,))
    assume(_spread(x, -1) > 0.01)
    eps = draw(st.sampled_from([1e-5, 1e-3, 0.1]))
    return (x, rng.uniform(0.5, 2, D) * rng.choice([-1, 1], D), rng.standard_normal(D)), {"eps": eps}


@st.composite
def softmax(draw, *, scales=(1.0, 3.0, 30.0)):
    rng, _ = _rng(draw)
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    s = draw(st.sampled_from(scales))   # 30: large logits, exp(x) would overflow unshifted at ~710
    return (s * rng.standard_normal(shape),), {"axis": axis}


@st.composite
def attention(draw, *, min_d=1, min_T=1):
    rng, s = _rng(draw)
    causal = draw(st.booleans())
    N, Tq, d, dv = draw(st.integers(1, 3)), draw(st.integers(min_T, 6)), draw(st.integers(min_d, 5)), draw(st.integers(1, 4))
    Tk = Tq if causal else draw(st.integers(min_T, 6))
    q, k, v = s * rng.standard_normal((N, Tq, d)), rng.standard_normal((N, Tk, d)), rng.standard_normal((N, Tk, dv))
    return (q, k, v), {"causal": causal}


@st.composite
def embedding(draw, *, repeated=False):
    rng, s = _rng(draw)
    V, d = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    N, T = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    ids = rng.integers(0, V, (N, T))
    if repeated:
        assume(N * T >= 2)
        ids.flat[1] = ids.flat[0]
    return (ids, s * rng.standard_normal((V, d))), {}


@st.composite
def rnn(draw, *, min_T=1):
    rng, s = _rng(draw)
    N, T, D, H = draw(st.integers(1, 3)), draw(st.integers(min_T, 6)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return (
        s * rng.standard_normal((N, T, D)), rng.standard_normal((N, H)),
        rng.standard_normal((D, H)) / np.sqrt(D), rng.standard_normal((H, H)) / np.sqrt(H), 0.5 * rng.standard_normal(H),
    ), {}


@st.composite
def lstm(draw, *, min_T=1):
    rng, s = _rng(draw)
    N, T, D, H = draw(st.integers(1, 3)), draw(st.integers(min_T, 6)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return (
        s * rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H)),
        rng.standard_normal((D, 4 * H)) / np.sqrt(D), rng.standard_normal((H, 4 * H)) / np.sqrt(H),
        0.5 * rng.standard_normal(4 * H),
    ), {}


@st.composite
def relu(draw):
    rng, s = _rng(draw)
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    return (s * rng.choice([-1, 1], shape) * rng.uniform(0.1, 2, shape),), {}   # |x| >= 0.1 s: off the kink


@st.composite
def sigmoid(draw):
    rng, s = _rng(draw)
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    return (3 * s * rng.standard_normal(shape),), {}


@st.composite
def reshape(draw):
    rng, _ = _rng(draw)
    N, a, b = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    shape = draw(st.sampled_from([(-1,), (b, a), (a * b, 1)]))
    return (rng.standard_normal((N, a, b)),), {"shape": shape}
