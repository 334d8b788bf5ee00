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

from collections.abc import Sequence

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


def loss_and_grad(
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    *,
    activation: str = "sigmoid",
    loss: str = "binary_cross_entropy",
    check_finite: bool = True,
) -> tuple[float, Params]:
    """``(J, grads)``: the mean loss and its gradient by backpropagation (module docstring).

    ``grads[l]`` has the shape and dtype of ``params[l]``; ``grads[l][0]`` is the bias
    gradient. ``check_finite=False`` skips the NaN/inf scan of ``params`` (one pass over
    all weights) for training loops that already check the loss.
    """
    act, lossfn, x, y = _prepare(params, x, y, activation, loss, check_finite=check_finite)
    B = x.shape[0]

    # Forward, keeping each layer's input a_{l-1} and hidden pre-activation z_l.
    a_in, zs = [x], []
    for W in params[:-1]:
        z = a_in[-1] @ W[1:] + W[0]
        zs.append(z)
        a_in.append(act.fn(z))
    z_L = a_in[-1] @ params[-1][1:] + params[-1][0]

    J = float(np.mean(lossfn.value(z_L, y)))
    delta = lossfn.delta(z_L, y)
    delta /= B

    grads = [np.empty_like(W) for W in params]
    for l in range(len(params) - 1, -1, -1):
        np.sum(delta, axis=0, out=grads[l][0])
        np.matmul(a_in[l].T, delta, out=grads[l][1:])
        if l > 0:
            delta = (delta @ params[l][1:].T) * act.grad(zs[l - 1], a_in[l])
    return J, grads


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
