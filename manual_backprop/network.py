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
from .activations import Sigmoid, Tanh, get_activation
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
    """Scratch arrays that :func:`loss_and_grad` reuses from one call to the next.

    Pass the same ``Workspace()`` to every call of a training loop: the forward activations
    a_l (batch, n_l), the error terms delta_l and the output-layer buffers are then allocated
    once per (batch, dtype) and written in place afterwards. One workspace serves one call at
    a time (not thread-safe); a call with new shapes or dtype allocates new arrays.
    """

    def __init__(self) -> None:
        self._arrays: dict[tuple, np.ndarray] = {}

    def array(self, name, shape: tuple[int, ...], dtype) -> np.ndarray:
        """The scratch array called ``name`` with this shape and dtype (uninitialised)."""
        key = (name, shape, dtype)
        buf = self._arrays.get(key)
        if buf is None:
            buf = self._arrays[key] = np.empty(shape, dtype)
        return buf


class _Scratch:
    """Stand-in for a workspace when none is given: every array is new."""

    @staticmethod
    def array(name, shape, dtype) -> np.ndarray:
        return np.empty(shape, dtype)


# In-place forms of the activations whose derivative is a function of a = g(z), used by
# loss_and_grad so that no hidden z_l needs to be kept and no temporary array is made:
#     activate(z, b)            overwrites z (batch, n) with a = g(z + b), b the bias (n,)
#     times_grad(delta, a)      delta *= g'(z), computed from a; a is overwritten
# They transcribe Sigmoid and Tanh of activations.py. Every other activation, and an object
# whose fn or grad has been replaced (the tests' deliberately broken derivatives), goes
# through the object's own fn(z) and grad(z, a).


def _sigmoid_inplace(z: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a = 1 / (1 + e^{-(z + b)}), in place: four passes over z.

    Where z + b < -88.7 (float32) or -709.8 (float64), e^{-(z + b)} overflows to inf and
    a = 1 / inf = 0; the exact value there is below the smallest normal number, so this
    agrees with activations.sigmoid to within a subnormal."""
    np.subtract(-b, z, out=z)
    with np.errstate(over="ignore"):
        np.exp(z, out=z)
    z += 1
    return np.divide(1, z, out=z)


def _sigmoid_times_grad(delta: np.ndarray, a: np.ndarray) -> None:
    """delta *= g'(z) = a (1 - a); a is overwritten with 1 - a."""
    delta *= a
    np.subtract(1, a, out=a)
    delta *= a


def _tanh_inplace(z: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a = tanh(z + b), in place."""
    z += b
    return np.tanh(z, out=z)


def _tanh_times_grad(delta: np.ndarray, a: np.ndarray) -> None:
    """delta *= g'(z) = 1 - a^2; a is overwritten with 1 - a^2."""
    np.multiply(a, a, out=a)
    np.subtract(1, a, out=a)
    delta *= a


_IN_PLACE = {
    Sigmoid: (_sigmoid_inplace, _sigmoid_times_grad),
    Tanh: (_tanh_inplace, _tanh_times_grad),
}


def _in_place_kernels(act):
    """(activate, times_grad) for ``act``, or None when it must go through fn and grad."""
    if "fn" in vars(act) or "grad" in vars(act):
        return None
    return _IN_PLACE.get(type(act))


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
    return list(out)


# Below this batch size, float32 delta W^T runs faster as (W delta^T)^T: OpenBLAS (0.3.31,
# SkylakeX and Haswell kernels) is slow for a small-M float32 gemm whose right operand is
# transposed (155 us against 97 us with the copy, B = 32, n = 500, one thread; the whole
# gradient of the post network 7 % faster at B = 32). From B = 100 on, and in float64, the
# copy costs what it saves or more.
_TRANSPOSED_BACKPROP_MAX_BATCH = {np.dtype(np.float32): 64}


def _times_transpose(delta: np.ndarray, W: np.ndarray, ws, name) -> np.ndarray:
    """delta W^T, (B, n_out) @ (n_out, n_in) -> (B, n_in), into the workspace array ``name``."""
    B, n_in = delta.shape[0], W.shape[0]
    out = ws.array(("delta", name), (B, n_in), delta.dtype)
    if 1 < B < _TRANSPOSED_BACKPROP_MAX_BATCH.get(delta.dtype, 0):
        tmp = ws.array(("delta^T", name), (n_in, B), delta.dtype)
        np.matmul(W, delta.T, out=tmp)             # (delta W^T)^T = W delta^T
        np.copyto(out, tmp.T)
        return out
    return np.matmul(delta, W.T, out=out)


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
    terms. With both, a call allocates only the output layer's (batch, n_L) arrays and
    single rows.

    Cost per call, with n_l the layer widths and B the batch: the matrix products
    z_l = a_{l-1} W_l[1:], a_{l-1}^T delta_l and delta_l W_l[1:]^T (6 B sum n_{l-1} n_l flops,
    less 2 B n_0 n_1 since delta_0 is not needed), and a few elementwise passes over each
    (B, n_l) done in place. The products run as BLAS gemm through np.matmul and np.dot
    (np.dot for a_{l-1}^T delta_l: at B = 1 that is an outer product, which np.matmul
    computes in a slow non-BLAS loop); the bias gradient is the gemv ones(B) @ delta_l.
    """
    act, lossfn, x, y = _prepare(params, x, y, activation, loss, check_finite=check_finite)
    grads = [np.empty_like(W) for W in params] if out is None else _check_out(out, params)
    ws = _Scratch if workspace is None else workspace
    B, L, dtype = x.shape[0], len(params), x.dtype
    in_place = _in_place_kernels(act)

    # Forward. a_in[l] = a_{l-1}, the input of layer l (a_in[0] = x); zs[l] = z_l is kept
    # only for activations whose g' needs z. z_l is computed as a_{l-1} W_l[1:] + W_l[0].
    a_in, zs = [x], []
    for l, W in enumerate(params[:-1]):
        z = np.matmul(a_in[-1], W[1:], out=ws.array(("a", l), (B, W.shape[1]), dtype))
        if in_place is not None:
            a_in.append(in_place[0](z, W[0]))      # a_l = g(z_l), written over z_l
        else:
            z += W[0]
            zs.append(z)
            a_in.append(act.fn(z))
    W = params[-1]
    z_L = np.matmul(a_in[-1], W[1:], out=ws.array("z_L", (B, W.shape[1]), dtype))
    z_L += W[0]

    J = float(lossfn.value(z_L, y).sum()) / B
    delta = lossfn.delta(z_L, y)                   # delta_L = (dl/dz_L) / B
    delta *= 1 / B

    # Backward: the gradient of layer l from delta_l, then delta_{l-1} from delta_l.
    ones = np.ones(B, dtype)
    for l in range(L - 1, -1, -1):
        g = grads[l]
        np.dot(ones, delta, out=g[0])              # dJ/dW_l[0]  = sum_b delta_l[b] (BLAS gemv)
        np.dot(a_in[l].T, delta, out=g[1:])        # dJ/dW_l[1:] = a_{l-1}^T delta_l
        if l > 0:                                  # delta_{l-1} = (delta_l W_l[1:]^T) * g'(z_{l-1})
            back = _times_transpose(delta, params[l][1:], ws, l - 1)
            if in_place is not None:
                in_place[1](back, a_in[l])         # a_{l-1} is not needed after this
            else:
                back *= act.grad(zs[l - 1], a_in[l])
            delta = back
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
