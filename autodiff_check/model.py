"""The same network and loss written once in ``jax.numpy``, differentiated by JAX.

Written independently of ``manual_backprop``: the layers use the post's bias-column form
``add_bias(a) @ W`` (manual_backprop uses ``a @ W[1:] + W[0]``) and the losses use
``jax.nn`` (``log_sigmoid``, ``log_softmax``) where manual_backprop uses softplus and
log-sum-exp written by hand. Shared with manual_backprop: the parameter layout, ``init_params``
and ``one_hot`` (data, not derivation), and the argument checks, so that both refuse alike.

Float64: importing this module (the first use of a JAX twin does) turns on ``jax_enable_x64``
(a checking tool needs float64). Arrays keep the dtype they arrive with, so float32 stays float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from manual_backprop import _checks
from manual_backprop.activations import get_activation as _check_activation_name
from manual_backprop.losses import get_loss as _loss_object
from manual_backprop.network import init_params, one_hot  # parameters and targets are data, not derivation

from .layers import _mm   # a @ b in full precision (the layers' twins make the same call)

jax.config.update("jax_enable_x64", True)


def _gelu(z):
    """GELU's tanh approximation z / 2 (1 + tanh(c (z + k z^3))) with u from z clamped to +-100:
    beyond, tanh u is +-1 to the last bit, and z^3 would overflow (jax.nn.gelu's derivative is
    then 0 * inf = NaN from z ~ 1e19 in float32, where manual_backprop's is finite)."""
    zc = jnp.clip(z, -100.0, 100.0)
    return 0.5 * z * (1 + jnp.tanh(math.sqrt(2 / math.pi) * (zc + 0.044715 * zc**3)))   # Python floats: z's dtype stays


ACTIVATIONS = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": partial(jax.nn.leaky_relu, negative_slope=0.01),
    "softplus": jax.nn.softplus,
    "gelu": _gelu,
}

OUTPUTS = {
    "binary_cross_entropy": jax.nn.sigmoid,
    "softmax_cross_entropy": partial(jax.nn.softmax, axis=-1),
    "mean_squared_error": lambda z: z,
}


def _bce(z, y):
    """-sum_k [y log sigma(z) + (1 - y) log sigma(-z)], per example."""
    return -jnp.sum(y * jax.nn.log_sigmoid(z) + (1 - y) * jax.nn.log_sigmoid(-z), axis=-1)


def _softmax_ce(z, y):
    """-sum_k y log softmax(z), per example."""
    return -jnp.sum(y * jax.nn.log_softmax(z, axis=-1), axis=-1)


def _mse(z, y):
    """1/2 sum_k (z - y)^2, per example."""
    return 0.5 * jnp.sum((z - y) ** 2, axis=-1)


LOSSES = {
    "binary_cross_entropy": _bce,
    "softmax_cross_entropy": _softmax_ce,
    "mean_squared_error": _mse,
}

__all__ = [
    "ACTIVATIONS", "LOSSES", "accuracy", "add_bias", "directional_derivative", "forward", "init_params", "logits",
    "loss", "loss_and_grad", "loss_fn", "one_hot", "predict", "sgd_step",
]


def add_bias(a):
    """``[1, a]``: (batch, n) -> (batch, n + 1), refusing what manual_backprop.add_bias refuses."""
    a = jnp.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"add_bias expects a 2-D (batch, n) array; got shape {a.shape}")
    return jnp.concatenate([jnp.ones((a.shape[0], 1), a.dtype), a], axis=1)


def _logits_and_finite(params, x, activation: str):
    """z_L, and for l = 1..L whether z_l is finite (L booleans): hidden layers
    ``a = g(z)`` with ``z = add_bias(a) @ W``, the last layer without g."""
    g = ACTIVATIONS[activation]
    a, finite = x, []
    for W in params[:-1]:
        z = _mm(add_bias(a), W)
        finite.append(jnp.all(jnp.isfinite(z)))
        a = g(z)
    z = _mm(add_bias(a), params[-1])
    return z, jnp.stack(finite + [jnp.all(jnp.isfinite(z))])


def logits(params, x, activation: str = "sigmoid"):
    """z_L: hidden layers ``a = g(add_bias(a) @ W)``, the last layer without g."""
    return _logits_and_finite(params, x, activation)[0]


def loss_fn(params, x, y, activation: str = "sigmoid", loss: str = "binary_cross_entropy"):
    """Mean loss over the batch as a pure JAX function of ``params`` (for grad, jvp, jit)."""
    return jnp.mean(LOSSES[loss](logits(params, x, activation), y))


def _loss_and_finite(params, x, y, activation: str, loss: str):
    """(J, whether each z_l is finite): a saturating g hides an overflowing z_l from J."""
    z, finite = _logits_and_finite(params, x, activation)
    return jnp.mean(LOSSES[loss](z, y)), finite


def _directional(params, x, y, v, activation, loss):
    return jax.jvp(lambda P: loss_fn(P, x, y, activation, loss), (params,), (v,))[1]


_jvp = jax.jit(_directional, static_argnames=("activation", "loss"))
_value_and_grad = jax.jit(jax.value_and_grad(_loss_and_finite, has_aux=True), static_argnames=("activation", "loss"))
_loss_jit = jax.jit(_loss_and_finite, static_argnames=("activation", "loss"))


@partial(jax.jit, static_argnames=("activation", "loss"))
def _sgd(params, x, y, lr, activation, loss):
    (J, finite), grads = jax.value_and_grad(_loss_and_finite, has_aux=True)(params, x, y, activation, loss)
    return (J, finite), [W - lr * g for W, g in zip(params, grads)]
_logits_jit = jax.jit(_logits_and_finite, static_argnames=("activation",))


def _prepare(params, x, y, activation, loss, *, check_finite=True):
    """Validate exactly like manual_backprop, so both backends refuse the same inputs, in the
    same order: the gradient paths (``check_finite=False``) find a NaN or inf weight or input
    through the z_l it reaches, after y and lr, as manual_backprop's do. Without NumPy's warnings
    (an overflowing row sum of y is judged, not warned about), as there."""
    _check_activation_name(activation)
    lossobj = _loss_object(loss)
    with np.errstate(over="ignore", invalid="ignore"):
        dtype = _checks.check_params(params, check_finite=check_finite)
        x = _checks.check_inputs(params, x, dtype, check_finite=check_finite)
        if y is not _checks.NO_TARGETS:
            y = _checks.check_targets(params, x, y, dtype, lossobj)
    return dtype, x, y


def _check_z(finite, what: str, params, x) -> None:
    """Raise as manual_backprop does for the first z_l that is NaN or inf (``finite``: one
    boolean per layer); ``what`` may name it as ``{l}``."""
    bad = np.flatnonzero(~np.asarray(finite))
    if bad.size:
        _checks.raise_not_finite(what.format(l=bad[0] + 1), params, x)


def _checked_logits(params, x, activation: str):
    z, finite = _logits_jit(list(params), x, activation=activation)
    _check_z(finite, "z_{l}", params, x)
    return z


def forward(params: Sequence[np.ndarray], x, *, activation: str = "sigmoid",
            loss: str = "binary_cross_entropy") -> np.ndarray:
    """The network's output f(z_L), (batch, n_out), as a NumPy array."""
    _, x, _ = _prepare(params, x, _checks.NO_TARGETS, activation, loss)
    return np.asarray(OUTPUTS[loss](_checked_logits(params, x, activation)))


def loss(params: Sequence[np.ndarray], x, y, *, activation: str = "sigmoid",
         loss: str = "binary_cross_entropy") -> float:
    """Mean loss over the batch, as a Python float."""
    _, x, y = _prepare(params, x, y, activation, loss)
    J, finite = _loss_jit(list(params), x, y, activation=activation, loss=loss)
    _check_z(finite, "z_{l}", params, x)
    return _finite(float(J), "the loss", params, x)


def _finite(J: float, what: str, params, x, arrays=()) -> float:
    """J, or manual_backprop's NonFiniteError when J or one of ``arrays`` is NaN or inf (x and
    params were checked finite: an overflow), so that both backends refuse alike."""
    if not (math.isfinite(J) and all(_checks.all_finite(a) for a in arrays)):
        _checks.raise_not_finite(what, params, x)
    return J


def loss_and_grad(params: Sequence[np.ndarray], x, y, *, activation: str = "sigmoid",
                  loss: str = "binary_cross_entropy") -> tuple[float, list[np.ndarray]]:
    """``(J, grads)`` by ``jax.jit(jax.value_and_grad(loss_fn))``; grads as NumPy arrays
    shaped and typed like ``params``."""
    dtype, x, y = _prepare(params, x, y, activation, loss, check_finite=False)
    (J, finite), grads = _value_and_grad(list(params), x, y, activation=activation, loss=loss)
    _check_z(finite, "the loss", params, x)
    grads = [np.asarray(g, dtype=dtype) for g in grads]
    return _finite(float(J), "the loss or its gradient", params, x, grads), grads


def sgd_step(params: Sequence[np.ndarray], x, y, lr: float, *, activation: str = "sigmoid",
             loss: str = "binary_cross_entropy") -> tuple[float, list[np.ndarray]]:
    """One gradient-descent step, ``(J, [W - lr dJ/dW for W in params])`` with J before the step,
    by one jitted ``jax.value_and_grad``. New NumPy arrays: ``params`` is left as it was
    (manual_backprop.sgd_step updates in place; ``J, params = sgd_step(...)`` reads the same)."""
    dtype, x, y = _prepare(params, x, y, activation, loss, check_finite=False)
    rate = _checks.check_lr(lr, dtype)  # validated like manual_backprop's
    (J, finite), new = _sgd(list(params), x, y, rate, activation=activation, loss=loss)
    _check_z(finite, "the loss", params, x)
    new = [np.asarray(W, dtype=dtype) for W in new]
    return _finite(float(J), "the loss or the updated params (params are unchanged)", params, x, new), new


def directional_derivative(params: Sequence[np.ndarray], x, y, v: Sequence[np.ndarray], *,
                           activation: str = "sigmoid", loss: str = "binary_cross_entropy") -> float:
    """<grad J, v> by JAX forward mode (``jax.jvp``), independent of reverse mode."""
    dtype, x, y = _prepare(params, x, y, activation, loss)
    v = _check_direction(v, params, dtype)
    return float(_jvp(list(params), x, y, v, activation=activation, loss=loss))


def _check_direction(v, params, dtype: np.dtype) -> list[np.ndarray]:
    """``v`` as one finite real array per layer, shaped like ``params``, in their dtype."""
    if isinstance(v, np.ndarray) or not isinstance(v, Sequence) or len(v) != len(params):
        raise TypeError(f"v must be a list of {len(params)} arrays shaped like params")
    out = []
    for l, (d, W) in enumerate(zip(v, params)):
        d = np.asarray(d)
        if d.dtype.kind not in "iuf":
            raise TypeError(f"v[{l}] must be a real numeric array; got dtype {d.dtype}")
        if d.shape != W.shape:
            raise ValueError(f"v[{l}] must have the shape of params[{l}], {W.shape}; got {d.shape}")
        with np.errstate(over="ignore"):   # judged just below
            d = d.astype(dtype)
        if not np.isfinite(d).all():
            raise ValueError(f"v[{l}] contains NaN or inf, or values beyond {dtype}'s range "
                             f"(first at {_checks._first_nonfinite(d)})")
        out.append(d)
    return out


def predict(params: Sequence[np.ndarray], x, *, activation: str = "sigmoid",
            loss: str = "binary_cross_entropy") -> np.ndarray:
    """Predicted class indices, argmax of the logits."""
    _, x, _ = _prepare(params, x, _checks.NO_TARGETS, activation, loss)
    return np.argmax(np.asarray(_checked_logits(params, x, activation)), axis=1)


def accuracy(params: Sequence[np.ndarray], x, labels, *, activation: str = "sigmoid",
             loss: str = "binary_cross_entropy") -> float:
    """Fraction of examples whose predicted class equals ``labels``."""
    pred = predict(params, x, activation=activation, loss=loss)
    labels = _checks.check_labels(labels, params[-1].shape[1], batch=pred.shape[0])
    return float(np.mean(pred == labels))
