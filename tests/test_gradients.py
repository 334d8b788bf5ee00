"""The hand-derived gradient against every oracle, over drawn architectures and data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff_check as ac
import manual_backprop as mb
from strategies import ANALYTIC_PAIRS, PAIRS, examples, layer_sizes, problems

U32 = float(np.finfo(np.float32).eps) / 2


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
    atol = ac.exact_atol(g_j, ac.term_scale(params, x, y, activation, loss))
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
    assert verdict.passed, str(verdict)
    expected = {"finite_diff", "jax_grad", "jax_jvp"} | ({"complex_step"} if mb.ACTIVATIONS[activation].analytic else set())
    assert {r.oracle for r in verdict.results} == expected


@pytest.mark.parametrize("activation,loss", PAIRS)
@settings(max_examples=examples(2))
@given(data=st.data())
def test_jax_matches_finite_differences(activation, loss, data):
    """The oracle itself is checked: JAX's gradient agrees with finite differences within the
    finite-difference error bound (derived from the step and float64, see autodiff_check.oracles)."""
    params, x, y = data.draw(problems(loss, magnitude=10.0))
    kinks = None if mb.ACTIVATIONS[activation].analytic else (lambda P: ac.activation_pattern(P, x, activation))
    num = ac.numerical_grad_with_error(lambda P: mb.loss(P, x, y, activation=activation, loss=loss), params, kinks=kinks)
    _, g_j = ac.loss_and_grad(params, x, y, activation=activation, loss=loss)
    cmp = ac.compare(g_j, [np.nan_to_num(g) for g in num.grad], rtol=0, atol=num.tol, names=("jax", "fd"))
    assert cmp.passed, str(cmp)


@pytest.mark.parametrize("activation,loss", PAIRS)
@settings(max_examples=examples(4))
@given(data=st.data())
def test_float32_gradient_matches_float64_reference(activation, loss, data):
    """float32 in, float32 out, close to the float64 gradient of the same (rounded) parameters.

    Tolerance for float32: each dot product of length n carries a relative error of at most
    n u (u = 2^-24), and a gradient entry passes through 2 D of them for D layers (forward and
    backward), so |g32 - g64| <= 2 D n u S with S the size of the terms the entries sum
    (autodiff_check.term_scale: an absolute-value backward pass, so cancellation such as
    p - y with p ~ y is covered); a factor 4 covers the elementwise operations in between."""
    params, x, y = data.draw(problems(loss, magnitude=10.0))
    p32 = [W.astype(np.float32) for W in params]
    J32, g32 = mb.loss_and_grad(p32, x.astype(np.float32), y.astype(np.float32), activation=activation, loss=loss)
    assert isinstance(J32, float) and all(g.dtype == np.float32 for g in g32)
    p64 = [W.astype(np.float64) for W in p32]
    J64, g64 = mb.loss_and_grad(p64, x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64),
                                activation=activation, loss=loss)
    D, n = len(params), max(max(W.shape) for W in params + [x])
    S = max(ac.term_scale(p64, x.astype(np.float32), y.astype(np.float32), activation, loss))
    tol = 4 * 2 * D * n * U32 * max(S, np.finfo(np.float32).tiny)
    cmp = ac.compare(g32, g64, rtol=0, atol=tol, names=("float32", "float64"))
    assert cmp.passed, str(cmp)
    assert J32 == pytest.approx(J64, rel=4 * 2 * D * n * U32, abs=4 * 2 * D * n * U32)


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
       loss=st.sampled_from(sorted(mb.LOSSES)))
def test_both_forward_forms_agree(data, activation, loss):
    """``a @ W[1:] + W[0]`` (ours) and ``add_bias(a) @ W`` (the post's) are the same function."""
    params, x, _ = data.draw(problems(loss, magnitude=100.0))
    g, out = mb.ACTIVATIONS[activation], mb.LOSSES[loss]
    a = x
    for W in params[:-1]:
        a = g.fn(mb.add_bias(a) @ W)
    post = out.output(mb.add_bias(a) @ params[-1])
    np.testing.assert_allclose(mb.forward(params, x, activation=activation, loss=loss), post, rtol=1e-12, atol=1e-300)


def test_add_bias_puts_ones_first():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(mb.add_bias(x), [[1, 0, 1, 2], [1, 3, 4, 5]])


def test_init_params_follows_the_post():
    params = mb.init_params([784, 500, 500, 10], seed=3)
    assert [W.shape for W in params] == [(785, 500), (501, 500), (501, 10)]
    rng = np.random.default_rng(3)
    expected = rng.standard_normal((785, 500)) * np.sqrt(2 / (784 + 500))
    np.testing.assert_array_equal(params[0], expected)
    assert sum(W.size for W in params) == 648_010


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
