"""Every layer of manual_backprop.layers against its JAX twin (jax.vjp) and finite differences,
float64, and its float32 run against the float64 one; tolerances derived in layer_checks.

One table, LAYERS: switching to ``autodiff_check.assert_vjp(layer, layer_vjp, *primals,
jax_fn=twin)`` is a change to ``_check`` alone.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

import autodiff_check.layers as J
import layer_strategies as S
import manual_backprop.layers as L
import running_error as R
from layer_checks import Magnitude, Running, check_layer, check_layer_float32
from running_error import Rounded
from strategies import examples


def _pool_pattern(x, *, size=2, stride=None):
    """Which position of each window holds its maximum (the kink pattern of max pooling),
    computed independently of the layer: np.argmax over a sliding-window view."""
    kh, kw = S._two(size)
    sh, sw = (kh, kw) if stride is None else S._two(stride)
    win = sliding_window_view(x, (kh, kw), axis=(-2, -1))[..., ::sh, ::sw, :, :]
    return np.argmax(win.reshape(win.shape[:-2] + (-1,)), axis=-1)


def _relu_pattern(x):
    return x > 0


def _norm_magnitude(axes):
    """sum|terms| of the normalisation backward, from its equations: with s = 1/sqrt(var + eps),
    xhat = (x - mu) s and dxhat = dy gamma, each entry of dx = s (dxhat - mean dxhat - xhat
    mean(dxhat xhat)) has terms bounded by s max|dxhat| (1 + 1 + max xhat^2), per group.
    dgamma = sum dy xhat and dbeta = sum dy, over every axis but gamma's, cancel as often as dy's
    random signs make them (the thorough profile found dgamma = 0.0044 from terms of size 1):
    their terms are |dy| (2 |xhat| + 2 s max|x|), the last for xhat's own absolute error (x - mu
    loses the digits of mu, then times s), and |dy|."""

    def magnitude(dy, x, gamma, beta, *, eps):
        ax = axes(x)
        g_axis = 1 if ax[0] == 0 else x.ndim - 1
        shape = [1] * x.ndim
        shape[g_axis] = -1
        s = 1 / np.sqrt(x.var(axis=ax, keepdims=True) + eps)
        xhat = (x - x.mean(axis=ax, keepdims=True)) * s
        dxhat = np.abs(dy * gamma.reshape(shape))
        dx = float(np.max(s * dxhat.max(axis=ax, keepdims=True) * (2 + (xhat**2).max(axis=ax, keepdims=True))))
        over = tuple(i for i in range(x.ndim) if i != g_axis)
        terms = np.abs(dy) * (2 * np.abs(xhat) + 2 * s * np.abs(x).max(axis=ax, keepdims=True))
        return [dx, float(terms.sum(axis=over).max()), float(np.abs(dy).sum(axis=over).max())]

    return magnitude


def _softmax_magnitude(dy, x, *, axis):
    """dx_j = y_j (dy_j - sum_k dy_k y_k): terms y_j |dy_j| + y_j sum_k |dy_k| y_k <= 2 max|dy|
    (sum_k y_k = 1, y_j <= 1)."""
    return [2 * float(np.abs(dy).max())]


def _attention_magnitude(dy, q, k, v, *, causal):
    """From attention's backward equations, with P entries in [0, 1] summing to 1 over keys:
    |dP| <= d_v max|dy| max|v| =: m;  dS = P (dP - sum P dP) has sum over keys of |terms| <= 2 m;
    dq = dS k / sqrt(d):  <= 2 m max|k| / sqrt(d);
    dk = dS^T q / sqrt(d): sums over T_q queries, <= 2 m T_q max|q| / sqrt(d);
    dv = P^T dy: <= T_q max|dy|."""
    d, Tq, dv = q.shape[-1], q.shape[1], v.shape[-1]
    m = dv * float(np.abs(dy).max() * np.abs(v).max())
    return [2 * m * float(np.abs(k).max()) / np.sqrt(d), 2 * m * Tq * float(np.abs(q).max()) / np.sqrt(d),
            Tq * float(np.abs(dy).max())]


def _norm_forward_magnitude(axes):
    """sum|terms| of each y = gamma xhat + beta, with xhat's own error as in _norm_magnitude
    (x - mu loses mu's digits, then times s = 1/sqrt(var + eps); the variance's relative error
    is a multiple of |xhat|): |gamma| (|xhat| + s max|x|) + |beta|, per entry, per group."""

    def magnitude(x, gamma, beta, *, eps=1e-5):
        ax = axes(x)
        shape = [1] * x.ndim
        shape[1 if ax[0] == 0 else x.ndim - 1] = -1
        s = 1 / np.sqrt(x.var(axis=ax, keepdims=True) + eps)
        xhat = (x - x.mean(axis=ax, keepdims=True)) * s
        return (np.abs(gamma).reshape(shape) * (np.abs(xhat) + s * np.abs(x).max(axis=ax, keepdims=True))
                + np.abs(beta).reshape(shape))

    return magnitude


def _avg_pool2d_forward_magnitude(x, *, size=2, stride=None):
    """sum|terms| of each window mean: the JAX twin's mean of |x| over the window."""
    return np.asarray(J.avg_pool2d(np.abs(x), size=size, stride=stride))


def _dense_forward_magnitude(x, W):
    """sum|terms| of each y = x W[1:] + W[0]: the same products on absolute values."""
    return np.abs(x) @ np.abs(W[1:]) + np.abs(W[0])


def _conv2d_forward_magnitude(x, W, b, *, stride=1, padding=0):
    """sum|terms| of each output entry: the JAX twin's convolution of |x| by |W|, plus |b|."""
    return np.asarray(J.conv2d(np.abs(x), np.abs(W), np.abs(b), stride=stride, padding=padding))


def _attention_forward_magnitude(q, k, v, *, causal=False):
    """y = P v with P >= 0 summing to 1 over the allowed keys, to first order in u:
    - each score z_j = q.k_j / sqrt(d) - max errs by at most (d + 4) sqrt(d) u max|q| max|k|
      (the dot product's d roundings, the rounded 1/sqrt(d) and its product, the max
      subtracted); an error dz moves y by sum_j P_j (dz_j - sum_i P_i dz_i) v_j, at most
      max|dz| max|v| (a P-weighted covariance);
    - exp, the sum over T_k keys and the division err by (T_k + 2) u relative on each P_j, and
      y's own sum over keys by T_k u sum_j P_j |v_j|: together (2 T_k + 2) u max|v|.
    With n = n_ops (the entries of q, k, v and y, so n >= 2 T_k + 2) and S = max|v| (1 + (d + 4)
    sqrt(d) max|q| max|k| / n), the tolerance 2 n u S holds both, twice over (the float64 side's
    error is negligible)."""
    d = q.shape[-1]
    n = q.size + k.size + v.size + q.shape[0] * q.shape[1] * v.shape[-1]   # n_ops((q, k, v), y)
    qk = float(np.abs(q).max() * np.abs(k).max())
    return float(np.abs(v).max()) * (1 + (d + 4) * np.sqrt(d) * qk / n)


# ---- running error bounds of the layers with saturating units (tests/running_error.py) ----------
# Each evaluates the layer's equations, as its docstring writes them and in the order
# manual_backprop.layers evaluates them, on Rounded values; the returned coefficients C bound
# each gradient entry's rounding error by C u.


def _sigmoid_rounding(dy, x):
    s = R.sigmoid(Rounded.exact(x))
    return [(dy * (s * (1 - s))).c]


def _rnn_forward(x, h0, Wx, Wh, b):
    """h_t = tanh(x_t Wx + h_{t-1} Wh + b) on Rounded values: the list of h_t."""
    h, prev = [], h0
    for t in range(x.shape[1]):
        prev = R.tanh(x[:, t] @ Wx + prev @ Wh + b)
        h.append(prev)
    return h


def _rnn_forward_rounding(x, h0, Wx, Wh, b):
    return R.stack(_rnn_forward(*map(Rounded.exact, (x, h0, Wx, Wh, b))), 1).c


def _rnn_rounding(dy, x, h0, Wx, Wh, b):
    dy, x, h0, Wx, Wh, b = map(Rounded.exact, (dy, x, h0, Wx, Wh, b))
    N, T, D = x.shape
    h = _rnn_forward(x, h0, Wx, Wh, b)
    da, dh = [None] * T, Rounded.exact(np.zeros(h0.shape))
    for t in range(T - 1, -1, -1):
        dh = dh + dy[:, t]
        da[t] = dh * (1 - h[t] * h[t])
        dh = da[t] @ Wh.T
    A = R.stack(da, 1).reshape(N * T, -1)
    hprev = R.stack([h0] + h[:-1], 1).reshape(N * T, -1)
    return [(A @ Wx.T).reshape(N, T, D).c, dh.c, (x.reshape(N * T, D).T @ A).c, (hprev.T @ A).c, A.sum(0).c]


def _lstm_forward(x, h0, c0, Wx, Wh, b):
    """The LSTM's forward on Rounded values: per step the gates (i, f, o, g), c_t (after c0),
    tanh c_t and h_t (after h0)."""
    H = h0.shape[1]
    gates, cs, tcs, hs = [], [c0], [], [h0]
    for t in range(x.shape[1]):
        a = x[:, t] @ Wx + hs[-1] @ Wh + b
        i, f, o, g = (R.sigmoid(a[:, :H]), R.sigmoid(a[:, H:2 * H]), R.sigmoid(a[:, 2 * H:3 * H]),
                      R.tanh(a[:, 3 * H:]))
        gates.append((i, f, o, g))
        cs.append(f * cs[-1] + i * g)
        tcs.append(R.tanh(cs[-1]))
        hs.append(o * tcs[-1])
    return gates, cs, tcs, hs


def _lstm_forward_rounding(x, h0, c0, Wx, Wh, b):
    return R.stack(_lstm_forward(*map(Rounded.exact, (x, h0, c0, Wx, Wh, b)))[3][1:], 1).c


def _lstm_rounding(dy, x, h0, c0, Wx, Wh, b):
    dy, x, h0, c0, Wx, Wh, b = map(Rounded.exact, (dy, x, h0, c0, Wx, Wh, b))
    N, T, D = x.shape
    gates, cs, tcs, hs = _lstm_forward(x, h0, c0, Wx, Wh, b)
    da = [None] * T
    dh, dc = Rounded.exact(np.zeros(h0.shape)), Rounded.exact(np.zeros(c0.shape))
    for t in range(T - 1, -1, -1):
        i, f, o, g = gates[t]
        tc = tcs[t]
        dh = dh + dy[:, t]
        dc = dc + dh * o * (1 - tc * tc)
        da[t] = R.concatenate([dc * g * i * (1 - i), dc * cs[t] * f * (1 - f),
                               dh * tc * o * (1 - o), dc * i * (1 - g * g)], 1)
        dc = dc * f
        dh = da[t] @ Wh.T
    A = R.stack(da, 1).reshape(N * T, -1)
    hprev = R.stack(hs[:-1], 1).reshape(N * T, -1)
    return [(A @ Wx.T).reshape(N, T, D).c, dh.c, dc.c, (x.reshape(N * T, D).T @ A).c, (hprev.T @ A).c, A.sum(0).c]


def _batch_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _last_axis(x):
    return (x.ndim - 1,)


# name, strategy, kinks (None where the layer is smooth), bound (None: the default, layer_checks)
LAYERS = [
    ("dense", S.dense(), None, Magnitude(forward=_dense_forward_magnitude)),
    ("conv2d", S.conv2d(), None, Magnitude(forward=_conv2d_forward_magnitude)),
    ("max_pool2d", S.pool(), _pool_pattern, None),
    ("avg_pool2d", S.pool(), None, Magnitude(forward=_avg_pool2d_forward_magnitude)),
    ("dropout", S.dropout(), None, None),
    ("batch_norm", S.batch_norm(), None, Magnitude(_norm_magnitude(_batch_axes), forward=_norm_forward_magnitude(_batch_axes))),
    ("layer_norm", S.layer_norm(), None, Magnitude(_norm_magnitude(_last_axis), forward=_norm_forward_magnitude(_last_axis))),
    ("softmax", S.softmax(), None, Magnitude(_softmax_magnitude)),
    ("attention", S.attention(), None, Magnitude(_attention_magnitude, forward=_attention_forward_magnitude)),
    ("embedding", S.embedding(), None, None),
    ("rnn", S.rnn(), None, Running(_rnn_rounding, forward=_rnn_forward_rounding)),
    ("lstm", S.lstm(), None, Running(_lstm_rounding, forward=_lstm_forward_rounding)),
    ("relu", S.relu(), _relu_pattern, None),
    ("sigmoid", S.sigmoid(), None, Running(_sigmoid_rounding)),
    ("reshape", S.reshape(), None, None),
]
NAMES = [name for name, *_ in LAYERS]


def _check(name, primals, options, kinks, bound):
    """The one call a layer's check is: hand layer and VJP against the JAX twin and FD."""
    return check_layer(getattr(L, name), getattr(L, name + "_vjp"), *primals,
                       jax_fn=J.FORWARD[name], kinks=kinks, bound=bound, **options)


@pytest.mark.parametrize("name, strategy, kinks, bound", LAYERS, ids=NAMES)
def test_vjp_float64_matches_jax_and_finite_differences(name, strategy, kinks, bound):
    @settings(max_examples=examples(4))
    @given(strategy)
    def prop(case):
        primals, options = case
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            failures = _check(name, primals, options, kinks, bound)
        assert not failures, f"{name} {options}: " + "; ".join(failures)

    prop()


@pytest.mark.parametrize("name, strategy, kinks, bound", LAYERS, ids=NAMES)
def test_float32_matches_float64(name, strategy, kinks, bound):
    @settings(max_examples=examples(3))
    @given(strategy)
    def prop(case):
        primals, options = case
        failures = check_layer_float32(getattr(L, name), getattr(L, name + "_vjp"), *primals,
                                       jax_fn=J.FORWARD[name], bound=bound, **options)
        assert not failures, f"{name} {options}: " + "; ".join(failures)

    prop()


def test_layer_names_match_the_twin():
    public = {n for n in L.__all__}
    assert public == {n for n in J.__all__ if n not in ("FORWARD", "vjp_of")}
    assert {n for n in public if not n.endswith("_vjp")} == set(NAMES) == set(J.FORWARD)


# ---- conventions -------------------------------------------------------------------------------


def _f32(a):
    return np.asarray(a, np.float32).astype(np.float64)   # as check_layer_float32 rounds primals


def _cancelling_attention():
    """The draw the thorough profile found (2026-12-01: one query, values of either sign, y =
    -0.0026 from terms up to 2.1), with the last value moved so that y = 1e-6."""
    q = np.array([[[0.69116838, 1.64323629, 0.66087415, -2.60631446, 1.81071173]]])
    k = np.array([[[0.44637457, -0.53695324, 0.5811181, 0.3645724, 0.2941325],
                   [0.02842224, 0.54671299, -0.73645409, -0.16290995, -0.48211931],
                   [0.59884621, 0.03972211, -0.29245675, -0.78190846, -0.25719224],
                   [0.00814218, -0.27560291, 1.29406381, 1.00672432, -2.71116248],
                   [-1.88901325, -0.17477209, -0.42219041, 0.213643, 0.21732193]]])
    v = np.array([[[2.11783876], [-1.11202076], [-0.37760501], [2.04277161], [0.646703]]])
    S = (_f32(q) @ _f32(k).transpose(0, 2, 1))[0, 0] / np.sqrt(q.shape[-1])
    P = np.exp(S - S.max()) / np.exp(S - S.max()).sum()
    v[0, -1, 0] = (1e-6 - P[:-1] @ v[0, :-1, 0]) / P[-1]
    return ("attention", (q, k, v), {"causal": False}, Magnitude(_attention_magnitude),
            Magnitude(_attention_magnitude, forward=_attention_forward_magnitude))


def _cancelling_dense():
    """y = 1e-4 from terms near 1: W[0] chosen to cancel x W[1:]."""
    x, W = _f32([[0.7, -1.3, 0.4]]), _f32([[0.0], [1.1], [0.6], [0.3]])
    W[0] = _f32(1e-4 - (x @ W[1:])[0, 0])
    return "dense", (x, W), {}, None, Magnitude(forward=_dense_forward_magnitude)


def _cancelling_rnn():
    """x Wx + h0 Wh + b = 1e-4 from terms near 1 (an independent review's input)."""
    x, h0, Wx, Wh = _f32([[[0.7]]]), _f32([[0.9]]), _f32([[1.3]]), _f32([[0.8]])
    primals = (x, h0, Wx, Wh, _f32(1e-4 - x[0, 0] @ Wx - h0 @ Wh)[0])
    return "rnn", primals, {}, Running(_rnn_rounding), Running(_rnn_rounding, forward=_rnn_forward_rounding)


def _cancelling_lstm():
    """c_1 = f c0 + i g = 1e-4 i from terms near 0.4: the cell gate's bias chosen for it."""
    x, h0, c0 = _f32([[[0.7]]]), _f32([[0.2]]), _f32([[0.9]])
    Wx, Wh = _f32([[0.5, -0.4, 0.3, 1.2]]), _f32([[0.1, 0.2, -0.3, 0.4]])
    a = x[0, 0] * Wx[0] + h0[0, 0] * Wh[0]
    i, f = 1 / (1 + np.exp(-a[:2]))
    b = _f32([0.0, 0.0, 0.0, np.arctanh((1e-4 * i - f * c0[0, 0]) / i) - a[3]])
    return ("lstm", (x, h0, c0, Wx, Wh, b), {}, Running(_lstm_rounding),
            Running(_lstm_rounding, forward=_lstm_forward_rounding))


def _cancelling_layer_norm():
    """beta = 1e-4 - gamma xhat: y = 1e-4 from terms near 1 (an independent review's input)."""
    x, gamma = _f32([[0.3, 1.7, -0.9]]), _f32([1.3, -0.7, 1.1])
    xhat = (x - x.mean()) / np.sqrt(x.var() + 1e-5)
    backward = _norm_magnitude(_last_axis)
    return ("layer_norm", (x, gamma, _f32(1e-4 - gamma * xhat[0])), {"eps": 1e-5}, Magnitude(backward),
            Magnitude(backward, forward=_norm_forward_magnitude(_last_axis)))


def _cancelling_avg_pool2d():
    """One 3 x 3 window whose mean is 1.1e-5 from values up to 1 (the review's input)."""
    x = _f32(np.random.default_rng(3).uniform(-1, 1, (1, 3, 3)))
    x[0, 2, 2] = _f32(9 * 1.1e-5 - (x.sum() - x[0, 2, 2]))
    return "avg_pool2d", (x,), {"size": 3}, None, Magnitude(forward=_avg_pool2d_forward_magnitude)


CANCELLING = [_cancelling_attention, _cancelling_dense, _cancelling_rnn, _cancelling_lstm, _cancelling_layer_norm,
              _cancelling_avg_pool2d]


@pytest.mark.parametrize("case", CANCELLING, ids=lambda c: c.__name__.removeprefix("_cancelling_"))
def test_float32_forward_where_an_output_or_a_preactivation_cancels(case):
    """An output (attention, dense, layer_norm's beta against gamma xhat, avg_pool2d's window
    mean), a pre-activation (rnn) or a cell state (lstm) of 1e-4 or less from terms near 1: its
    float32 rounding is far above a forward tolerance scaled by max|y| and within the derived
    bound; a float32 path that loses precision (inputs rounded to 2^-8) is still caught."""
    name, primals, options, default, derived = case()
    f, vjp = getattr(L, name), getattr(L, name + "_vjp")
    twin = J.FORWARD[name]
    failures = check_layer_float32(f, vjp, *primals, jax_fn=twin, bound=default, **options)
    assert [m.split(":")[0] for m in failures] == ["forward_float32"]
    assert check_layer_float32(f, vjp, *primals, jax_fn=twin, bound=derived, **options) == []

    def coarse(*p, **o):
        return f(*(np.round(a * 256) / 256 for a in p), **o) if p[0].dtype == np.float32 else f(*p, **o)

    failures = check_layer_float32(coarse, vjp, *primals, jax_fn=twin, bound=derived, **options)
    assert [m.split(":")[0] for m in failures] == ["forward_float32"]


def test_the_twins_conv2d_vjp_survives_a_shape_that_aborts_xla():
    """jax/jaxlib 0.10.2 abort the process in the VJP of conv_general_dilated with padding= for
    this shape (an XLA check failure; the thorough profile drew it, 2026-12-01). The twin pads
    and crops itself: in a subprocess (an abort would end this one) its VJP runs, and here it
    agrees with the hand VJP and with finite differences."""
    primals = (np.random.default_rng(0).standard_normal((1, 1, 4, 8)),
               np.random.default_rng(1).standard_normal((4, 1, 2, 4)), np.zeros(4))
    options = {"stride": (2, 3), "padding": (1, 2)}
    code = ("import numpy as np, jax; jax.config.update('jax_enable_x64', True); "
            "from autodiff_check.layers import conv2d_vjp; "
            "conv2d_vjp(np.ones((1, 4, 3, 3)), np.ones((1, 1, 4, 8)), np.ones((4, 1, 2, 4)), np.ones(4), "
            "stride=(2, 3), padding=(1, 2)); print('survived')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "survived" in proc.stdout, proc.stderr[-2000:]
    assert _check("conv2d", primals, options, None, None) == []


def test_conv2d_is_cross_correlation_like_the_definition():
    # one channel, one 2x2 kernel, no flip: y[i, j] = sum_pq W[p, q] x[i + p, j + q]
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    W = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    y = L.conv2d(x, W, np.array([0.5]))
    assert np.array_equal(y[0, 0], [[0 + 2 + 9 + 16 + 0.5, 1 + 4 + 12 + 20 + 0.5], [3 + 8 + 18 + 28 + 0.5, 4 + 10 + 21 + 32 + 0.5]])


def test_causal_attention_ignores_future_keys():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 4, 3)) for _ in range(3))
    y = L.attention(q, k, v, causal=True)
    k2, v2 = k.copy(), v.copy()
    k2[:, 2:] += 100.0
    v2[:, 2:] -= 7.0
    assert np.array_equal(L.attention(q, k2, v2, causal=True)[:, :2], y[:, :2])


def test_softmax_and_attention_are_stable_at_huge_logits():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = L.softmax(np.array([[1000.0, -1000.0, 0.0]]))
        assert np.allclose(y, [[1.0, 0.0, 0.0]])
        q = np.full((1, 3, 2), 300.0)
        out = L.attention(q, q, np.ones((1, 3, 1)), causal=True)
        assert np.all(np.isfinite(out)) and np.allclose(out, 1.0)
        assert np.all(np.isfinite(L.attention_vjp(np.ones((1, 3, 1)), q, q, np.ones((1, 3, 1)), causal=True)[0]))


# ---- validation --------------------------------------------------------------------------------

rng0 = np.random.default_rng(0)
x4 = rng0.standard_normal((2, 3, 5, 5))
W4 = rng0.standard_normal((4, 3, 3, 3))
b4 = np.zeros(4)

BAD = [
    (lambda: L.dense(np.ones((2, 3)), np.ones((3, 2))), ValueError, "W must have n_in \\+ 1 = 4 rows"),
    (lambda: L.dense(np.ones((2, 3), np.float32), np.ones((4, 2))), TypeError, "W is float64 but x is float32"),
    (lambda: L.dense(np.ones((2, 3), int), np.ones((4, 2))), TypeError, "x must be a float32 or float64"),
    (lambda: L.conv2d(x4, W4, b4, stride=0), ValueError, "stride must be >= 1"),
    (lambda: L.conv2d(x4, W4, b4, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: L.conv2d(x4, W4, b4, stride=(1, 2, 3)), TypeError, "stride must be an int or a pair"),
    (lambda: L.conv2d(x4, W4, b4, stride=1.5), TypeError, "stride must be an int or a pair"),
    (lambda: L.conv2d(x4, W4[:, :2], b4), ValueError, "W has C_in = 2 but x has 3 channels"),
    (lambda: L.conv2d(x4, W4, np.zeros(3)), ValueError, "b must have shape \\(4,\\)"),
    (lambda: L.conv2d(x4[:, :, :2, :2], W4, b4), ValueError, "kernel does not fit"),
    (lambda: L.conv2d(x4[0], W4, b4), ValueError, "x must be 4-D"),
    (lambda: L.conv2d_vjp(np.ones((2, 4, 2, 2)), x4, W4, b4), ValueError, "dy must have the output's shape \\(2, 4, 3, 3\\)"),
    (lambda: L.dense_vjp(np.ones((2, 4)).astype(">f8"), np.ones((2, 3)), np.ones((4, 4))), TypeError,
     "dy must have the output's dtype float64; got >f8 \\(non-native byte order: dy.astype\\(np.float64\\) converts it\\)"),
    (lambda: L.max_pool2d(x4, size=6), ValueError, "window does not fit"),
    (lambda: L.avg_pool2d(x4, size=2, stride=0), ValueError, "stride must be >= 1"),
    (lambda: L.dropout(np.ones(3), np.ones(3, bool), rate=1.0), ValueError, "rate must be a number in \\[0, 1\\)"),
    (lambda: L.dropout(np.ones(3), np.ones(3, bool), rate=-0.1), ValueError, "rate must be a number in \\[0, 1\\)"),
    (lambda: L.dropout(np.ones(3), np.ones(4, bool), rate=0.5), ValueError, "mask must have shape \\(3,\\)"),
    (lambda: L.dropout(np.ones(3), np.ones(3), rate=0.5), TypeError, "mask must be a boolean array"),
    (lambda: L.batch_norm(np.ones((2, 3)), np.ones(2), np.ones(3)), ValueError, "gamma must have shape \\(3,\\)"),
    (lambda: L.batch_norm(np.ones((2, 3)), np.ones(3), np.ones(3), eps=0), ValueError, "eps must be a finite number > 0"),
    # an int beyond float64's range (a review: a raw TypeError from np.isfinite of an object), a bool
    (lambda: L.layer_norm(np.ones((2, 3)), np.ones(3), np.ones(3), eps=10**400), ValueError, "layer_norm: eps must be a finite number > 0; got 1000"),
    (lambda: L.layer_norm(np.ones((2, 3)), np.ones(3), np.ones(3), eps=True), ValueError, "eps must be a finite number > 0; got True"),
    (lambda: L.layer_norm(np.ones((2, 3)), np.ones(3), np.ones(2)), ValueError, "beta must have shape \\(3,\\)"),
    (lambda: L.softmax(np.ones((2, 3)), axis=2), ValueError, "axis 2 is out of range"),
    (lambda: L.attention(np.ones((1, 3, 2)), np.ones((1, 4, 2)), np.ones((1, 4, 1)), causal=True), ValueError, "causal attention needs T_q == T_k"),
    (lambda: L.attention(np.ones((1, 3, 2)), np.ones((1, 4, 3)), np.ones((1, 4, 1))), ValueError, "k must have shape \\(1, 4, 2\\)"),
    (lambda: L.embedding(np.array([[0, 3]]), np.ones((3, 2))), ValueError, "ids must lie in \\[0, V\\) = \\[0, 3\\)"),
    (lambda: L.embedding(np.array([[0.0, 1.0]]), np.ones((3, 2))), TypeError, "ids must be an integer array"),
    (lambda: L.rnn(np.ones((1, 2, 3)), np.ones((1, 4)), np.ones((3, 4)), np.ones((4, 5)), np.ones(4)), ValueError,
     "Wh must have shape \\(4, 4\\) \\(H, H\\) with H = 4"),                     # used to read (H, 1H)
    (lambda: L.lstm(np.ones((1, 2, 3)), np.ones((1, 4)), np.ones((1, 4)), np.ones((3, 15)), np.ones((4, 16)), np.ones(16)), ValueError, "Wx must have shape \\(D, 4H\\)"),
    (lambda: L.lstm(np.ones((1, 2, 3)), np.ones((1, 4)), np.ones((2, 4)), np.ones((3, 16)), np.ones((4, 16)), np.ones(16)), ValueError, "c0 must have shape \\(1, 4\\)"),
    (lambda: L.reshape(np.ones((2, 6)), shape=(4,)), ValueError, "cannot reshape examples of shape \\(6,\\) to \\(4,\\)"),
]


@pytest.mark.parametrize("call, error, message", BAD, ids=[m[:40] for _, _, m in BAD])
def test_bad_arguments_get_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_the_jax_norms_normalise_a_group_of_equal_values_to_beta():
    """The oracle must not share the flaw the reference had: jnp.var of float32 10000.1 over 100
    values is not 0 (its mean's rounding, squared), and y came out up to 1.05 from beta."""
    for layer, x in ((J.batch_norm, np.full((100, 3), 10000.1, np.float32)),
                     (J.layer_norm, np.full((3, 100), 10000.1, np.float32))):
        D = x.shape[1]
        gamma, beta = np.linspace(0.5, 2, D).astype(np.float32), np.arange(D).astype(np.float32)
        np.testing.assert_array_equal(layer(x, gamma, beta), np.broadcast_to(beta, x.shape))


def test_the_jax_norms_normalise_a_spread_of_a_few_ulps_of_the_mean():
    """float32 3e4 + 0.01 N(0, 1): the twin added the deviations' mean back to the rounded mean,
    which rounded it away, and was off by 0.08 like the reference (which its tests held to it).
    Against the exact xhat, the bound of tests/test_layers_fast.py's test of the reference."""
    from test_layers_fast import normalised_exactly

    D, u, eps = 1000, 2.0**-24, 1e-7
    x = (3e4 + 1e-2 * np.random.default_rng(7).standard_normal(D)).astype(np.float32)
    ref = normalised_exactly(x, eps)
    x64 = x.astype(np.float64)
    s = 1 / np.sqrt(float(np.mean((x64 - x64.mean()) ** 2)) + eps)
    tol = 2 * u * (3 * s * np.abs(x64 - x64.mean()).max() + (D / 2 + 3) * np.abs(ref))
    ones, zeros = np.ones(D, np.float32), np.zeros(D, np.float32)
    for y in (J.layer_norm(x[None], ones, zeros, eps=eps)[0], J.batch_norm(x[:, None], ones[:1], zeros[:1], eps=eps)[:, 0]):
        assert np.all(np.abs(np.asarray(y) - ref) <= tol)


def test_the_twin_keeps_float32_and_does_not_overflow_where_the_exact_result_fits():
    """A NumPy float64 rate or eps made the twin's float32 outputs float64 (JAX types NumPy
    scalars strongly); a variance beyond float32 normalised its group to zeros (rsqrt(inf) = 0);
    since the twin divides by the group's largest deviation first it gets the exact +-1 (the
    reference refuses the overflowing variance); a window of 3e38 summed before dividing, and
    q k^T = 4e38 before its 1/sqrt(d), overflowed where the exact results are 3e38 and finite
    scores."""
    f = np.float32
    x, ones, zeros = np.ones((2, 3), f), np.ones(3, f), np.zeros(3, f)
    assert J.dropout(x, np.ones((2, 3), bool), rate=np.float64(0.3)).dtype == f
    assert J.layer_norm(x, ones, zeros, eps=np.float64(1e-5)).dtype == f
    assert J.batch_norm(x, ones, zeros, eps=np.float64(1e-5)).dtype == f
    wide = np.array([[1, 2], [3e19, -3e19]], f)
    np.testing.assert_array_equal(J.layer_norm(wide, ones[:2], zeros[:2])[1], [1, -1])
    assert J.avg_pool2d(np.full((1, 1, 2, 2), 3e38, f))[0, 0, 0, 0] == f(3e38)
    q, k, v = np.full((1, 1, 4), 1e19, f), np.full((1, 2, 4), 1e19, f), np.ones((1, 2, 1), f)
    k[0, 1] *= -1                        # scores 2e38 and -2e38: all weight on key 0
    assert J.attention(q, k, v)[0, 0, 0] == 1


def test_dropout_takes_a_numpy_integer_rate():
    """rate=np.int64(0) was refused as 'not a number in [0, 1)' where a Python 0 was taken."""
    x = np.arange(3.0)
    np.testing.assert_array_equal(L.dropout(x, np.ones(3, bool), rate=np.int64(0)), x)


@pytest.mark.parametrize("rate", [np.float16(0.3), np.float32(0.1), 0.3], ids=["float16", "float32", "python"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_twins_dropout_keeps_the_rates_value_whatever_its_dtype(rate, dtype):
    """The twin's side of test_layers_fast's test of the scale (a review, 2026-12-05): its keep,
    1 - rate, was computed in a NumPy float16 rate's own precision (a float64 layer 3.5e-4 off).
    Now 1 - r of r's exact value rounded to x's dtype, then x / keep: two roundings."""
    exact = 1 / (1 - float(rate))                   # 1 - r is exact in float64 (r has at most 24 bits)
    y = np.asarray(J.dropout(np.ones((1, 3), dtype), np.array([[True, False, True]]), rate=rate))
    assert y.dtype == dtype and y[0, 1] == 0
    assert abs(float(y[0, 0]) - exact) <= 2 * (np.finfo(dtype).eps / 2) * exact, (float(y[0, 0]), exact)


@pytest.mark.parametrize("name, strategy", [(n, s) for n, s, *_ in LAYERS], ids=NAMES)
def test_a_nan_or_inf_argument_propagates_without_a_warning(name, strategy):
    """The module's convention: a NaN or inf in x, a parameter or dy gives NaN or inf where it
    reaches, silently, as NumPy's products do: a NaN placed where a finite change moves some
    output makes some output NaN (an inf may saturate, tanh(inf) = 1). An inf in W made conv2d at stride 2, dense_vjp,
    attention, the norms' VJPs, avg_pool2d, embedding_vjp, rnn and lstm warn 'invalid value'
    (0 * inf, inf - inf) where relu, softmax and conv2d at stride 1 did not (a review,
    2026-12-02). A layer may instead refuse the argument with a ValueError that says so."""
    @settings(max_examples=examples(20))
    @given(strategy, st.integers(0, 2**31 - 1), st.sampled_from([np.nan, np.inf, -np.inf]))
    def prop(case, where, bad):
        primals, options = case
        fwd, vjp = getattr(L, name), getattr(L, name + "_vjp")
        dy = np.ones_like(fwd(*primals, **options))
        args = [dy, *primals]
        floating = [i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f"]
        i = floating[where % len(floating)]
        args[i] = np.array(args[i], dtype=np.asarray(args[i]).dtype)   # a copy, the strategy's arrays untouched
        k = (where // len(floating)) % args[i].size
        moved = list(args)
        moved[i] = args[i].copy()
        moved[i].flat[k] += 1 + abs(moved[i].flat[k])                   # a finite change of the same entry

        def outputs(a):
            return [o for o in [fwd(*a[1:], **options), *vjp(*a, **options)] if o is not None]

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            before = outputs(args)
            args[i].flat[k] = bad
            try:
                got = outputs(args)
            except ValueError as e:   # a refusal must name the non-finite value or an overflow
                assert re.search(r"nan|inf|overflow|finite", str(e), re.I), str(e)
                return
            reaches = any(not np.array_equal(a, b) for a, b in zip(before, outputs(moved)))
        if np.isnan(bad) and reaches:   # a NaN shows in some output its entry moves (an inf may saturate)
            assert any(np.isnan(o).any() for o in got), (name, i, k)

    prop()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_vjp_keeps_its_relative_accuracy_where_sigma_rounds_to_1(dtype):
    """dy y (1 - y) returned 0 at x = 17 in float32 (sigma'(17) = 4.1e-8) and at x = 40 in
    float64, where 1 - y cancels; sigma(x) sigma(-x) does not. sigma'(x) = e^{-|x|} / (1 +
    e^{-|x|})^2 is even; here in Python floats (float64, a few u64 from exact). Bound: each
    sigma is exp (NumPy's, within 4 ulp), + 1 and 1 / (.) (one rounding each): 6 u; two of them
    and their product 13 u; 16 u of the dtype, plus the reference's own 8 u64."""
    u = np.finfo(dtype).eps / 2
    xs = np.array([-100, -40, -17, -10, -1, 0, 1, 10, 17, 40, 100], dtype)
    (dx,) = L.sigmoid_vjp(np.ones_like(xs), xs)
    exact = np.array([math.exp(-abs(float(x))) / (1 + math.exp(-abs(float(x)))) ** 2 for x in xs])
    tiny = np.finfo(dtype).tiny     # sigma below the smallest normal is 0 (x = -100 in float32; sigmoid's docstring)
    assert np.all(np.abs(dx - exact) <= (16 * u + 8 * 2.0**-53) * exact + tiny)


def test_conv2d_takes_a_stride_past_its_input():
    """stride=2**62 made as_strided overflow a C long (OverflowError from deep inside, a review,
    2026-12-02); past the padded input a stride leaves one window, the same as stride = H."""
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 2, 2)), rng.standard_normal(2)
    for huge, same in ((2**62, (7, 6)), ((2**62, 4), (7, 4)), ((5, 2**40), (5, 6))):   # padded input 7 x 6
        y = L.conv2d(x, W, b, stride=huge, padding=1)
        np.testing.assert_array_equal(y, L.conv2d(x, W, b, stride=same, padding=1))
        dy = rng.standard_normal(y.shape)
        for g, ref in zip(L.conv2d_vjp(dy, x, W, b, stride=huge, padding=1),
                          L.conv2d_vjp(dy, x, W, b, stride=same, padding=1)):
            np.testing.assert_array_equal(g, ref)


def _sech2(a: float) -> float:
    """tanh'(a) = 4 e / (1 + e)^2, e = exp(-2|a|), in Python floats (a few u64 from exact)."""
    e = math.exp(-2 * abs(a))
    return 4 * e / (1 + e) ** 2


def _dsigma(a: float) -> float:
    """sigma'(a) = e / (1 + e)^2, e = exp(-|a|), in Python floats."""
    e = math.exp(-abs(a))
    return e / (1 + e) ** 2


@pytest.mark.parametrize("dtype, a", [(np.float32, 9.0), (np.float32, 12.0), (np.float32, 17.0), (np.float64, 20.0),
                                      (np.float64, 40.0), (np.float32, 0.5)])
def test_recurrent_units_keep_their_relative_accuracy_at_saturation(dtype, a):
    """rnn and lstm took tanh' and sigma' from the rounded h and gates, 1 - h^2 and i (1 - i),
    which cancel where they round to 1 (a review, 2026-12-02): float32 rnn db twice the true
    value at a = 9 and 0 at a = 12, every lstm gate's db 0 at a = 17, float64 0 at 20. One step
    from h0 = c0 = 0 with pre-activations set by b, checked against the formulas in Python
    floats. Bound: exp within 4 ulp and each later operation one rounding: tanh' and sigma' within
    8 and 13 u, the lstm's chain (c = i g, tanh'(c), four products) within 32 u; 64 u, plus 16 u64
    for the reference's own rounding."""
    tol = lambda exact: (64 * np.finfo(dtype).eps / 2 + 16 * 2.0**-53) * np.abs(exact)  # noqa: E731
    x, one = np.ones((1, 1, 1), dtype), np.ones((1, 1), dtype)
    (*_, db) = L.rnn_vjp(np.ones((1, 1, 3), dtype), x, np.zeros((1, 3), dtype), np.zeros((1, 3), dtype),
                         np.zeros((3, 3), dtype), np.array([a, -a, a / 2], dtype))
    exact = np.array([_sech2(a), _sech2(-a), _sech2(a / 2)])
    assert np.all(np.abs(db - exact) <= tol(exact)), (db, exact)
    b = np.array([a, a, a, a], dtype)                       # gates i, f, o, g
    (*_, db) = L.lstm_vjp(one[:, None], x, 0 * one, 0 * one, np.zeros((1, 4), dtype), np.zeros((1, 4), dtype), b)
    i = o = 1 / (1 + math.exp(-a))
    g = math.tanh(a)
    c = i * g
    dc = o * _sech2(c)
    exact = np.array([dc * g * _dsigma(a), 0.0, math.tanh(c) * _dsigma(a), dc * i * _sech2(a)])   # df: c0 = 0
    assert np.all(np.abs(db - exact) <= tol(exact)), (db, exact)


def test_causal_attention_keeps_a_nan_query_to_the_keys_it_sees():
    """A NaN in query 0, which sees key 0 only, made dv and dk NaN for every key (a review,
    2026-12-02): the masked entries of its P row came out 0 / NaN, not the 0 the docstring
    promises. dv of the other keys, and every other query's row of y and dq, are those of the
    same call with query 0 finite."""
    rng = np.random.default_rng(0)
    q, k, v, dy = (rng.standard_normal((1, 3, 2)) for _ in range(4))
    bad = q.copy()
    bad[0, 0, 1] = np.nan
    y, y_ok = L.attention(bad, k, v, causal=True), L.attention(q, k, v, causal=True)
    (dq, _, dv), (dq_ok, _, dv_ok) = (L.attention_vjp(dy, w, k, v, causal=True) for w in (bad, q))
    assert np.isnan(y[0, 0]).all() and np.isnan(dv[0, 0]).all()
    np.testing.assert_array_equal(y[0, 1:], y_ok[0, 1:])
    np.testing.assert_array_equal(dq[0, 1:], dq_ok[0, 1:])
    np.testing.assert_array_equal(dv[0, 1:], dv_ok[0, 1:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_norms_refuse_a_subnormal_eps(dtype):
    """With a subnormal eps the scale is var's, whose squares of a row ~1e-22 (float32) or
    ~1e-161 (float64) are subnormal and lose their bits: y 4.5 % and 2.5 % off (a review,
    2026-12-02). From finfo.tiny up eps decides there; below it, a ValueError."""
    tiny = np.finfo(dtype).tiny
    x = (np.array([[1.0, -2.0, 3.0, 0.5]]) * (1e-22 if dtype == np.float32 else 1e-161)).astype(dtype)
    ones, zeros = np.ones(4, dtype), np.zeros(4, dtype)
    for layer in (L.layer_norm, L.batch_norm):
        xs = x if layer is L.layer_norm else x.T
        with pytest.raises(ValueError, match="positive normal"):
            layer(xs, ones[:xs.shape[1]], zeros[:xs.shape[1]], eps=float(tiny) / 4)
        y = layer(xs, ones[:xs.shape[1]], zeros[:xs.shape[1]], eps=float(tiny))
        assert np.all(np.isfinite(y))


@pytest.mark.parametrize("dtype, scale", [(np.float64, 1e105), (np.float64, 1e150), (np.float32, 1e14), (np.float32, 1e18)])
def test_the_twins_norm_vjps_hold_at_large_inputs(dtype, scale):
    """The twin's layer_norm and batch_norm VJPs were 1.2-1.6 off (normwise) for |x| above
    ~1e103 in float64 and ~1e13 in float32 (a review, 2026-12-02): autodiff of rsqrt(var + eps)
    forms (var + eps)^(-3/2), which underflowed to 0 and dropped the variance's path. Reference:
    scale invariance, dx(s x, eps) = dx(x, eps / s^2) / s, the NumPy layer at unit scale in
    float64. Both are a few dozen roundings of terms the size of dx: within 64 u normwise."""
    rng = np.random.default_rng(0)
    x, g, b, dy = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal((3, 4))
    u = np.finfo(dtype).eps / 2
    for twin, ref_vjp, xs in ((J.layer_norm_vjp, L.layer_norm_vjp, x), (J.batch_norm_vjp, L.batch_norm_vjp, x.T)):
        ref = ref_vjp(dy if xs is x else dy.T, xs, g[:xs.shape[1]], b[:xs.shape[1]], eps=1e-5 / scale**2)[0] / scale
        got = np.asarray(twin((dy if xs is x else dy.T).astype(dtype), (xs * scale).astype(dtype),
                              g[:xs.shape[1]].astype(dtype), b[:xs.shape[1]].astype(dtype), eps=1e-5)[0], np.float64)
        assert np.linalg.norm(got - ref) <= 64 * u * np.linalg.norm(ref), (np.linalg.norm(got - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_recurrent_layers_warn_only_where_something_overflows(dtype):
    """Two warnings 8ccc523 added (a review, 2026-12-02): tanh' from a finite pre-activation
    beyond max / 2 formed -2|a| = -inf with an overflow warning where tanh' is exactly 0 (the
    forward was silent); and a_t summed as x Wx + (h Wh + b) overflowed where the sum fits
    (-1e308 + 1e308 + 1e308 in float64); a_t is now (x Wx + b) + h Wh, the biases added to
    every step's input projection in one pass. Neither warns (warnings are errors here)."""
    big = np.finfo(dtype).max / 1.5
    x, one = np.ones((1, 1, 1), dtype), np.ones((1, 1), dtype)
    b = np.array([big, -1], dtype)
    (*_, db) = L.rnn_vjp(np.ones((1, 1, 2), dtype), x, np.zeros((1, 2), dtype), np.zeros((1, 2), dtype),
                         np.zeros((2, 2), dtype), b)
    assert db[0] == 0 and np.isfinite(db[1])
    L.lstm_vjp(np.ones((1, 1, 1), dtype), x, one, np.full((1, 1), big, dtype), np.zeros((1, 4), dtype),
               np.zeros((1, 4), dtype), np.zeros(4, dtype))
    m = np.finfo(dtype).max / 2
    h = L.rnn(x, one, np.full((1, 1), -m, dtype), np.full((1, 1), m, dtype), np.full(1, m, dtype))
    assert h[0, 0, 0] == 1
    L.lstm(x, one, one, np.full((1, 4), -m, dtype), np.full((1, 4), m, dtype), np.full(4, m, dtype))


def _products(jaxpr):
    """Every matrix product and convolution of a jaxpr, scan and jit bodies included."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
            yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _products(inner)


def test_the_twins_products_ask_for_full_precision_forward_and_back():
    """JAX's default precision for float32 products on recent GPUs is TF32 (10-bit mantissas),
    which would make a float32 twin a loose oracle there (a review, helper-102; this machine's
    CPU computes them in full either way, so what is checked is what the twin asks for): every
    product and convolution of every twin, and of their pullbacks, asks for HIGHEST."""
    import jax
    from jax import lax

    from autodiff_check import model as twin_model

    rng = np.random.default_rng(0)
    f = np.float32
    cases = {"dense": (rng.normal(size=(2, 3)), rng.normal(size=(4, 5))),
             "conv2d": (rng.normal(size=(1, 2, 5, 5)), rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3)),
             "attention": (rng.normal(size=(1, 3, 4)), rng.normal(size=(1, 2, 4)), rng.normal(size=(1, 2, 5))),
             "rnn": (rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5)), rng.normal(size=(4, 5)),
                     rng.normal(size=(5, 5)), rng.normal(size=5)),
             "lstm": (rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5)), rng.normal(size=(2, 5)),
                      rng.normal(size=(4, 20)), rng.normal(size=(5, 20)), rng.normal(size=20))}
    params = [rng.normal(size=(4, 3)).astype(f), rng.normal(size=(4, 2)).astype(f)]
    x = rng.normal(size=(2, 3)).astype(f)
    fns = {name: (J.FORWARD[name], [a.astype(f) for a in args]) for name, args in cases.items()}
    fns["network"] = (lambda *p: twin_model.logits(list(p), x), params)
    for name, (fn, args) in fns.items():
        y = fn(*args)
        jaxpr = jax.make_jaxpr(lambda *a: jax.vjp(fn, *a)[1](y))(*args).jaxpr
        products = list(_products(jaxpr))
        assert len(products) >= 2, (name, jaxpr)   # the forward's and the pullback's
        for eqn in products:
            precision = eqn.params["precision"]
            assert precision is not None and set(precision) == {lax.Precision.HIGHEST}, (name, eqn)
