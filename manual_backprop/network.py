"""The fully connected network and its gradient, derived by hand: the reference.

Index convention, used throughout ``manual_backprop`` (code, comments and docstrings): layers
are numbered l = 1..L, and W_l is ``params[l - 1]``, of shape (n_{l-1} + 1, n_l), row 0 the
bias. In code, ``a[l]`` is a_l (``a[0]`` is x) and ``z[l]`` is z_l (``z[0]`` is unused).

    a_0 = x                                   (B, n_0)
    z_l = a_{l-1} W_l[1:] + W_l[0]            (B, n_l)   == add_bias(a_{l-1}) @ W_l
    a_l = g(z_l)           for l < L          hidden activation g
    p   = f(z_L)                              output function fixed by the loss
    J   = 1/B sum_b l(z_L[b], y[b])           mean loss over the batch of B examples

Backpropagation, with delta_l = dJ/dz_l (B, n_l):

    delta_L     = 1/B dl/dz_L                 (BCE: (p - y) / B, the post's ``predictions - y``)
    dJ/dW_l[0]  = sum_b delta_l[b]            (n_l,)
    dJ/dW_l[1:] = a_{l-1}^T delta_l           (n_{l-1}, n_l)
    delta_{l-1} = (delta_l W_l[1:]^T) * g'(z_{l-1})

:func:`loss_and_grad` is these lines and nothing else (a_{l-1}^T delta_l by :func:`_a_T_delta`,
NumPy's faster call for it). ``manual_backprop.fast`` computes the same numbers with reused
buffers, in-place kernels and an update applied as the gradient forms (``sgd_step``); the
tests hold it to this reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import _checks
from .activations import get_activation
from .losses import get_loss

Params = list[np.ndarray]


def init_params(layer_sizes: Sequence[int], *, seed: int = 0, dtype=np.float64) -> Params:
    """W_l for l = 1..L, each ``(n_{l-1} + 1, n_l)``, row 0 the bias, drawn as
    ``standard_normal * sqrt(2 / (n_{l-1} + n_l))`` from ``np.random.default_rng(seed)``.

    The draws are made in float64 and then cast, so float32 and float64 networks with the
    same seed start from the same numbers.
    """
    sizes = _checks.check_layer_sizes(layer_sizes)
    dt = _checks.check_dtype(dtype)
    rng = np.random.default_rng(_checks.check_seed(seed))
    return [
        (rng.standard_normal((n_in + 1, n_out)) * np.sqrt(2 / (n_in + n_out))).astype(dt)
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ]


def add_bias(x: np.ndarray) -> np.ndarray:
    """``[1, x]``: a column of ones before ``x`` (B, n) -> (B, n + 1), the post's form."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"add_bias expects a 2-D (batch, n) array; got shape {x.shape}")
    return np.concatenate([np.ones((x.shape[0], 1), dtype=x.dtype), x], axis=1)


def one_hot(labels, n_classes: int, *, dtype=np.float64) -> np.ndarray:
    """Targets of shape ``(B, n_classes)`` with a 1 at each example's label."""
    labels = _checks.check_labels(labels, n_classes)
    y = np.zeros((labels.shape[0], n_classes), dtype=_checks.check_dtype(dtype))
    y[np.arange(labels.shape[0]), labels] = 1
    return y


def _prepare(params, x, y, activation, loss, *, allow_complex=False, check_finite=True):
    """(g, loss object, x, y), validated: shapes, dtypes and the loss's target domain, and with
    ``check_finite`` no NaN or inf in params or x (one pass over each; the gradient paths
    instead check the z_l they compute, which any NaN or inf weight or input reaches)."""
    g, ell = get_activation(activation), get_loss(loss)
    dtype = _checks.check_params(params, allow_complex=allow_complex, check_finite=check_finite)
    x = _checks.check_inputs(params, x, dtype, check_finite=check_finite)
    if y is not _checks.NO_TARGETS:
        y = _checks.check_targets(params, x, y, dtype, ell)
    return g, ell, x, y


def _logits(params: Params, x: np.ndarray, g) -> np.ndarray:
    """z_L; a z_l that is NaN or inf is refused as in loss_and_grad (raise_not_finite)."""
    a = x
    for l, W in enumerate(params, start=1):
        z = a @ W[1:] + W[0]
        if not _checks.all_finite(z):
            _checks.raise_not_finite(f"z_{l}", params, x)
        a = g.fn(z) if l < len(params) else z
    return a


def forward(params: Params, x: np.ndarray, *, activation: str = "sigmoid",
            loss: str = "binary_cross_entropy") -> np.ndarray:
    """The network's output ``p = f(z_L)`` for inputs ``x`` (B, n_0): (B, n_L)."""
    g, ell, x, _ = _prepare(params, x, _checks.NO_TARGETS, activation, loss, allow_complex=True)
    return ell.output(_logits(params, x, g))


def loss(params: Params, x: np.ndarray, y: np.ndarray, *, activation: str = "sigmoid",
         loss: str = "binary_cross_entropy"):
    """Mean loss over the batch, ``J = 1/B sum_b l(z_L[b], y[b])``.

    A Python float for real parameters; a complex scalar for complex ones (the complex-step
    oracle evaluates ``J(W + i h V)``).
    """
    g, ell, x, y = _prepare(params, x, y, activation, loss, allow_complex=True)
    J = np.mean(ell.value(_logits(params, x, g), y))
    if not np.isfinite(J):
        _checks.raise_not_finite("the loss", params, x)
    return complex(J) if np.iscomplexobj(J) else float(J)


def loss_and_grad(params: Params, x: np.ndarray, y: np.ndarray, *, activation: str = "sigmoid",
                  loss: str = "binary_cross_entropy") -> tuple[float, Params]:
    """``(J, grads)``: the mean loss and its gradient by backpropagation (module docstring).

    ``grads[l - 1]`` = dJ/dW_l, C-contiguous, shaped and typed like ``params[l - 1]`` (any
    memory layout is accepted). A NaN or inf in ``x`` or ``params`` is a ValueError naming it;
    a loss or gradient that overflows is ``NonFiniteError``.
    """
    g, ell, x, y = _prepare(params, x, y, activation, loss, check_finite=False)
    L, B = len(params), x.shape[0]

    a, z = [x], [None]
    for l in range(1, L + 1):                            # forward: keep every a_l and z_l
        W = params[l - 1]
        z.append(a[l - 1] @ W[1:])
        z[l] += W[0]                                     # z_l = a_{l-1} W_l[1:] + W_l[0]
        if not _checks.all_finite(z[l]):
            _checks.raise_not_finite("the loss", params, x)   # as fast.py and the JAX twin say it
        a.append(g.fn(z[l]) if l < L else None)
    J = float(ell.value(z[L], y).sum()) / B
    if not math.isfinite(J):
        _checks.raise_not_finite("the loss", params, x)

    grads, delta = [None] * L, ell.delta(z[L], y) / B   # delta_L
    for l in range(L, 0, -1):                            # backward: l = L..1
        W = params[l - 1]
        dW = grads[l - 1] = np.empty(W.shape, W.dtype)
        dW[0] = delta.sum(axis=0)                        # dJ/dW_l[0]  = sum_b delta_l[b]
        _a_T_delta(a[l - 1], delta, out=dW[1:])          # dJ/dW_l[1:] = a_{l-1}^T delta_l
        _check_no_overflow(a[l - 1], delta, dW, l)
        if l > 1:                                        # delta_{l-1}:
            delta = delta @ W[1:].T                      #   delta_l W_l[1:]^T
            delta *= g.grad(z[l - 1], a[l - 1])          #   * g'(z_{l-1})
    return J, grads


# Wrapped here rather than decorated: mutmut mutates only undecorated functions (docs/mutation.md).
loss_and_grad = _checks.checks_overflow_itself(loss_and_grad)


def _a_T_delta(a: np.ndarray, delta: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a^T delta = sum_b a[b]^T delta[b]`` for a (B, m), delta (B, n), out (m, n), by
    NumPy's faster call for the network's layers (docs/performance.md); ``fast`` makes the same.

    B = 1: one outer product, each entry a single rounded product; np.einsum writes a 784 x 500
    one in about 0.6 of the time of np.dot's GEMM with an inner dimension of 1 (np.matmul has no
    BLAS path for it), and a narrow one (500 x 10) a few microseconds slower; an unaligned ``a``
    (x read from a byte buffer) is copied first, which halves einsum's time. B > 1: BLAS's GEMM
    through np.matmul, faster than np.dot for every memory layout of ``a`` (np.dot first zeroes
    ``out``, one more pass over the gradient, and copies a strided or unaligned ``a`` more
    slowly)."""
    if a.shape[0] == 1:
        a0 = a[0] if a.flags.aligned else a[0].copy()
        return np.einsum("i,j->ij", a0, delta[0], out=out)
    return np.matmul(a.T, delta, out=out)


def _product_bound(a: np.ndarray, delta: np.ndarray) -> float:
    """A number no entry of ``[1, a]^T delta`` exceeds in magnitude, nor any partial sum of it
    in any summation order: a (B, m), delta (B, n). By Cauchy-Schwarz over the batch,

        sum_b |[1, a]_bi delta_bj| <= |[1, a]_:i| |delta_:j| <= sqrt(B + |a|_F^2) |delta|_F.

    The two sums of squares are BLAS dot products of k <= B max(m, n) terms, all >= 0: while
    k u <= 1/4 each is at least 2/3 of its exact value (error <= gamma_k <= 1/3 of it, Higham
    eq. 3.5), so the exact bound is at most 1.5 times the computed one; the factor 2 returned
    covers that and the few roundings after. Beyond k u = 1/4, a NaN, or an overflowing sum of
    squares: inf (the caller then scans). Barring underflow: |delta|_F^2 can round to 0 for
    entries below ~1e-154 (float64) or ~1e-19 (float32), but then a product that overflows
    would need |a| near 1e460 or 1e57, whose square is inf."""
    k = max(a.size, delta.size)
    if k * _checks.EPS[delta.dtype] / 2 > 0.25:
        return math.inf
    return 2 * math.sqrt(a.shape[0] + float(np.vdot(a, a))) * math.sqrt(float(np.vdot(delta, delta)))


def _check_no_overflow(a: np.ndarray, delta: np.ndarray, dW: np.ndarray, l: int) -> None:
    """dJ/dW_l has no NaN or inf, checked the cheaper way. Where dW has fewer entries than
    a_{l-1} and delta_l together (large batches), one sum of squares of dW
    (``_checks.all_finite``); otherwise (small batches) the bound of :func:`_product_bound`:
    below half the dtype's largest number it leaves nothing that can have overflowed (the
    products' own rounding is a factor 1 + gamma_B <= 4/3), and only above it is dW scanned."""
    if dW.size < a.size + delta.size:
        _check_bounded(math.inf, dW, l, blas=True)
    else:
        _check_bounded(_product_bound(a, delta), dW, l)


def _check_bounded(bound: float, dW: np.ndarray, l: int, *, blas: bool = False) -> None:
    """Raise NonFiniteError unless ``bound`` < max / 2 or dW is finite: scanned by a BLAS dot
    product (``_checks.all_finite``) with ``blas``, else by np.isfinite, which the caller of
    a split batch needs (no BLAS call outside its blocks; docs/performance.md)."""
    if bound < _checks.MAX[dW.dtype] / 2:
        return
    if not (_checks.all_finite(dW) if blas else np.isfinite(dW).all()):
        raise _checks.NonFiniteError(f"dJ/dW_{l} overflows {dW.dtype}: inputs, targets or weights too large")


# Wrapped, not decorated (mutmut mutates only undecorated functions): each checks its own results.
forward = _checks.checks_overflow_itself(forward)
loss = _checks.checks_overflow_itself(loss)


def predict(params: Params, x: np.ndarray, *, activation: str = "sigmoid",
            loss: str = "binary_cross_entropy") -> np.ndarray:
    """Predicted class indices, ``argmax_k z_L[:, k]`` (every output function is monotone)."""
    g, _, x, _ = _prepare(params, x, _checks.NO_TARGETS, activation, loss)
    return np.argmax(_logits(params, x, g), axis=1)


predict = _checks.checks_overflow_itself(predict)


def accuracy(params: Params, x: np.ndarray, labels: np.ndarray, *, activation: str = "sigmoid",
             loss: str = "binary_cross_entropy") -> float:
    """Fraction of examples whose predicted class equals ``labels`` (B,) of ints."""
    pred = predict(params, x, activation=activation, loss=loss)
    labels = _checks.check_labels(labels, params[-1].shape[1], batch=pred.shape[0])
    return float(np.mean(pred == labels))
