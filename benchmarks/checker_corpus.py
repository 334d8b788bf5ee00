"""A corpus of hand-written derivatives as users write them: correct ones and classic bugs.

Each case builds, from a seed, a size and a dtype, a problem in one of two shapes:

* ``kind="grad"``: ``(loss_fn, grad_fn, params)`` for ``autodiff_check.check_gradients``;
* ``kind="vjp"``: ``(f, vjp_fn, primals)`` for ``autodiff_check.check_vjp``.

``bug`` is None for a correct derivative, else the classic mistake it contains; ``where`` is
the input (pytree path, as the checker prints it) that the mistake makes wrong. NumPy and
SciPy only, so tests, ``benchmarks/peers.py`` and users can all run it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.optimize


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "grad" or "vjp"
    build: Callable  # (rng, n, dtype) -> (function, derivative, params or primals tuple)
    bug: str | None = None
    where: tuple[str, ...] = ()  # inputs the bug makes wrong
    dtypes: tuple = (np.float64,)
    min_n: int = 2


# ---------------------------------------------------------------- gradients


def _rosen(rng, n, dtype, sign_bug=False):
    x = (1 + 0.3 * rng.standard_normal(n)).astype(dtype)

    def der(x):
        if not sign_bug:
            return scipy.optimize.rosen_der(x)
        xm, xm_m1, xm_p1 = x[1:-1], x[:-2], x[2:]
        d = np.zeros_like(x)
        d[1:-1] = 200 * (xm - xm_m1**2) - 400 * (xm_p1 - xm**2) * xm + 2 * (1 - xm)  # sign of the last term
        d[0] = -400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0])
        d[-1] = 200 * (x[-1] - x[-2] ** 2)
        return d

    return scipy.optimize.rosen, der, x


def _softmax_ce(rng, n, dtype, missing_1_over_B=False):
    B, D, K = n + 1, 3, 4
    X = rng.standard_normal((B, D)).astype(dtype)
    y = rng.integers(0, K, B)
    W = (0.5 * rng.standard_normal((D, K))).astype(dtype)

    def probs(W):
        z = X @ W
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def loss(W):
        z = X @ W
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(B), y]))  # a float(...) loss

    def grad(W):
        d = probs(W)
        d[np.arange(B), y] -= 1
        return X.T @ d if missing_1_over_B else X.T @ d / B

    return loss, grad, W


def _least_squares(rng, n, dtype, factor_bug=False):
    """Near the optimum: the residual is large (loss ~ 1e2), the gradient tiny (~1e-7)."""
    m = n + 5
    A = rng.standard_normal((m, n)).astype(dtype)
    b = (10 * rng.standard_normal(m)).astype(dtype)
    x_star = np.linalg.lstsq(A.astype(np.float64), b.astype(np.float64), rcond=None)[0]
    x = (x_star + 1e-8 * rng.standard_normal(n)).astype(dtype)

    def loss(x):
        r = A @ x - b
        return 0.5 * np.sum(r * r)

    def grad(x):
        g = A.T @ (A @ x - b)
        return 2 * g if factor_bug else g

    return loss, grad, x


def _logreg_decay(rng, n, dtype, forgot_reg=False):
    B, lam = 2 * n + 3, 0.1
    X = rng.standard_normal((B, n)).astype(dtype)
    t = rng.integers(0, 2, B).astype(dtype)
    params = {"w": (0.3 * rng.standard_normal(n)).astype(dtype), "b": np.asarray(0.1, dtype)}

    def loss(p):
        z = X @ p["w"] + p["b"]
        return np.mean(np.logaddexp(0, z) - t * z) + 0.5 * lam * np.sum(p["w"] ** 2)

    def grad(p):
        z = X @ p["w"] + p["b"]
        s = 0.5 * (1 + np.tanh(0.5 * z))  # sigmoid, stable
        gw = X.T @ (s - t) / B + (0 if forgot_reg else lam * p["w"])
        return {"w": gw, "b": np.mean(s - t)}

    return loss, grad, params


def _mlp(rng, n, dtype, activation="tanh", bug=None, at_kink=False):
    """Two-layer net, dict params, MSE. relu nets are put exactly on a kink."""
    B, D, H, K = 3, n, 4, 2
    X = rng.standard_normal((B, D)).astype(dtype)
    Y = rng.standard_normal((B, K)).astype(dtype)
    p = {"W1": (rng.standard_normal((D, H)) / np.sqrt(D)).astype(dtype), "b1": (0.1 * rng.standard_normal(H)).astype(dtype),
         "W2": (rng.standard_normal((H, K)) / np.sqrt(H)).astype(dtype), "b2": np.zeros(K, dtype)}
    if activation == "relu":  # the last hidden unit of example 0 off (z = -0.5): a mask that matters
        p["b1"][-1] = -(X[0] @ p["W1"][:, -1]) - 0.5
    if at_kink:  # hidden unit 0 of example 0 exactly at z = 0
        p["b1"][0] = -(X[0] @ p["W1"][:, 0])
    p["b1"] = p["b1"].astype(dtype)
    act = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0)}[activation]

    def loss(p):
        h = act(X @ p["W1"] + p["b1"])
        e = h @ p["W2"] + p["b2"] - Y
        return 0.5 * np.sum(e * e) / B

    def grad(p):
        z = X @ p["W1"] + p["b1"]
        h = act(z)
        e = (h @ p["W2"] + p["b2"] - Y) / B
        dh = e @ p["W2"].T
        if activation == "tanh":
            dz = dh * (1 - h if bug == "wrong derivative" else 1 - h * h)
        else:
            dz = dh if bug == "forgotten mask" else dh * (z > 0)
        return {"W1": X.T @ dz, "b1": dz.sum(0), "W2": h.T @ e, "b2": e.sum(0)}

    return loss, grad, p


def _big_tanh_layer(rng, n, dtype, transposed=False):
    """A 50 x 50 tanh layer (2,500 parameters): checked along random directions, bisected."""
    D = 50
    X = rng.standard_normal((4, D)).astype(dtype)
    C = rng.standard_normal((4, D)).astype(dtype)
    W = (rng.standard_normal((D, D)) / np.sqrt(D)).astype(dtype)

    def loss(W):
        return np.sum(C * np.tanh(X @ W))

    def grad(W):
        a = np.tanh(X @ W)
        G = X.T @ (C * (1 - a * a))
        return G.T if transposed else G

    return loss, grad, W


# ---------------------------------------------------------------- layer backward passes (VJPs)


def _affine(rng, n, dtype, transposed=False):
    x = rng.standard_normal((3, n, 2)).astype(dtype)
    D = 2 * n
    W = rng.standard_normal((D, D)).astype(dtype)  # square: a transposed W still fits
    b = rng.standard_normal(D).astype(dtype)

    def f(x, W, b):
        return x.reshape(len(x), -1) @ W + b

    def vjp(dout, x, W, b):
        dx = (dout @ (W if transposed else W.T)).reshape(x.shape)
        return dx, x.reshape(len(x), -1).T @ dout, dout.sum(axis=0)

    return f, vjp, (x, W, b)


def _batchnorm(rng, n, dtype, missing_term=False):
    N, D, eps = n + 2, 3, 1e-5
    x = (2 + 3 * rng.standard_normal((N, D))).astype(dtype)
    gamma = (1 + 0.2 * rng.standard_normal(D)).astype(dtype)
    beta = rng.standard_normal(D).astype(dtype)

    def f(x, gamma, beta):
        mu = x.mean(axis=0)
        var = x.var(axis=0)
        return gamma * (x - mu) / np.sqrt(var + eps) + beta

    def vjp(dout, x, gamma, beta):  # cs231n's compact form
        mu = x.mean(axis=0)
        var = x.var(axis=0)
        xhat = (x - mu) / np.sqrt(var + eps)
        dxhat = dout * gamma
        mean_term = 0 if missing_term else dxhat.sum(axis=0)
        dx = (N * dxhat - mean_term - xhat * (dxhat * xhat).sum(axis=0)) / (N * np.sqrt(var + eps))
        return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)

    return f, vjp, (x, gamma, beta)


def _conv1d(rng, n, dtype, not_flipped=False):
    x = rng.standard_normal(n + 4).astype(dtype)
    k = rng.standard_normal(3).astype(dtype)

    def f(x, k):
        return np.convolve(x, k, mode="valid")

    def vjp(dout, x, k):
        kk = k[::-1] if not_flipped else k
        dx = np.convolve(dout, kk[::-1], mode="full")  # the adjoint: full convolution with the kernel
        dk = np.correlate(x, dout, mode="valid")[::-1]
        return dx, dk

    return f, vjp, (x, k)


def _softmax_vjp(rng, n, dtype, diagonal_only=False):
    z = rng.standard_normal((2, n + 1)).astype(dtype)

    def f(z):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def vjp(dout, z):
        p = f(z)
        if diagonal_only:
            return (p * (1 - p) * dout,)
        return (p * (dout - (dout * p).sum(axis=-1, keepdims=True)),)

    return f, vjp, (z,)


def _p(fn, **kw):
    return lambda rng, n, dtype: fn(rng, n, dtype, **kw)


CASES: list[Case] = [
    Case("rosen / rosen_der", "grad", _p(_rosen), min_n=3),
    Case("rosen, hand-written der", "grad", _p(_rosen, sign_bug=True), "a sign", ("params",), min_n=3),
    Case("softmax cross-entropy", "grad", _p(_softmax_ce), dtypes=(np.float64, np.float32)),
    Case("softmax cross-entropy", "grad", _p(_softmax_ce, missing_1_over_B=True), "a missing 1/B", ("params",)),
    Case("least squares near its optimum", "grad", _p(_least_squares)),
    Case("least squares near its optimum", "grad", _p(_least_squares, factor_bug=True), "a factor 2", ("params",)),
    Case("logistic regression + weight decay", "grad", _p(_logreg_decay), dtypes=(np.float64, np.float32)),
    Case("logistic regression + weight decay", "grad", _p(_logreg_decay, forgot_reg=True),
         "a forgotten regulariser", ("params['w']",)),
    Case("tanh net", "grad", _p(_mlp), dtypes=(np.float64, np.float32)),
    Case("tanh net", "grad", _p(_mlp, bug="wrong derivative"), "a wrong derivative", ("params['W1']", "params['b1']"),
         dtypes=(np.float64, np.float32)),
    Case("relu net at its kink", "grad", _p(_mlp, activation="relu", at_kink=True)),
    Case("relu net", "grad", _p(_mlp, activation="relu", bug="forgotten mask"), "a forgotten mask",
         ("params['W1']", "params['b1']")),
    Case("2,500-parameter tanh layer", "grad", _p(_big_tanh_layer)),
    Case("2,500-parameter tanh layer", "grad", _p(_big_tanh_layer, transposed=True), "a transposed square matrix", ("params",)),
    Case("affine layer", "vjp", _p(_affine), dtypes=(np.float64, np.float32)),
    Case("affine layer", "vjp", _p(_affine, transposed=True), "a transposed square matrix", ("primal 0",)),
    Case("batch norm (cs231n)", "vjp", _p(_batchnorm), dtypes=(np.float64, np.float32)),
    Case("batch norm (cs231n)", "vjp", _p(_batchnorm, missing_term=True), "a missing term", ("primal 0",)),
    Case("1-D convolution", "vjp", _p(_conv1d)),
    Case("1-D convolution", "vjp", _p(_conv1d, not_flipped=True), "a kernel not flipped", ("primal 0",)),
    Case("softmax", "vjp", _p(_softmax_vjp)),
    Case("softmax", "vjp", _p(_softmax_vjp, diagonal_only=True), "only the diagonal of the Jacobian", ("primal 0",)),
]
