"""Hypothesis strategies for checking your own layers: shapes, arrays and layer inputs.

    from hypothesis import given
    import autodiff_check as ac
    from autodiff_check.strategies import affine_inputs

    @given(affine_inputs())
    def test_my_affine_backward(args):
        ac.assert_vjp(my_affine, my_affine_backward, *args)

This is the only module of autodiff_check that imports hypothesis (install it with
``pip install hypothesis``). Values are bounded (default |v| <= 10) and finite, and the
drawn arrays are float64 or float32: the checker measures each function's own noise, so
float32 layers are checked in float32.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = ["affine_inputs", "arrays", "batchnorm_inputs", "dtypes", "shapes"]


def dtypes() -> st.SearchStrategy:
    """float64 or float32."""
    return st.sampled_from([np.float64, np.float32])


def shapes(*, min_dims: int = 1, max_dims: int = 4, min_side: int = 1, max_side: int = 5) -> st.SearchStrategy:
    """Array shapes, ``min_dims``..``max_dims`` axes of ``min_side``..``max_side`` each."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def arrays(shape=None, dtype=np.float64, *, magnitude: float = 10.0, **shape_kw) -> st.SearchStrategy:
    """Finite arrays with entries in [-magnitude, magnitude]; ``shape`` a tuple or a strategy
    (default :func:`shapes` with ``shape_kw``)."""
    width = 32 if np.dtype(dtype) == np.float32 else 64
    elements = st.floats(-magnitude, magnitude, allow_nan=False, allow_infinity=False, width=width)
    return hnp.arrays(np.dtype(dtype), shapes(**shape_kw) if shape is None else shape, elements=elements)


@st.composite
def affine_inputs(draw, *, max_batch: int = 4, max_side: int = 4, dtype=None, magnitude: float = 3.0):
    """``(x, W, b)`` for an affine layer ``x.reshape(N, -1) @ W + b``: x of shape (N, d_1, ..., d_k)."""
    dt = draw(dtypes()) if dtype is None else dtype
    n = draw(st.integers(1, max_batch))
    feat = draw(shapes(min_dims=1, max_dims=3, max_side=max_side))
    d_in, d_out = int(np.prod(feat)), draw(st.integers(1, max_side))
    x = draw(arrays((n, *feat), dt, magnitude=magnitude))
    W = draw(arrays((d_in, d_out), dt, magnitude=magnitude))
    b = draw(arrays((d_out,), dt, magnitude=magnitude))
    return x, W, b


@st.composite
def batchnorm_inputs(draw, *, max_batch: int = 6, max_features: int = 4, dtype=None):
    """``(x, gamma, beta)`` for batch normalisation over axis 0, with a batch of at least 2
    whose columns are not constant (the variance is not 0)."""
    dt = draw(dtypes()) if dtype is None else dtype
    n, d = draw(st.integers(2, max_batch)), draw(st.integers(1, max_features))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    x = (draw(st.floats(-5, 5)) + scale * rng.standard_normal((n, d))).astype(dt)
    gamma = (1 + 0.5 * rng.standard_normal(d)).astype(dt)
    beta = rng.standard_normal(d).astype(dt)
    return x, gamma, beta
