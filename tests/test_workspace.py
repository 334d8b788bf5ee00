"""loss_and_grad's speed options (out=, workspace=) change nothing but where memory lives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import manual_backprop as mb
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
])
def test_bad_out_is_refused_by_name(make_out, error, message):
    params = mb.init_params([3, 4, 2], seed=0)
    x, y = np.ones((2, 3)), mb.one_hot([0, 1], 2)
    with pytest.raises(error, match=message):
        mb.loss_and_grad(params, x, y, out=make_out(params))
