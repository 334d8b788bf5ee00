"""The hand-derived gradient against every oracle, over drawn architectures and data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff_check as ac
import manual_backprop as mb
from strategies import PAIRS, examples, layer_sizes, problems



def _exactly_equal_math(params, x, y, activation, loss):
    J_m, g_m = mb.loss_and_grad(params, x, y, activation=activation, loss=loss)
    J_j, g_j = ac.loss_and_grad(params, x, y, activation=activation, loss=loss)
    return J_m, g_m, J_j, g_j


@pytest.mark.parametrize("activation,loss", PAIRS)
@settings(max_examples=examples(4))
@given(data=st.data())
def test_manual_matches_jax_at_large_magnitudes(activation, loss, data):
    """float64, inputs up to |x| = 1000: equal losses and gradients to EXACT_RTOL per layer."""
    params, x, y = data.draw(problems(loss, magnitude=1e3))
    J_m, g_m, J_j, g_j = _exactly_equal_math(params, x, y, activation, loss)
    assert np.isfinite(J_m)
    assert J_m == pytest.approx(J_j, rel=ac.EXACT_RTOL, abs=ac.EXACT_RTOL)
    atol = ac.exact_atol(g_j, ac.rounding_bound(params, x, y, activation, loss).grad)
    cmp = ac.compare(g_m, g_j, rtol=0, atol=atol, names=("manual", "jax"))
    assert cmp.passed, str(cmp)


@pytest.mark.parametrize("activation,loss", PAIRS)
@settings(max_examples=examples(3))
@given(data=st.data())
def test_every_oracle_agrees_per_coordinate(activation, loss, data):
    """Finite differences (with kink handling), complex step (analytic pairs), jax.grad and
    jax.jvp all agree with the hand-derived gradient, entry by entry.

    Inputs are kept to |x| <= 10: the finite-difference truncation error grows like |x|^3
    (third derivative along a weight) and would dominate its own bound's premise of a small
    step; the exact oracles cover large magnitudes in the test above."""
    params, x, y = data.draw(problems(loss, magnitude=10.0))
    verdict = ac.check_network(params, x, y, activation=activation, loss=loss, per_coordinate=True)
    if loss == "softmax_cross_entropy" and params[-1].shape[1] == 1:   # one class: J = 0 whatever the weights,
        assert verdict.status == "NOT CHECKED", str(verdict)            # every derivative 0, nothing to resolve
    elif verdict.status == "NOT CHECKED":
        # a saturated draw (the thorough profile found J = 1e-14 and 3e-17: the network predicts
        # y): allowed only where the rounding bound, derived on paper from the inputs, exceeds
        # every true derivative (JAX's), so that no comparison of exact gradients could resolve one
        _, g_j = ac.loss_and_grad(params, x, y, activation=activation, loss=loss)
        atol = ac.exact_atol(g_j, ac.rounding_bound(params, x, y, activation, loss).grad)
        assert all(np.all(np.abs(g) <= a) for g, a in zip(g_j, atol)), str(verdict)
    else:
        assert verdict.passed, str(verdict)
    expected = {"finite_diff", "jax_grad", "jax_jvp"} | ({"complex_step"} if mb.ACTIVATIONS[activation].analytic else set())
    assert {r.oracle for r in verdict.results} == expected


@pytest.mark.parametrize("activation,loss", PAIRS)
@settings(max_examples=examples(2))
@given(data=st.data())
def test_jax_matches_finite_differences(activation, loss, data):
    """The oracle itself is checked: JAX's gradient agrees with finite differences within the
    finite-difference error bound (derived from the step and float64, see autodiff_check.oracles;
    the loss's own rounding error from autodiff_check.rounding_bound)."""
    params, x, y = data.draw(problems(loss, magnitude=10.0))
    kinks = None if mb.ACTIVATIONS[activation].analytic else (lambda P: ac.activation_pattern(P, x, activation))
    eps_f = ac.rounding_bound(params, x, y, activation, loss).loss
    num = ac.numerical_grad_with_error(lambda P: mb.loss(P, x, y, activation=activation, loss=loss), params,
                                       kinks=kinks, f_error=eps_f)
    _, g_j = ac.loss_and_grad(params, x, y, activation=activation, loss=loss)
    cmp = ac.compare(g_j, [np.nan_to_num(g) for g in num.grad], rtol=0, atol=num.tol, names=("jax", "fd"))
    assert cmp.passed, str(cmp)


@pytest.mark.parametrize("activation,loss", PAIRS)
@settings(max_examples=examples(4))
@given(data=st.data())
def test_float32_gradient_matches_float64_reference(activation, loss, data):
    """float32 in, float32 out, close to the float64 gradient of the same (rounded) parameters.

    Tolerance: autodiff_check.rounding_bound runs the network in absolute values and bounds,
    to first order in u, how far a gradient entry computed with unit roundoff u can be from
    the exact one (every dot product of n terms errs by n u times their absolute sum, carried
    forward and back through the derivatives). The float32 and float64 results each lie
    within their bound of the exact gradient; a factor 2 covers the second-order terms."""
    params, x, y = data.draw(problems(loss, magnitude=10.0))
    p32 = [W.astype(np.float32) for W in params]
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    J32, g32 = mb.loss_and_grad(p32, x32, y32, activation=activation, loss=loss)
    assert isinstance(J32, float) and all(g.dtype == np.float32 for g in g32)
    p64 = [W.astype(np.float64) for W in p32]
    J64, g64 = mb.loss_and_grad(p64, x32.astype(np.float64), y32.astype(np.float64), activation=activation, loss=loss)
    b32 = ac.rounding_bound(p64, x32, y32, activation, loss, dtype=np.float32)
    b64 = ac.rounding_bound(p64, x32, y32, activation, loss, dtype=np.float64)
    atol = [2 * (e32 + e64) for e32, e64 in zip(b32.grad, b64.grad)]
    cmp = ac.compare(g32, g64, rtol=0, atol=atol, names=("float32", "float64"))
    assert cmp.passed, str(cmp)
    assert abs(J32 - J64) <= 2 * (b32.loss + b64.loss)


@settings(max_examples=examples(10))
@given(sizes=layer_sizes(), seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       batch=st.integers(1, 8), activation=st.sampled_from(sorted(mb.ACTIVATIONS)))
def test_gradient_shapes_and_dtypes_follow_params(sizes, seed, dtype, batch, activation):
    params = mb.init_params(sizes, seed=seed, dtype=dtype)
    x = np.random.default_rng(seed).normal(size=(batch, sizes[0]))
    y = mb.one_hot(np.zeros(batch, int), sizes[-1])
    J, grads = mb.loss_and_grad(params, x, y, activation=activation)
    assert isinstance(J, float)
    assert [g.shape for g in grads] == [W.shape for W in params]
    assert all(g.dtype == dtype for g in grads)


@settings(max_examples=examples(10))
@given(data=st.data(), activation=st.sampled_from(sorted(mb.ACTIVATIONS)),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_both_forward_forms_agree(data, activation, dtype):
    """``a @ W[1:] + W[0]`` (ours) and ``add_bias(a) @ W`` (the post's) are the same function:
    their logits (the identity output of mean squared error) differ by at most twice ez_L,
    ``ac.logits_bound``, within which each lies of the exact z_L. (A fixed rtol of 1e-12 on the
    outputs failed in the thorough profile: a softmax output of 8e-183 is exp(-420), whose
    relative error is 420 times z's.)"""
    params, x, _ = data.draw(problems("mean_squared_error", magnitude=100.0, dtype=dtype))
    g = mb.ACTIVATIONS[activation]
    a = x
    for W in params[:-1]:
        a = g.fn(mb.add_bias(a) @ W)
    post = mb.add_bias(a) @ params[-1]
    ours = mb.forward(params, x, activation=activation, loss="mean_squared_error")
    assert ours.dtype == post.dtype == dtype
    assert np.all(np.abs(ours.astype(np.float64) - post) <= 2 * ac.logits_bound(params, x, activation, dtype))


def test_post_network_along_random_directions():
    """The whole post network (648,010 parameters), along 8 random +-1 directions: finite
    differences, the complex step and jax.jvp agree with <grad, v>. An error with any entry
    above the tolerance escapes all 8 with probability <= 2^-8."""
    params = mb.init_params([784, 500, 500, 10], seed=0)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(4, 784))
    y = mb.one_hot(rng.integers(0, 10, 4), 10)
    verdict = ac.check_network(params, x, y, per_coordinate=False, n_directions=8,
                               oracles=["fd", "complex_step", "jax_jvp"])
    assert verdict.passed, str(verdict)
    wrong = ac.check_network(params, x, y, backward="as_published", per_coordinate=False, n_directions=8,
                             oracles=["fd", "complex_step", "jax_jvp"])
    assert not any(r.passed for r in wrong.results), str(wrong)
