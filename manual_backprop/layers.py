"""Layers and their vector-Jacobian products, each derived by hand in NumPy.

Every layer is a pair

    name(x, *params, **options)          -> y
    name_vjp(dy, x, *params, **options)  -> (dx, *dparams)

where ``dy = dJ/dy`` is the gradient of some scalar J with respect to the output (same shape and
dtype as y) and the result holds dJ/dx and dJ/dp for every parameter, each shaped like its
primal. The VJP recomputes what it needs from the forward (a reference, not a cache). Arguments
that are not differentiated (the integer ``ids`` of :func:`embedding`, the boolean dropout
``mask``) get ``None`` in their slot; every floating argument gets its gradient.

Conventions. Floating arrays are float32 or float64, all of one dtype per call; arithmetic stays
in that dtype. Images are (N, C, H, W); sequences (N, T, features); ``sum_b`` sums over the
batch. ``*`` is the elementwise product, ``@`` the matrix product, ``^T`` swaps the last two axes.
Bad arguments raise TypeError or ValueError naming the argument, what was expected and what came.
A NaN or inf in an argument gives NaN or inf where it reaches, without a warning (IEEE arithmetic,
as in NumPy's own products); an overflow of finite arguments warns as NumPy does, or, where the
layer says so, is a ValueError.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Sequence

import numpy as np

from . import _checks
from .activations import sigmoid as _sigmoid

__all__ = [
    "attention", "attention_vjp", "avg_pool2d", "avg_pool2d_vjp", "batch_norm", "batch_norm_vjp",
    "conv2d", "conv2d_vjp", "dense", "dense_vjp", "dropout", "dropout_vjp", "embedding",
    "embedding_vjp", "layer_norm", "layer_norm_vjp", "lstm", "lstm_vjp", "max_pool2d",
    "max_pool2d_vjp", "relu", "relu_vjp", "reshape", "reshape_vjp", "rnn", "rnn_vjp", "sigmoid",
    "sigmoid_vjp", "softmax", "softmax_vjp",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# ----------------------------------------------------------------------------------------------
# argument checks


def _float(layer: str, name: str, a, ndim: int | None = None, shape_doc: str = "", min_ndim: int | None = None) -> np.ndarray:
    """``a`` as a float32/float64 ndarray of the stated rank, or a TypeError/ValueError naming it."""
    a = _array(layer, name, a)
    if a.dtype not in _FLOATS:
        swapped = a.dtype.kind == "f" and not a.dtype.isnative and a.dtype.newbyteorder("=") in _FLOATS
        raise TypeError(f"{layer}: {name} must be a float32 or float64 array; got dtype {a.dtype}"
                        + (f" (non-native byte order: {name}.astype(np.{a.dtype.newbyteorder('=')}) converts it)"
                           if swapped else ""))
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{layer}: {name} must be {ndim}-D{' ' + shape_doc if shape_doc else ''}; got shape {a.shape}")
    if min_ndim is not None and a.ndim < min_ndim:
        raise ValueError(f"{layer}: {name} must have at least {min_ndim} axes{' ' + shape_doc if shape_doc else ''}; got shape {a.shape}")
    if 0 in a.shape:
        raise ValueError(f"{layer}: {name} is empty (shape {a.shape})")
    return a


def _array(layer: str, name: str, a) -> np.ndarray:
    """``_checks.as_array``, the message starting with the layer's name."""
    return _checks.as_array(name, a, where=f"{layer}: ")


def _same_dtype(layer: str, **arrays: np.ndarray) -> np.dtype:
    (first, a0), *rest = arrays.items()
    for name, a in rest:
        if a.dtype != a0.dtype:
            raise TypeError(
                f"{layer}: {name} is {a.dtype} but {first} is {a0.dtype}; all floating arguments must share one dtype"
            )
    return a0.dtype


def _shape(layer: str, name: str, a: np.ndarray, expected: tuple, why: str = "") -> None:
    if a.shape != tuple(expected):
        raise ValueError(f"{layer}: {name} must have shape {tuple(expected)}{' ' + why if why else ''}; got {a.shape}")


def _dy(layer: str, dy, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """The cotangent: same shape and dtype as the layer's output."""
    dy = _array(f"{layer}_vjp", "dy", dy)
    if dy.dtype != dtype:
        swapped = not dy.dtype.isnative and dy.dtype.newbyteorder("=") == dtype
        raise TypeError(f"{layer}_vjp: dy must have the output's dtype {dtype}; got {dy.dtype}"
                        + (f" (non-native byte order: dy.astype(np.{dtype}) converts it)" if swapped else ""))
    if dy.shape != tuple(shape):
        raise ValueError(f"{layer}_vjp: dy must have the output's shape {tuple(shape)}; got {dy.shape}")
    return dy


def _pair(layer: str, name: str, v, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a pair."""
    vals = (v, v) if not isinstance(v, (tuple, list)) else tuple(v)
    if len(vals) != 2 or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in vals):
        raise TypeError(f"{layer}: {name} must be an int or a pair of ints; got {v!r}")
    if min(vals) < minimum:
        raise ValueError(f"{layer}: {name} must be >= {minimum}; got {v!r}")
    return int(vals[0]), int(vals[1])


def _positive(layer: str, name: str, v) -> float:
    """``v`` as a float: a real number > 0 that float64 holds (a Python int beyond its range
    raises OverflowError in float(), a long double beyond it becomes inf)."""
    try:
        f = float(v) if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) else math.nan
    except OverflowError:
        f = math.inf
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"{layer}: {name} must be a finite number > 0; got {v!r}")
    return f


def _axis(layer: str, axis, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{layer}: axis must be an int; got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{layer}: axis {axis} is out of range for an array of {ndim} axes")
    return int(axis) % ndim


# ----------------------------------------------------------------------------------------------
# dense


def _dense_args(x, W, layer="dense"):
    x = _float(layer, "x", x, 2, "(N, n_in)")
    W = _float(layer, "W", W, 2, "(n_in + 1, n_out), row 0 the bias")
    _same_dtype(layer, x=x, W=W)
    if W.shape[0] != x.shape[1] + 1:
        raise ValueError(
            f"{layer}: W must have n_in + 1 = {x.shape[1] + 1} rows for x of shape {x.shape} (row 0 is the bias); got {W.shape}"
        )
    return x, W


def dense(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """The post's fully connected layer, bias in row 0 of W.

    Forward:   y = x W[1:] + W[0]                       x (N, n_in), W (n_in + 1, n_out), y (N, n_out)
    Backward:  dx = dy W[1:]^T,  dW[1:] = x^T dy,  dW[0] = sum_b dy[b]
    """
    x, W = _dense_args(x, W)
    return x @ W[1:] + W[0]


def dense_vjp(dy: np.ndarray, x: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(dx, dW)`` of :func:`dense`."""
    x, W = _dense_args(x, W, "dense_vjp")
    dy = _dy("dense", dy, (x.shape[0], W.shape[1]), x.dtype)
    dW = np.empty_like(W)
    dW[0] = dy.sum(axis=0)
    np.matmul(x.T, dy, out=dW[1:])
    return dy @ W[1:].T, dW


# ----------------------------------------------------------------------------------------------
# elementwise and shape layers (for composing networks)


def relu(x: np.ndarray) -> np.ndarray:
    """Forward: y = max(x, 0).  Backward: dx = dy * [x > 0] (slope 0 at the kink x = 0)."""
    x = _float("relu", "x", x)
    return np.maximum(x, 0)


def relu_vjp(dy: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
    """``(dx,)`` of :func:`relu`."""
    x = _float("relu_vjp", "x", x)
    dy = _dy("relu", dy, x.shape, x.dtype)
    return (np.where(x > 0, dy, 0).astype(x.dtype, copy=False),)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Forward: y = 1 / (1 + e^{-x}) (no overflow).  Backward: dx = dy * y (1 - y), computed as
    dy * sigma(x) sigma(-x): 1 - y cancels where y rounds to 1 (0 at x = 17 in float32, where
    sigma'(x) = 4e-8), sigma(-x) keeps the relative accuracy on both sides."""
    x = _float("sigmoid", "x", x)
    return _sigmoid(x)


def sigmoid_vjp(dy: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
    """``(dx,)`` of :func:`sigmoid`."""
    x = _float("sigmoid_vjp", "x", x)
    dy = _dy("sigmoid", dy, x.shape, x.dtype)
    return (dy * _sigmoid_grad(x),)


def _tanh_grad(a: np.ndarray) -> np.ndarray:
    """tanh'(a) = 1 - tanh^2 a = 4 e / (1 + e)^2 with e = e^{-2|a|}: within a few u of it for
    every a, where 1 - h^2 from a rounded h = tanh(a) cancels (0 at a = 9 in float32, where
    tanh' = 6e-8; twice the true value at 8.5). inf: 0; NaN: NaN."""
    with np.errstate(under="ignore", over="ignore"):   # -2|a| = -inf beyond max / 2: e = 0, exact
        e = np.exp(-2 * np.abs(a))
    d = 1 + e
    d *= d
    return np.divide(4 * e, d, out=d)


def _sigmoid_grad(a: np.ndarray) -> np.ndarray:
    """sigma'(a) = sigma(a) sigma(-a): relative accuracy on both sides (see sigmoid)."""
    return _sigmoid(a) * _sigmoid(-a)


def _reshape_target(layer: str, x: np.ndarray, shape) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape):
        raise TypeError(f"{layer}: shape must be a tuple of ints (per example); got {shape!r}")
    per_example = math.prod(x.shape[1:])
    known = math.prod(int(s) for s in shape if s != -1)   # Python ints: np.prod wraps at 2^63
    if sum(s == -1 for s in shape) > 1 or any(s < -1 or s == 0 for s in shape) or (
        per_example % known if -1 in shape else per_example != known
    ):
        raise ValueError(f"{layer}: cannot reshape examples of shape {x.shape[1:]} to {tuple(shape)}")
    return (x.shape[0],) + tuple(int(s) for s in shape)


def reshape(x: np.ndarray, *, shape: Sequence[int]) -> np.ndarray:
    """Forward: y = x reshaped to (N, *shape) (one -1 allowed; ``shape=(-1,)`` flattens).
    Backward: dx = dy reshaped to x's shape."""
    x = _float("reshape", "x", x, min_ndim=1)
    return x.reshape(_reshape_target("reshape", x, shape))


def reshape_vjp(dy: np.ndarray, x: np.ndarray, *, shape: Sequence[int]) -> tuple[np.ndarray]:
    """``(dx,)`` of :func:`reshape`."""
    x = _float("reshape_vjp", "x", x, min_ndim=1)
    target = x.reshape(_reshape_target("reshape", x, shape)).shape
    return (_dy("reshape", dy, target, x.dtype).reshape(x.shape),)


# ----------------------------------------------------------------------------------------------
# convolution


def _conv_args(x, W, b, stride, padding, layer="conv2d"):
    x = _float(layer, "x", x, 4, "(N, C_in, H, W)")
    W = _float(layer, "W", W, 4, "(C_out, C_in, kh, kw)")
    b = _float(layer, "b", b, 1, "(C_out,)")
    _same_dtype(layer, x=x, W=W, b=b)
    if W.shape[1] != x.shape[1]:
        raise ValueError(f"{layer}: W has C_in = {W.shape[1]} but x has {x.shape[1]} channels (x {x.shape}, W {W.shape})")
    _shape(layer, "b", b, (W.shape[0],), "(one bias per output channel)")
    sh, sw = _pair(layer, "stride", stride, 1)
    ph, pw = _pair(layer, "padding", padding, 0)
    kh, kw = W.shape[2:]
    Hp, Wp = x.shape[2] + 2 * ph, x.shape[3] + 2 * pw
    if Hp < kh or Wp < kw:
        raise ValueError(
            f"{layer}: the {kh}x{kw} kernel does not fit the padded input {Hp}x{Wp} (x {x.shape}, padding {(ph, pw)})"
        )
    if x.shape[0] * x.shape[1] * Hp * Wp * x.itemsize > np.iinfo(np.intp).max:   # NumPy's error came from deep inside
        raise ValueError(f"{layer}: padding {(ph, pw)} makes a padded input of {x.shape[0]}x{x.shape[1]}x{Hp}x{Wp}, "
                         f"more {x.dtype} entries than an array can hold")
    Ho, Wo = (Hp - kh) // sh + 1, (Wp - kw) // sw + 1
    # a stride past the padded input leaves one window, which it no longer moves: the same
    # result, and no stride of 2**62 elements for as_strided to overflow on (a review)
    return x, W, b, (min(sh, Hp), min(sw, Wp)), (ph, pw), (Ho, Wo)


@contextlib.contextmanager
def _naming_memory_errors(layer: str, x: np.ndarray, padding):
    """Re-raise NumPy's MemoryError for a padded input or its windows with the layer's name and
    the padding that asked for them (NumPy's own says only how many bytes)."""
    try:
        yield
    except MemoryError as e:
        raise MemoryError(f"{layer}: x {x.shape} with padding {tuple(padding)} needs more memory than there is ({e})") from None


def _padded(x: np.ndarray, padding, margin: int = 0) -> np.ndarray:
    """x_p (N, C, Hp, Wp), C-contiguous, as a view of a flat buffer followed by ``margin`` zeros
    (room for a strided view to run past the last row; what it reads there is never used)."""
    (ph, pw), (N, C, H, W) = padding, x.shape
    if not (ph or pw or margin) and x.flags.c_contiguous:
        return x
    buf = np.zeros(N * C * (H + 2 * ph) * (W + 2 * pw) + margin, x.dtype)
    xp = buf[:buf.size - margin].reshape(N, C, H + 2 * ph, W + 2 * pw)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    return xp


def _im2col(x: np.ndarray, kh: int, kw: int, stride, padding, out_hw) -> tuple[np.ndarray, int]:
    """``(X, Wq)``: X of shape (C kh kw, N Ho Wq), column (n, i, j) the padded window under output
    pixel (i, j), its rows ordered (c, p, q) like W[f].ravel(). One copy from a strided view.

    For stride 1 each row of X is "wide": j runs over the whole padded width, Wq = Wp, so that
    (i, j) is one contiguous run of x_p per (c, p, q, n) (a long memcpy, not Ho runs of Wo);
    columns j >= Wo read past the row end, and the caller drops them. Otherwise Wq = Wo."""
    (sh, sw), (Ho, Wo) = stride, out_hw
    wide = sh == sw == 1
    xp = _padded(x, padding, kw - 1 if wide else 0)
    N, C, Hp, Wp = xp.shape
    Wq = Wp if wide else Wo
    sn, sc, sr, st = xp.strides
    win = np.lib.stride_tricks.as_strided(
        xp, (C, kh, kw, N, Ho, Wq), (sc, sr, st, sn, sh * sr, sw * st), writeable=False)
    return win.reshape(C * kh * kw, N * Ho * Wq), Wq


def conv2d(x: np.ndarray, W: np.ndarray, b: np.ndarray, *, stride=1, padding=0) -> np.ndarray:
    """2-D cross-correlation (PyTorch's and JAX's convolution), zero padding, stride s.

    Shapes: x (N, C, H, W), W (F, C, kh, kw), b (F,), y (N, F, Ho, Wo) with
    Ho = (H + 2 ph - kh) // sh + 1 (Wo alike); x_p is x zero-padded by (ph, pw).

    Forward:   y[n,f,i,j] = b[f] + sum_{c,p,q} W[f,c,p,q] x_p[n, c, sh i + p, sw j + q]
    Backward:  db[f]      = sum_{n,i,j} dy[n,f,i,j]
               dW[f,c,p,q] = sum_{n,i,j} dy[n,f,i,j] x_p[n, c, sh i + p, sw j + q]
               dx_p[n,c,r,t] = sum_{f,i,j : sh i + p = r, sw j + q = t} dy[n,f,i,j] W[f,c,p,q]
               dx = dx_p without its padding.
    For stride 1 the last sum is the *full convolution* of dy with the kernel rotated by 180
    degrees: dx_p[n,c] = sum_f (dy[n,f] zero-padded by k - 1) correlated with W[f,c,::-1,::-1];
    the flip is what a hand derivation most often forgets.

    Computation. Forward: im2col, X (C kh kw, N Ho Wo) holds every window (:func:`_im2col`), and
    y = W_mat X is ONE GEMM (W_mat is W as (F, C kh kw)). Backward (:func:`conv2d_vjp`): both
    products are one GEMM each over "row" matrices in which t runs over the whole padded width:
        D[(f,q), (n,i,t)] = dy_s[n, f, i, t - q]   (dy_s: dy at t = sw j, zero elsewhere)
        R[(c,p), (n,i,t)] = x_p[n, c, sh i + p, t]
    dW[f,c,p,q] = (D R^T)[(f,q), (c,p)], and T = W_t D with W_t[(c,p), (f,q)] = W[f,c,p,q] holds
    T[(c,p), (n,i,t)] = sum_{f,q} W[f,c,p,q] dy_s[n,f,i,t-q], so dx_p[n,c,sh i + p, t] += T: kh
    shifted row adds instead of col2im's kh kw. Same sums as the equations, only grouped; the
    extra products are with zeros (padding, t outside the window), which change nothing for
    finite x and W. Where x holds a NaN or inf, the columns of x_p that no window reads are
    zeroed first (at stride > 1 or beyond the last window), so that 0 * inf there does not
    turn every dW into NaN. A NaN or inf that a window reads makes the dW entries whose sums
    hold it non-finite, and through the grouping's products with zeros may make NaN of other
    entries of dW[:, c] as well (an inf in W does the same in dx).
    """
    x, W, b, stride, padding, (Ho, Wo) = _conv_args(x, W, b, stride, padding)
    N, F = x.shape[0], W.shape[0]
    with _naming_memory_errors("conv2d", x, padding):
        X, Wq = _im2col(x, W.shape[2], W.shape[3], stride, padding, (Ho, Wo))
    wide = Wq > Wo                                  # columns j >= Wo: no window, their products unused
    with np.errstate(over="ignore", invalid="ignore") if wide else contextlib.nullcontext():
        yq = (W.reshape(F, -1) @ X).reshape(F, N, Ho, Wq)         # one GEMM
    y = np.empty((N, F, Ho, Wo), dtype=x.dtype)
    np.add(yq[..., :Wo].transpose(1, 0, 2, 3), b[:, None, None], out=y)
    if wide and not _checks.all_finite(y):          # (b's own NaN or inf: not ours)
        # an example with a non-finite x, or a filter with a non-finite W, makes its own NaN; an
        # output (n, f) of finite x[n] and W[f] that is not finite overflowed
        lost = ~np.isfinite(yq[..., :Wo]).all(axis=(2, 3))                               # (F, N)
        if (lost & np.isfinite(W).all(axis=(1, 2, 3))[:, None] & np.isfinite(x).all(axis=(1, 2, 3))).any():
            _overflow_signal(y.dtype)               # what a product of the windows alone would give
    return y


def _overflow_signal(dtype: np.dtype) -> None:
    """NumPy's floating-point overflow signal, handled as the caller's ``np.errstate`` says (by
    default a RuntimeWarning): the largest number doubled."""
    np.multiply(np.finfo(dtype).max, dtype.type(2))


def conv2d_vjp(dy: np.ndarray, x: np.ndarray, W: np.ndarray, b: np.ndarray, *, stride=1, padding=0):
    """``(dx, dW, db)`` of :func:`conv2d` (equations and the grouping into GEMMs there)."""
    x, W, b, (sh, sw), (ph, pw), (Ho, Wo) = _conv_args(x, W, b, stride, padding, "conv2d_vjp")
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    dy = _dy("conv2d", dy, (N, F, Ho, Wo), x.dtype)
    with _naming_memory_errors("conv2d_vjp", x, (ph, pw)):
        xp = _padded(x, (ph, pw))
    if not _checks.all_finite(xp):
        xp = _unread_columns_zeroed(xp, kw, sw, Wo)
    Hp, Wp = xp.shape[2:]
    M = N * Ho * Wp                                     # columns (n, i, t), t over the padded width
    # dy_s in rows of width Wp, behind kw - 1 zeros: D's shift t - q < 0 wraps onto zeros (the
    # previous row's t >= sw (Wo - 1) + 1, or the leading pad), never onto an entry of dy
    ds = np.zeros(kw - 1 + F * M, x.dtype)
    ds[kw - 1:].reshape(F, N, Ho, Wp)[..., :sw * (Wo - 1) + 1:sw] = dy.transpose(1, 0, 2, 3)
    e = ds.itemsize
    D = np.lib.stride_tricks.as_strided(ds[kw - 1:], (F, kw, M), (M * e, -e, e), writeable=False).reshape(F * kw, M)
    sn, sc, sr, st = xp.strides
    R = np.lib.stride_tricks.as_strided(xp, (C, kh, N, Ho, Wp), (sc, sr, sn, sh * sr, st), writeable=False)
    R = R.reshape(C * kh, M)
    with np.errstate(invalid="ignore"):                # 0 * inf of a non-finite x or W: NaN, as documented
        dW = np.ascontiguousarray((D @ R.T).reshape(F, kw, C, kh).transpose(0, 2, 3, 1))   # one GEMM
        T = (W.transpose(1, 2, 0, 3).reshape(C * kh, F * kw) @ D).reshape(C, kh, N, Ho, Wp)  # one GEMM
    dxp = np.zeros((N, C, Hp, Wp), dtype=x.dtype)
    for p in range(kh):                                 # T's row (c, p, n, i) lands on x_p row sh i + p
        dxp[:, :, p:p + sh * (Ho - 1) + 1:sh] += T[:, p].transpose(1, 0, 2, 3)
    return dxp[:, :, ph:ph + H, pw:pw + Wd], dW, dy.sum(axis=(0, 2, 3))


def _unread_columns_zeroed(xp: np.ndarray, kw: int, sw: int, Wo: int) -> np.ndarray:
    """A copy of x_p with 0 in every column t that no window reads (t != sw j + q for all
    j < Wo, q < kw)."""
    read = np.zeros(xp.shape[3], dtype=bool)
    for q in range(kw):
        read[q:q + sw * (Wo - 1) + 1:sw] = True
    return np.where(read, xp, xp.dtype.type(0))


# ----------------------------------------------------------------------------------------------
# pooling


def _pool_args(layer, x, size, stride):
    x = _float(layer, "x", x, min_ndim=2, shape_doc="(..., H, W)")
    kh, kw = _pair(layer, "size", size, 1)
    sh, sw = _pair(layer, "stride", size if stride is None else stride, 1)
    H, W = x.shape[-2:]
    if H < kh or W < kw:
        raise ValueError(f"{layer}: the {kh}x{kw} window does not fit the input's last two axes {H}x{W}")
    return x, (kh, kw), (sh, sw), ((H - kh) // sh + 1, (W - kw) // sw + 1)


def _offsets(size, stride, out):
    """For each window offset (p, q), row-major: the slices of x it covers, one per output pixel."""
    (kh, kw), (sh, sw), (Ho, Wo) = size, stride, out
    return [
        (..., slice(p, p + sh * (Ho - 1) + 1, sh), slice(q, q + sw * (Wo - 1) + 1, sw))
        for p in range(kh) for q in range(kw)
    ]


def _window_max(x, offsets):
    """Each window's maximum: the elementwise maximum of its kh kw offset slices."""
    best = np.maximum(x[offsets[0]], x[offsets[1]]) if len(offsets) > 1 else x[offsets[0]].copy()
    for s in offsets[2:]:
        np.maximum(best, x[s], out=best)
    return best


def _tiles(x: np.ndarray, size, stride) -> bool:
    """Do the windows tile x exactly (stride = size, H and W multiples of it)? The usual pooling."""
    return stride == size and x.shape[-2] % size[0] == 0 and x.shape[-1] % size[1] == 0


def _tile_max(x: np.ndarray, size) -> tuple[np.ndarray, np.ndarray]:
    """The windows' maxima when they tile x, from x as bands x3 (M, kh, W), M = (...) Ho: the
    maximum over each band's kh rows, then over each run of kw neighbours. Returns (m, x3),
    m (M, Wo). Two passes over long rows, where one pass per window offset runs rows of Wo."""
    (kh, kw), W = size, x.shape[-1]
    x3 = x.reshape(-1, kh, W)
    rows = x3[:, 0].copy()
    for p in range(1, kh):
        np.maximum(rows, x3[:, p], out=rows)
    runs = rows.reshape(-1, kw)
    m = runs[:, 0].copy()
    for q in range(1, kw):
        np.maximum(m, runs[:, q], out=m)
    return m.reshape(-1, W // kw), x3


def max_pool2d(x: np.ndarray, *, size=2, stride=None) -> np.ndarray:
    """Maximum over kh x kw windows of the last two axes, stride (sh, sw) (default: the size).

    Shapes: x (..., H, W), y (..., Ho, Wo), Ho = (H - kh) // sh + 1, no padding.

    Forward:   y[..., i, j] = max_{p,q} x[..., sh i + p, sw j + q]
    Backward:  dx[..., sh i + p*, sw j + q*] += dy[..., i, j]  for the window's argmax (p*, q*);
               every other position of the window gets nothing from it. Overlapping windows
               (stride < size) add their contributions.
    Ties: the gradient goes to the FIRST maximum of the window in row-major order (smallest p,
    then smallest q), as ``np.argmax`` on the flattened window. At a tie max is not
    differentiable, and other libraries may choose another maximum. A NaN is a window's maximum
    (y is NaN there, as np.maximum gives) and takes dy, the first NaN if several, as np.argmax.

    When the windows tile x (stride = size, H and W multiples of it) the same maxima come from
    x as row bands (:func:`_tile_max`), and the backward routes dy in one product where every
    window has a single maximum; ties and NaN take the general path.
    """
    x, size, stride, out = _pool_args("max_pool2d", x, size, stride)
    if _tiles(x, size, stride):
        return _tile_max(x, size)[0].reshape(x.shape[:-2] + out)
    return _window_max(x, _offsets(size, stride, out))


def max_pool2d_vjp(dy: np.ndarray, x: np.ndarray, *, size=2, stride=None) -> tuple[np.ndarray]:
    """``(dx,)`` of :func:`max_pool2d` (equations and the tie rule there)."""
    x, size, stride, out = _pool_args("max_pool2d_vjp", x, size, stride)
    offsets = _offsets(size, stride, out)
    dy = _dy("max_pool2d", dy, x.shape[:-2] + out, x.dtype)
    if _tiles(x, size, stride):
        m, x3 = _tile_max(x, size)
        hit = x3 == np.repeat(m, size[1], axis=1)[:, None, :]    # (M, kh, W): where the maxima sit
        if np.count_nonzero(hit) == m.size and not np.isnan(m).any() and _checks.all_finite(dy):
            # one maximum per window (no NaN window with 0 hits to offset a tie's 2): dy lands
            # there, 0 elsewhere (dy * 1, dy * 0)
            return ((np.repeat(dy.reshape(m.shape), size[1], axis=1)[:, None, :] * hit).reshape(x.shape),)
    best = _window_max(x, offsets)
    nan = np.isnan(best)                                # windows whose maximum is a NaN
    nan = nan if nan.any() else None
    taken = np.zeros(best.shape, dtype=bool)            # windows whose maximum has been found
    dx = np.zeros_like(x)
    zero = x.dtype.type(0)
    overlap = stride[0] < size[0] or stride[1] < size[1]
    for k, s in enumerate(offsets):                     # row-major: the first maximum wins
        hit = x[s] == best
        if nan is not None:                             # NaN == NaN is False: find them apart
            hit |= nan & np.isnan(x[s])
        if k:
            hit &= ~taken
        if k + 1 < len(offsets):
            taken |= hit
        if overlap:                                     # windows share positions: contributions add
            dx[s] += np.where(hit, dy, zero)
        else:                                           # each position in one window at most
            dx[s] = np.where(hit, dy, zero)
    return (dx,)


def avg_pool2d(x: np.ndarray, *, size=2, stride=None) -> np.ndarray:
    """Mean over kh x kw windows of the last two axes, stride (default: the size), no padding.

    Forward:   y[..., i, j] = 1/(kh kw) sum_{p,q} x[..., sh i + p, sw j + q]
    Backward:  dx[..., sh i + p, sw j + q] += dy[..., i, j] / (kh kw)  for every (p, q)
    """
    x, size, stride, out = _pool_args("avg_pool2d", x, size, stride)
    k = size[0] * size[1]
    xs = x * x.dtype.type(1 / k)                     # scaled first: a sum of x could overflow, the mean cannot
    offsets = _offsets(size, stride, out)
    y = xs[offsets[0]].copy()
    with np.errstate(over="ignore"):                 # judged just below
        for s in offsets[1:]:
            y += xs[s]
    if not _checks.all_finite(y):
        # Each term x fl(1/k) errs by at most 2u of x/k, and their sum by (k + 1)u of the sum of
        # their magnitudes (to first order): finite x give inf only where the window's mean lies
        # within about (k + 1)u of +-max, all k values of one sign (a partial sum of j < k terms
        # stays near j/k of max). That mean is returned as +-max, within the same rounding.
        finite = np.isfinite(x[offsets[0]])
        for s in offsets[1:]:
            finite &= np.isfinite(x[s])
        y = np.where(np.isinf(y) & finite, np.copysign(np.finfo(x.dtype).max, y), y)
    return y


def avg_pool2d_vjp(dy: np.ndarray, x: np.ndarray, *, size=2, stride=None) -> tuple[np.ndarray]:
    """``(dx,)`` of :func:`avg_pool2d`."""
    x, size, stride, out = _pool_args("avg_pool2d_vjp", x, size, stride)
    dy = _dy("avg_pool2d", dy, x.shape[:-2] + out, x.dtype)
    share = dy * x.dtype.type(1 / (size[0] * size[1]))
    dx = np.zeros_like(x)
    for s in _offsets(size, stride, out):
        dx[s] += share
    return (dx,)


# ----------------------------------------------------------------------------------------------
# dropout


def _dropout_args(layer, x, mask, rate):
    x = _float(layer, "x", x)
    mask = _array(layer, "mask", mask)
    if mask.dtype != np.bool_:
        raise TypeError(
            f"{layer}: mask must be a boolean array (True keeps an entry); got dtype {mask.dtype}"
            " (for 0/1 numbers pass mask.astype(bool))"
        )
    _shape(layer, "mask", mask, x.shape, "(the shape of x)")
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer, np.floating)) or not 0 <= rate < 1:
        raise ValueError(f"{layer}: rate must be a number in [0, 1); got {rate!r}")
    r = float(rate)   # a NumPy float16 rate: the scale not in its own precision
    if not r < 1:     # a long double a hair below 1 (a review: ZeroDivisionError)
        raise ValueError(f"{layer}: rate must be a number in [0, 1); got {rate!r}, which is 1 as a float64")
    return x, mask, x.dtype.type(1 / (1 - r))


def dropout(x: np.ndarray, mask: np.ndarray, *, rate: float) -> np.ndarray:
    """Inverted dropout with a given boolean keep-mask (True keeps), so that E[y] = x when the
    mask is drawn with P(True) = 1 - rate. Shapes: x, mask, y all alike.

    Forward:   y = x * mask / (1 - rate)
    Backward:  dx = dy * mask / (1 - rate);  the mask is boolean and gets no gradient (None).
    """
    x, mask, scale = _dropout_args("dropout", x, mask, rate)
    return np.multiply(x, scale, out=np.zeros_like(x), where=mask)   # dropped entries: 0, never x * scale


def dropout_vjp(dy: np.ndarray, x: np.ndarray, mask: np.ndarray, *, rate: float) -> tuple[np.ndarray, None]:
    """``(dx, None)`` of :func:`dropout`."""
    x, mask, scale = _dropout_args("dropout_vjp", x, mask, rate)
    dy = _dy("dropout", dy, x.shape, x.dtype)
    return np.multiply(dy, scale, out=np.zeros_like(dy), where=mask), None


# ----------------------------------------------------------------------------------------------
# normalisation


def _norm_args(layer, x, gamma, beta, eps, axis):
    x = _float(layer, "x", x, min_ndim=2, shape_doc="(N, D) or (N, C, H, W)")
    gamma = _float(layer, "gamma", gamma, 1)
    beta = _float(layer, "beta", beta, 1)
    _same_dtype(layer, x=x, gamma=gamma, beta=beta)
    what = "(one per feature: x.shape[1])" if axis == 1 else "(one per feature: x.shape[-1])"
    _shape(layer, "gamma", gamma, (x.shape[axis],), what)
    _shape(layer, "beta", beta, (x.shape[axis],), what)
    _positive(layer, "eps", eps)
    with np.errstate(over="ignore"):
        eps_x = x.dtype.type(eps)
    if not (np.isfinite(eps_x) and eps_x >= np.finfo(x.dtype).tiny):
        # a subnormal eps leaves the scale to var, whose squares of a row ~1e-22 (float32) are
        # subnormal too and lose their bits: y 4.5 % off (a review); from tiny up, eps decides there
        raise ValueError(f"{layer}: eps = {eps!r} is {eps_x} in {x.dtype}; it must be a positive normal {x.dtype} "
                         f"number (at least {np.finfo(x.dtype).tiny:.3g})")
    bshape = [1] * x.ndim
    bshape[axis] = x.shape[axis]
    axes = tuple(a for a in range(x.ndim) if a != axis) if axis == 1 else (x.ndim - 1,)
    return x, gamma.reshape(bshape), beta.reshape(bshape), eps_x, axes


def _sum64(a: np.ndarray, axis, *, keepdims: bool = False) -> np.ndarray:
    """``a.sum(axis)`` accumulated in float64, in a's dtype. Along an axis that is not the
    contiguous one NumPy adds the terms one after another in a's dtype (pairwise only along the
    innermost axis): over N float32 values of one sign the error grows as N u, and a batch norm's
    variance over (2^22, 2) came out 0.2 % off (a review, 2026-12-05; JAX's twin 1e-7). A sum past
    a's range overflows in the cast, and warns as a's own sum did, unless the caller's errstate
    says otherwise."""
    return a.sum(axis=axis, keepdims=keepdims, dtype=np.float64).astype(a.dtype)


def _mean64(a: np.ndarray, axis) -> np.ndarray:
    """``a.mean(axis, keepdims=True)`` accumulated in float64 (:func:`_sum64`), in a's dtype."""
    return a.mean(axis=axis, keepdims=True, dtype=np.float64).astype(a.dtype)


def _normalise(x, eps, axes, layer):
    """xhat = (x - mu) / sqrt(var + eps) over ``axes``, and 1 / sqrt(var + eps). A sum of x, a
    square (x - mu)^2 or a variance beyond the dtype's range in a group of finite x (|x - mu|
    above ~1.8e19 in float32, ~1.3e154 in float64) is a ValueError, not a result of zeros; the
    squares are summed in float64, so a float32 sum of them past the range whose mean fits is not
    (a review, 2026-12-05). A NaN or inf in x makes its group NaN.

    The mean is taken in two parts (the corrected two-pass algorithm): d = x - mean(x), then
    x - mu = d - mean(d). mean(x) is off by the rounding of a sum of M values of size |x|, a few
    ulps of x, and every d by the same amount: for equal values that error, squared, would be
    their whole variance (float32 x = 10000.1, M = 100: xhat = -0.95 instead of 0), and where
    the spread is a few ulps of the mean it is a fixed share of it (float32 3e4 + 0.01 N(0, 1):
    xhat off by 0.08). mean(d) is summed in float64 and subtracted from d, not added back to
    the mean, where it would be rounded to an ulp of x again. Equal values: each d is the same
    small multiple of x's ulp, exact (Sterbenz), so is their float64 sum and mean; x - mu = 0,
    y = beta, exactly."""
    with np.errstate(over="ignore", invalid="ignore"):   # judged just below, group by group
        d = x - x.mean(axis=axes, keepdims=True)
        xc = d - _mean64(d, axes)
        var = _mean64(xc * xc, axes)
    lost = None if _checks.all_finite(var) else ~np.isfinite(var) & np.isfinite(x).all(axis=axes, keepdims=True)
    if lost is not None and lost.any():   # (var is one number per group: x is scanned only then)
        raise ValueError(f"{layer}: a sum of x or of (x - mean)^2 overflows {x.dtype} where x is finite (|x| up "
                         f"to {np.abs(x[np.broadcast_to(lost, x.shape)]).max():.3g}); scale x down")
    inv = 1 / np.sqrt(var + eps)
    return xc * inv, inv


def _normalise_vjp(dxhat, xhat, inv, axes):
    """dx from dxhat = dJ/dxhat: the mean and the variance depend on x too (see batch_norm).
    dx is linear in dxhat, group by group: in a group where a mean's sum overflows though dxhat
    is finite (entries near the dtype's largest; dx was -inf where it is 0), dx is computed
    again from the group's dxhat scaled by a power of two of its own, which is exact, and scaled
    back; a dx beyond the range then warns (in ldexp). The other groups keep their bits."""
    def dx(d):
        return inv * (d - _mean64(d, axes) - xhat * _mean64(d * xhat, axes))

    with np.errstate(over="ignore", invalid="ignore"):   # judged just below (inf - inf of an overflow)
        out = dx(dxhat)
    if _checks.all_finite(out):
        return out
    lost = ~np.isfinite(out).all(axis=axes, keepdims=True) & np.isfinite(dxhat).all(axis=axes, keepdims=True)
    if not lost.any():                                 # NaN or inf in dxhat: dx is so, as documented
        return out
    e = np.where(lost, np.frexp(np.abs(dxhat).max(axis=axes, keepdims=True))[1], 0)   # max|group| < 2^e
    with np.errstate(invalid="ignore"):                # inf - inf again in the groups not taken from it
        again = dx(np.ldexp(dxhat, -e))
    return np.where(lost, np.ldexp(again, e), out)


def batch_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, *, eps: float = 1e-5) -> np.ndarray:
    """Batch normalisation in training mode: statistics over every axis but axis 1 (the features
    of (N, D), the channels of (N, C, H, W)); M values per feature. Running averages for
    inference belong to the training loop.

    Forward:   mu = 1/M sum x,  var = 1/M sum (x - mu)^2  (biased),  s = 1/sqrt(var + eps)
               xhat = (x - mu) s,  y = gamma xhat + beta             gamma, beta (C,)
    Backward:  dbeta = sum dy,  dgamma = sum dy * xhat,  dxhat = dy * gamma
               dx = s (dxhat - mean(dxhat) - xhat mean(dxhat * xhat))
    (sums and means over the M values of each feature). The two subtracted means are the paths
    through mu and var: dropping them treats the statistics as constants, a classic slip.
    """
    x, g, b, eps, axes = _norm_args("batch_norm", x, gamma, beta, eps, 1)
    return g * _normalise(x, eps, axes, "batch_norm")[0] + b


def batch_norm_vjp(dy, x, gamma, beta, *, eps: float = 1e-5):
    """``(dx, dgamma, dbeta)`` of :func:`batch_norm`."""
    x, g, b, eps, axes = _norm_args("batch_norm_vjp", x, gamma, beta, eps, 1)
    dy = _dy("batch_norm", dy, x.shape, x.dtype)
    xhat, inv = _normalise(x, eps, axes, "batch_norm_vjp")
    dx = _normalise_vjp(dy * g, xhat, inv, axes)
    return dx, _sum64(dy * xhat, axes), _sum64(dy, axes)


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, *, eps: float = 1e-5) -> np.ndarray:
    """Layer normalisation over the last axis (D values per row), x (N, ..., D), gamma, beta (D,).

    Forward:   mu = mean_k x_k,  var = mean_k (x_k - mu)^2,  s = 1/sqrt(var + eps)
               xhat = (x - mu) s,  y = gamma xhat + beta
    Backward:  dgamma = sum_rows dy * xhat,  dbeta = sum_rows dy,  dxhat = dy * gamma
               dx = s (dxhat - mean_k dxhat - xhat mean_k(dxhat * xhat))      (per row)
    """
    x, g, b, eps, axes = _norm_args("layer_norm", x, gamma, beta, eps, -1)
    return g * _normalise(x, eps, axes, "layer_norm")[0] + b


def layer_norm_vjp(dy, x, gamma, beta, *, eps: float = 1e-5):
    """``(dx, dgamma, dbeta)`` of :func:`layer_norm`."""
    x, g, b, eps, axes = _norm_args("layer_norm_vjp", x, gamma, beta, eps, -1)
    dy = _dy("layer_norm", dy, x.shape, x.dtype)
    xhat, inv = _normalise(x, eps, axes, "layer_norm_vjp")
    rows = tuple(range(x.ndim - 1))
    return _normalise_vjp(dy * g, xhat, inv, axes), _sum64(dy * xhat, rows), _sum64(dy, rows)


# ----------------------------------------------------------------------------------------------
# softmax and attention


def _softmax(x, axis, allowed=None):
    """exp(x - max) / sum, with the max over the allowed entries; disallowed entries are exactly 0
    (no -inf is formed, so nothing overflows or warns). A NaN or +inf in an allowed entry makes
    its row NaN, without a warning; a -inf gets weight 0 (a row of -inf only: NaN)."""
    # x - max < -max float: -inf, and exp(-inf) = 0 is exact; inf - inf: NaN, the row's result
    with np.errstate(over="ignore", invalid="ignore"):
        if allowed is None:
            e = np.exp(x - x.max(axis=axis, keepdims=True))
        else:
            m = np.max(x, axis=axis, keepdims=True, where=allowed, initial=-np.inf)
            e = np.exp(np.where(allowed, x - m, 0))
            e *= allowed
            # disallowed entries stay 0 in a row whose sum is NaN (not 0 / NaN)
            return np.divide(e, _sum64(e, axis, keepdims=True), out=np.zeros_like(e), where=allowed)
    return e / _sum64(e, axis, keepdims=True)


def softmax(x: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """y = exp(x) / sum_axis exp(x), computed as exp(x - max x) (no overflow). Shapes alike.

    Backward (Jacobian dy_k/dx_j = y_k ([k = j] - y_j), applied without forming it):
               dx = y * (dy - sum_axis(dy * y))
    Keeping only the diagonal y (1 - y) of the Jacobian is the classic slip.
    """
    x = _float("softmax", "x", x)
    return _softmax(x, _axis("softmax", axis, x.ndim))


def softmax_vjp(dy: np.ndarray, x: np.ndarray, *, axis: int = -1) -> tuple[np.ndarray]:
    """``(dx,)`` of :func:`softmax`."""
    x = _float("softmax_vjp", "x", x)
    axis = _axis("softmax_vjp", axis, x.ndim)
    dy = _dy("softmax", dy, x.shape, x.dtype)
    y = _softmax(x, axis)
    return (_softmax_pullback(dy, y, axis),)


def _softmax_pullback(dy, y, axis):
    """y * (dy - sum(dy * y)) as (dy * y) - y * sum(dy * y): the same passes, and no
    intermediate above max|dy| (y <= 1, |sum(dy * y)| <= max|dy|; the result itself is at most
    max|dy| / 2: dy_k - s is a weighted sum of dy_k - dy_j with weights y_j summing to 1 - y_k);
    dy - s alone reached 2 max|dy| and overflowed for dy near the dtype's largest. s itself, a
    sum whose weights add up to 1 only to rounding, can round past the largest float there: it
    is then put back between min dy and max dy. A NaN or inf in dy makes its row NaN or inf,
    without a warning, as in the forward."""
    t = dy * y
    with np.errstate(over="ignore", invalid="ignore"):   # judged below; a non-finite dy: NaN rows
        s = _sum64(t, axis, keepdims=True)
        if not _checks.all_finite(s):   # a convex combination of dy: back between its extremes
            np.clip(s, dy.min(axis=axis, keepdims=True), dy.max(axis=axis, keepdims=True), out=s)
        t -= y * s                      # finite dy: finite terms of at most max|dy| (no flag to hide)
    return t


def _attention_args(layer, q, k, v, causal):
    q = _float(layer, "q", q, 3, "(N, T_q, d)")
    k = _float(layer, "k", k, 3, "(N, T_k, d)")
    v = _float(layer, "v", v, 3, "(N, T_k, d_v)")
    _same_dtype(layer, q=q, k=k, v=v)
    N, Tq, d = q.shape
    _shape(layer, "k", k, (N, k.shape[1], d), "(N, T_k, d) with q's N and d")
    _shape(layer, "v", v, (N, k.shape[1], v.shape[2]), "(N, T_k, d_v) with k's N and T_k")
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"{layer}: causal must be True or False; got {causal!r}")
    if causal and Tq != k.shape[1]:
        raise ValueError(f"{layer}: causal attention needs T_q == T_k; got q {q.shape}, k {k.shape}")
    allowed = np.tril(np.ones((Tq, Tq), dtype=bool)) if causal else None
    return q, k, v, allowed, q.dtype.type(1 / np.sqrt(d))


def _scores(layer, q, k, scale, allowed):
    """S = q k^T / sqrt(d). A score that is not finite though its query and key are (q k^T
    overflowed where S fits, or a partial sum did where terms cancel: BLAS gave -inf for
    1e400 - 1e400, which is 0) is computed again by :func:`_scaled_scores`, as it would come out
    had nothing overflowed; NaN where even its rounding error is beyond the dtype's range. A row
    whose largest unmasked score is then inf, NaN or -inf, from a finite query and finite keys
    it sees, is a ValueError, as in the norms: softmax would make it NaN. A -inf below a finite
    maximum is a score beyond the range: right as it is (its weight is 0)."""
    with np.errstate(over="ignore", invalid="ignore"):   # judged just below
        S = q @ k.transpose(0, 2, 1)
        S *= scale
    if _checks.all_finite(S):                          # so is every row's largest score
        return S
    q_ok, k_ok = np.isfinite(q).all(axis=-1), np.isfinite(k).all(axis=-1)          # (N, T_q), (N, T_k)
    redo = q_ok[:, :, None] & k_ok[:, None, :] & ~np.isfinite(S)
    if redo.any():
        S[redo] = _scaled_scores(q, k, scale)[0][redo]
    top = S.max(axis=-1) if allowed is None else np.max(S, axis=-1, where=allowed, initial=-np.inf)
    if not _checks.all_finite(top):                                 # (max passes NaN on)
        # judged row by row: a NaN or inf in a query, or in a key the row sees, makes that row NaN
        seen_ok = np.logical_and.accumulate(k_ok, axis=1) if allowed is not None else k_ok.all(axis=1, keepdims=True)
        bad = ~np.isfinite(top) & q_ok & seen_ok
        if bad.any():
            n, t = (int(i[0]) for i in np.nonzero(bad))
            raise ValueError(f"{layer}: q k^T / sqrt(d) overflows {q.dtype} where q and k are finite (example {n}, "
                             f"query {t}: |q| up to {np.abs(q[n, t]).max():.3g}, |k| up to "
                             f"{np.abs(k[n]).max():.3g}); scale q or k down")
    return S


def _scaled_scores(q, k, scale):
    """(S, err): q k^T * scale for finite q and k as it would come out had no partial sum
    overflowed, and a bound on its rounding error. Each query and key row is scaled by a power
    of two to a largest |entry| below 2^h, h = (emax - 2 - ceil(log2 d)) // 2, so that no sum
    of d products overflows, and the powers are put back by ldexp (+-inf where a score lies
    beyond the range). err = gamma_(d+1) (|q| |k|^T) scale (Higham, sec. 3.1: the dot product
    and the product by scale) plus what underflow may lose, 2 d 2^h times the smallest
    subnormal, in the scaled rows. Where err is beyond the range (terms of 1e200 cancelling in
    float64), the rounding alone may exceed any value the dtype holds: S is NaN there, unless
    the score lies beyond the range whatever its rounding (|s| - err past the largest float, in
    the scaled rows: a single product of 1e170 and 1e170): +-inf, as for a smaller err."""
    info, d = np.finfo(q.dtype), q.shape[-1]
    h = (info.maxexp - 2 - int(np.ceil(np.log2(d)))) // 2

    def scaled(a):
        e = np.frexp(np.abs(a).max(axis=-1))[1] - h                    # max|row| 2^-e < 2^h
        with np.errstate(under="ignore", over="ignore"):   # over: only a row holding an inf (unused)
            return np.ldexp(a, -e[..., None]), e
    (qs, eq), (ks, ek) = scaled(q), scaled(k)
    n, u = d + 1, info.eps / 2
    E = eq[:, :, None] + ek[:, None, :]
    with np.errstate(over="ignore", under="ignore"):
        s = qs @ ks.transpose(0, 2, 1) * scale
        b = np.abs(qs) @ np.abs(ks).transpose(0, 2, 1) * (scale * (n * u / (1 - n * u)))
        bs = b + 2 * d * np.ldexp(info.smallest_subnormal, h)       # err, in the scaled rows
        err = np.ldexp(bs, E)
        # 1 + 4u: past max by more than half its ulp and the subtraction's rounding (an inf
        # threshold, E <= 0, leaves it to err: no scaled row reaches max there)
        beyond = np.abs(s) - bs > np.ldexp(info.max, -E) * (1 + 4 * u)
        return np.where(np.isfinite(err) | beyond, np.ldexp(s, E), np.nan), err


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, causal: bool = False) -> np.ndarray:
    """Single-head scaled dot-product attention. q (N, T_q, d), k (N, T_k, d), v (N, T_k, d_v),
    y (N, T_q, d_v); with ``causal`` (T_q = T_k), query t sees keys 1..t only.

    Forward:   S = q k^T / sqrt(d),   P = softmax(S) over keys (masked keys: P = 0),   y = P v
    Backward:  dv = P^T dy,   dP = dy v^T,   dS = P * (dP - sum_keys(dP * P))
               dq = dS k / sqrt(d),   dk = dS^T q / sqrt(d)
    Masked entries have P = 0, hence dS = 0: no gradient flows to future keys. Scores that
    overflow to +inf from finite q and k, or whose overflowing terms cancel past what the dtype
    can resolve, or all -inf in a row, are a ValueError. An inf in a value that a query does not
    see still makes its row of y NaN (P = 0 there, and 0 * inf = NaN in P v), as in torch; an
    inf in a key it does not see leaves its row of y finite (its score is masked before the
    softmax) and makes its dq NaN (dS = 0 times inf); likewise a NaN or inf in a query makes dk
    NaN in that coordinate for every key, also those it does not see (dS = 0 times it in
    dS^T q), while dv of those keys stays finite, as in the twin.
    """
    q, k, v, allowed, scale = _attention_args("attention", q, k, v, causal)
    return _softmax(_scores("attention", q, k, scale, allowed), -1, allowed) @ v


def attention_vjp(dy, q, k, v, *, causal: bool = False):
    """``(dq, dk, dv)`` of :func:`attention`."""
    q, k, v, allowed, scale = _attention_args("attention_vjp", q, k, v, causal)
    dy = _dy("attention", dy, (q.shape[0], q.shape[1], v.shape[2]), q.dtype)
    P = _softmax(_scores("attention_vjp", q, k, scale, allowed), -1, allowed)
    dP = dy @ v.transpose(0, 2, 1)
    dS = _softmax_pullback(dP, P, -1)
    if allowed is not None:   # exactly 0 where masked, also in a row whose sum(dP * P) is NaN
        np.copyto(dS, 0, where=~allowed)
    dS *= scale
    return dS @ k, dS.transpose(0, 2, 1) @ q, P.transpose(0, 2, 1) @ dy


# ----------------------------------------------------------------------------------------------
# embedding


def _embedding_args(layer, ids, E):
    ids = _array(layer, "ids", ids)
    if 0 in ids.shape:   # as every other layer's x; first, as [] is float64 to NumPy
        raise ValueError(f"{layer}: ids is empty (shape {ids.shape})")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{layer}: ids must be an integer array; got dtype {ids.dtype}")
    E = _float(layer, "E", E, 2, "(V, d)")
    if ids.min() < 0 or ids.max() >= E.shape[0]:
        raise ValueError(f"{layer}: ids must lie in [0, V) = [0, {E.shape[0]}); got values in [{ids.min()}, {ids.max()}]")
    return ids, E


def embedding(ids: np.ndarray, E: np.ndarray) -> np.ndarray:
    """Row lookup: ids integers (any shape, e.g. (N, T)) in [0, V), E (V, d), y (*ids.shape, d).

    Forward:   y[n, t] = E[ids[n, t]]
    Backward:  dE[r] = sum_{(n, t) : ids[n, t] = r} dy[n, t]   (repeated ids ACCUMULATE)
               ids are integers and get no gradient: the vjp returns ``(None, dE)``.
    """
    ids, E = _embedding_args("embedding", ids, E)
    return E[ids]


def embedding_vjp(dy: np.ndarray, ids: np.ndarray, E: np.ndarray) -> tuple[None, np.ndarray]:
    """``(None, dE)`` of :func:`embedding`."""
    ids, E = _embedding_args("embedding_vjp", ids, E)
    dy = _dy("embedding", dy, ids.shape + (E.shape[1],), E.dtype)
    dE = np.zeros_like(E)
    np.add.at(dE, ids.ravel(), dy.reshape(-1, E.shape[1]))
    return None, dE


# ----------------------------------------------------------------------------------------------
# recurrent layers


def _recurrent_args(layer, x, states, Wx, Wh, b, gates):
    x = _float(layer, "x", x, 3, "(N, T, D)")
    gH = f"{gates}H" if gates > 1 else "H"   # rnn: H; lstm: 4H
    Wx = _float(layer, "Wx", Wx, 2, f"(D, {gH})")
    Wh = _float(layer, "Wh", Wh, 2)
    b = _float(layer, "b", b, 1)
    states = {k: _float(layer, k, s, 2, "(N, H)") for k, s in states.items()}
    _same_dtype(layer, x=x, **states, Wx=Wx, Wh=Wh, b=b)
    N, T, D = x.shape
    if Wx.shape[0] != D or Wx.shape[1] % gates:
        raise ValueError(f"{layer}: Wx must have shape (D, {gH}) with D = {D} (x {x.shape}); got {Wx.shape}")
    H = Wx.shape[1] // gates
    _shape(layer, "Wh", Wh, (H, gates * H), f"(H, {gH}) with H = {H} from Wx")
    _shape(layer, "b", b, (gates * H,), f"({gH},)")
    for k, s in states.items():
        _shape(layer, k, s, (N, H), "(N, H)")
    return x, states, Wx, Wh, b


def _recurrent_overflow(layer, h, x, states, weights) -> None:
    """A pre-activation that overflows warns, as any NumPy product does (the unit saturates
    at +-inf: right where the exact value is beyond the dtype's range, not where only a partial
    sum was); one that is inf - inf is NaN, no value at all: a ValueError where that example's x
    and states and every weight are finite. (A NaN or inf input makes its own rows NaN. The
    lstm's cell state cannot be inf - inf: |f c + i g| <= |c| + 1.)"""
    if _checks.all_finite(h) or not all(_checks.all_finite(w) for w in weights):
        return
    bad = ~np.isfinite(h).all(axis=(1, 2)) & np.isfinite(x).all(axis=(1, 2))
    for s in states.values():
        bad &= np.isfinite(s).all(axis=1)
    if bad.any():
        n = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{layer}: a pre-activation x_t Wx + h_(t-1) Wh + b is inf - inf in {h.dtype} for example "
                         f"{n}, whose x and states are finite as are the weights (|x| up to {np.abs(x[n]).max():.3g}, "
                         f"|h0| up to {np.abs(states['h0'][n]).max():.3g}); scale x, h0 or the weights down")


def rnn(x: np.ndarray, h0: np.ndarray, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elman RNN. x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,); returns every h_t, (N, T, H).

    Forward:   h_t = tanh(a_t),  a_t = x_t Wx + h_{t-1} Wh + b          t = 1..T
    Backward through time, with dh_T the incoming dy_T and da_{T+1} = 0:
               dh_t  = dy_t + da_{t+1} Wh^T
               da_t  = dh_t * (1 - h_t^2)        (computed from a_t: :func:`_tanh_grad`)
               dx_t  = da_t Wx^T,   dWx = sum_t x_t^T da_t,   dWh = sum_t h_{t-1}^T da_t
               db    = sum_{t,b} da_t,   dh0 = da_1 Wh^T
    A pre-activation that overflows warns, as NumPy's products do, and saturates its unit (tanh
    of inf is 1); one that is inf - inf from finite inputs is a ValueError (also in lstm). Where
    x_t Wx overflowed only in a partial sum (BLAS's fused multiply-adds give +-inf for terms of
    1e400 cancelling), it is computed again, without a warning (:func:`_input_projection`);
    h_(t-1) Wh is not.
    """
    x, h, _, Wx, Wh, b = _rnn(x, h0, Wx, Wh, b, "rnn")
    return h


def _input_projection(x, Wx):
    """x_t Wx for every t, (N, T, G), in one GEMM. An entry that is inf or NaN from a finite row
    of x and a finite column of Wx is computed again as :func:`_scaled_scores` computes a score:
    its value, to rounding, where only a partial sum overflowed (BLAS gave +-inf for 1e400 -
    1e400, which is 0, and the unit saturated), +-inf where it lies beyond the range, NaN where
    even its rounding does (the layer refuses it: inf - inf). NumPy's overflow signal (by default
    a RuntimeWarning) is given where such an entry is beyond the range, not where only a partial
    sum was; a NaN or inf in x or Wx makes its own NaN or inf, silently (the module's convention)."""
    N, T, D = x.shape
    X = x.reshape(N * T, D)
    with np.errstate(over="ignore"):                   # judged just below (invalid: _ieee's)
        a = X @ Wx
    if _checks.all_finite(a):                          # no sum overflowed: nothing was signalled
        return a.reshape(N, T, -1)
    redo = ~np.isfinite(a) & np.isfinite(X).all(axis=1)[:, None] & np.isfinite(Wx).all(axis=0)
    if redo.any():
        a[redo] = again = _scaled_scores(X[None], Wx.T[None], X.dtype.type(1))[0][0][redo]
        if not _checks.all_finite(again):
            _overflow_signal(a.dtype)                  # beyond the range: as any product that overflows
    return a.reshape(N, T, -1)


def _rnn(x, h0, Wx, Wh, b, layer):
    x, st, Wx, Wh, b = _recurrent_args(layer, x, {"h0": h0}, Wx, Wh, b, 1)
    N, T, _ = x.shape
    a = _input_projection(x, Wx)                        # all input projections: one GEMM,
    a += b                                              # and their biases: one pass
    h = np.empty_like(a)
    prev = st["h0"]
    for t in range(T):
        a[:, t] += prev @ Wh                            # a_t, kept for the backward
        prev = h[:, t] = np.tanh(a[:, t])
    _recurrent_overflow(layer, h, x, st, (Wx, Wh, b))
    return x, h, a, Wx, Wh, st["h0"]


def rnn_vjp(dy, x, h0, Wx, Wh, b):
    """``(dx, dh0, dWx, dWh, db)`` of :func:`rnn`."""
    x, h, a, Wx, Wh, h0 = _rnn(x, h0, Wx, Wh, b, "rnn_vjp")
    N, T, D = x.shape
    dy = _dy("rnn", dy, h.shape, x.dtype)
    da = _tanh_grad(a)                                  # tanh'(a_t) for every t, then times dh_t
    dh = np.zeros_like(h0)                              # da_{t+1} Wh^T, zero after the last step
    for t in range(T - 1, -1, -1):
        dh += dy[:, t]
        da[:, t] *= dh
        dh = da[:, t] @ Wh.T
    hprev = np.concatenate([h0[:, None], h[:, :-1]], axis=1)
    A = da.reshape(N * T, -1)
    return (
        (A @ Wx.T).reshape(N, T, D), dh,
        x.reshape(N * T, D).T @ A, hprev.reshape(N * T, -1).T @ A, A.sum(axis=0),
    )


def lstm(x, h0, c0, Wx, Wh, b) -> np.ndarray:
    """LSTM. x (N, T, D), h0, c0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,); returns every h_t (N, T, H).
    Gates in the order i, f, o, g along the last axis of Wx, Wh and b.

    Forward:   a_t = x_t Wx + h_{t-1} Wh + b = [a_i, a_f, a_o, a_g]
               i = sigma(a_i), f = sigma(a_f), o = sigma(a_o), g = tanh(a_g)
               c_t = f * c_{t-1} + i * g,    h_t = o * tanh(c_t)
    Backward through time, with dh_{T+1}-carry = 0 and dc_{T+1}-carry = 0:
               dh_t = dy_t + da_{t+1} Wh^T
               dc_t = f_{t+1} * dc_{t+1} + dh_t * o * (1 - tanh^2 c_t)   (the cell-state path)
               di = dc_t g,  df = dc_t c_{t-1},  do = dh_t tanh c_t,  dg = dc_t i
               da_t = [di i(1-i), df f(1-f), do o(1-o), dg (1-g^2)]
    (sigma' and tanh', and 1 - tanh^2 c_t, computed from the pre-activations and c_t:
    :func:`_sigmoid_grad`, :func:`_tanh_grad`; from the rounded gates they cancel at saturation)
               dx_t = da_t Wx^T,  dWx = sum_t x_t^T da_t,  dWh = sum_t h_{t-1}^T da_t,  db = sum da_t
               dh0 = da_1 Wh^T,   dc0 = f_1 * dc_1
    """
    return _lstm(x, h0, c0, Wx, Wh, b, "lstm")[1]


def _lstm(x, h0, c0, Wx, Wh, b, layer):
    x, st, Wx, Wh, b = _recurrent_args(layer, x, {"h0": h0, "c0": c0}, Wx, Wh, b, 4)
    N, T, _ = x.shape
    H = Wh.shape[0]
    a = _input_projection(x, Wx)                          # a_t, kept for the backward:
    a += b                                                # x Wx + b for every t, one pass
    h, c = np.empty((N, T, H), x.dtype), np.empty((N, T, H), x.dtype)
    gates = np.empty((N, T, 4 * H), x.dtype)            # i, f, o, g after their nonlinearities
    hp, cp = st["h0"], st["c0"]
    for t in range(T):
        a[:, t] += hp @ Wh
        gates[:, t, :3 * H] = _sigmoid(a[:, t, :3 * H])
        gates[:, t, 3 * H:] = np.tanh(a[:, t, 3 * H:])
        i, f, o, g = np.split(gates[:, t], 4, axis=1)
        cp = c[:, t] = f * cp + i * g
        hp = h[:, t] = o * np.tanh(cp)
    _recurrent_overflow(layer, h, x, st, (Wx, Wh, b))
    return x, h, c, gates, a, st, Wx, Wh


def lstm_vjp(dy, x, h0, c0, Wx, Wh, b):
    """``(dx, dh0, dc0, dWx, dWh, db)`` of :func:`lstm`."""
    x, h, c, gates, a, st, Wx, Wh = _lstm(x, h0, c0, Wx, Wh, b, "lstm_vjp")
    N, T, D = x.shape
    H = Wh.shape[0]
    dy = _dy("lstm", dy, h.shape, x.dtype)
    cprev = np.concatenate([st["c0"][:, None], c[:, :-1]], axis=1)
    hprev = np.concatenate([st["h0"][:, None], h[:, :-1]], axis=1)
    # every t at once: sigma'(a) = sigma(a) sigma(-a) for i, f, o and tanh'(a_g), then times
    # each step's factors; tanh c_t and tanh'(c_t)
    da = np.concatenate([gates[..., :3 * H] * _sigmoid(-a[..., :3 * H]), _tanh_grad(a[..., 3 * H:])], axis=-1)
    tcs, dtcs = np.tanh(c), _tanh_grad(c)
    dh, dc = np.zeros_like(st["h0"]), np.zeros_like(st["c0"])
    gate = [slice(k * H, (k + 1) * H) for k in range(4)]
    for t in range(T - 1, -1, -1):
        i, f, o, g = (gates[:, t, s] for s in gate)
        di, df, do, dg = (da[:, t, s] for s in gate)   # views: multiplied in place
        dh += dy[:, t]                       # bounded factors first: dc * c_{t-1} can overflow
        dc += dh * (o * dtcs[:, t])          # where dc * (c_{t-1} f (1 - f)) fits
        di *= g
        di *= dc
        df *= cprev[:, t]
        df *= dc
        do *= tcs[:, t]
        do *= dh
        dg *= i
        dg *= dc
        dc = dc * f
        dh = da[:, t] @ Wh.T
    A = da.reshape(N * T, -1)
    return (
        (A @ Wx.T).reshape(N, T, D), dh, dc,
        x.reshape(N * T, D).T @ A, hprev.reshape(N * T, -1).T @ A, A.sum(axis=0),
    )


def _ieee(fn):
    """``fn`` under ``np.errstate(invalid="ignore")``: a NaN or inf argument propagates without
    NumPy's invalid-value warning (0 * inf, inf - inf), the module's convention. From finite
    arguments an invalid value can only follow an overflow, which still warns (or is judged)."""

    @functools.wraps(fn)
    def quiet(*args, **kwargs):
        with np.errstate(invalid="ignore"):
            return fn(*args, **kwargs)

    return quiet


# Wrapped here rather than decorated: mutmut mutates only undecorated functions (docs/mutation.md).
for _name in __all__:
    globals()[_name] = _ieee(globals()[_name])
del _name
