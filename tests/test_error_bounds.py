"""The rounding-error bounds that set the oracles' tolerances (autodiff_check.error_bounds)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import autodiff_check as ac
import manual_backprop as mb
from autodiff_check import error_bounds as eb


@pytest.mark.parametrize("activation", sorted(mb.ACTIVATIONS))
def test_derivative_bounds_are_the_maxima_of_g_prime_and_g_second(activation):
    """SLOPE and CURVATURE bound |g'| and |g''| everywhere (checked on a fine grid with JAX's
    derivatives of the JAX twin, no hand derivation) and are within 1 % of the maximum, so
    they neither miss nor inflate the error they propagate."""
    g = ac.ACTIVATIONS[activation]
    z = jnp.linspace(-30.0, 30.0, 600_001)
    g1 = np.abs(np.asarray(jax.vmap(jax.grad(g))(z)))
    g2 = np.abs(np.asarray(jax.vmap(jax.grad(jax.grad(g)))(z[z != 0])))  # away from the kink
    assert g1.max() <= eb.SLOPE[activation] and g1.max() >= 0.99 * eb.SLOPE[activation]
    assert g2.max() <= eb.CURVATURE[activation]
    assert g2.max() >= 0.99 * eb.CURVATURE[activation] or eb.CURVATURE[activation] == 0


def test_output_slopes_bound_the_output_functions():
    """sigmoid' <= 1/4; softmax's Jacobian has max-norm (largest absolute row sum) <= 1/2,
    reached at two equal logits. In float64 (x64 on here, whatever ran before), the computed
    row i is sum_j |p_j (delta_ij - p_i)| for the computed p, whose sum is 1 to n u, so at most
    2 p_i (1 - p_i) + p_i n u <= 1/2 + n u / 2; each entry adds <= 2 u relative and the row's
    n - 1 additions (n - 1) u, on terms summing to ~1/2: tol = (2 n + 1) u / 2, n = 5."""
    z = jnp.linspace(-30.0, 30.0, 60_001)
    assert float(jnp.abs(jax.vmap(jax.grad(jax.nn.sigmoid))(z)).max()) == pytest.approx(0.25)
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        norms = [np.abs(np.asarray(jax.jacobian(jax.nn.softmax)(jnp.asarray(v)))).sum(axis=1).max()
                 for v in [rng.normal(size=5) * s for s in (0.1, 1, 10) for _ in range(50)] + [np.zeros(2)]]
    assert all(np.asarray(n).dtype == np.float64 for n in norms)
    tol = (2 * 5 + 1) * ac.unit_roundoff(np.float64) / 2
    assert max(norms) <= eb.OUTPUT_SLOPE["softmax_cross_entropy"] + tol
    assert max(norms) == pytest.approx(0.5)


def _cancelling_problem():
    """One layer, MSE: z = 0.3 is the sum of 8 terms of size ~1e4 that cancel, so the loss
    carries a rounding error ~1e-12 while |loss| = 0.045."""
    rng = np.random.default_rng(0)
    x = np.full((1, 8), 1000.0)
    W = np.zeros((9, 1))
    W[1:, 0] = rng.normal(size=8) * 10
    W[1:, 0] -= W[1:, 0].mean()
    W[0, 0] = 0.3
    return [W], x, np.zeros((1, 1))


def test_fd_tolerance_needs_the_loss_rounding_bound_when_the_loss_cancels():
    """The default eps_f = 16 u |f| assumes f is well conditioned. Here it is not, and finite
    differences differ from the exact gradient by more than that tolerance (a false failure);
    with eps_f from rounding_bound they agree."""
    params, x, y = _cancelling_problem()
    f = lambda P: mb.loss(P, x, y, activation="tanh", loss="mean_squared_error")  # noqa: E731
    _, g = mb.loss_and_grad(params, x, y, activation="tanh", loss="mean_squared_error")
    naive = ac.numerical_grad_with_error(f, params)
    # the rounding (~1e-12 / h) swamps D(h) - D(2h) - D(4h): with eps_f = 16 u |f| the
    # differences look out of the Taylor regime (not checkable) or disagree (a false failure)
    assert naive.n_unresolved > 0 or not ac.compare(g, naive.grad, rtol=0, atol=naive.tol).passed
    bound = ac.rounding_bound(params, x, y, "tanh", "mean_squared_error")
    # ceiling, first order: z errs by <= 9 u S (9 terms, S = sum |terms|) and dJ/dz = z (B = 1,
    # y = 0); the loss formula 0.5 z^2 and the mean add < 32 roundings of terms <= (1 + |z|)^2
    (W,), z = params, float(x[0] @ params[0][1:, 0] + params[0][0, 0])
    S = float(np.abs(x[0]) @ np.abs(W[1:, 0]) + abs(W[0, 0]))
    ceiling = abs(z) * 9 * ac.oracles.U * S + 32 * ac.oracles.U * (1 + abs(z)) ** 2
    assert 16 * ac.oracles.U * abs(f(params)) < bound.loss <= ceiling
    num = ac.numerical_grad_with_error(f, params, f_error=bound.loss)
    cmp = ac.compare(g, num.grad, rtol=0, atol=num.tol)
    assert cmp.passed, str(cmp)


def test_float32_error_under_cancellation_is_within_the_bound():
    """The same cancellation in float32: the output error is a small difference of large
    terms, so the gradient's error is far above u32 times the gradient, yet within the bound."""
    params, x, y = _cancelling_problem()
    p32 = [W.astype(np.float32) for W in params]
    _, g32 = mb.loss_and_grad(p32, x.astype(np.float32), y.astype(np.float32), loss="mean_squared_error")
    _, g64 = mb.loss_and_grad([W.astype(np.float64) for W in p32], x, y, loss="mean_squared_error")
    err = np.abs(g32[0] - g64[0])
    assert err.max() > 100 * ac.unit_roundoff(np.float32) * np.abs(g64[0]).max()  # cancellation is real
    b32 = ac.rounding_bound(p32, x, y, "sigmoid", "mean_squared_error", dtype=np.float32)
    b64 = ac.rounding_bound(p32, x, y, "sigmoid", "mean_squared_error")
    assert np.all(err <= b32.grad[0] + b64.grad[0])


def test_subnormal_products_carry_an_absolute_error():
    """A gradient entry a * delta below float32's normal range is known only to the smallest
    subnormal, not to u32 relative: the bound has that floor."""
    b = ac.rounding_bound([np.array([[0.1], [0.2]])], np.array([[1e-44]]), np.array([[0.0]]),
                          "relu", "binary_cross_entropy", dtype=np.float32)
    assert b.grad[0][1, 0] >= np.finfo(np.float32).smallest_subnormal


def test_unit_roundoff():
    assert ac.unit_roundoff(np.float64) == 2.0**-53
    assert ac.unit_roundoff(np.float32) == 2.0**-24


def test_f_error_must_be_a_finite_non_negative_number():
    f = lambda P: float(np.sum(P[0] ** 2))  # noqa: E731
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="f_error"):
            ac.numerical_grad_with_error(f, [np.ones((2, 2))], f_error=bad)


def _float32_error_within_bound(activation, loss, params, x, y):
    params = [np.asarray(W, np.float32) for W in params]
    x32, y = np.asarray(x, np.float32), np.asarray(y, np.float64)
    _, g32 = mb.loss_and_grad(params, x32, y.astype(np.float32), activation=activation, loss=loss)
    _, g64 = mb.loss_and_grad([W.astype(np.float64) for W in params], x32.astype(np.float64), y,
                              activation=activation, loss=loss)
    b32 = ac.rounding_bound(params, x32, y, activation, loss, dtype=np.float32)
    b64 = ac.rounding_bound(params, x32, y, activation, loss)
    return [(np.abs(a - b), 2 * (e + f)) for a, b, e, f in zip(g32, g64, b32.grad, b64.grad)]


@pytest.mark.parametrize("activation,x", [("relu", [[1.0, 1e-8]]), ("leaky_relu", [[1.0, -1e-8]])])
def test_a_pre_activation_within_rounding_of_the_kink(activation, x):
    """z = -1 + 1 + 1e-8: float32 rounds it to 0 (g' = 0 for relu), float64 keeps it positive
    (g' = 1). The gradients then differ by g''s jump times the terms, far above u; the bound
    covers it because |z| <= ez there (found in review)."""
    params = [[[-1.0], [1.0], [1.0]], [[0.0], [1.0]]]
    pairs = _float32_error_within_bound(activation, "mean_squared_error", params, x, [[0.5]])
    assert max(float(err.max()) for err, _ in pairs) > 1e-3  # the flip is real
    assert all(np.all(err <= tol) for err, tol in pairs)


def test_a_sigmoid_below_the_normal_range():
    """z = -90 in float32: the in-place sigmoid gives 1 / (1 + inf) = 0, the exact value is
    8e-40 (subnormal); the bound's floor for an activation is the smallest normal number."""
    params = [[[-90.0], [0.0]], [[0.0], [1.0]]]
    pairs = _float32_error_within_bound("sigmoid", "mean_squared_error", params, [[1.0]], [[1.0]])
    assert max(float(err.max()) for err, _ in pairs) > 0
    assert all(np.all(err <= tol) for err, tol in pairs)


def test_the_bound_does_not_depend_on_the_derivative_it_judges(monkeypatch):
    """Issue 10: a derivative scaled by 1e6 leaves the tolerance unchanged, and is caught. (The
    bound once took g' from manual_backprop itself, so a wrong g' widened its own tolerance.)"""
    params = mb.init_params([3, 5, 4, 2], seed=1)
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(4, 3)), mb.one_hot([0, 1, 1, 0], 2)
    before = ac.rounding_bound(params, x, y, "tanh", "binary_cross_entropy")
    tanh = mb.ACTIVATIONS["tanh"]
    grad = type(tanh).grad
    monkeypatch.setattr(tanh, "grad", lambda z, a: 1e6 * grad(tanh, z, a))
    after = ac.rounding_bound(params, x, y, "tanh", "binary_cross_entropy")
    assert after.loss == before.loss
    assert all(np.array_equal(a, b) for a, b in zip(after.grad, before.grad))
    assert not ac.check_network(params, x, y, activation="tanh", use_jax=False).passed


@pytest.mark.parametrize("activation", sorted(mb.ACTIVATIONS))
def test_the_logits_bound_holds_for_float32_and_is_not_vacuous(activation):
    """ez_L bounds |z_L in float32 - z_L in float64| (float64's own error, 2^-29 of float32's,
    is inside the margin of a first-order bound) on a 784-500-10 network with inputs up to 100.
    A worst-case bound, n u sum |terms|, it is 1e4 times the errors seen here (they grow like
    sqrt(n) u); in float64 it is still far below a forgotten bias row (0.5 per logit)."""
    params = [W * 3 for W in mb.init_params([784, 500, 10], seed=1)]
    params[-1][0] = 0.5
    x = np.random.default_rng(1).uniform(-100, 100, size=(8, 784))
    p32, x32 = [W.astype(np.float32) for W in params], x.astype(np.float32)
    z32 = mb.forward(p32, x32, activation=activation, loss="mean_squared_error").astype(np.float64)
    z64 = mb.forward([W.astype(np.float64) for W in p32], x32.astype(np.float64), activation=activation,
                     loss="mean_squared_error")
    bound = ac.logits_bound(p32, x32, activation, np.float32)
    assert bound.shape == z32.shape and np.all(np.abs(z32 - z64) <= bound)
    assert np.all(ac.logits_bound(params, x, activation) < 0.5 / 1000)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_gradient_bound_is_not_vacuous(dtype):
    """rounding_bound(...).grad against a ceiling derived here, not in error_bounds, from the
    first-order n u sum |terms| (Higham ch. 3). Run the tanh / MSE network in absolute values:
    Z_l = [1, A_{l-1}] |W_l|, A_l = Z_l (|tanh z| <= |z|, |tanh'| <= 1), D_L = (Z_L + |y|) / B
    (targets one-hot: the terms of delta_L = (z_L - y) / B), D_{l-1} = (1 + c2 Z_{l-1}) D_l |W_l[1:]|^T
    (c2 = max |tanh''| = 4 / (3 sqrt 3): g' is taken at a z that errs), G_l = [1, A_{l-1}]^T D_l.
    Every rounding a gradient entry depends on errs by at most u times its absolute-value run and
    reaches the entry by at most that run's factors, so |error| <= K_l u G_l, K_l the roundings on
    the chain: B (the entry's own sum), n_{k-1} + 1 per forward sum, n_k + 1 per backward sum and
    its product with g', 8 per evaluation of tanh, tanh' and delta_L; a_{l-1} and delta_l counted
    apart. (The eta / tiny floors are < 1e-30 of it here.) The bound stays under this ceiling and
    comes within 14x of it in every layer (5x in the last), so inflating it by 30 fails."""
    n, B, L = [3, 5, 4, 2], 4, 3
    params = [W.astype(dtype) for W in mb.init_params(n, seed=1)]
    x = np.random.default_rng(2).normal(size=(B, 3)).astype(dtype)
    y = mb.one_hot([0, 1, 1, 0], 2)
    P = [W.astype(np.float64) for W in params]
    A, Z = [np.abs(x.astype(np.float64))], []
    for W in P:
        Z.append(A[-1] @ np.abs(W[1:]) + np.abs(W[0]))
        A.append(Z[-1])
    D, G = (Z[-1] + np.abs(y)) / B, [None] * L
    for l in range(L - 1, -1, -1):  # 0-based: G[l] is the gradient of W_{l+1}
        G[l] = np.vstack([D.sum(axis=0), A[l].T @ D])
        if l:
            D = (1 + 4 / (3 * np.sqrt(3)) * Z[l - 1]) * (D @ np.abs(P[l][1:]).T)
    fwd = [sum(n[k] + 1 + 8 for k in range(j)) for j in range(L + 1)]  # roundings in a_j (a_0 = x exact)
    delta_L = fwd[L]  # z_L's roundings, and 8 for evaluating delta_L in place of a tanh
    u = ac.unit_roundoff(dtype)
    bound = ac.rounding_bound(params, x, y, "tanh", "mean_squared_error", dtype=dtype)
    for l in range(L):
        K = B + fwd[l] + delta_L + sum(n[k] + 1 + 8 for k in range(l + 2, L + 1))
        ceiling = K * u * G[l]
        assert np.all(bound.grad[l] <= ceiling), l
        assert np.any(30 * bound.grad[l] > ceiling), l  # the sensitivity the docstring claims


def test_the_logits_bound_refuses_what_it_cannot_bound():
    params, x = mb.init_params([3, 2], seed=0), np.ones((1, 3))
    with pytest.raises(ValueError, match="no rounding bound for activation 'swish'"):
        ac.logits_bound(params, x, "swish")
    with pytest.raises(ValueError, match="x contains NaN"):
        ac.logits_bound(params, np.full((1, 3), np.nan), "tanh")
    with pytest.raises(ValueError, match="the rounding bound overflows float64"):
        ac.logits_bound([W * 1e300 for W in params], x * 1e10, "relu")
