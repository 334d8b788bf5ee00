"""manual_backprop.fast computes the reference's numbers (manual_backprop.network): bit-equal
where the arithmetic is the same, within the rounding bound where it is not; with buffers that
are reused, never shared, and never allocated again once warm. JAX-free (part of the
mutation-testing subset)."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_info, threadpool_limits

import autodiff_check as ac
import manual_backprop as mb
from manual_backprop import _blas, _threads, fast
from manual_backprop.losses import LOSSES as LOSS_OBJECTS
from strategies import ACTIVATIONS, DTYPES, LOSSES, examples, problems
from support import assert_bit_equal, assert_same_gradient


def rounding(params, x, y, activation, loss):
    """Per-entry bound on |computed - exact| gradient for this network in its dtype."""
    return ac.rounding_bound(params, x, y, activation, loss, dtype=params[0].dtype).grad


@settings(max_examples=examples(20))
@given(data=st.data(), activation=st.sampled_from(ACTIVATIONS), loss=st.sampled_from(LOSSES),
       dtype=st.sampled_from(DTYPES))
def test_fast_loss_and_grad_is_the_reference(data, activation, loss, dtype):
    """With out= and a Workspace reused across batch sizes. Sigmoid's in-place kernels round
    differently (delta a (1 - a) in another order), so there the two agree within 4 bounds (each is within one bound of the
    exact gradient; the factor 2 covers second-order terms); elsewhere bit for bit."""
    params, x, y = data.draw(problems(loss, magnitude=100.0, dtype=dtype))
    sizes = st.just([W.shape[0] - 1 for W in params] + [params[-1].shape[1]])
    _, x2, y2 = data.draw(problems(loss, magnitude=100.0, sizes=sizes, dtype=dtype))
    kw = dict(activation=activation, loss=loss)
    ws, out = fast.Workspace(), [np.full_like(W, np.nan) for W in params]
    for xb, yb in [(x, y), (x2, y2), (x, y)]:
        J_ref, ref = mb.loss_and_grad(params, xb, yb, **kw)
        J, g = fast.loss_and_grad(params, xb, yb, out=out, workspace=ws, **kw)
        assert all(a is b for a, b in zip(g, out))
        if activation == "sigmoid":
            assert_same_gradient(g, ref, [4 * e for e in rounding(params, xb, yb, activation, loss)])
        else:
            assert J == J_ref
            assert_bit_equal(g, ref)


@pytest.mark.parametrize("name", sorted(fast.IN_PLACE))
@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_kernels_are_g_and_g_prime(name, dtype):
    """fn_inplace(z, b) overwrites z with g(z + b), returns it and whether z + b was finite;
    times_grad_inplace(d, a) multiplies d by g'. Against the reference's fn and grad: within
    4 eps relative (sigmoid's kernel is 1 / (1 + e^{-t}) for every t, fn the same formula
    with its roundings in another order: a few ulps) or the smallest normal number (where
    e^{-t} overflows, t = -1000 and -1e4, both give 0, and no warning is raised)."""
    fn_inplace, times_grad_inplace = fast.IN_PLACE[name]
    act = mb.ACTIVATIONS[name]
    z = np.array([[-1e4, -1000.0, -30.0, -2.0, -0.3, 0.0, 0.7, 4.0, 40.0, 1000.0]], dtype)
    b = np.array([0.0, 1.0, -0.5, 0.25, 0.3, -1e-3, 0.0, 2.0, -1.0, 5.0], dtype)
    t = z + b
    expected = act.fn(t)
    buf = z.copy()
    with np.errstate(over="ignore"):               # as inside loss_and_grad and sgd_step
        a, finite = fn_inplace(buf, b)
    assert a is buf and finite is True
    eps, tiny = np.finfo(dtype).eps, np.finfo(dtype).tiny
    np.testing.assert_allclose(buf, expected, rtol=4 * eps, atol=tiny)
    assert buf[0, 0] == (0 if name == "sigmoid" else -1)
    d = np.linspace(-2, 3, z.size, dtype=dtype).reshape(z.shape)
    expected_d = d * act.grad(t, expected)
    assert times_grad_inplace(d, expected.copy()) is None
    np.testing.assert_allclose(d, expected_d, rtol=4 * eps, atol=tiny)


@pytest.mark.parametrize("name", sorted(fast.IN_PLACE))
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", ["z", "b"])
def test_in_place_kernels_report_a_non_finite_pre_activation(name, bad, where):
    """g hides +-inf (sigmoid: 1 or 0, tanh: +-1), so the kernel must say so itself."""
    fn_inplace, _ = fast.IN_PLACE[name]
    z, b = np.zeros((2, 3)), np.zeros(3)
    (z if where == "z" else b)[..., 1] = bad
    with np.errstate(over="ignore", invalid="ignore"):
        _, finite = fn_inplace(z, b)
    assert finite is False


def test_gradients_returned_with_a_workspace_survive_the_next_call():
    params = mb.init_params([4, 5, 5, 3], seed=0)
    rng = np.random.default_rng(0)
    x1, x2, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), mb.one_hot(rng.integers(0, 3, 6), 3)
    ws = fast.Workspace()
    _, g1 = fast.loss_and_grad(params, x1, y, workspace=ws)
    kept = [g.copy() for g in g1]
    fast.loss_and_grad(params, x2, y, workspace=ws)
    assert_bit_equal(g1, kept)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_loss_and_grad_never_modifies_params(activation):
    params = mb.init_params([4, 5, 5, 3], seed=1)
    before = [W.copy() for W in params]
    x = np.random.default_rng(1).normal(size=(3, 4)) * 50
    for f in (mb.loss_and_grad, lambda *a, **k: fast.loss_and_grad(*a, workspace=fast.Workspace(), **k)):
        f(params, x, mb.one_hot([0, 1, 2], 3), activation=activation)
        assert_bit_equal(params, before)


@pytest.mark.parametrize("make_out,error,message", [
    (lambda p: [np.empty_like(W) for W in p[:-1]], TypeError, "out must be a list of 2 arrays"),
    (lambda p: [np.empty_like(p[0]), np.empty((3, 3))], ValueError, r"out\[1\] must be a float64 array of shape \(5, 2\)"),
    (lambda p: np.empty((2, 4, 2)), TypeError, "out must be a list of 2 arrays"),
    (lambda p: [np.empty_like(p[0]), np.empty_like(p[1], dtype=np.float32)], ValueError,
     r"out\[1\] must be a float64 array of shape \(5, 2\); got float32 array of shape \(5, 2\)"),
    (lambda p: [np.empty_like(p[0]), [[0.0] * 2] * 5], ValueError, "got list"),
    (lambda p: [np.empty_like(p[0]), np.empty((2, 5)).T], ValueError, "C-contiguous"),
    (lambda p: [p[0], np.empty_like(p[1])], ValueError, "overlaps the parameters"),
    (lambda p: {0: np.empty_like(p[0]), 1: np.empty_like(p[1])}, TypeError, "out must be a list of 2 arrays"),
])
def test_bad_out_is_refused_by_name(make_out, error, message):
    params = mb.init_params([3, 4, 2], seed=0)
    with pytest.raises(error, match=message):
        fast.loss_and_grad(params, np.ones((2, 3)), mb.one_hot([0, 1], 2), out=make_out(params))


def test_one_array_for_two_layers_is_refused():
    """Two layers of one shape and one array given for both: the second layer's gradient
    would overwrite the first's."""
    params = mb.init_params([3, 3, 3], seed=0)
    g = np.empty_like(params[0])
    with pytest.raises(ValueError, match=r"out\[1\] overlaps another entry of out"):
        fast.loss_and_grad(params, np.ones((2, 3)), mb.one_hot([0, 1], 3), out=[g, g[:, :]])


def _peak_bytes(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 64])
def test_a_warm_call_allocates_no_array_of_a_hidden_layers_size(activation, dtype, batch):
    """Once warm, loss_and_grad(out=, workspace=) and sgd_step(workspace=) allocate only the
    output layer's (B, n_L) arrays and single rows, nothing the size of a hidden layer (B, n_l)
    or a weight matrix (tracemalloc sees NumPy's buffers; at B = 1 a hidden layer is a row,
    so there the test is about weight-sized arrays). Allowed: NumPy's ufunc buffer
    (np.getbufsize() elements, used by the broadcast bias add) and 16 kB for rows."""
    params = mb.init_params([40, 400, 300, 3], seed=0, dtype=dtype)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 40)).astype(dtype)
    y = mb.one_hot(rng.integers(0, 3, batch), 3, dtype=dtype)
    itemsize = np.dtype(dtype).itemsize
    smallest = (batch * 300 if batch > 1 else 40 * 400) * itemsize
    allowed = np.getbufsize() * itemsize + 16384
    assert smallest > allowed  # so that the test can tell
    ws, out = fast.Workspace(), [np.empty_like(W) for W in params]
    for call in (lambda: fast.loss_and_grad(params, x, y, activation=activation, out=out, workspace=ws),
                 lambda: fast.sgd_step(params, x, y, 1e-3, activation=activation, workspace=ws)):
        call()  # warm: the workspace allocates here
        assert _peak_bytes(call) < allowed


def _without_one_gemm(monkeypatch) -> None:
    """sgd_step as on a NumPy whose BLAS is not its wheel's OpenBLAS: the product formed
    apart, then added."""
    monkeypatch.setattr(_blas, "add_a_T_delta", lambda W, a, delta: False)


NUMPY_WHEEL_OPENBLAS = bool(glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*"))
                            + glob.glob(os.path.join(os.path.dirname(np.__file__), ".dylibs", "*openblas*")))


@pytest.mark.parametrize("one_gemm", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_step_holds_no_layers_product_or_one_not_every_layers(monkeypatch, one_gemm, dtype):
    """At B > 1, a_{l-1}^T delta_l is added into W_l by one gemm of NumPy's BLAS where that is
    its wheel's OpenBLAS (no array of a layer's size), else goes through one scratch array as
    large as the largest layer: a cold step of six 200 x 200 layers then allocates well under
    two layers' worth (the rest is (B, n) activations), where one array per layer would be six."""
    if one_gemm and not NUMPY_WHEEL_OPENBLAS:
        pytest.skip("NumPy's BLAS is not the OpenBLAS of its wheel")
    if not one_gemm:
        _without_one_gemm(monkeypatch)
    params = mb.init_params([200] * 7, seed=0, dtype=dtype)
    x, y = np.ones((4, 200), dtype), np.full((4, 200), 0.5, dtype)
    layer = 200 * 200 * np.dtype(dtype).itemsize      # (a scratch array in another dtype: more)
    mb.sgd_step(params, x, y, 0.1)                     # the first call of the process finds the BLAS
    peak = _peak_bytes(lambda: mb.sgd_step(params, x, y, 0.1, workspace=fast.Workspace()))
    assert peak < (0.5 if one_gemm else 1.5) * layer


@pytest.mark.parametrize("one_gemm", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 2, 64, 1024])
@pytest.mark.parametrize("row_stride", [0, 3])
def test_a_step_in_exact_arithmetic_is_the_references_w_minus_lr_g_bit_for_bit(monkeypatch, one_gemm, dtype,
                                                                                batch, row_stride):
    """Entries in {-1, 0, 1}, ReLU, squared error, B and lr powers of 2: every product and
    sum, the reference's and the step's, is exact (|dJ/dW| <= 156 in steps of 1/1024 needs 18
    bits), so W - lr g holds to the bit whichever order or blocks the BLAS sums in. With
    ``row_stride``, x and every W_l have that many more entries per row than they use (the
    leading dimensions; at batch 1 such a W_l takes the gemm, not the rank-1 update)."""
    if not one_gemm:
        _without_one_gemm(monkeypatch)
    rng = np.random.default_rng(batch + row_stride)
    params = [rng.integers(-1, 2, (W.shape[0], W.shape[1] + row_stride)).astype(dtype)[:, row_stride:]
              for W in mb.init_params([5, 4, 3], seed=0)]
    x = rng.integers(-1, 2, (batch, 5 + row_stride)).astype(dtype)[:, row_stride:]
    y = rng.integers(-1, 2, (batch, 3)).astype(dtype)
    kw = dict(activation="relu", loss="mean_squared_error")
    _, g = mb.loss_and_grad(params, x, y, **kw)
    expected = [W - dtype(0.5) * G for W, G in zip(params, g)]
    mb.sgd_step(params, x, y, 0.5, workspace=fast.Workspace(), **kw)
    assert_bit_equal(params, expected)


def _laid_out(values: np.ndarray, layout: str) -> np.ndarray:
    """An (r, c) array of ``values``' dtype in another memory layout: ``rows`` a slice of wider
    rows (a leading dimension > c), ``columns`` every other entry of a row (the entries between
    NaN), ``fortran``, ``readonly``, ``unaligned``, all holding ``values``; ``overlap`` a
    window sliding along one line of them, row i one entry after row i - 1 (rows that share
    entries, ld 1 < c)."""
    r, c = values.shape
    if layout == "rows":
        wide = np.full((r, c + 3), np.nan, values.dtype)  # a read of a gap would bring NaN in
        wide[:, 2:c + 2] = values
        return wide[:, 2:c + 2]
    if layout == "columns":
        wide = np.full((r, 2 * c), np.nan, values.dtype)
        wide[:, ::2] = values
        return wide[:, ::2]
    if layout == "overlap":                            # row i is line[i:i + c]
        line = np.concatenate([values[0], values[1:, -1]])
        return np.lib.stride_tricks.as_strided(line, (r, c), (line.itemsize, line.itemsize))
    if layout == "fortran":
        return np.array(values, order="F")              # a copy, even of one already in that order
    if layout == "readonly":
        values = values.copy()
        values.flags.writeable = False
        return values
    if layout == "unaligned":
        out = _unaligned_like(values)
        out[...] = values
        return out
    return values.copy()


LAYOUTS = ["contiguous", "rows", "columns", "overlap", "fortran", "readonly", "unaligned"]


@pytest.mark.parametrize("odd, layout", [(name, layout) for name in ("W", "a", "delta") for layout in LAYOUTS
                                         if (name, layout) != ("W", "overlap")])
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=examples(10))
@given(m=st.integers(1, 3), n=st.integers(1, 3), k=st.integers(1, 3), other_dtype=st.booleans(), seed=st.integers(0, 99))
def test_adding_a_T_delta_into_w_is_exact_or_not_done(odd, layout, dtype, m, n, k, other_dtype, seed):
    """``_blas.add_a_T_delta(W, a, delta)``, the one gemm of sgd_step: on entries in {-1, 0, 1}
    (every product and sum exact) either W becomes W + a^T delta to the bit and it returns
    True, or W is left as it was and it returns False (the caller then adds the product
    itself), with one of the three arrays in ``layout`` (a read-only W: always left) and, with
    ``other_dtype``, ``a`` in the other dtype. Where NumPy's BLAS is its wheel's OpenBLAS,
    arrays of one dtype laid out as BLAS takes them are done."""
    rng = np.random.default_rng(seed)
    layouts = {name: layout if name == odd else "contiguous" for name in ("W", "a", "delta")}
    a_dtype = (np.float64 if dtype == np.float32 else np.float32) if other_dtype else dtype
    W0 = rng.integers(-1, 2, (m, n)).astype(dtype)
    a = _laid_out(rng.integers(-1, 2, (k, m)).astype(a_dtype), layouts["a"])
    delta = _laid_out(rng.integers(-1, 2, (k, n)).astype(dtype), layouts["delta"])
    W = _laid_out(W0, layouts["W"])
    before = W.copy()
    done = _blas.add_a_T_delta(W, a, delta)
    if done:
        assert W.flags.writeable                       # a read-only W is never written
        assert_bit_equal([W], [W0 + a.astype(dtype).T @ delta])
    else:
        assert_bit_equal([W], [before])
    if layout == "unaligned":                          # BLAS may assume aligned numbers
        assert not done
    if NUMPY_WHEEL_OPENBLAS and not other_dtype and layout in ("contiguous", "rows"):
        assert done


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_product_of_many_terms_is_added_into_a_large_w_to_the_bit(dtype):
    """200 x 200 from 3,000 terms: OpenBLAS adds the product into W in several blocks of
    terms here (its small-matrix kernel, one rounding, takes the sizes of the other tests).
    Entries in {-1, 0, 1}: every partial sum is an integer below 2^24, exact in float32."""
    rng = np.random.default_rng(5)
    W0, a, delta = (rng.integers(-1, 2, shape).astype(dtype) for shape in [(200, 200), (3000, 200), (3000, 200)])
    W = W0.copy()
    done = _blas.add_a_T_delta(W, a, delta)
    assert_bit_equal([W], [W0 + a.T @ delta] if done else [W0])
    assert done or not NUMPY_WHEEL_OPENBLAS


def test_dimensions_beyond_the_blas_integers_are_left_to_numpy(monkeypatch):
    """ctypes would wrap an int beyond a 32-bit BLAS's integers (k = 2^32 + 3 read as 3):
    any dimension or leading dimension beyond the largest the library's integers hold is not
    passed, and W is left to the caller."""
    calls = []
    monkeypatch.setattr(_blas, "_gemm", lambda dtype: ((lambda *args: calls.append(args)), 4))
    W = np.zeros((2, 3))
    assert _blas.add_a_T_delta(W, np.ones((4, 2)), np.ones((4, 3))) and len(calls) == 1
    for a, delta, Wide in [(np.ones((5, 2)), np.ones((5, 3)), W), (np.ones((4, 2)), np.ones((4, 3)), np.zeros((2, 5))[:, :3])]:
        assert not _blas.add_a_T_delta(Wide, a, delta)
    assert len(calls) == 1


@pytest.mark.parametrize("a_shape, delta_shape", [((3, 4), (3, 5)), ((2, 3), (3, 5)), ((2, 3), (2, 4))])
def test_adding_a_T_delta_of_mismatched_shapes_is_refused(a_shape, delta_shape):
    """BLAS would read past an a or delta too small for W: refused, W untouched."""
    W = np.ones((3, 5))
    with pytest.raises(ValueError, match=r"^W \+= a\^T delta needs a \(B, 3\) and delta \(B, 5\); got "):
        _blas.add_a_T_delta(W, np.ones(a_shape), np.ones(delta_shape))
    assert (W == 1).all()


@pytest.mark.parametrize("path, own", [
    ("/venv/lib/python3.11/site-packages/numpy.libs/libscipy_openblas64_-32a4b2a6.so", True),
    ("/venv/lib/python3.11/site-packages/numpy/.dylibs/libscipy_openblas64_.dylib", True),
    ("/venv/lib/python3.11/site-packages/scipy.libs/libscipy_openblas-6cdc3b4a.so", False),
    ("/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0", False),
    ("/venv/lib/python3.11/site-packages/torch/lib/libopenblas.so", False),
])
def test_the_gemm_is_numpys_own_wheel_blas(path, own):
    """Only the OpenBLAS NumPy's wheels bundle is called: another library (SciPy's, the
    system's, torch's) may be one NumPy never calls, whose thread pool would spin against
    NumPy's. (Windows paths take os.sep, the same test.)"""
    assert _blas._is_numpys_own(path.replace("/", os.sep)) is own


@pytest.mark.parametrize("path, own", [
    ("/venv/lib/python3.11/site-packages/scipy.libs/libscipy_openblas-6cdc3b4a.so", True),
    ("/venv/lib/python3.11/site-packages/scipy/.dylibs/libscipy_openblas.dylib", True),
    ("/venv/lib/python3.11/site-packages/numpy.libs/libscipy_openblas64_-32a4b2a6.so", False),
    ("/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0", False),
])
def test_scipys_own_blas_is_told_from_numpys(path, own):
    """SciPy's wheel BLAS, which NumPy never calls, is the one held at one thread for a
    batch-1 step and left out of NumPy's thread count; told apart by the same rule as NumPy's."""
    assert _threads.is_scipys_own(path.replace("/", os.sep)) is own


def _sgd_tolerance(params, x, y, activation, loss, lr, g):
    """|sgd_step - (W - lr g)| per entry. They differ in the last product and the sum:
    sgd_step forms a^T (-lr delta), the reference lr (a^T delta); over B terms at most
    (B + 2) u lr |a|^T |delta| <= 3 lr eG (eG >= B u |a|^T |delta|, the gradient's rounding
    bound), plus sigmoid's in-place kernels (4 lr eG, as above). Then W: the reference's
    W - lr g rounds once, u (|W| + lr |g|); sgd_step adds the product into W as gemm does
    (one block of the B terms at a time) or at once, so rounds it at most B times, each u
    (|W| + lr |a|^T |delta|) <= u |W| + lr eG / B."""
    u, B = ac.unit_roundoff(params[0].dtype), x.shape[0]
    eG = rounding(params, x, y, activation, loss)
    return [8 * lr * e + (B + 1) * u * (np.abs(W) + lr * np.abs(G)) for e, W, G in zip(eG, params, g)]


@settings(max_examples=examples(20))
@given(data=st.data(), activation=st.sampled_from(ACTIVATIONS), loss=st.sampled_from(LOSSES),
       dtype=st.sampled_from(DTYPES), lr=st.sampled_from([1e-3, 0.1, 2.0]))
def test_sgd_step_is_gradient_descent(data, activation, loss, dtype, lr):
    params, x, y = data.draw(problems(loss, magnitude=10.0, dtype=dtype))
    J_ref, g = mb.loss_and_grad(params, x, y, activation=activation, loss=loss)
    expected = [W - dtype(lr) * G for W, G in zip(params, g)]
    stepped = [W.copy() for W in params]
    J, out = mb.sgd_step(stepped, x, y, lr, activation=activation, loss=loss, workspace=fast.Workspace())
    assert out is stepped and all(W.dtype == dtype for W in stepped)
    if activation != "sigmoid":
        assert J == J_ref
    assert_same_gradient(stepped, expected, _sgd_tolerance(params, x, y, activation, loss, lr, g))


@pytest.mark.parametrize("sizes,batch", [([1, 3, 2], 3), ([4, 3, 2], 1), ([1, 2], 1), ([3, 1, 2], 2)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_sgd_step_on_single_features_single_examples_and_any_layout(sizes, batch, order):
    """The rank-1 path (B = 1) and the gemm path (B > 1), with one input feature or one hidden
    unit (a row and a column of one length), on C- and Fortran-ordered weights."""
    rng = np.random.default_rng(1)
    params = [np.asarray(W, order=order) for W in mb.init_params(sizes, seed=3)]
    x, y = rng.normal(size=(batch, sizes[0])), rng.uniform(size=(batch, sizes[-1]))
    _, g = mb.loss_and_grad(params, x, y)
    expected = [W - 0.2 * G for W, G in zip(params, g)]
    tol = _sgd_tolerance(params, x, y, "sigmoid", "binary_cross_entropy", 0.2, g)
    mb.sgd_step(params, x, y, 0.2)
    assert_same_gradient(params, expected, tol)


@pytest.mark.parametrize("lr, exc, message", [
    (-1e-3, ValueError, r"^lr must be >= 0 \(a negative rate climbs the loss\); got -0\.001$"),
    (np.float32(-2), ValueError, r"^lr must be >= 0 \(a negative rate climbs the loss\); got -2\.0$"),
    (float("nan"), TypeError, r"^lr must be a finite real number; got nan$"),
    (True, TypeError, r"^lr must be a finite real number; got True$"),
    (1e39, ValueError, r"^lr = 1e\+39 overflows float32$"),
])
def test_sgd_step_refuses_a_bad_learning_rate_before_any_update(lr, exc, message):
    params = mb.init_params([3, 2], seed=0, dtype=np.float32)
    before = [W.copy() for W in params]
    with pytest.raises(exc, match=message):
        mb.sgd_step(params, np.ones((2, 3), np.float32), np.ones((2, 2), np.float32), lr)
    assert all(np.array_equal(W, V) for W, V in zip(params, before))


def test_a_step_at_lr_0_returns_the_loss_and_changes_nothing():
    params, x, y = mb.init_params([3, 4, 2], seed=0), np.ones((1, 3)), mb.one_hot([1], 2)
    before = [W.copy() for W in params]
    J, out = mb.sgd_step(params, x, y, 0)
    assert J == mb.loss_and_grad(before, x, y)[0] and out is params
    assert all(np.array_equal(W, V) for W, V in zip(params, before))


def test_unaligned_parameters_are_updated_where_they_are():
    """BLAS would work on a copy of unaligned memory and leave the weights as they were; the
    step takes the NumPy path for them instead."""
    params = mb.init_params([3, 4, 2], seed=0)
    raw = bytearray(params[0].nbytes + 1)
    unaligned = np.frombuffer(raw, np.float64, offset=1).reshape(params[0].shape)
    unaligned[...] = params[0]
    assert not unaligned.flags.aligned
    x, y = np.ones((1, 3)), mb.one_hot([1], 2)
    _, g = mb.loss_and_grad(params, x, y)
    tol = _sgd_tolerance(params, x, y, "sigmoid", "binary_cross_entropy", 0.1, g)[:1]  # derived there
    mb.sgd_step([unaligned, params[1]], x, y, 0.1)
    assert_same_gradient([unaligned], [params[0] - 0.1 * g[0]], tol)


def test_read_only_parameters_are_refused():
    params = mb.init_params([3, 4, 2], seed=0)
    params[0].flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] is read-only"):
        mb.sgd_step(params, np.ones((1, 3)), mb.one_hot([1], 2), 0.1)


def test_workspace_reuse_across_batch_sizes_changes_nothing():
    """B = 1 (the rank-1 BLAS update) and B > 1 (the gemm path) through one workspace give the
    same parameters, bit for bit, as fresh calls."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), mb.one_hot(rng.integers(0, 3, 7), 3)
    a = mb.init_params([5, 6, 4, 3], seed=2)
    b = [W.copy() for W in a]
    ws = fast.Workspace()
    for s in (slice(0, 1), slice(1, 4), slice(4, 5), slice(5, 7)):
        mb.sgd_step(a, x[s], y[s], 0.3, activation="tanh", workspace=ws)
        mb.sgd_step(b, x[s], y[s], 0.3, activation="tanh")
    assert_bit_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_input_feature_at_batch_4_is_the_references_bit_for_bit(dtype):
    """x of shape (4, 1): a_0^T delta is a k = 4 product with a one-column a_0, still the
    reference's bits."""
    rng = np.random.default_rng(6)
    params = mb.init_params([1, 3, 2], seed=7, dtype=dtype)
    x, y = rng.normal(size=(4, 1)).astype(dtype), rng.uniform(size=(4, 2)).astype(dtype)
    kw = dict(activation="tanh", loss="mean_squared_error")
    J_ref, ref = mb.loss_and_grad(params, x, y, **kw)
    J, g = fast.loss_and_grad(params, x, y, **kw)
    assert J == J_ref
    assert_bit_equal(g, ref)


@pytest.mark.parametrize("batch", [2, 64, 300])
@pytest.mark.parametrize("dtype", DTYPES)
def test_at_the_post_networks_sizes_one_block_is_the_references_bit_for_bit(dtype, batch):
    """For B > 1 both paths form a_{l-1}^T delta_l with np.matmul, the same BLAS GEMM: the same
    bits, also at sizes where OpenBLAS blocks and threads the product (784 x 500 x B on NumPy's
    two threads), and the same elementwise arithmetic around it (tanh, mean squared error)."""
    rng = np.random.default_rng(8)
    params = mb.init_params([784, 500, 500, 10], seed=9, dtype=dtype)
    x = rng.uniform(size=(batch, 784)).astype(dtype)
    y = mb.one_hot(rng.integers(0, 10, batch), 10, dtype=dtype)
    kw = dict(activation="tanh", loss="mean_squared_error")
    J_ref, ref = mb.loss_and_grad(params, x, y, **kw)
    J, g = fast.loss_and_grad(params, x, y, threads=1, **kw)
    assert J == J_ref
    assert_bit_equal(g, ref)


@pytest.mark.parametrize("layout", ["C", "F", "label column cut off", "every other column", "rows reversed",
                                    "every other row", "unaligned"])
@pytest.mark.parametrize("batch", [1, 4, 64])
@pytest.mark.parametrize("dtype", DTYPES)
def test_an_x_in_any_memory_layout_gives_the_references_bits(dtype, batch, layout):
    """x as users slice it: np.matmul and np.dot copy a non-contiguous or unaligned operand
    each in its own order, and the two GEMMs then sum in different orders (review findings:
    x = data[:, :-1], and an x read from a byte buffer at an odd offset, were a few ulps off the
    reference at B = 64 while the two paths made different calls); both make the same call."""
    rng = np.random.default_rng(5)
    params = mb.init_params([50, 33, 10], seed=1, dtype=dtype)
    data = rng.uniform(size=(2 * batch, 101)).astype(dtype)
    x = {"C": np.ascontiguousarray(data[:batch, :50]), "F": np.asfortranarray(data[:batch, :50]),
         "label column cut off": data[:batch, :50], "every other column": data[:batch, ::2][:, :50],
         "rows reversed": data[batch - 1::-1, :50].copy()[::-1], "every other row": data[::2, :50],
         "unaligned": _unaligned_like(data[:batch, :50])}[layout]
    if layout == "unaligned":
        x[...] = data[:batch, :50]
        assert x.flags.c_contiguous and not x.flags.aligned
    assert x.shape == (batch, 50)
    y = rng.uniform(size=(batch, 10)).astype(dtype)
    kw = dict(activation="tanh", loss="mean_squared_error")
    J_ref, ref = mb.loss_and_grad(params, x, y, **kw)
    J, g = fast.loss_and_grad(params, x, y, threads=1, **kw)
    assert J == J_ref
    assert_bit_equal(g, ref)
    if batch == 1 and x[0].flags.c_contiguous:   # a contiguous row, in any memory: no bit changes
        assert_bit_equal(ref, mb.loss_and_grad(params, np.ascontiguousarray(x), y, **kw)[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [[784, 500, 500, 10], [3, 1, 2], [5, 7, 4, 3]])
def test_empty_like_gives_out_arrays_whose_products_start_on_a_cache_line(dtype, sizes):
    """fast.empty_like: one array per W_l, shaped and typed like it, C-contiguous, aligned,
    writeable, none sharing memory with another, and W_l[1:] (what BLAS writes) starting on a
    64-byte boundary whatever the row length; as out= they receive the reference's bits."""
    params = mb.init_params(sizes, seed=3, dtype=dtype)
    out = fast.empty_like(params)
    assert [(G.shape, G.dtype) for G in out] == [(W.shape, W.dtype) for W in params]
    for i, G in enumerate(out):
        assert G.flags.c_contiguous and G.flags.aligned and G.flags.writeable
        assert G[1:].__array_interface__["data"][0] % 64 == 0
        assert not any(np.shares_memory(G, H) for H in out[:i])
    rng = np.random.default_rng(3)
    x, y = rng.uniform(size=(1, sizes[0])).astype(dtype), rng.uniform(size=(1, sizes[-1])).astype(dtype)
    kw = dict(activation="tanh", loss="mean_squared_error")
    J, g = fast.loss_and_grad(params, x, y, out=out, **kw)
    assert g is out                                  # README: "grads is out"
    J, g = fast.loss_and_grad(params, x, y, out=tuple(out), **kw)
    assert type(g) is list and all(a is b for a, b in zip(g, out))
    assert_bit_equal(g, mb.loss_and_grad(params, x, y, **kw)[1])


def test_empty_like_needs_only_the_shapes_of_params():
    """Weights with a NaN (a diverged run whose buffers are made anew) still have a shape."""
    params = mb.init_params([3, 2], seed=0)
    params[0][1, 1] = np.nan
    assert [G.shape for G in fast.empty_like(params)] == [(4, 2)]


def test_empty_like_refuses_what_is_not_params_by_name():
    with pytest.raises(ValueError, match=r"^params\[1\] must be 2-D"):
        fast.empty_like([np.zeros((3, 2)), np.zeros(3)])
    with pytest.raises(TypeError, match=r"^params must be a list of 2-D arrays"):
        fast.empty_like(np.zeros((3, 2)))


def _unaligned_like(W: np.ndarray) -> np.ndarray:
    """A writeable, C-contiguous array shaped and typed like W at an odd address."""
    raw = bytearray(W.nbytes + 1)
    U = np.frombuffer(raw, W.dtype, offset=1).reshape(W.shape)
    assert not U.flags.aligned and U.flags.c_contiguous
    return U


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [[5, 7, 4, 3], [1, 2], [3, 1, 2]])
def test_at_batch_1_the_gradient_is_the_references_bit_for_bit(activation, dtype, sizes):
    """At B = 1 a_0^T delta is an outer product, one product a_i delta_j per entry (np.einsum
    in both): the same bits, into fresh arrays, into out= (filled with NaN first, so that a
    missed entry or a copy shows), and for an x that is a strided view. An unaligned out= is
    refused by name."""
    rng = np.random.default_rng(4)
    params = mb.init_params(sizes, seed=5, dtype=dtype)
    x = rng.normal(size=(1, 2 * sizes[0])).astype(dtype)[:, ::2]
    y = rng.uniform(size=(1, sizes[-1])).astype(dtype)
    kw = dict(activation=activation, loss="mean_squared_error")
    J_ref, ref = mb.loss_and_grad(params, x, y, **kw)
    for out in (None, [np.full_like(W, np.nan) for W in params]):
        J, g = fast.loss_and_grad(params, x, y, out=out, workspace=fast.Workspace(), **kw)
        assert J == J_ref
        assert_bit_equal(g, ref)
        if out is not None:
            assert all(a is b for a, b in zip(g, out))
        assert [G.tobytes() for G in g] == [R.tobytes() for R in ref]   # signed zeros too
    with pytest.raises(ValueError, match=r"^out\[0\] must be a writeable, aligned, C-contiguous array$"):
        fast.loss_and_grad(params, x, y, out=[_unaligned_like(W) for W in params], **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_at_batch_1_each_weight_gradient_is_one_rounded_product(dtype):
    """One layer, mean squared error, B = 1: delta_1 = z_1 - y = p - y exactly (B = 1), so
    dJ/dW_1[0] = p - y and dJ/dW_1[1:] = x^T (p - y), each entry the single product x_i delta_j
    rounded once, the same bits whatever computes it (np.einsum in both paths here, a k = 1
    GEMM before). Zeros, signed zeros, subnormals and huge entries in x; the one thing not
    kept is the sign of a zero product (-1 x 0 gives 0: the outer product is accumulated onto
    zeros), which no derivative can tell apart."""
    rng = np.random.default_rng(6)
    tiny, big = np.finfo(dtype).smallest_subnormal, np.finfo(dtype).max ** 0.5
    x = np.concatenate([rng.normal(size=20), [0.0, -0.0, 1.0, -1.0], [3 * tiny, -tiny, big, -big]])
    x = x.astype(dtype)[None, :]
    params = [rng.normal(size=(x.shape[1] + 1, 7)).astype(dtype)]
    params[0][1:][np.abs(x[0]) > 1e3] = 0                # keep z small: its entries then are sums of normal numbers
    y = rng.normal(size=(1, 7)).astype(dtype)
    y[0, 3] = mb.forward(params, x, activation="tanh", loss="mean_squared_error")[0, 3]   # a delta of exactly 0
    delta = mb.forward(params, x, activation="tanh", loss="mean_squared_error") - y
    assert delta[0, 3] == 0
    for grad in (mb.loss_and_grad, fast.loss_and_grad):
        _, (G,) = grad(params, x, y, activation="tanh", loss="mean_squared_error")
        assert np.array_equal(G[0], delta[0])
        assert np.array_equal(G[1:], x[0][:, None] * delta[0])          # == : 0 and -0 equal


def test_x_sharing_memory_with_what_a_step_writes_is_refused():
    """x is read again for dJ/dW_1 after the layers above are written: an out= entry (or, for
    sgd_step, a weight matrix) that shares memory with x would change it first, a silent wrong
    dJ/dW_1 (review finding). Refused by name; nothing is written."""
    params = mb.init_params([2, 3, 1], seed=0)
    out = [np.zeros_like(W) for W in params]
    x, y = out[1].reshape(-1)[:2].reshape(1, 2), np.zeros((1, 1))
    with pytest.raises(ValueError, match=r"^out\[1\] overlaps x; gradients need their own memory$"):
        fast.loss_and_grad(params, x, y, out=out)
    assert not any(G.any() for G in out)
    x = params[1].reshape(-1)[:2].reshape(1, 2)
    before = [W.copy() for W in params]
    with pytest.raises(ValueError, match=r"^sgd_step updates params in place: params\[1\] overlaps x$"):
        mb.sgd_step(params, x, y, 0.1)
    assert_bit_equal(params, before)


def test_sgd_step_refuses_params_that_share_memory():
    """Tied weights [W, W, W]: W_3 was updated before delta_2 was formed from it, and the step
    differed from W - lr (g_1 + g_2 + g_3) by 1e-4 without a word (review finding). Params that
    are disjoint parts of one buffer, even interleaved, share no entry: taken."""
    W = np.random.default_rng(0).normal(size=(4, 3))
    x, y = np.ones((2, 3)), mb.one_hot([0, 1], 3)
    before = W.copy()
    with pytest.raises(ValueError, match=r"^sgd_step updates params in place: params\[1\] shares memory with "
                                         r"params\[0\] \(tied weights: step a copy, or add the gradients"):
        mb.sgd_step([W, W, W], x, y, 0.1)
    assert_bit_equal([W], [before])
    tied_within = np.lib.stride_tricks.as_strided(np.zeros(4), (4, 2), (8, 0))   # two columns, one number
    with pytest.raises(ValueError, match=r"^sgd_step updates params in place: params\[0\] has a zero stride \(entries "
                                         r"that are one number: each update would overwrite the others\)$"):
        mb.sgd_step([tied_within, W[:3]], x, y, 0.1)
    one_column = np.lib.stride_tricks.as_strided(np.zeros(4), (4, 1), (8, 0))   # a zero stride over one entry
    ref = np.zeros((4, 1))
    mb.sgd_step([one_column], x, y[:, :1], 0.1)
    mb.sgd_step([ref], x, y[:, :1], 0.1)
    assert_bit_equal([one_column], [ref])
    for buf, parts in ((np.zeros(24), lambda b: (b[:12].reshape(4, 3), b[12:].reshape(4, 3))),
                       (np.zeros((4, 6)), lambda b: (b[:, ::2], b[:, 1::2]))):     # may_share_memory, no shared entry
        a, b = parts(buf)
        ref = [a.copy(), b.copy()]
        mb.sgd_step([a, b], x, y, 0.1)
        mb.sgd_step(ref, x, y, 0.1)
        assert_bit_equal([a, b], ref)


def test_an_update_that_pushes_a_weight_near_the_top_of_the_range_past_it_is_refused():
    """W_1 holds +-max float64 and the update lr delta_1 is ~1e300 (relu, one example): the
    update alone is finite, W + update is not. Refused before W_1 is touched (W_2 above was
    already updated, and the message says so). An increment that large needs |lr delta| far
    beyond sqrt(max), so the bound's sum of squares is inf and the update is formed apart
    (review finding: a bound on the update alone, below max / 4, let -inf into W_1)."""
    big = np.finfo(np.float64).max
    params = [np.array([[1.0], [big], [-big]]), np.array([[0.0], [1.0]])]
    before = params[0].copy()
    with pytest.raises(mb.NonFiniteError, match=r"^the update of W_1 overflows float64; W_2\.\.W_2 were already updated$"):
        mb.sgd_step(params, np.ones((1, 2)), np.zeros((1, 1)), 1e300, activation="relu", loss="mean_squared_error")
    assert_bit_equal([params[0]], [before])


def test_the_gradient_bound_is_never_below_the_sums_it_bounds():
    """``_product_bound(a, delta)``, the overflow check of every gradient path, against the
    largest sum of |[1, a]_bi delta_bj| over the batch, computed in float64 from float32
    inputs (so exact to a few ulps of float64): never below it, on random inputs and on the
    cases where Cauchy-Schwarz is tight (one example; a = delta = one column of equal
    entries); inf where it cannot vouch for itself (NaN, a sum of squares that overflows, or
    more than 1/(4u) terms in float32)."""
    from manual_backprop.network import _product_bound as product_bound

    rng = np.random.default_rng(7)
    cases = [(rng.normal(size=(B, m)) * s, rng.normal(size=(B, n)) * t)
             for B, m, n, s, t in [(1, 5, 3, 1, 1), (8, 4, 6, 1e3, 1e-3), (64, 2, 2, 1e-9, 1e9), (3, 1, 1, 1, 1)]]
    cases += [(np.full((9, 1), 2.0), np.full((9, 1), 3.0)), (np.zeros((4, 2)), np.full((4, 1), 5.0))]
    u = np.finfo(np.float32).eps / 2
    for a, delta in cases:
        a, delta = a.astype(np.float32), delta.astype(np.float32)
        a64, d64 = a.astype(np.float64), delta.astype(np.float64)
        ones_a = np.hstack([np.ones((a.shape[0], 1)), a64])
        largest = (np.abs(ones_a).T @ np.abs(d64)).max()
        bound = product_bound(a, delta)
        assert largest <= bound
        # and it is the Cauchy-Schwarz expression, up to the float32 dot products' rounding
        # (each relative error <= gamma_k ~ k u, halved by the square root)
        exact = 2 * np.sqrt(a.shape[0] + np.sum(a64**2)) * np.sqrt(np.sum(d64**2))
        k = max(a.size, delta.size)
        assert abs(bound - exact) <= 2 * k * u * exact
    assert np.isnan(product_bound(np.array([[np.nan]]), np.ones((1, 1))))
    assert product_bound(np.full((1, 2), 1e30, np.float32), np.ones((1, 1), np.float32)) == np.inf
    long = np.ones((1, 2**22 + 1), np.float32)          # k u = (2^22 + 1) 2^-24 > 1/4
    assert product_bound(long, np.ones((1, 1), np.float32)) == np.inf
    assert np.isfinite(product_bound(long[:, :2**22], np.ones((1, 1), np.float32)))


def test_one_workspace_used_by_two_threads_at_once_is_refused(monkeypatch):
    """A second call entering a Workspace that a first call (held inside its loss) still uses
    raises, instead of both writing the same buffers; the first call then finishes right."""

    bce = LOSS_OBJECTS["binary_cross_entropy"]
    inside, release = threading.Event(), threading.Event()
    value = type(bce).value

    def held(z, y):
        if threading.current_thread() is not threading.main_thread():
            inside.set()
            release.wait(10)
        return value(bce, z, y)

    monkeypatch.setattr(bce, "value", held)
    params, x, y = mb.init_params([3, 4, 2], seed=0), np.ones((2, 3)), mb.one_hot([0, 1], 2)
    ws, results = fast.Workspace(), []
    t = threading.Thread(target=lambda: results.append(fast.loss_and_grad(params, x, y, activation="tanh", workspace=ws)))
    t.start()
    assert inside.wait(10)
    with pytest.raises(RuntimeError, match="^this Workspace is in use by another call; give each thread its own Workspace$"):
        fast.loss_and_grad(params, x, y, activation="tanh", workspace=ws)
    release.set()
    t.join()
    assert_bit_equal(results[0][1], mb.loss_and_grad(params, x, y, activation="tanh")[1])


@pytest.mark.parametrize("step", ["loss_and_grad", "fast.loss_and_grad", "sgd_step"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_inputs_are_named_and_overflow_is_one_error(step, dtype):
    """A NaN or inf in params or x is a ValueError naming it; a loss or gradient that overflows
    from finite inputs (|x| = 1e30 in float32, 1e200 in float64, relu, mean squared error) is NonFiniteError on every path.
    Either way sgd_step updates nothing."""
    call = {"loss_and_grad": lambda P, x, y: mb.loss_and_grad(P, x, y, activation="relu", loss="mean_squared_error"),
            "fast.loss_and_grad": lambda P, x, y: fast.loss_and_grad(P, x, y, activation="relu",
                                                                     loss="mean_squared_error"),
            "sgd_step": lambda P, x, y: mb.sgd_step(P, x, y, 0.1, activation="relu", loss="mean_squared_error")}[step]
    x, y = np.ones((2, 3), dtype), np.zeros((2, 2), dtype)
    for l, where in [(0, (2, 1)), (1, (0, 0))]:
        for bad in (np.nan, np.inf):
            params = mb.init_params([3, 4, 2], seed=0, dtype=dtype)
            params[l][where] = bad
            before = [W.copy() for W in params]
            with pytest.raises(ValueError, match=rf"params\[{l}\] contains NaN or inf"):
                call(params, x, y)
            assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(params, before))
    params = mb.init_params([3, 4, 2], seed=0, dtype=dtype)
    before = [W.copy() for W in params]
    with pytest.raises(mb.NonFiniteError, match="overflow"):
        call(params, np.full((2, 3), 1e30 if dtype == np.float32 else 1e200, dtype), y)
    assert_bit_equal(params, before)


@pytest.mark.parametrize("step", ["loss_and_grad", "fast.loss_and_grad", "split", "sgd_step"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_input_is_named_even_where_its_weights_are_zero(step, dtype, bad):
    """The gradient paths do not scan x before they start (a pass over the largest input they
    read): a NaN or inf x[b, i] reaches every entry of z_1[b], also through a row W_1[1 + i] of
    zeros (NaN * 0 and inf * 0 are NaN in IEEE 754), and z_1 is checked; the ValueError then
    names x and its first bad entry, as the scan did. Here in the second block of a split too,
    and sgd_step updates nothing."""
    call = {"loss_and_grad": mb.loss_and_grad, "fast.loss_and_grad": fast.loss_and_grad,
            "split": lambda P, x, y: fast.loss_and_grad(P, x, y, threads=2),
            "sgd_step": lambda P, x, y: mb.sgd_step(P, x, y, 0.1)}[step]
    params = mb.init_params([3, 4, 2], seed=0, dtype=dtype)
    params[0][1 + 2] = 0                               # the weights of feature 2
    x, y = np.ones((8, 3), dtype), np.full((8, 2), 0.5, dtype)
    x[5, 2] = x[6, 0] = bad
    before = [W.copy() for W in params]
    with pytest.raises(ValueError, match=r"^x contains NaN or inf \(first at \(5, 2\)\)$"):
        call(params, x, y)
    assert_bit_equal(params, before)


def test_blas_thread_counts_are_left_as_they_were():
    """At B = 1 the rank-1 update runs with SciPy's bundled BLAS on one thread (two OpenBLAS
    pools spinning against each other made steps 2.8x slower); every library's thread count
    is restored afterwards, also when the step raises."""

    def counts():
        return {i["filepath"]: i["num_threads"] for i in threadpool_info()}

    params, x, y = mb.init_params([3, 4, 2], seed=0), np.ones((1, 3)), mb.one_hot([1], 2)
    mb.sgd_step(params, x, y, 0.1)  # loads SciPy's BLAS
    before = counts()
    mb.sgd_step(params, x, y, 0.1)
    assert counts() == before
    with pytest.raises(mb.NonFiniteError):
        mb.sgd_step(params, np.full((1, 3), 1e300), y, 0.1, loss="mean_squared_error", activation="relu")
    assert counts() == before


def test_during_a_batch_1_step_scipys_own_blas_runs_on_one_thread(monkeypatch):
    """While a batch-1 step runs (observed from inside the loss), the BLAS bundled in SciPy's
    wheels (``scipy.libs``) has one thread and NumPy's keeps its count; a batch of 2 leaves
    both alone."""


    params, y = mb.init_params([3, 4, 2], seed=0), mb.one_hot([1, 0], 2)
    mb.sgd_step(params, np.ones((1, 3)), y[:1], 0.1)  # loads SciPy's BLAS
    outside = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    scipys = [f for f in outside if f"{os.sep}scipy.libs{os.sep}" in f]
    if not scipys:
        pytest.skip("SciPy shares NumPy's BLAS here (not the pip wheels): nothing to limit")
    seen = []
    bce = LOSS_OBJECTS["binary_cross_entropy"]
    value = type(bce).value
    monkeypatch.setattr(bce, "value", lambda z, y: (seen.append({i["filepath"]: i["num_threads"]
                                                                 for i in threadpool_info()}), value(bce, z, y))[1])
    mb.sgd_step(params, np.ones((1, 3)), y[:1], 0.1)
    mb.sgd_step(params, np.ones((2, 3)), y, 0.1)
    batch_1, batch_2 = seen
    assert all(batch_1[f] == 1 for f in scipys)
    assert all(batch_1[f] == n for f, n in outside.items() if f not in scipys)
    assert batch_2 == outside


def test_an_update_near_the_top_of_the_range_is_applied_when_finite():
    """float32 softmax at x = 3e38: the gradient is finite (about -2e38) and so is W - lr g; the
    step looks at the update before applying it rather than refusing it (review finding)."""
    params = mb.init_params([3, 2], seed=0, dtype=np.float32)
    x, y = np.full((1, 3), 3e38, np.float32), np.array([[1.0, 0.0]], np.float32)
    J, g = mb.loss_and_grad(params, x, y, loss="softmax_cross_entropy")
    assert all(np.isfinite(G).all() for G in g) and max(np.abs(G).max() for G in g) > 1e38
    expected = [W - G for W, G in zip(params, g)]
    mb.sgd_step(params, x, y, 1.0, loss="softmax_cross_entropy")
    u = ac.unit_roundoff(np.float32)
    assert_same_gradient(params, expected, [4 * u * np.abs(E) for E in expected])


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_an_overflowing_pre_activation_is_refused_by_every_path(activation, dtype):
    """z_1 = x W_1[1:] + b_1 overflows to -inf only once the bias is added, from finite x and
    W: every path refuses it before touching a weight, also where sigmoid or tanh would hide
    the -inf as 0 or -1 (the in-place kernels check z + b, not z and b apart)."""
    big = np.finfo(dtype).max * 0.9
    params = mb.init_params([1, 2, 2], seed=0, dtype=dtype)
    params[0][1, 0], params[0][0, 0] = 1.0, -big
    x, y = np.full((1, 1), -big, dtype), np.zeros((1, 2), dtype)
    for step in (mb.loss_and_grad, fast.loss_and_grad, lambda P, x, y, **k: mb.sgd_step(P, x, y, 0.1, **k)):
        before = [W.copy() for W in params]
        with pytest.raises(mb.NonFiniteError):
            step(params, x, y, activation=activation, loss="mean_squared_error")
        assert_bit_equal(params, before)


def test_an_overflow_in_the_first_of_two_hidden_layers_is_refused():
    """z_1 = 1e310 = inf, which sigmoid turns into 1; z_2 and J are finite. Only a check that
    carries layer 1's verdict past layer 2 refuses it."""
    params = [np.array([[0.0], [1e10]]), np.array([[0.0], [1.0]]), np.array([[0.5], [2.0]])]
    x, y = np.array([[1e300]]), np.zeros((1, 1))
    for step in (mb.loss_and_grad, fast.loss_and_grad, lambda P, x, y, **k: mb.sgd_step(P, x, y, 0.1, **k)):
        with pytest.raises(mb.NonFiniteError):
            step(params, x, y, activation="sigmoid", loss="mean_squared_error")


# ---------------------------------------------------------------- overflow in the gradient itself
# The loss and every z_l are finite here; only a_{l-1}^T delta_l (or its update) is not. One
# example, mean squared error (delta_L = z_L - y), weights of the form [[0], [w]].


def _one_layer(X, z, B=1):
    """B equal examples x_b = [X], W_1 = [[0], [z / X]]: z_1 = z, J = z^2 / 2, dJ/dW_1[1] = X z."""
    return [np.array([[0.0], [z / X]])], np.full((B, 1), X), np.zeros((B, 1))


@pytest.mark.parametrize("sign, B", [(1.0, 1), (-1.0, 1), (1.0, 4)])
@pytest.mark.parametrize("step", [mb.loss_and_grad, fast.loss_and_grad])
def test_a_gradient_that_overflows_is_refused(step, sign, B):
    """X z = 3e308 > the largest float64 (1.8e308): NonFiniteError naming the layer, whatever
    margin a cheaper bound check keeps (|X z| is within a factor 2 of 1.8e308 either way).
    With X and z both negative (the bound takes |max| and |min|), and over a batch of 4 (the
    bound's factor is the batch size: B |x| |delta_b| = |X z| with delta_b = z / B)."""
    params, x, y = _one_layer(sign * 1e300, sign * 3e8, B)
    with pytest.raises(mb.NonFiniteError, match=r"^dJ/dW_1 overflows float64: inputs, targets or weights too large"):
        step(params, x, y, loss="mean_squared_error")
    params, x, y = _one_layer(1e300, 1e8)                  # X z = 1e308: finite, and returned
    J, (g,) = step(params, x, y, loss="mean_squared_error")
    assert J == pytest.approx(0.5e16, rel=1e-15) and g[1, 0] == pytest.approx(1e308, rel=1e-15)   # a few roundings


@pytest.mark.parametrize("X, z, lr", [(1e300, 3e8, 1.0), (1e290, 1e9, 1e10), (1e-300, 1e8, 3e300)])
def test_an_update_that_would_overflow_is_refused(X, z, lr):
    """lr X z >= 3e308 would overflow W_1[1] (update 3e308, or 1e309 where lr alone makes it
    overflow), and lr z = 3e308 the bias row W_1[0], whose input is 1 however small X is:
    NonFiniteError before W_1 is touched."""
    params, x, y = _one_layer(X, z)
    before = [W.copy() for W in params]
    with pytest.raises(mb.NonFiniteError, match=r"^the update of W_1 overflows float64; no layer was updated$"):
        mb.sgd_step(params, x, y, lr, loss="mean_squared_error")
    assert_bit_equal(params, before)


def test_an_overflowing_update_leaves_the_layers_below_untouched_and_says_which_were_updated():
    """Sigmoid hidden unit, x = 1e300, W_1 = [[0], [1e-300]] (z_1 = 1), W_2 = [[0], [1e10]]:
    delta_2 = z_2 ~ 7e9 updates W_2 harmlessly, delta_1 = delta_2 1e10 sigma'(1) ~ 1.4e19 makes
    x^T delta_1 overflow. sgd_step updates W_2, refuses W_1 and says so; the gradient paths
    refuse dJ/dW_1."""
    params = [np.array([[0.0], [1e-300]]), np.array([[0.0], [1e10]])]
    x, y = np.array([[1e300]]), np.zeros((1, 1))
    for step in (mb.loss_and_grad, fast.loss_and_grad):
        with pytest.raises(mb.NonFiniteError, match=r"^dJ/dW_1 overflows float64"):
            step(params, x, y, loss="mean_squared_error")
    before = [W.copy() for W in params]
    with pytest.raises(mb.NonFiniteError, match=r"^the update of W_1 overflows float64; W_2\.\.W_2 were already updated"):
        mb.sgd_step(params, x, y, 1.0, loss="mean_squared_error")
    assert np.array_equal(params[0], before[0]) and params[1][1, 0] < before[1][1, 0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_without_out_take_the_parameters_dtype(dtype):
    params = mb.init_params([3, 4, 2], seed=0, dtype=dtype)
    x, y = np.ones((2, 3), dtype), mb.one_hot([0, 1], 2, dtype=dtype)
    _, grads = fast.loss_and_grad(params, x, y)
    assert [g.dtype for g in grads] == [dtype, dtype] and all(g.flags.c_contiguous for g in grads)


@pytest.mark.parametrize("step", ["loss_and_grad", "fast.loss_and_grad", "sgd_step"])
def test_a_hidden_layer_that_overflows_is_refused_though_the_loss_is_finite(step):
    """x = 1e300, W_1[1] = 1e10: z_1 = inf, yet sigmoid(inf) = 1 keeps z_2 and J finite. The
    documented contract refuses a z_l that is NaN or inf, not only J: NonFiniteError (x and
    params are finite), and sgd_step updates nothing."""
    params = [np.array([[0.0], [1e10]]), np.array([[0.5], [2.0]])]
    x, y = np.array([[1e300]]), np.zeros((1, 1))
    call = {"loss_and_grad": mb.loss_and_grad, "fast.loss_and_grad": fast.loss_and_grad,
            "sgd_step": lambda P, x, y, **kw: mb.sgd_step(P, x, y, 0.1, **kw)}[step]
    before = [W.copy() for W in params]
    with pytest.raises(mb.NonFiniteError, match="^the loss is NaN or inf although x and params are finite"):
        call(params, x, y, loss="mean_squared_error")
    assert_bit_equal(params, before)


@pytest.mark.parametrize("step", ["loss_and_grad", "fast.loss_and_grad", "sgd_step"])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_an_infinite_hidden_bias_is_named(step, activation):
    """params[0][0, 0] = inf: sigmoid(inf) = 1 would hide it from the loss, and relu(inf) is inf.
    Either way a ValueError naming params[0] (the in-place kernels add the bias themselves, so
    the fast path's kernels check z + b)."""
    params = mb.init_params([3, 4, 2], seed=0)
    params[0][0, 0] = np.inf
    x, y = np.ones((2, 3)), np.zeros((2, 2))
    call = {"loss_and_grad": mb.loss_and_grad, "fast.loss_and_grad": fast.loss_and_grad,
            "sgd_step": lambda P, x, y, **kw: mb.sgd_step(P, x, y, 0.1, **kw)}[step]
    with pytest.raises(ValueError, match=r"^params\[0\] contains NaN or inf"):
        call(params, x, y, activation=activation, loss="mean_squared_error")


@pytest.mark.parametrize("step", [mb.loss_and_grad, fast.loss_and_grad])
def test_a_bias_gradient_that_overflows_is_refused_though_the_inputs_are_small(step):
    """dJ/dW_1[0] = sum_b delta_1[b] has input 1, not x: with x = 1e-3 a bound made of |x| alone
    would miss it. relu, 4 examples, z_1 = a_1 = 2.4e-308 (W_1 = [[2.4e-308], [0]]),
    W_2 = [[0], [1e308]]: z_2 = 2.4, delta_2 = 0.6, delta_1 = 0.6e308 per example, and their
    sum 2.4e308 overflows while J = 2.88 and every z_l are finite."""
    params = [np.array([[2.4e-308], [0.0]]), np.array([[0.0], [1e308]])]
    x, y = np.full((4, 1), 1e-3), np.zeros((4, 1))
    with pytest.raises(mb.NonFiniteError, match=r"^dJ/dW_1 overflows float64"):
        step(params, x, y, activation="relu", loss="mean_squared_error")


def test_a_workspace_must_be_a_workspace():
    params = mb.init_params([4, 3, 2])
    x, y = np.ones((2, 4)), mb.one_hot([0, 1], 2)
    for bad, name in ((object(), "object"), ({}, "dict"), ("ws", "str")):
        with pytest.raises(TypeError, match=rf"^workspace must be a manual_backprop.fast.Workspace or None; got {name}$"):
            fast.loss_and_grad(params, x, y, workspace=bad)
        with pytest.raises(TypeError, match=r"^workspace must be a manual_backprop.fast.Workspace or None"):
            fast.sgd_step(params, x, y, 0.1, workspace=bad)
    J, _ = fast.sgd_step(params, x, y, np.int64(1), workspace=None)   # a NumPy integer is a rate
    assert np.isfinite(J)


# ---------------------------------------------------------------- a batch split into blocks
# fast.loss_and_grad(threads=k) runs k blocks of rows on k threads, every BLAS library on one
# thread meanwhile, and sums their J and gradients.


@settings(max_examples=examples(20))
@given(data=st.data(), activation=st.sampled_from(ACTIVATIONS), loss=st.sampled_from(LOSSES),
       dtype=st.sampled_from(DTYPES), threads=st.integers(2, 5))
def test_a_split_batch_is_the_reference_within_the_rounding_bound(data, activation, loss, dtype, threads):
    """Blocks sum J and each gradient entry in another order than the reference (blocks' partial
    sums, then their sum), and threads > B leaves blocks of one row. Each result is within one
    rounding bound of the exact value (the bound holds for any summation order), so the two
    agree within 2 bounds, 4 with second-order terms (as in the one-block test above)."""
    params, x, y = data.draw(problems(loss, magnitude=100.0, dtype=dtype))
    kw = dict(activation=activation, loss=loss)
    J_ref, ref = mb.loss_and_grad(params, x, y, **kw)
    bound = ac.rounding_bound(params, x, y, activation, loss, dtype=dtype)
    out = [np.full_like(W, np.nan) for W in params]
    ws = fast.Workspace()
    for _ in range(2):                                           # cold, then warm
        J, g = fast.loss_and_grad(params, x, y, out=out, workspace=ws, threads=threads, **kw)
        assert all(a is b for a, b in zip(g, out))
        assert abs(J - J_ref) <= 4 * bound.loss
        assert_same_gradient(g, ref, [4 * e for e in bound.grad])


def test_a_split_batch_sums_every_blocks_rows():
    """Each block's share, not a copy of one block's: mean squared error of a one-layer
    identity network, where dJ/dW_1 = x^T (x W - y) / B is known in closed form and integer
    data keeps every sum exact (and division by B = 8 too), so the result is checked bit for
    bit for 1 to 8 blocks (uneven ones too: 8 // 3 rows and so on)."""
    rng = np.random.default_rng(3)
    x, y = rng.integers(-3, 4, (8, 2)).astype(float), rng.integers(-3, 4, (8, 2)).astype(float)
    W = np.array([[1.0, -1.0], [2.0, 0.0], [0.0, 3.0]])
    r = x @ W[1:] + W[0] - y
    expected = [np.vstack([r.sum(axis=0), x.T @ r]) / 8]
    for threads in range(1, 9):
        J, g = fast.loss_and_grad([W], x, y, activation="relu", loss="mean_squared_error", threads=threads)
        assert J == 0.5 * (r * r).sum() / 8
        assert_bit_equal(g, expected)


@pytest.mark.parametrize("threads, error, message", [
    (0, ValueError, r"^threads must be at least 1; got 0$"),
    (-2, ValueError, r"^threads must be at least 1; got -2$"),
    (2.0, TypeError, r"^threads must be a positive int or None; got float$"),
    (True, TypeError, r"^threads must be a positive int or None; got bool$"),
    ("2", TypeError, r"^threads must be a positive int or None; got str$"),
])
def test_a_bad_thread_count_is_refused_by_name(threads, error, message):
    params = mb.init_params([3, 4, 2], seed=0)
    with pytest.raises(error, match=message):
        fast.loss_and_grad(params, np.ones((2, 3)), mb.one_hot([0, 1], 2), threads=threads)
    J, _ = fast.loss_and_grad(params, np.ones((2, 3)), mb.one_hot([0, 1], 2), threads=np.int64(2))
    assert J == mb.loss_and_grad(params, np.ones((2, 3)), mb.one_hot([0, 1], 2))[0]


def _watch_blocks(monkeypatch, also=None):
    """Record, from inside the loss, each block's thread and the BLAS thread counts it sees;
    ``also(y)`` runs there too (to hold a block)."""


    bce, seen = LOSS_OBJECTS["binary_cross_entropy"], []
    value = type(bce).value

    def watched(z, y):
        seen.append((threading.current_thread(), {i["filepath"]: i["num_threads"] for i in threadpool_info()
                                                  if i["user_api"] == "blas"}, y[0, 0]))
        if also is not None:
            also(y)
        return value(bce, z, y)

    monkeypatch.setattr(bce, "value", watched)
    return seen


def _blas_counts() -> dict[str, int]:
    """Thread count of every loaded BLAS library, by path."""

    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def _numpy_at_one(counts: dict[str, int]) -> dict[str, int]:
    """``counts`` as a split should leave them inside its blocks: every library at one thread
    but SciPy's own (``scipy.libs``), which NumPy never calls."""
    return {f: c if f"{os.sep}scipy.libs{os.sep}" in f else 1 for f, c in counts.items()}


def test_by_default_a_batch_is_split_at_SPLIT_ROWS_rows_per_blas_thread(monkeypatch):
    """With NumPy's BLAS on two threads: B = 2 SPLIT_ROWS runs as two blocks on two threads,
    each seeing NumPy's BLAS on one thread (and SciPy's own, which NumPy never calls, as it
    was); one row fewer runs as one block, BLAS untouched; after either, the thread counts are
    what they were. On one BLAS thread (threadpool_limits(1), as a user or ``--threads 1``
    sets it) nothing is split."""

    params = mb.init_params([3, 4, 2], seed=0)
    n = 2 * fast.SPLIT_ROWS
    x, y = np.ones((n, 3)), mb.one_hot(np.arange(n) % 2, 2)
    with threadpool_limits(2, user_api="blas"):
        outside = _blas_counts()
        inside = _numpy_at_one(outside)
        assert 1 in inside.values()                       # NumPy's is there
        on_pool = threading.Event()                       # block 0 waits for block 1 to be on the pool
        seen = _watch_blocks(monkeypatch, lambda y: on_pool.wait(10) if threading.current_thread() is
                             threading.main_thread() else on_pool.set())
        fast.loss_and_grad(params, x, y)
        assert len(seen) == 2 and threading.current_thread() in {t for t, _, _ in seen}
        (pool_thread,) = {t for t, _, _ in seen} - {threading.current_thread()}
        assert pool_thread.name.startswith("manual_backprop.fast")   # named for a thread dump
        assert all(counts == inside for _, counts, _ in seen)
        seen.clear()
        fast.loss_and_grad(params, x[1:], y[1:])
        assert [counts for _, counts, _ in seen] == [outside]
        assert _blas_counts() == outside
    with threadpool_limits(1, user_api="blas"):
        seen.clear()
        fast.loss_and_grad(params, x, y)
        assert len(seen) == 1


@pytest.mark.parametrize("x_dtype, x_value", [(np.float32, 1.0), (np.float64, 1.0), (np.float32, 1e19)])
def test_a_split_call_makes_no_blas_call_outside_its_blocks(monkeypatch, x_dtype, x_value):
    """A BLAS call of the caller's, with NumPy's BLAS on two threads, leaves OpenBLAS's worker
    spinning for a while after it: through the blocks that follow, on the cores they need (a
    dot product checking x for NaN made the float64 batch-1000 split 1.7 times slower than
    jax.jit; docs/performance.md). So every dot and product of a split call runs inside a
    block: for x in the params' dtype, for x cast to it, and for x = 1e19 in float32, whose
    sum of squares overflows, so that the blocks' gradient bounds are inf and the summed
    gradient is scanned (review finding: by a dot product). What this sees: np.vdot, np.dot and
    np.matmul called by name; the @ operator cannot be intercepted (the split's code outside
    its blocks has none, by reading and by a review's line trace)."""

    params = mb.init_params([3, 4, 2], seed=0, dtype=np.float32)
    x, y = np.full((8, 3), x_value, x_dtype), np.full((8, 2), 0.5, np.float32)
    calls = []
    for name in ("vdot", "dot", "matmul"):
        def watched(*args, _real=getattr(np, name), _name=name, **kwargs):
            calls.append((_name, _threads.in_block()))
            return _real(*args, **kwargs)
        monkeypatch.setattr(np, name, watched)
    fast.loss_and_grad(params, x, y, threads=2)
    assert calls and all(in_block for _, in_block in calls), calls


@pytest.mark.parametrize("rows, blocks", [(3 * 256 - 1, 2), (4 * 256, 4)])
def test_on_four_blas_threads_the_default_makes_one_block_per_256_rows_up_to_four(monkeypatch, rows, blocks):
    """min(BLAS threads, B // SPLIT_ROWS): 767 rows make 2 blocks (not 2.996), 1024 make 4."""

    params = mb.init_params([3, 4, 2], seed=0)
    with threadpool_limits(4, user_api="blas"):
        seen = _watch_blocks(monkeypatch)
        fast.loss_and_grad(params, np.ones((rows, 3)), np.full((rows, 2), 0.5))
    assert len(seen) == blocks


def test_a_split_workspace_holds_each_row_once():
    """Split into blocks, the activations live in the blocks' workspaces, (B / k, n) each,
    not also in a (B, n) set of the caller's: a cold split call's peak memory exceeds a cold
    one-block call's by at most the k - 1 extra sets of gradient arrays, plus a quarter of
    the (B, n) arrays as slack (allocator granularity, the output layer's arrays)."""
    params = mb.init_params([40, 400, 300, 3], seed=0)
    x, y = np.ones((256, 40)), np.full((256, 3), 0.5)
    one = _peak_bytes(lambda: fast.loss_and_grad(params, x, y, threads=1, workspace=fast.Workspace()))
    two = _peak_bytes(lambda: fast.loss_and_grad(params, x, y, threads=2, workspace=fast.Workspace()))
    activations = 2 * 256 * (400 + 300) * 8                  # z_l and delta_l W^T of the hidden layers
    gradients = sum(W.nbytes for W in params)
    assert two <= one + gradients + activations / 4


def test_split_calls_from_two_threads_take_turns_and_leave_the_blas_as_it_was(monkeypatch):
    """Two threads, neither the main one, each with its own Workspace: call A's blocks hold
    until call B has begun (and 0.2 s more). B's blocks run only after A's (the two share
    NumPy's BLAS setting, so they take turns), every block sees NumPy's BLAS on one thread,
    and afterwards the counts are what they were; both results are the reference's. (No
    threadpool_limits in the main thread here: with threadpoolctl >= 3.8 that would make the
    main thread the only one that may set OpenBLAS's count.)"""

    a_inside, b_began, events = threading.Event(), threading.Event(), []

    def hold(y):
        events.append(("in", y[0, 0]))
        if y[0, 0] == 0.25:
            a_inside.set()
            assert b_began.wait(10)
            time.sleep(0.2)
        events.append(("out", y[0, 0]))

    params, x = mb.init_params([3, 4, 2], seed=0), np.ones((4, 3))
    outside = _blas_counts()
    seen = _watch_blocks(monkeypatch, hold)
    results = {}

    def call(target, before=None):
        if before is not None:
            before.set()
        results[target] = fast.loss_and_grad(params, x, np.full((4, 2), target), threads=2, workspace=fast.Workspace())

    a = threading.Thread(target=call, args=(0.25,))
    a.start()
    assert a_inside.wait(10)
    b = threading.Thread(target=call, args=(0.75, b_began))
    b.start()
    a.join(30), b.join(30)
    a_out = [i for i, e in enumerate(events) if e == ("out", 0.25)]
    b_in = [i for i, e in enumerate(events) if e == ("in", 0.75)]
    assert len(a_out) == len(b_in) == 2 and max(a_out) < min(b_in)
    assert all(counts == _numpy_at_one(outside) for _, counts, _ in seen)
    assert _blas_counts() == outside
    for target, (J, g) in results.items():
        J_ref, ref = mb.loss_and_grad(params, x, np.full((4, 2), target))
        # blocks sum in another order: each within one rounding bound of the exact (float64)
        bound = ac.rounding_bound(params, x, np.full((4, 2), target), "sigmoid", "binary_cross_entropy")
        assert abs(J - J_ref) <= 2 * bound.loss
        assert_same_gradient(g, ref, [2 * e for e in bound.grad])


def test_the_default_block_count_does_not_depend_on_another_threads_split(monkeypatch):
    """While call X splits (NumPy's BLAS at one thread for it; X's thread holds two threads
    around its call until Y's blocks have run, so that there is a second thread to count on
    any machine), call Y with the default ``threads`` at B = 2 SPLIT_ROWS still makes two
    blocks, as it would alone: the count is read once no split holds it, so Y's result does
    not depend on timing."""

    x_inside, y_decided, y_ran = threading.Event(), threading.Event(), threading.Event()

    def hold(y):
        if y[0, 0] == 0.25:
            x_inside.set()
            assert y_decided.wait(10)
        else:
            y_ran.set()

    params = mb.init_params([3, 4, 2], seed=0)
    n = 2 * fast.SPLIT_ROWS
    xs = np.ones((n, 3))
    seen = _watch_blocks(monkeypatch, hold)

    def x_call():
        with threadpool_limits(2, user_api="blas"):
            fast.loss_and_grad(params, xs[:4], np.full((4, 2), 0.25), threads=2, workspace=fast.Workspace())
            assert y_ran.wait(10)

    X = threading.Thread(target=x_call)
    X.start()
    assert x_inside.wait(10)
    assert [counts for _, counts, y00 in seen if y00 == 0.25][0] == _numpy_at_one(_blas_counts())  # X holds it at 1
    Y = threading.Thread(target=lambda: fast.loss_and_grad(params, xs, np.full((n, 2), 0.75), workspace=fast.Workspace()))
    Y.start()
    Y.join(0.3)                                          # Y has chosen its blocks and waits for X's turn to end
    y_decided.set()
    X.join(30), Y.join(30)
    assert [float(y00) for _, _, y00 in seen].count(0.75) == 2


def _holding(limits: int, inside: threading.Event, leave: threading.Event) -> threading.Thread:
    """A started thread that sits inside threadpool_limits(limits) until ``leave`` is set."""

    def hold():
        with threadpool_limits(limits, user_api="blas"):
            inside.set()
            assert leave.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    assert inside.wait(10)
    return t


def test_where_another_thread_holds_openblas_the_blocks_run_one_after_another(monkeypatch):
    """threadpoolctl >= 3.8 lets one thread at a time set OpenBLAS's (process-wide) count: with
    another thread inside threadpool_limits(2), the split cannot hold NumPy's BLAS at one
    thread, so it runs its blocks one after another on the calling thread (post network,
    float32, batch 512: products large enough for OpenBLAS to use both threads). The result
    is the reference's within 4 rounding bounds (one-thread and two-thread GEMMs sum in
    different orders), as in the test above."""
    params = mb.init_params([784, 500, 500, 10], seed=2, dtype=np.float32)
    rng = np.random.default_rng(2)
    x, y = rng.uniform(size=(512, 784)).astype(np.float32), mb.one_hot(rng.integers(0, 10, 512), 10, dtype=np.float32)
    leave = threading.Event()
    t = _holding(2, threading.Event(), leave)
    try:
        seen = _watch_blocks(monkeypatch)
        J, g = fast.loss_and_grad(params, x, y, threads=2)
    finally:
        leave.set()
        t.join(30)
    assert [thread for thread, _, _ in seen] == [threading.current_thread()] * 2
    J_ref, ref = mb.loss_and_grad(params, x, y)
    bound = ac.rounding_bound(params, x, y, "sigmoid", "binary_cross_entropy", dtype=np.float32)
    assert abs(J - J_ref) <= 4 * bound.loss
    assert_same_gradient(g, ref, [4 * e for e in bound.grad])


@pytest.mark.parametrize("held", [1, 3])
def test_a_limit_held_by_another_thread_that_ends_first_is_not_written_back(monkeypatch, held):
    """Thread U holds threadpool_limits(held) while a split starts in thread T and leaves
    before T ends. With 1 the blocks run at once (NumPy's BLAS is on one thread already);
    with 3, T cannot set OpenBLAS's count (U holds it) and runs them one after another.
    Either way T must not write back, on leaving, the count it found (U's): afterwards the
    count is the one from before U (a review finding: it stayed at 1 for good)."""
    before = _blas_counts()
    u_inside, u_leave, t_inside = threading.Event(), threading.Event(), threading.Event()

    def hold(y):
        t_inside.set()
        assert u_leave.wait(10)
        time.sleep(0.1)                                      # U has left by now


    u = _holding(held, u_inside, u_leave)
    _watch_blocks(monkeypatch, hold)
    t = threading.Thread(target=lambda: fast.loss_and_grad(mb.init_params([3, 4, 2], seed=0), np.ones((4, 3)),
                                                           np.full((4, 2), 0.5), threads=2))
    t.start()
    assert t_inside.wait(10)
    u_leave.set()
    u.join(30), t.join(30)
    assert _blas_counts() == before


def test_a_batch_1_step_beside_a_split_leaves_numpys_blas_as_it_was(monkeypatch):
    """sgd_step at batch 1 holds SciPy's own BLAS (not NumPy's) at one thread; run while a
    split in another thread holds NumPy's at one, it must not write NumPy's count back as
    it found it (1) when it leaves (a review finding: its limiter restored every library)."""

    import scipy.linalg  # noqa: F401  (loaded before the counts are taken: the step loads it)

    before = _blas_counts()
    inside, step_done = threading.Event(), threading.Event()

    def hold(y):
        if y[0, 0] == 0.75:
            inside.set()
            assert step_done.wait(10)
            time.sleep(0.05)

    params = mb.init_params([3, 4, 2], seed=0)
    _watch_blocks(monkeypatch, hold)
    t = threading.Thread(target=lambda: fast.loss_and_grad(params, np.ones((4, 3)), np.full((4, 2), 0.75), threads=2))
    t.start()
    assert inside.wait(10)
    mb.sgd_step([W.copy() for W in params], np.ones((1, 3)), np.full((1, 2), 0.25), 0.1)
    step_done.set()
    t.join(30)
    assert _blas_counts() == before


def test_a_call_inside_a_block_runs_as_one_block(monkeypatch):
    """A loss that itself calls loss_and_grad with threads=2 (from block 0 on the calling
    thread and from block 1 on the pool's): the inner calls run as one block each instead of
    waiting for the split that runs them (a review finding: both hung). Checked in a daemon
    thread with a timeout, so that a hang fails the test rather than the suite."""
    params, inner = mb.init_params([3, 4, 2], seed=0), []

    def nested(y):
        if y[0, 0] == 0.75:                                  # the outer call's blocks only
            inner.append(fast.loss_and_grad(params, np.ones((4, 3)), np.full((4, 2), 0.25), threads=2)[0])

    _watch_blocks(monkeypatch, nested)
    result = []
    t = threading.Thread(target=lambda: result.append(fast.loss_and_grad(params, np.ones((4, 3)), np.full((4, 2), 0.75),
                                                                         threads=2)), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive() and len(result) == 1 and len(inner) == 2
    monkeypatch.undo()
    assert inner[0] == inner[1] == fast.loss_and_grad(params, np.ones((4, 3)), np.full((4, 2), 0.25))[0]


def test_every_block_calls_the_callers_numpy_error_callback(monkeypatch):
    """np.errstate(under="call", call=f): the underflow in the second block's rows (as in the
    test above) reaches f, as it does in the reference, rather than a NameError on the pool's
    thread, which has no callback of its own. The first block waits in its loss until the
    second has started on the pool (else the caller may claim it first: mutmut found the test
    passing without the callback)."""
    params = [np.array([[0.0], [1.0]]), np.array([[0.0], [1.0]])]
    x, y = np.ones((4, 1)), np.full((4, 1), 0.5)
    x[3] = -709.0
    calls = []
    with np.errstate(under="call", call=lambda kind, flag: calls.append(kind)):
        mb.loss_and_grad(params, x, y)
    assert "underflow" in calls
    on_pool, caller = threading.Event(), threading.current_thread()
    seen = _watch_blocks(monkeypatch, lambda y: on_pool.wait(10) if threading.current_thread() is
                         caller else on_pool.set())
    calls.clear()
    with np.errstate(under="call", call=lambda kind, flag: calls.append(kind)):
        fast.loss_and_grad(params, x, y, threads=2)
    assert len({t for t, _, _ in seen}) == 2 and "underflow" in calls


def test_a_split_in_a_thread_that_outlives_the_main_thread_still_runs(tmp_path):
    """A non-daemon thread that splits after the main thread has returned: the interpreter
    has shut the pool down by then (concurrent.futures at exit), so the blocks run on the
    calling thread instead of raising RuntimeError (a review finding)."""

    script = """
import threading, time, numpy as np, manual_backprop as mb
from manual_backprop import fast
params, x, y = mb.init_params([3, 4, 2], seed=0), np.ones((4, 3)), np.full((4, 2), 0.5)
fast.loss_and_grad(params, x, y, threads=2)            # the pool exists
def late():
    time.sleep(0.5)
    J = fast.loss_and_grad(params, x, y, threads=2)[0]
    print("ok" if J == mb.loss_and_grad(params, x, y)[0] else "wrong")
threading.Thread(target=late).start()
"""
    done = subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_fork_during_a_split_gives_the_child_numpys_blas_count_back(tmp_path):
    """Fork while another thread's split holds NumPy's BLAS at one thread: the child has no
    such thread, and gets the count from before the split, a fresh lock and pool, and no
    thread left in control of OpenBLAS's count, so that a new thread's threadpool_limits
    takes effect (review findings: it kept one thread for good; then the forking thread kept
    the control)."""

    script = """
import os, threading, numpy as np, manual_backprop as mb
from threadpoolctl import threadpool_info, threadpool_limits
from manual_backprop import fast
from manual_backprop.losses import LOSSES
counts = lambda: [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
before = counts()
bce, inside, leave = LOSSES["binary_cross_entropy"], threading.Event(), threading.Event()
value = type(bce).value
def held(z, y):
    inside.set(); leave.wait(30)
    return value(bce, z, y)
bce.value = held
params, x, y = mb.init_params([3, 4, 2], seed=0), np.ones((4, 3)), np.full((4, 2), 0.5)
t = threading.Thread(target=lambda: fast.loss_and_grad(params, x, y, threads=2))
t.start(); inside.wait(30)
pid = os.fork()
if pid == 0:
    bce.value = lambda z, y: value(bce, z, y)
    ok, seen = counts() == before, []
    def limited():
        with threadpool_limits(3, user_api="blas"):
            seen.append(counts())
    u = threading.Thread(target=limited); u.start(); u.join()
    ok = ok and seen == [[3] * len(before)]
    ok = ok and fast.loss_and_grad(params, x, y, threads=2)[0] == mb.loss_and_grad(params, x, y)[0]
    os._exit(0 if ok else 1)
leave.set(); t.join()
_, status = os.waitpid(pid, 0)
raise SystemExit(os.waitstatus_to_exitcode(status))
"""
    done = subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_block_that_raises_returns_only_after_the_others_are_done(monkeypatch):
    """Block 0 (rows 0-3, x = 1e308 in row 0, relu: z_1 overflows) raises while block 1 is
    still inside its loss on the pool (held 0.3 s): the call raises NonFiniteError only once
    block 1 is done, so that no block outlives the call (nor its BLAS setting, nor its hold
    on the Workspace), and the Workspace serves the next call."""

    finished, started = [], threading.Event()

    def hold(y):
        if y[0, 0] == 0.25:                                  # block 0 raises once block 1 is on the pool
            started.wait(10)
        else:
            started.set()
            time.sleep(0.3)
            finished.append(True)

    params, ws = mb.init_params([3, 4, 2], seed=0), fast.Workspace()
    x, y = np.ones((8, 3)), np.full((8, 2), 0.75)
    x[0], y[:4] = 1e308, 0.25
    _watch_blocks(monkeypatch, hold)
    with pytest.raises(mb.NonFiniteError, match="^the loss is NaN or inf although x and params are finite"):
        fast.loss_and_grad(params, x, y, activation="relu", threads=2, workspace=ws)
    assert finished == [True]
    x[0] = 1.0
    J, _ = fast.loss_and_grad(params, x, y, activation="relu", threads=2, workspace=ws)
    # blocks sum in another order: each within one rounding bound of the exact J (float64)
    bound = ac.rounding_bound(params, x, y, "relu", "binary_cross_entropy").loss
    assert abs(J - mb.loss_and_grad(params, x, y, activation="relu")[0]) <= 2 * bound


def test_an_error_in_a_block_on_the_pool_is_raised_by_the_call(monkeypatch):
    """Block 1 (rows 4-7, x = 1e308 in row 7, relu: z_1 overflows) raises on a pool thread
    (block 0 waits until it is there): the call raises its NonFiniteError, not a TypeError
    from a missing share of J, and the Workspace serves the next call."""
    on_pool = threading.Event()
    _watch_blocks(monkeypatch, lambda y: on_pool.wait(10) if threading.current_thread() is
                  threading.main_thread() else on_pool.set())
    params, ws = mb.init_params([3, 4, 2], seed=0), fast.Workspace()
    x, y = np.ones((8, 3)), np.full((8, 2), 0.5)
    x[7] = 1e308
    with pytest.raises(mb.NonFiniteError, match="^the loss is NaN or inf although x and params are finite"):
        fast.loss_and_grad(params, x, y, activation="relu", threads=2, workspace=ws)
    x[7] = 1.0
    J, _ = fast.loss_and_grad(params, x, y, activation="relu", threads=2, workspace=ws)
    # blocks sum in another order: each within one rounding bound of the exact J (float64)
    bound = ac.rounding_bound(params, x, y, "relu", "binary_cross_entropy").loss
    assert abs(J - mb.loss_and_grad(params, x, y, activation="relu")[0]) <= 2 * bound


@pytest.mark.filterwarnings("error")
def test_a_block_on_a_pool_thread_overflows_exp_as_quietly_as_the_calling_thread():
    """float32 sigmoid, a pre-activation of -100 in the second block's rows: e^100 overflows to
    inf and sigma = 0 (documented), without a RuntimeWarning, on the pool's thread too (NumPy's
    error state is per thread); the result is the reference's within its rounding bound."""
    params = [np.array([[0.0], [1.0]], np.float32), np.array([[0.0], [1.0]], np.float32)]
    x, y = np.ones((4, 1), np.float32), np.full((4, 1), 0.5, np.float32)
    x[3] = -100
    J, g = fast.loss_and_grad(params, x, y, threads=2)
    J_ref, ref = mb.loss_and_grad(params, x, y)
    bound = ac.rounding_bound(params, x, y, "sigmoid", "binary_cross_entropy", dtype=np.float32)
    assert abs(J - J_ref) <= 4 * bound.loss
    assert_same_gradient(g, ref, [4 * e for e in bound.grad])


def test_a_keyboard_interrupt_while_the_blocks_run_is_raised_once_they_are_done(monkeypatch):
    """Ctrl-C (SIGINT to the main thread) while it waits for block 1: the KeyboardInterrupt
    comes out of the call only after block 1 has finished, so no block outlives the call, and
    the Workspace serves the next one."""

    finished, started, main_past_watch = [], threading.Event(), threading.Event()

    def hold(y):
        if y[0, 0] == 0.25:                                  # block 0 ends once block 1 is on the pool
            main_past_watch.set()
            assert started.wait(10)
        else:
            started.set()
            # not before block 0 is past _watch_blocks' threadpool_info, whose ctypes callback would
            # swallow the KeyboardInterrupt ("Exception ignored")
            assert main_past_watch.wait(10)
            time.sleep(0.2)                                  # the main thread is waiting by now
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(0.3)
            finished.append(True)

    params, ws = mb.init_params([3, 4, 2], seed=0), fast.Workspace()
    x, y = np.ones((8, 3)), np.full((8, 2), 0.75)
    y[:4] = 0.25
    _watch_blocks(monkeypatch, hold)
    # Python's own Ctrl-C handler, whatever this process inherited: a shell without job control
    # starts a background job (`pytest &`) with SIGINT ignored, and the test read DID NOT RAISE
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            fast.loss_and_grad(params, x, y, threads=2, workspace=ws)
    finally:
        signal.signal(signal.SIGINT, before)
    assert finished == [True]
    monkeypatch.undo()
    J, _ = fast.loss_and_grad(params, x, y, threads=2, workspace=ws)
    # blocks sum in another order: each within one rounding bound of the exact J (float64)
    bound = ac.rounding_bound(params, x, y, "sigmoid", "binary_cross_entropy").loss
    assert abs(J - mb.loss_and_grad(params, x, y)[0]) <= 2 * bound


def test_every_block_runs_under_the_callers_numpy_error_state():
    """NumPy's error state is per thread. Under np.errstate(under="raise"), an underflow in the
    second block's rows (float64 sigmoid at z = -709: 1 / (1 + e^709) = 1.2e-308 is subnormal)
    raises FloatingPointError as in the first block's rows and as the reference does, instead
    of passing on the pool's thread."""
    params = [np.array([[0.0], [1.0]]), np.array([[0.0], [1.0]])]
    x, y = np.ones((4, 1)), np.full((4, 1), 0.5)
    for row in (0, 3):
        x[:] = 1.0
        x[row] = -709.0
        for step in (mb.loss_and_grad, lambda *a: fast.loss_and_grad(*a, threads=2)):
            with np.errstate(under="raise"), pytest.raises(FloatingPointError, match="underflow"):
                step(params, x, y)


def test_out_sharing_memory_with_y_is_refused():
    """A split batch's second block reads its targets after the first block has written
    ``out``: an out= entry over y would change them first, a silent wrong J. Refused by name,
    split or not."""
    params = mb.init_params([2, 3, 5], seed=0)
    out = [np.zeros_like(W) for W in params]
    y = out[1][1:3].reshape(2, 5)
    y[:] = 0.5
    for threads in (1, 2):
        with pytest.raises(ValueError, match=r"^out\[1\] overlaps y; gradients need their own memory$"):
            fast.loss_and_grad(params, np.ones((2, 2)), y, out=out, threads=threads)


def test_a_batch_too_small_to_split_needs_no_threadpoolctl():
    """Below 2 SPLIT_ROWS rows the default asks no BLAS library for its thread count (a fresh
    interpreter in which threadpoolctl cannot be imported)."""

    script = """
import sys
sys.modules["threadpoolctl"] = None
import numpy as np, manual_backprop as mb
from manual_backprop import fast
params = mb.init_params([3, 4, 2], seed=0)
n = 2 * fast.SPLIT_ROWS - 1
J = fast.loss_and_grad(params, np.ones((n, 3)), np.full((n, 2), 0.5))[0]
raise SystemExit(0 if J == mb.loss_and_grad(params, np.ones((n, 3)), np.full((n, 2), 0.5))[0] else 1)
"""
    done = subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_block_whose_own_gradient_overflows_is_refused_naming_the_layer():
    """float32, one layer, mean squared error, W = 0, two examples x_b = 3e38, y = -2.5:
    J = 3.125 is finite, and each block's x_b delta_b = 3e38 * 1.25 overflows on its own. The
    blocks' inf stays in the total, which the split refuses as the reference does, naming the
    layer (the blocks only bound their gradients: a check of their own would say the same)."""
    params = [np.zeros((2, 1), np.float32)]
    x, y = np.full((2, 1), 3e38, np.float32), np.full((2, 1), -2.5, np.float32)
    for step in (mb.loss_and_grad, lambda *a, **k: fast.loss_and_grad(*a, threads=2, **k)):
        with pytest.raises(mb.NonFiniteError, match=r"^dJ/dW_1 overflows float32: inputs, targets or weights too large$"):
            step(params, x, y, activation="relu", loss="mean_squared_error")


def test_blocks_whose_gradients_are_finite_but_whose_sum_overflows_are_refused():
    """float32, one layer, mean squared error, two examples with x = 2e38 and delta_b = 1.25
    (y = -2.5, W = 0): each block's x delta = 2.5e38 is finite, their sum 5e38 is not. Refused
    as the reference refuses it; with y = -1 (sum 2e38) both return the same gradient."""
    params = [np.zeros((2, 1), np.float32)]
    x = np.full((2, 1), 2e38, np.float32)
    for step in (mb.loss_and_grad, lambda *a, **k: fast.loss_and_grad(*a, threads=2, **k)):
        with pytest.raises(mb.NonFiniteError, match=r"^dJ/dW_1 overflows float32: inputs, targets or weights too large$"):
            step(params, x, np.full((2, 1), -2.5, np.float32), activation="relu", loss="mean_squared_error")
    y = np.full((2, 1), -1.0, np.float32)
    kw = dict(activation="relu", loss="mean_squared_error")
    assert_bit_equal(fast.loss_and_grad(params, x, y, threads=2, **kw)[1], mb.loss_and_grad(params, x, y, **kw)[1])


def test_a_loss_whose_sum_overflows_is_refused_however_the_batch_is_split():
    """float32, one identity layer, mean squared error, 512 rows of x = 1.4e18, y = 0: each
    loss is 9.8e35, their sum 5e38 overflows float32, half of it does not. The reference sums
    in float32 and refuses; so do the fast path's blocks, whose sums alone would pass."""
    params = [np.array([[0.0], [1.0]], np.float32)]
    x, y = np.full((512, 1), 1.4e18, np.float32), np.zeros((512, 1), np.float32)
    for step in (mb.loss_and_grad, lambda *a, **k: fast.loss_and_grad(*a, threads=1, **k),
                 lambda *a, **k: fast.loss_and_grad(*a, threads=2, **k)):
        with pytest.raises(mb.NonFiniteError, match="^the loss is NaN or inf although x and params are finite"):
            step(params, x, y, activation="relu", loss="mean_squared_error")
    J, _ = fast.loss_and_grad(params, x[:256], y[:256], activation="relu", loss="mean_squared_error", threads=2)
    assert J == pytest.approx(9.8e35, rel=1e-6)


def test_the_sum_of_blocks_is_judged_by_the_sum_of_their_bounds():
    """Five one-row blocks (float32, relu, x = 1e19, W_2[1] = 4e19, so delta_1 = 8e18 each):
    each block's x delta_1 = 8e37 has a bound of 1.6e38, below half of float32's largest
    number (1.7e38), so no block's gradient needs a scan; their sum, 4e38, overflows. Only
    the sum of the bounds (8e38) sends the total to a scan; the largest alone would not."""
    params = [np.array([[0.0], [1e-30]], np.float32), np.array([[0.0], [4e19]], np.float32)]
    x, y = np.full((5, 1), 1e19, np.float32), np.zeros((5, 1), np.float32)
    with pytest.raises(mb.NonFiniteError, match=r"^dJ/dW_1 overflows float32: inputs, targets or weights too large$"):
        fast.loss_and_grad(params, x, y, activation="relu", threads=5)


def test_a_forked_child_splits_with_a_pool_of_its_own(tmp_path):
    """After a split call, fork: the child's copy of the parent's thread pool has no threads,
    so a child that reused it would wait forever. Run in a fresh interpreter (JAX, imported by
    other tests here, warns on fork) with a timeout."""

    script = """
import os, numpy as np, manual_backprop as mb
from manual_backprop import fast
params, x, y = mb.init_params([3, 4, 2], seed=0), np.ones((4, 3)), np.full((4, 2), 0.5)
J = fast.loss_and_grad(params, x, y, threads=2)[0]
pid = os.fork()
if pid == 0:
    os._exit(0 if fast.loss_and_grad(params, x, y, threads=2)[0] == J else 1)
_, status = os.waitpid(pid, 0)
raise SystemExit(os.waitstatus_to_exitcode(status))
"""
    done = subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
