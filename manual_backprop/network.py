"""The fully connected network and its gradient, derived by hand.

Notation, for layers l = 1..L with parameters W_l of shape (n_{l-1} + 1, n_l), row 0 the bias:

    a_0 = x                                   (batch, n_0)
    z_l = a_{l-1} W_l[1:] + W_l[0]            (batch, n_l)   == add_bias(a_{l-1}) @ W_l
    a_l = g(z_l)           for l < L          hidden activation g
    p   = f(z_L)                              output function fixed by the loss
    J   = 1/B sum_b l(z_L[b], y[b])           mean loss over the batch of B examples

Backpropagation, with delta_l = dJ/dz_l (batch, n_l):

    delta_L = 1/B dl/dz_L                     (BCE: (p - y) / B, the post's ``predictions - y``)
    dJ/dW_l[1:] = a_{l-1}^T delta_l           (n_{l-1}, n_l)
    dJ/dW_l[0]  = sum_b delta_l[b]            (n_l,)
    delta_{l-1} = (delta_l W_l[1:]^T) * g'(z_{l-1})
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator, Sequence

import numpy as np

from . import _checks
from .activations import get_activation
from .losses import get_loss

Params = list[np.ndarray]


def init_params(layer_sizes: Sequence[int], *, seed: int = 0, dtype=np.float64) -> Params:
    """One ``(n_in + 1, n_out)`` matrix per layer, row 0 the bias, drawn as
    ``standard_normal * sqrt(2 / (n_in + n_out))`` from ``np.random.default_rng(seed)``.

    The draws are made in float64 and then cast, so float32 and float64 networks with the
    same seed start from the same numbers.
    """
    sizes = _checks.check_layer_sizes(layer_sizes)
    dt = _checks.check_dtype(dtype)
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((n_in + 1, n_out)) * np.sqrt(2 / (n_in + n_out))).astype(dt)
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ]


def add_bias(x: np.ndarray) -> np.ndarray:
    """``[1, x]``: a column of ones before ``x`` (batch, n) -> (batch, n + 1), the post's form."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"add_bias expects a 2-D (batch, n) array; got shape {x.shape}")
    return np.concatenate([np.ones((x.shape[0], 1), dtype=x.dtype), x], axis=1)


def one_hot(labels, n_classes: int, *, dtype=np.float64) -> np.ndarray:
    """Targets of shape ``(batch, n_classes)`` with a 1 at each example's label."""
    labels = _checks.check_labels(labels, n_classes)
    y = np.zeros((labels.shape[0], n_classes), dtype=_checks.check_dtype(dtype))
    y[np.arange(labels.shape[0]), labels] = 1
    return y


def _prepare(params, x, y, activation, loss, *, allow_complex=False, check_finite=True):
    act, lossfn = get_activation(activation), get_loss(loss)
    dtype = _checks.check_params(params, allow_complex=allow_complex, check_finite=check_finite)
    x = _checks.check_inputs(params, x, dtype)
    if y is not None:
        y = _checks.check_targets(params, x, y, dtype, lossfn)
    return act, lossfn, x, y


def _logits(params: Params, x: np.ndarray, act) -> np.ndarray:
    """z_L, computing each layer as ``a @ W[1:] + W[0]`` (no bias column is concatenated)."""
    a = x
    for W in params[:-1]:
        a = act.fn(a @ W[1:] + W[0])
    W = params[-1]
    return a @ W[1:] + W[0]


def forward(
    params: Params,
    x: np.ndarray,
    *,
    activation: str = "sigmoid",
    loss: str = "binary_cross_entropy",
) -> np.ndarray:
    """The network's output ``f(z_L)`` for inputs ``x`` (batch, n_0): (batch, n_L)."""
    act, lossfn, x, _ = _prepare(params, x, None, activation, loss, allow_complex=True)
    return lossfn.output(_logits(params, x, act))


def loss(
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    *,
    activation: str = "sigmoid",
    loss: str = "binary_cross_entropy",
):
    """Mean loss over the batch, ``J = 1/B sum_b l(z_L[b], y[b])``.

    A Python float for real parameters; a complex scalar for complex ones (the complex-step
    oracle evaluates ``J(W + i h V)``).
    """
    act, lossfn, x, y = _prepare(params, x, y, activation, loss, allow_complex=True)
    J = np.mean(lossfn.value(_logits(params, x, act), y))
    return complex(J) if np.iscomplexobj(J) else float(J)


class Workspace:
    """Scratch arrays that :func:`loss_and_grad` and :func:`sgd_step` reuse between calls.

    Pass the same ``Workspace()`` to every call of a training loop: the hidden layers'
    pre-activations z_l (which the in-place activations turn into a_l), the products delta_l W_l[1:]^T (which
    become delta_{l-1}) and the ones vector of the bias gradient are allocated on the first
    call and reused while the network's shapes, the batch size and the dtype stay the same
    (a call with others allocates new ones). One workspace serves one call at a time.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None

    def _arrays(self, params: Params, B: int, dtype: np.dtype) -> Workspace:
        if self._key != (tuple(W.shape for W in params), B, dtype):
            self.z = [np.empty((B, W.shape[1]), dtype) for W in params[:-1]]       # z_l, then a_l
            self.back = [np.empty((B, W.shape[0] - 1), dtype) for W in params[1:]]  # delta_{l-1}
            self.ones = np.ones(B, dtype)
            self._weights: list[np.ndarray] | None = None
            self._key = (tuple(W.shape for W in params), B, dtype)
        return self

    def weights(self, params: Params) -> list[np.ndarray]:
        """Arrays shaped like each W_l[1:] (sgd_step's a_{l-1}^T delta_l), made on first use."""
        if self._weights is None:
            self._weights = [np.empty_like(W[1:]) for W in params]
        return self._weights


def _uses_inplace(act) -> bool:
    """True for the activations with in-place forms (sigmoid, tanh), unless fn or grad of
    this object has been replaced (as the tests do with deliberately wrong derivatives)."""
    return hasattr(act, "fn_inplace") and "fn" not in vars(act) and "grad" not in vars(act)


def _backprop(params: Params, x: np.ndarray, y: np.ndarray, act, lossfn, ws: Workspace, use,
              finite_loss: bool = False) -> float:
    """Forward and backward pass (module docstring); returns J. With ``finite_loss``, a J
    that is NaN or inf raises FloatingPointError before the backward pass begins.

    For l = L..1, ``use(l, a_{l-1}, delta_l)`` receives what dJ/dW_l is made of
    (dJ/dW_l[0] = sum_b delta_l[b], dJ/dW_l[1:] = a_{l-1}^T delta_l); it is called after
    W_l has served to compute delta_{l-1}, so it may update W_l in place."""
    B, dtype = x.shape[0], x.dtype
    ws = ws._arrays(params, B, dtype)
    inplace = _uses_inplace(act)

    # Forward. a_in[l] = a_{l-1}, the input of layer l (a_in[0] = x); zs[l] = z_l is kept
    # only for activations whose g' needs z.
    a_in, zs = [x], []
    for l, W in enumerate(params[:-1]):
        z = np.matmul(a_in[l], W[1:], out=ws.z[l])
        if inplace:
            a_in.append(act.fn_inplace(z, W[0]))       # a_l = g(z_l + b_l), written over z_l
        else:
            z += W[0]
            zs.append(z)
            a_in.append(act.fn(z))
    z_L = a_in[-1] @ params[-1][1:]                    # (B, n_L), like the loss's own arrays
    z_L += params[-1][0]

    J = float(lossfn.value(z_L, y).sum()) / B
    if finite_loss and not np.isfinite(J):
        raise FloatingPointError(f"the loss is {J}; no parameter was updated")
    delta = lossfn.delta(z_L, y)                       # delta_L = (dl/dz_L) / B
    delta *= 1 / B

    # Backward: delta_{l-1} = (delta_l W_l[1:]^T) * g'(z_{l-1}), then layer l's gradient.
    for l in range(len(params) - 1, 0, -1):
        back = np.matmul(delta, params[l][1:].T, out=ws.back[l - 1])
        use(l, a_in[l], delta)                         # W_l is not needed after this
        if inplace:
            act.times_grad_inplace(back, a_in[l])      # nor a_{l-1}, overwritten here
        else:
            back *= act.grad(zs[l - 1], a_in[l])
        delta = back
    use(0, x, delta)
    return J


def _check_out(out, params: Params) -> list[np.ndarray]:
    """``out`` as a list of writeable C-contiguous arrays shaped and typed like ``params``."""
    if isinstance(out, np.ndarray) or not isinstance(out, Sequence) or len(out) != len(params):
        raise TypeError(f"out must be a list of {len(params)} arrays shaped like params")
    for l, (g, W) in enumerate(zip(out, params)):
        if not isinstance(g, np.ndarray) or g.shape != W.shape or g.dtype != W.dtype:
            what = f"{g.dtype} array of shape {g.shape}" if isinstance(g, np.ndarray) else type(g).__name__
            raise ValueError(f"out[{l}] must be a {W.dtype} array of shape {W.shape}; got {what}")
        if not (g.flags.c_contiguous and g.flags.writeable):
            raise ValueError(f"out[{l}] must be a writeable C-contiguous array")
        if any(np.may_share_memory(g, V) for V in params):
            raise ValueError(f"out[{l}] overlaps the parameters; gradients need their own memory")
        if any(np.may_share_memory(g, h) for h in out[:l]):
            raise ValueError(f"out[{l}] overlaps another entry of out; each layer needs its own array")
    return list(out)


def loss_and_grad(
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    *,
    activation: str = "sigmoid",
    loss: str = "binary_cross_entropy",
    check_finite: bool = True,
    out: Params | None = None,
    workspace: Workspace | None = None,
) -> tuple[float, Params]:
    """``(J, grads)``: the mean loss and its gradient by backpropagation (module docstring).

    ``grads[l]`` has the shape and dtype of ``params[l]``; ``grads[l][0]`` is the bias
    gradient. ``check_finite=False`` skips the NaN/inf scan of ``params`` (one pass over
    all weights) for training loops that already check the loss.

    Speed (results are the same either way): ``out``, a list of C-contiguous arrays shaped
    and typed like ``params``, receives the gradient in place and is returned as ``grads``;
    ``workspace``, a :class:`Workspace` reused across calls, holds the activations and error
    terms. With both, and sigmoid or tanh (whose in-place forms need no z), a call allocates
    only the output layer's (batch, n_L) arrays and single rows; the other activations
    allocate fn(z) and grad(z, a) for each hidden layer.

    Cost per call, with n_l the layer widths and B the batch: the matrix products
    z_l = a_{l-1} W_l[1:], a_{l-1}^T delta_l and delta_l W_l[1:]^T (6 B sum n_{l-1} n_l flops,
    less 2 B n_0 n_1 since delta_0 is not needed), and a few elementwise passes over each
    (B, n_l) done in place. The products run as BLAS gemm through np.matmul and np.dot
    (np.dot for a_{l-1}^T delta_l: at B = 1 that is an outer product, which np.matmul
    computes in a slow non-BLAS loop); the bias gradient is the gemv ones(B) @ delta_l.
    """
    act, lossfn, x, y = _prepare(params, x, y, activation, loss, check_finite=check_finite)
    grads = [np.empty_like(W) for W in params] if out is None else _check_out(out, params)
    ws = Workspace() if workspace is None else workspace

    def store(l: int, a: np.ndarray, delta: np.ndarray) -> None:
        np.dot(ws.ones, delta, out=grads[l][0])    # dJ/dW_l[0]  = sum_b delta_l[b] (BLAS gemv)
        np.dot(a.T, delta, out=grads[l][1:])       # dJ/dW_l[1:] = a_{l-1}^T delta_l

    J = _backprop(params, x, y, act, lossfn, ws, store)
    return J, grads


def sgd_step(
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    lr: float,
    *,
    activation: str = "sigmoid",
    loss: str = "binary_cross_entropy",
    check_finite: bool = True,
    workspace: Workspace | None = None,
) -> tuple[float, Params]:
    """One step of gradient descent, ``W_l <- W_l - lr dJ/dW_l`` for every layer, in place.

    Returns ``(J, params)``: J at the parameters before the step, and ``params`` itself,
    updated (so ``J, params = sgd_step(params, ...)`` reads the same for the JAX backend,
    which returns new arrays). ``params`` must be writeable, aligned C-contiguous arrays (so
    that BLAS updates them where they are), and ``-lr`` finite in their dtype.

    The same numbers as :func:`loss_and_grad` followed by ``W -= lr * g``, up to rounding,
    without storing the gradient first. Once W_l has served to compute delta_{l-1}, delta_l is
    scaled by -lr in place and added: W_l[0] += 1^T delta_l, W_l[1:] += a_{l-1}^T delta_l. At
    B = 1, the post's training, the second is a rank-1 update (BLAS ger, through SciPy) that
    reads and writes W_l once, where forming g and applying it cost three passes over W_l;
    those passes over memory are most of the time at B = 1. For B > 1 the product goes into a
    workspace array through NumPy's gemm and is then added (see :func:`_scipy_ger` for why
    SciPy's BLAS does only the rank-1 update, on one thread). If J is not finite the
    parameters are left as they were and ``FloatingPointError`` is raised.
    """
    act, lossfn, x, y = _prepare(params, x, y, activation, loss, check_finite=check_finite)
    for l, W in enumerate(params):
        if not (W.flags.c_contiguous and W.flags.writeable and W.flags.aligned):
            raise ValueError(
                f"sgd_step updates params in place: params[{l}] must be a writeable, aligned C-contiguous array"
            )
    minus_lr = -_checks.check_lr(lr, x.dtype)
    ws = Workspace() if workspace is None else workspace
    ger, scipy_blas = _scipy_ger(x.dtype) if x.shape[0] == 1 else (None, ())

    def update(l: int, a: np.ndarray, delta: np.ndarray) -> None:
        W = params[l]
        delta *= minus_lr                              # delta_l is not needed after this
        W[0] += np.dot(ws.ones, delta)
        if x.shape[0] == 1:  # W_l[1:] in Fortran order is W^T (n_l, n_{l-1}): W^T += delta^T a
            ger(1.0, delta[0], a[0], a=W[1:].T, overwrite_a=True)  # F-contiguous: updated in place
        else:
            W[1:] += np.dot(a.T, delta, out=ws.weights(params)[l])

    with _one_thread(scipy_blas):
        J = _backprop(params, x, y, act, lossfn, ws, update, finite_loss=True)
    return J, params


@functools.cache
def _scipy_ger(dtype: np.dtype) -> tuple:
    """SciPy's BLAS ger for ``dtype``, and threadpoolctl's handles on the BLAS libraries that
    SciPy bundles apart from NumPy's (the ``scipy.libs`` OpenBLAS of its wheels; none when
    both share one library).

    Two OpenBLAS thread pools taking turns every few microseconds on few cores spin against
    each other: measured on 2 cores, batch-1 steps of the post network went from 185 us to
    520 us for tens of thousands of steps at a time. The rank-1 update is memory-bound and
    ran as fast on the calling thread (185 us throughout), so it runs there."""
    from scipy.linalg import blas
    from threadpoolctl import ThreadpoolController

    ger = blas.get_blas_funcs("ger", dtype=dtype)
    libs = tuple(c for c in ThreadpoolController().lib_controllers
                 if c.user_api == "blas" and f"{os.sep}scipy.libs{os.sep}" in c.filepath)
    return ger, libs


@contextlib.contextmanager
def _one_thread(libs) -> Iterator[None]:
    """Run the body with each of ``libs`` (threadpoolctl controllers) on one thread, then
    give each its thread count back."""
    before = [lib.num_threads for lib in libs]
    for lib in libs:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(libs, before):
            lib.set_num_threads(n)


def predict(
    params: Params,
    x: np.ndarray,
    *,
    activation: str = "sigmoid",
    loss: str = "binary_cross_entropy",
) -> np.ndarray:
    """Predicted class indices, ``argmax_k z_L[:, k]`` (every output function is monotone)."""
    act, _, x, _ = _prepare(params, x, None, activation, loss)
    return np.argmax(_logits(params, x, act), axis=1)


def accuracy(
    params: Params,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    activation: str = "sigmoid",
    loss: str = "binary_cross_entropy",
) -> float:
    """Fraction of examples whose predicted class equals ``labels`` (batch,) of ints."""
    pred = predict(params, x, activation=activation, loss=loss)
    labels = _checks.check_labels(labels, params[-1].shape[1], batch=pred.shape[0])
    return float(np.mean(pred == labels))
