"""sgd_step: W <- W - lr dJ/dW in one pass. JAX-free (part of the mutation-testing subset);
the JAX twin is compared with it in tests/test_api.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff_check as ac
import manual_backprop as mb
from strategies import examples, problems


def _tolerance(params, x, y, activation, loss, lr, g):
    """|sgd_step - (W - lr g)| per entry. The two differ only in the last product and the
    addition: sgd_step forms a^T (-lr delta), the reference lr (a^T delta). Over B terms that
    is at most (B + 2) u lr |a|^T |delta| <= 3 lr eG, with eG >= B u |a|^T |delta| the
    gradient's rounding bound (autodiff_check.rounding_bound), plus 2 roundings of the sum
    W - lr g, each u (|W| + lr |g|)."""
    dtype = params[0].dtype
    u = ac.unit_roundoff(dtype)
    eG = ac.rounding_bound(params, x, y, activation, loss, dtype=dtype).grad
    return [3 * lr * e + 2 * u * (np.abs(W) + lr * np.abs(G)) for e, W, G in zip(eG, params, g)]


@settings(max_examples=examples(20))
@given(data=st.data(), activation=st.sampled_from(sorted(mb.ACTIVATIONS)),
       loss=st.sampled_from(sorted(mb.LOSSES)), dtype=st.sampled_from([np.float32, np.float64]),
       lr=st.sampled_from([1e-3, 0.1, 2.0]))
def test_sgd_step_is_gradient_descent(data, activation, loss, dtype, lr):
    params, x, y = data.draw(problems(loss, magnitude=10.0))
    params = [W.astype(dtype) for W in params]
    x, y = x.astype(dtype), y.astype(dtype)
    J_ref, g = mb.loss_and_grad(params, x, y, activation=activation, loss=loss)
    expected = [W - dtype(lr) * G for W, G in zip(params, g)]
    tol = _tolerance(params, x, y, activation, loss, lr, g)
    stepped = [W.copy() for W in params]
    J, out = mb.sgd_step(stepped, x, y, lr, activation=activation, loss=loss, workspace=mb.Workspace())
    assert J == J_ref and out is stepped
    for l, (a, b, t) in enumerate(zip(stepped, expected, tol)):
        assert a.dtype == dtype
        assert np.all(np.abs(a.astype(np.float64) - b) <= t), (l, np.max(np.abs(a - b) - t))


@pytest.mark.parametrize("sizes,batch", [([1, 3, 2], 3), ([4, 3, 2], 1), ([1, 2], 1), ([3, 1, 2], 2)])
def test_single_feature_and_single_example_shapes(sizes, batch):
    """The rank-1 path (B = 1) and the gemm path (B > 1), also with one input feature or one
    hidden unit, where a row and a column have the same length."""
    rng = np.random.default_rng(1)
    params = mb.init_params(sizes, seed=3)
    x, y = rng.normal(size=(batch, sizes[0])), rng.uniform(size=(batch, sizes[-1]))
    _, g = mb.loss_and_grad(params, x, y)
    expected = [W - 0.2 * G for W, G in zip(params, g)]
    tol = _tolerance(params, x, y, "sigmoid", "binary_cross_entropy", 0.2, g)
    mb.sgd_step(params, x, y, 0.2)
    for a, b, t in zip(params, expected, tol):
        assert np.all(np.abs(a - b) <= t)


def test_non_finite_parameters_are_refused_by_default():
    params = mb.init_params([3, 4, 2], seed=0)
    params[1][2, 1] = np.inf
    with pytest.raises(ValueError, match=r"params\[1\] contains NaN or inf"):
        mb.sgd_step(params, np.ones((1, 3)), mb.one_hot([1], 2), 0.1)


def test_workspace_reuse_across_batch_sizes_changes_nothing():
    """B = 1 (the rank-1 BLAS update) and B > 1 (the gemm path) through one workspace give the
    same parameters, bit for bit, as fresh calls."""
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(7, 5)), rng.integers(0, 3, 7)
    y = mb.one_hot(labels, 3)
    a = mb.init_params([5, 6, 4, 3], seed=2)
    b = [W.copy() for W in a]
    ws = mb.Workspace()
    for s in (slice(0, 1), slice(1, 4), slice(4, 5), slice(5, 7)):
        mb.sgd_step(a, x[s], y[s], 0.3, activation="tanh", workspace=ws)
        mb.sgd_step(b, x[s], y[s], 0.3, activation="tanh")
    assert all(np.array_equal(p, q) for p, q in zip(a, b))


def test_a_non_finite_loss_leaves_the_parameters_unchanged():
    params = mb.init_params([3, 4, 2], seed=0)
    params[1][0, 0] = np.nan  # past the finiteness check, the loss is NaN
    before = [W.copy() for W in params]
    x, y = np.ones((2, 3)), mb.one_hot([0, 1], 2)
    with pytest.raises(FloatingPointError, match="the loss is nan; no parameter was updated"):
        mb.sgd_step(params, x, y, 0.1, check_finite=False)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(params, before))


BAD_LEARNING_RATES = [float("nan"), float("inf"), "0.1", None, True]


@pytest.mark.parametrize("lr", BAD_LEARNING_RATES)
def test_bad_learning_rates_are_refused(lr):
    params, x, y = mb.init_params([3, 2], seed=0), np.ones((1, 3)), mb.one_hot([1], 2)
    with pytest.raises(TypeError, match="lr must be a finite real number"):
        mb.sgd_step(params, x, y, lr)


def test_parameters_that_cannot_be_updated_in_place_are_refused():
    x, y = np.ones((1, 3)), mb.one_hot([1], 2)
    params = mb.init_params([3, 4, 2], seed=0)
    params[1] = np.asfortranarray(params[1])
    with pytest.raises(ValueError, match=r"params\[1\] must be a writeable, aligned C-contiguous array"):
        mb.sgd_step(params, x, y, 0.1)
    params = mb.init_params([3, 4, 2], seed=0)
    params[0].flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] must be a writeable, aligned C-contiguous array"):
        mb.sgd_step(params, x, y, 0.1)
    # unaligned memory: BLAS would work on a copy and leave the weights as they were (review)
    params = mb.init_params([3, 4, 2], seed=0)
    raw = bytearray(params[0].nbytes + 1)
    unaligned = np.frombuffer(raw, np.float64, offset=1).reshape(params[0].shape)
    unaligned[...] = params[0]
    assert not unaligned.flags.aligned
    with pytest.raises(ValueError, match=r"params\[0\] must be a writeable, aligned C-contiguous array"):
        mb.sgd_step([unaligned, params[1]], x, y, 0.1)


def test_a_learning_rate_that_overflows_the_dtype_is_refused():
    params = [W.astype(np.float32) for W in mb.init_params([3, 2], seed=0)]
    before = [W.copy() for W in params]
    with pytest.raises(ValueError, match="lr = 1e.39 overflows float32"):
        mb.sgd_step(params, np.ones((1, 3), np.float32), np.ones((1, 2), np.float32), 1e39)
    assert all(np.array_equal(a, b) for a, b in zip(params, before))


def test_blas_thread_counts_are_left_as_they_were():
    """At B = 1 the rank-1 update runs with SciPy's bundled BLAS on one thread (two OpenBLAS
    pools spinning against each other made steps 2.8x slower); every library's thread count
    is restored afterwards, also when the step raises."""
    from threadpoolctl import threadpool_info

    def counts():
        return {i["filepath"]: i["num_threads"] for i in threadpool_info()}

    params, x, y = mb.init_params([3, 4, 2], seed=0), np.ones((1, 3)), mb.one_hot([1], 2)
    mb.sgd_step(params, x, y, 0.1)  # loads SciPy's BLAS
    before = counts()
    mb.sgd_step(params, x, y, 0.1)
    assert counts() == before
    params[1][0, 0] = np.nan
    with pytest.raises(FloatingPointError):
        mb.sgd_step(params, x, y, 0.1, check_finite=False)
    assert counts() == before


def test_during_a_batch_1_step_scipys_own_blas_runs_on_one_thread(monkeypatch):
    """What the thread limit is for: while a batch-1 step runs (observed from inside the loss),
    the BLAS bundled in SciPy's wheels (``scipy.libs``) has one thread and NumPy's keeps its own
    count. A batch of 2 leaves both alone."""
    import os

    from threadpoolctl import threadpool_info

    from manual_backprop.losses import LOSSES

    params, y = mb.init_params([3, 4, 2], seed=0), mb.one_hot([1, 0], 2)
    mb.sgd_step(params, np.ones((1, 3)), y[:1], 0.1)  # loads SciPy's BLAS
    outside = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    scipys = [f for f in outside if f"{os.sep}scipy.libs{os.sep}" in f]
    if not scipys:
        pytest.skip("SciPy shares NumPy's BLAS here (not the pip wheels): nothing to limit")
    seen = []
    bce = LOSSES["binary_cross_entropy"]
    value = type(bce).value
    monkeypatch.setattr(bce, "value", lambda z, y: (seen.append({i["filepath"]: i["num_threads"]
                                                                 for i in threadpool_info()}), value(bce, z, y))[1])
    mb.sgd_step(params, np.ones((1, 3)), y[:1], 0.1)
    mb.sgd_step(params, np.ones((2, 3)), y, 0.1)
    batch_1, batch_2 = seen
    assert all(batch_1[f] == 1 for f in scipys)
    assert all(batch_1[f] == n for f, n in outside.items() if f not in scipys)
    assert batch_2 == outside
