"""loss_and_grad's speed options (out=, workspace=) change nothing but where memory lives,
and the in-place activation kernels compute what the activation objects compute."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import manual_backprop as mb
from manual_backprop.activations import ACTIVATIONS
from manual_backprop.network import Workspace
from strategies import examples, problems


@settings(max_examples=examples(20))
@given(data=st.data(), activation=st.sampled_from(sorted(mb.ACTIVATIONS)),
       loss=st.sampled_from(sorted(mb.LOSSES)), dtype=st.sampled_from([np.float32, np.float64]))
def test_out_and_workspace_give_bit_identical_results(data, activation, loss, dtype):
    params, x, y = data.draw(problems(loss, magnitude=100.0))
    params = [W.astype(dtype) for W in params]
    _, x2, y2 = data.draw(problems(loss, magnitude=100.0, sizes=st.just([W.shape[0] - 1 for W in params]
                                                                        + [params[-1].shape[1]])))
    kw = dict(activation=activation, loss=loss)
    ws = Workspace()
    out = [np.full_like(W, np.nan) for W in params]
    for xb, yb in [(x, y), (x2, y2), (x, y)]:  # reuse across batches of other sizes, then again
        J_ref, g_ref = mb.loss_and_grad(params, xb, yb, **kw)
        J, g = mb.loss_and_grad(params, xb, yb, out=out, workspace=ws, **kw)
        assert J == J_ref
        assert all(a is b for a, b in zip(g, out))
        for a, b in zip(g, g_ref):
            np.testing.assert_array_equal(a, b)
        J_ws, g_ws = mb.loss_and_grad(params, xb, yb, workspace=ws, **kw)
        assert J_ws == J_ref and all(np.array_equal(a, b) for a, b in zip(g_ws, g_ref))


def test_gradients_returned_with_a_workspace_are_not_overwritten_by_the_next_call():
    params = mb.init_params([4, 5, 5, 3], seed=0)
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    y = mb.one_hot(rng.integers(0, 3, 6), 3)
    ws = Workspace()
    _, g1 = mb.loss_and_grad(params, x1, y, workspace=ws)
    kept = [g.copy() for g in g1]
    mb.loss_and_grad(params, x2, y, workspace=ws)
    assert all(np.array_equal(a, b) for a, b in zip(g1, kept))


def test_params_are_never_modified():
    for activation in mb.ACTIVATIONS:
        params = mb.init_params([4, 5, 5, 3], seed=1)
        before = [W.copy() for W in params]
        x = np.random.default_rng(1).normal(size=(3, 4)) * 50
        mb.loss_and_grad(params, x, mb.one_hot([0, 1, 2], 3), activation=activation, workspace=Workspace())
        assert all(np.array_equal(a, b) for a, b in zip(params, before))


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
    x, y = np.ones((2, 3)), mb.one_hot([0, 1], 2)
    with pytest.raises(error, match=message):
        mb.loss_and_grad(params, x, y, out=make_out(params))


def _peak_bytes(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 64])
def test_a_warm_call_allocates_no_array_of_a_hidden_layers_size(activation, dtype, batch):
    """The contract of out= and workspace= (and of sgd_step with a workspace): once warm, a
    call allocates only the output layer's (B, n_L) arrays and single rows, nothing of the
    size of a hidden layer (B, n_l) or a weight matrix (measured with tracemalloc, which sees
    NumPy's buffers). This is what makes the in-place kernels and buffers worth having.
    At B = 1 a hidden layer is a row, so there the test is about weight-sized arrays.
    Allowed: NumPy's own ufunc buffer (np.getbufsize() elements, used by the broadcast
    in-place bias add) and 16 kB for the rows and output-layer arrays."""
    params = [W.astype(dtype) for W in mb.init_params([40, 400, 300, 3], seed=0)]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 40)).astype(dtype)
    y = mb.one_hot(rng.integers(0, 3, batch), 3, dtype=dtype)
    itemsize = np.dtype(dtype).itemsize
    smallest = (batch * 300 if batch > 1 else 40 * 400) * itemsize
    allowed = np.getbufsize() * itemsize + 16384
    assert smallest > allowed  # so the test can tell
    ws, out = Workspace(), [np.empty_like(W) for W in params]
    kw = dict(activation=activation, check_finite=False, workspace=ws)

    def grad():
        mb.loss_and_grad(params, x, y, out=out, **kw)

    def step():
        mb.sgd_step(params, x, y, 1e-3, **kw)

    for call in (grad, step):
        call()  # warm: the workspace allocates here
        assert _peak_bytes(call) < allowed, call.__name__


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_the_in_place_path_and_the_objects_fn_and_grad_agree(name, monkeypatch):
    """loss_and_grad runs sigmoid and tanh through fn_inplace and times_grad_inplace, and an
    object whose fn or grad has been replaced through that fn and grad. With fn replaced by
    the same function the two paths agree to the tolerance of two exact float64 gradients;
    with grad replaced by 2 g', layer l's gradient is exactly 2^(L - l) times that (scaling by
    2 is exact), so the replacement is used, not the in-place kernel."""
    import autodiff_check as ac

    cls = type(ACTIVATIONS[name])
    same = cls()
    same.fn = cls().fn                                           # instance attribute: generic path
    doubled = cls()
    doubled.grad = lambda z, a: 2 * cls.grad(doubled, z, a)     # only grad replaced
    rng = np.random.default_rng(3)
    params = mb.init_params([4, 6, 5, 3], seed=4)
    x, y = rng.normal(0, 2, (5, 4)), mb.one_hot(rng.integers(0, 3, 5), 3)

    _, g_fast = mb.loss_and_grad(params, x, y, activation=name)
    monkeypatch.setitem(ACTIVATIONS, name, same)
    _, g_generic = mb.loss_and_grad(params, x, y, activation=name)
    monkeypatch.setitem(ACTIVATIONS, name, doubled)
    _, g_doubled = mb.loss_and_grad(params, x, y, activation=name)

    atol = ac.exact_atol(g_fast, ac.rounding_bound(params, x, y, name, "binary_cross_entropy").grad)
    assert ac.compare(g_generic, g_fast, rtol=0, atol=atol).passed
    L = len(params)
    for l, (a, b) in enumerate(zip(g_doubled, g_generic)):
        np.testing.assert_array_equal(a, 2.0 ** (L - 1 - l) * b)


def test_one_array_for_two_layers_is_refused():
    """Two layers of the same shape and one array given for both (found in review): the
    second layer's gradient would overwrite the first's."""
    params = mb.init_params([3, 3, 3], seed=0)
    g = np.empty_like(params[0])
    with pytest.raises(ValueError, match=r"out\[1\] overlaps another entry of out"):
        mb.loss_and_grad(params, np.ones((2, 3)), mb.one_hot([0, 1], 3), out=[g, g[:, :]])
