"""The layers of ``manual_backprop.layers`` written again in ``jax.numpy`` / ``jax.lax``, with
every VJP from ``jax.vjp``: the oracle the hand derivations are checked against.

Written independently: nothing here imports ``manual_backprop``. Where a library primitive
exists it is used instead of the formula the NumPy code spells out (``lax.conv_general_dilated``
for convolution, ``lax.reduce_window`` for pooling, ``jax.nn.softmax``,
``lax.scan`` for recurrence, the post's bias-column form ``[1, x] @ W`` for dense).

Same names and signatures: ``name(x, *params, **options) -> y`` and
``name_vjp(dy, x, *params, **options) -> (dx, *dparams)``, NumPy arrays out. Only floating
primals are differentiated; an integer or boolean primal (embedding ``ids``, a boolean dropout
``mask``) gets ``None`` in its slot, as in manual_backprop.

No argument checks: these are oracles, meant for arguments the NumPy layer has accepted and
for use inside JAX's transformations (``jax_fn=`` of ``check_vjp``). Given what
``manual_backprop.layers`` refuses (an id out of range, an integer x, an empty array) they
return what JAX makes of it (JAX clamps an out-of-range id); ``autodiff_check.sequential``
runs the NumPy checks first.

Subnormal numbers: XLA on the CPU flushes them to zero (float32 1e-40 * 1 = 0; float64 1e-310
alike), so where a layer's inputs or intermediates are subnormal the twin is no oracle (the
NumPy layers keep them); the tests draw no such inputs.

Max pooling and ties: the VJP of ``lax.reduce_window(max)`` is XLA's select-and-scatter, which
routes the gradient to one maximum per window, chosen by XLA's iteration order; the NumPy layer
routes it to the first maximum in row-major order. At a tie the two may legitimately differ
(max is not differentiable there), so comparisons draw inputs without ties in a window.

Importing this module turns on ``jax_enable_x64``; arrays keep their dtype.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

jax.config.update("jax_enable_x64", True)

__all__ = [
    "attention", "attention_vjp", "avg_pool2d", "avg_pool2d_vjp", "batch_norm", "batch_norm_vjp",
    "conv2d", "conv2d_vjp", "dense", "dense_vjp", "dropout", "dropout_vjp", "embedding",
    "embedding_vjp", "layer_norm", "layer_norm_vjp", "lstm", "lstm_vjp", "max_pool2d",
    "max_pool2d_vjp", "relu", "relu_vjp", "reshape", "reshape_vjp", "rnn", "rnn_vjp", "sigmoid",
    "sigmoid_vjp", "softmax", "softmax_vjp", "FORWARD", "vjp_of",
]


def _two(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


# ---------------------------------------------------------------------------------------------
# forward functions in jax (pure, jit-able; the `_j` functions take and return jax arrays)


def _mm(a, b):
    """a @ b in full precision on every device: JAX's default for float32 on recent GPUs is
    TF32 (10-bit mantissas), which would make a float32 twin a loose oracle there."""
    return jnp.matmul(a, b, precision=lax.Precision.HIGHEST)


def _dense(x, W):
    """y = [1, x] @ W."""
    return _mm(jnp.concatenate([jnp.ones((x.shape[0], 1), x.dtype), x], axis=1), W)


def _relu(x):
    return jax.nn.relu(x)


def _sigmoid(x):
    return jax.nn.sigmoid(x)


def _reshape(x, *, shape):
    return jnp.reshape(x, (x.shape[0],) + tuple(shape))


def _conv2d(x, W, b, *, stride=1, padding=0):
    """The padding is applied by jnp.pad and the rows and columns no window reaches are cut
    off before an unpadded convolution: the same function as ``padding=`` of
    conv_general_dilated, whose VJP aborts the whole process in jax/jaxlib 0.10.2 for some
    shapes (an XLA check failure, "Window dimensions do not match RHS shape", e.g. a (1, 1, 4, 8)
    x, a 2 x 4 kernel, stride (2, 3), padding (1, 2); tests/test_layers.py)."""
    (sh, sw), (ph, pw) = _two(stride), _two(padding)
    (kh, kw), (H, Wd) = W.shape[2:], x.shape[2:]
    reach_h = (H + 2 * ph - kh) // sh * sh + kh            # rows the windows read, padding included
    reach_w = (Wd + 2 * pw - kw) // sw * sw + kw
    xp = jnp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))[:, :, :reach_h, :reach_w]
    y = lax.conv_general_dilated(
        xp, W, window_strides=(sh, sw), padding="VALID",
        dimension_numbers=("NCHW", "OIHW", "NCHW"), precision=lax.Precision.HIGHEST,
    )
    return y + b[None, :, None, None]


def _window(x, size, stride):
    k = _two(size)
    s = k if stride is None else _two(stride)
    lead = (1,) * (x.ndim - 2)
    return lead + k, lead + s


def _max_pool2d(x, *, size=2, stride=None):
    dims, strides = _window(x, size, stride)
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, dims, strides, "VALID")


def _avg_pool2d(x, *, size=2, stride=None):
    dims, strides = _window(x, size, stride)
    k = _two(size)
    # each value divided first, so a window of large values has a finite mean, except where the
    # mean lies within about k ulps of the dtype's largest: the rounded quotients' sum may pass
    # it (inf, where manual_backprop's layer returns the largest float)
    return lax.reduce_window(x / (k[0] * k[1]), np.array(0, x.dtype), lax.add, dims, strides, "VALID")


def _dropout(x, mask, *, rate):
    keep = jnp.asarray(1 - float(rate), x.dtype)   # nor a float16 rate round 1 - rate, nor float64 promote float32 x
    return jnp.where(mask, x, 0) / keep if mask.dtype == jnp.bool_ else x * mask / keep


def _centred(x, axes):
    """x - mean(x) over ``axes``: the deviations from the rounded mean, less their own mean. The
    rounded mean is off by a few ulps of x, which (x - mean)^2 would turn into a variance for
    equal values (jnp.var does) and into a share of a spread of a few ulps; added back to the
    mean, the correction would be rounded away again."""
    d = x - jnp.mean(x, axis=axes, keepdims=True)
    return d - jnp.mean(d, axis=axes, keepdims=True)


def _normalised(x, eps, axes):
    """(x - mu) / sqrt(var + eps) over ``axes``, as xs / sqrt(mean(xs^2) + eps / s^2) with
    xs = (x - mu) / s and s = max(max |x - mu|, sqrt(eps)), a constant to autodiff: the same
    function, but its derivative never forms (var + eps)^(-3/2), which underflowed to 0 for var
    above ~1e205 (float64, |x| ~1e103) or ~1e26 (float32, |x| ~1e13) and dropped the variance's
    path from the VJP (errors of 1.2-1.6, a review), and was inf at a constant group with eps =
    tiny (NaN). eps in x's dtype (a NumPy float64 eps must not promote float32); NaN where a
    group's sum overflowed, not silent zeros."""
    xc = _centred(x, axes)
    e = jnp.asarray(eps, x.dtype)
    s = lax.stop_gradient(jnp.maximum(jnp.max(jnp.abs(xc), axis=axes, keepdims=True), jnp.sqrt(e)))
    xs = xc / s
    var = jnp.mean(xs * xs, axis=axes, keepdims=True)
    return jnp.where(jnp.isfinite(s), xs * lax.rsqrt(var + e / (s * s)), jnp.nan)


def _batch_norm(x, gamma, beta, *, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return _normalised(x, eps, axes) * gamma.reshape(shape) + beta.reshape(shape)


def _layer_norm(x, gamma, beta, *, eps=1e-5):
    return _normalised(x, eps, (x.ndim - 1,)) * gamma + beta


def _softmax(x, *, axis=-1):
    return jax.nn.softmax(x, axis=axis)


def _attention(q, k, v, *, causal=False):
    # q scaled first: q k^T may overflow where the scores (q / sqrt(d)) k^T do not
    q = q / jnp.sqrt(jnp.asarray(q.shape[-1], q.dtype))
    s = jnp.einsum("ntd,nsd->nts", q, k, precision=lax.Precision.HIGHEST)
    where = jnp.tril(jnp.ones((q.shape[1], k.shape[1]), bool)) if causal else None
    p = jax.nn.softmax(s, axis=-1, where=where)
    if causal:
        p = jnp.where(where, p, 0)
    return jnp.einsum("nts,nse->nte", p, v, precision=lax.Precision.HIGHEST)


def _embedding(ids, E):
    return jnp.take(E, ids, axis=0)


def _rnn(x, h0, Wx, Wh, b):
    def step(h, xt):
        h = jnp.tanh(_mm(xt, Wx) + _mm(h, Wh) + b)
        return h, h

    _, hs = lax.scan(step, h0, jnp.swapaxes(x, 0, 1))
    return jnp.swapaxes(hs, 0, 1)


def _lstm(x, h0, c0, Wx, Wh, b):
    def step(carry, xt):
        h, c = carry
        i, f, o, g = jnp.split(_mm(xt, Wx) + _mm(h, Wh) + b, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    _, hs = lax.scan(step, (h0, c0), jnp.swapaxes(x, 0, 1))
    return jnp.swapaxes(hs, 0, 1)


#: name -> pure JAX forward function (for jit, jvp, composition)
FORWARD = {
    "dense": _dense, "relu": _relu, "sigmoid": _sigmoid, "reshape": _reshape, "conv2d": _conv2d,
    "max_pool2d": _max_pool2d, "avg_pool2d": _avg_pool2d, "dropout": _dropout,
    "batch_norm": _batch_norm, "layer_norm": _layer_norm, "softmax": _softmax,
    "attention": _attention, "embedding": _embedding, "rnn": _rnn, "lstm": _lstm,
}


# ---------------------------------------------------------------------------------------------
# NumPy-facing pairs


def _differentiable(a) -> bool:
    return jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating)


def vjp_of(fn):
    """``vjp(dy, *primals, **options) -> tuple``: ``jax.vjp`` of ``fn`` with respect to its
    floating primals; ``None`` for the others (integers, booleans)."""

    def vjp(dy, *primals, **options):
        primals = [jnp.asarray(p) for p in primals]
        which = [i for i, p in enumerate(primals) if _differentiable(p)]

        def f(*diff):
            args = list(primals)
            for i, d in zip(which, diff):
                args[i] = d
            return fn(*args, **options)

        y, pullback = jax.vjp(f, *(primals[i] for i in which))
        grads = iter(pullback(jnp.asarray(dy, y.dtype)))
        return tuple(np.asarray(next(grads)) if i in which else None for i in range(len(primals)))

    vjp.__name__ = fn.__name__.lstrip("_") + "_vjp"
    vjp.__doc__ = f"``jax.vjp`` of the JAX ``{fn.__name__.lstrip('_')}``: (d of every primal), None for integer ones."
    return vjp


def _forward(fn):
    def forward(*primals, **options):
        y = fn(*(jnp.asarray(p) for p in primals), **options)
        return y if isinstance(y, jax.core.Tracer) else np.asarray(y)  # traceable: jax_fn= of check_vjp

    forward.__name__ = fn.__name__.lstrip("_")
    forward.__doc__ = f"The JAX twin of ``manual_backprop.layers.{forward.__name__}``, as a NumPy array."
    return forward


dense, dense_vjp = _forward(_dense), vjp_of(_dense)
relu, relu_vjp = _forward(_relu), vjp_of(_relu)
sigmoid, sigmoid_vjp = _forward(_sigmoid), vjp_of(_sigmoid)
reshape, reshape_vjp = _forward(_reshape), vjp_of(_reshape)
conv2d, conv2d_vjp = _forward(_conv2d), vjp_of(_conv2d)
max_pool2d, max_pool2d_vjp = _forward(_max_pool2d), vjp_of(_max_pool2d)
avg_pool2d, avg_pool2d_vjp = _forward(_avg_pool2d), vjp_of(_avg_pool2d)
dropout, dropout_vjp = _forward(_dropout), vjp_of(_dropout)
batch_norm, batch_norm_vjp = _forward(_batch_norm), vjp_of(_batch_norm)
layer_norm, layer_norm_vjp = _forward(_layer_norm), vjp_of(_layer_norm)
softmax, softmax_vjp = _forward(_softmax), vjp_of(_softmax)
attention, attention_vjp = _forward(_attention), vjp_of(_attention)
embedding, embedding_vjp = _forward(_embedding), vjp_of(_embedding)
rnn, rnn_vjp = _forward(_rnn), vjp_of(_rnn)
lstm, lstm_vjp = _forward(_lstm), vjp_of(_lstm)
