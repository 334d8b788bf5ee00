"""Negative controls: the classic wrong derivations of each layer, each caught by the very checks
that pass the right ones (tests/layer_checks.py: jax.vjp of the twin, and finite differences).

Each wrong VJP differs from the right one in exactly the slip named; inputs are drawn so the
slip shows (repeated ids present, T >= 2 for the cell-state path and for backpropagation through
time, d >= 2 and two keys or more for 1/sqrt(d), windows of more than one element, a dropout
rate above 0 with a kept entry). Each must fail BOTH oracles: a control that only one oracle catches
would say little about the other.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from hypothesis import assume, given, settings

import autodiff_check as ac
import autodiff_check.layers as J
import layer_strategies as S
import manual_backprop.layers as L
from layer_checks import check_layer
from strategies import examples
from support import release_jax_executables
from test_layers import LAYERS

_TABLE = {name: (kinks, bound) for name, _, kinks, bound in LAYERS}


def _assert_caught(name, wrong_vjp, primals, options):
    """The wrong VJP through the right one's check, with its kinks and tolerance (test_layers)."""
    kinks, bound = _TABLE[name]
    failures = check_layer(getattr(L, name), wrong_vjp, *primals, jax_fn=J.FORWARD[name], kinks=kinks, bound=bound, **options)
    assert any(f.startswith("jax_vjp") for f in failures), f"jax.vjp missed the wrong {name}: {failures}"
    assert any(f.startswith("finite_diff:") for f in failures), f"finite differences missed the wrong {name}: {failures}"
    # and the plain call a user makes (tests/test_layers_check_vjp.py passes the right ones)
    verdict = ac.check_vjp(partial(getattr(L, name), **options), partial(wrong_vjp, **options), *primals,
                           jax_fn=partial(J.FORWARD[name], **options))
    release_jax_executables()
    assert not verdict.passed and verdict.mismatches, f"check_vjp missed the wrong {name}:\n{verdict.report(full=True)}"


# ---- wrong derivations -------------------------------------------------------------------------


def batch_norm_vjp_constant_statistics(dy, x, gamma, beta, *, eps=1e-5):
    """Treats mu and var as constants: dx = dy gamma / sqrt(var + eps)."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    s = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    _, dgamma, dbeta = L.batch_norm_vjp(dy, x, gamma, beta, eps=eps)
    return dy * gamma.reshape(shape) * s, dgamma, dbeta


def conv2d_vjp_unflipped(dy, x, W, b, *, stride=1, padding=0):
    """dx as the full correlation of dy with the kernel NOT rotated by 180 degrees (stride 1)."""
    _, dW, db = L.conv2d_vjp(dy, x, W, b, stride=stride, padding=padding)
    return _full_correlation(dy, W, padding, flip=False), dW, db


def _full_correlation(dy, W, padding, *, flip):
    """dx_p = sum_f pad(dy[f], k - 1) correlated with W[f, c] (rotated when ``flip``), then
    the padding cut away: the textbook stride-1 backward of conv2d."""
    kh, kw = W.shape[2:]
    ph, pw = S._two(padding)
    K = W[:, :, ::-1, ::-1] if flip else W
    return L.conv2d(dy, np.ascontiguousarray(K.transpose(1, 0, 2, 3)), np.zeros(W.shape[1]), padding=(kh - 1 - ph, kw - 1 - pw))


def max_pool2d_vjp_every_position(dy, x, *, size=2, stride=None):
    """Routes each window's gradient to every position in it, not only to the maximum."""
    kh, kw = S._two(size)
    sh, sw = (kh, kw) if stride is None else S._two(stride)
    Ho, Wo = dy.shape[-2:]
    dx = np.zeros_like(x)
    for p in range(kh):
        for q in range(kw):
            dx[..., p:p + sh * (Ho - 1) + 1:sh, q:q + sw * (Wo - 1) + 1:sw] += dy
    return (dx,)


def softmax_vjp_diagonal(dy, x, *, axis=-1):
    """Keeps only the Jacobian's diagonal: dx = dy y (1 - y)."""
    y = L.softmax(x, axis=axis)
    return (dy * y * (1 - y),)


def embedding_vjp_overwrite(dy, ids, E):
    """dE[ids] = dy: a repeated id keeps only the last row's gradient."""
    dE = np.zeros_like(E)
    dE[ids.ravel()] = dy.reshape(-1, E.shape[1])
    return None, dE


def lstm_vjp_no_cell_path(dy, x, h0, c0, Wx, Wh, b):
    """BPTT that drops the cell-state path c_t -> c_{t+1}: the carried dc is reset to 0 each step
    (and dc0 is 0); everything else as in the right derivation."""
    N, T, D = x.shape
    H = Wh.shape[0]
    hs, cs, gs = [], [], []
    h, c = h0, c0
    for t in range(T):                                 # forward, kept for the backward
        a = x[:, t] @ Wx + h @ Wh + b
        i, f, o = (1 / (1 + np.exp(-a[:, k * H:(k + 1) * H])) for k in range(3))
        g = np.tanh(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h), cs.append(c), gs.append((i, f, o, g))
    dx, dWx, dWh, db = np.zeros_like(x), np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dh = np.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        i, f, o, g = gs[t]
        tc = np.tanh(cs[t])
        cprev, hprev = (cs[t - 1], hs[t - 1]) if t else (c0, h0)
        dh = dh + dy[:, t]
        dc = dh * o * (1 - tc * tc)                    # WRONG: + f_{t+1} dc_{t+1} dropped
        da = np.concatenate([dc * g * i * (1 - i), dc * cprev * f * (1 - f), dh * tc * o * (1 - o), dc * i * (1 - g * g)], axis=1)
        dx[:, t] = da @ Wx.T
        dWx += x[:, t].T @ da
        dWh += hprev.T @ da
        db += da.sum(axis=0)
        dh = da @ Wh.T
    return dx, dh, np.zeros_like(c0), dWx, dWh, db


def attention_vjp_no_scale(dy, q, k, v, *, causal=False):
    """Forgets the 1/sqrt(d) of the scores in the backward: dq = dS k, dk = dS^T q."""
    T = q.shape[1]
    S_ = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    if causal:
        S_ = np.where(np.tril(np.ones((T, T), bool)), S_, -np.inf)
    P = np.exp(S_ - S_.max(axis=-1, keepdims=True))
    P /= P.sum(axis=-1, keepdims=True)
    dP = dy @ v.transpose(0, 2, 1)
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))
    return dS @ k, dS.transpose(0, 2, 1) @ q, P.transpose(0, 2, 1) @ dy


def dense_vjp_bias_column_off_by_one(dy, x, W):
    """dx from dy [W_0; W_1:]^T with the wrong column dropped: the last (a weight) instead of the
    first (the bias), the slip the post's layout invites."""
    _, dW = L.dense_vjp(dy, x, W)
    return (dy @ W.T)[:, :-1], dW


def avg_pool2d_vjp_unscaled(dy, x, *, size=2, stride=None):
    """Hands each position in a window the window's whole dy, forgetting the mean's 1/(kh kw)."""
    kh, kw = S._two(size)
    (dx,) = L.avg_pool2d_vjp(dy, x, size=size, stride=stride)
    return (dx * (kh * kw),)


def dropout_vjp_unscaled(dy, x, mask, *, rate):
    """Keeps the mask but forgets the inverted dropout's 1/(1 - rate) in the backward."""
    return np.where(mask, dy, 0.0), None


def layer_norm_vjp_mean_path_only(dy, x, gamma, beta, *, eps=1e-5):
    """Differentiates through the mean but treats the variance as a constant:
    dx = (d - mean(d)) / sqrt(var + eps), d = dy gamma; the xhat mean(d xhat) term dropped."""
    _, dgamma, dbeta = L.layer_norm_vjp(dy, x, gamma, beta, eps=eps)
    d = dy * gamma
    return (d - d.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps), dgamma, dbeta


def rnn_vjp_no_recurrence(dy, x, h0, Wx, Wh, b):
    """Backpropagation that stops at each step: dh_t = dy_t, the da_{t+1} Wh^T from later steps
    dropped (truncated BPTT of length 1); dh0 = da_1 Wh^T as in the right one."""
    h = L.rnn(x, h0, Wx, Wh, b)
    N, T, D = x.shape
    da = dy * (1 - h * h)
    hprev = np.concatenate([h0[:, None], h[:, :-1]], axis=1)
    A = da.reshape(N * T, -1)
    return ((A @ Wx.T).reshape(N, T, D), da[:, 0] @ Wh.T,
            x.reshape(N * T, D).T @ A, hprev.reshape(N * T, -1).T @ A, A.sum(axis=0))


# ---- each one caught ---------------------------------------------------------------------------


@settings(max_examples=examples(3))
@given(S.batch_norm())
def test_batch_norm_with_constant_statistics_is_caught(case):
    primals, options = case
    _assert_caught("batch_norm", batch_norm_vjp_constant_statistics, primals, options)


@settings(max_examples=examples(3))
@given(S.conv2d(max_padding=0))
def test_conv_backward_without_the_kernel_flip_is_caught(case):
    (x, W, b), options = case
    assume(W.shape[2] * W.shape[3] > 1)                # a 1x1 kernel is its own flip
    options = {"padding": options["padding"]}          # the textbook full correlation is stride 1
    _assert_caught("conv2d", conv2d_vjp_unflipped, (x, W, b), options)
    # positive control: with the flip, the same construction is the right dx
    dy = np.random.default_rng(1).standard_normal(L.conv2d(x, W, b, **options).shape)
    dx = L.conv2d_vjp(dy, x, W, b, **options)[0]
    # each dx entry is a sum of n = F kh kw products dy W, grouped differently on each side: each
    # within n u sum |dy| |W| of the exact, which is the same full correlation run on |dy|, |W|
    n, u = W.shape[0] * W.shape[2] * W.shape[3], np.finfo(dx.dtype).eps / 2
    scale = _full_correlation(np.abs(dy), np.abs(W), options["padding"], flip=True)
    assert np.all(np.abs(_full_correlation(dy, W, options["padding"], flip=True) - dx) <= 2 * n * u * scale)


@settings(max_examples=examples(3))
@given(S.pool())
def test_max_pool_routing_to_every_position_is_caught(case):
    primals, options = case
    assume(np.prod(S._two(options["size"])) > 1)
    _assert_caught("max_pool2d", max_pool2d_vjp_every_position, primals, options)


@settings(max_examples=examples(3))
@given(S.softmax())
def test_softmax_with_only_the_jacobian_diagonal_is_caught(case):
    primals, options = case
    assume(primals[0].shape[options["axis"]] > 1)
    # The bug drops the off-diagonal terms -p_i p_j. Where the softmax saturates (logits 61 and -77,
    # found by the thorough profile) they are ~1e-60 and the diagonal-only Jacobian is right to
    # rounding: no check can or should tell. Draw inputs where the two differ: a spread of logits
    # below 20 keeps every p_i p_j above e^-20 / n^2 of the largest term.
    assume(np.ptp(primals[0], axis=options["axis"]).max() < 20)
    _assert_caught("softmax", softmax_vjp_diagonal, primals, options)


@settings(max_examples=examples(3))
@given(S.embedding(repeated=True))
def test_embedding_overwriting_repeated_ids_is_caught(case):
    primals, options = case
    _assert_caught("embedding", embedding_vjp_overwrite, primals, options)


@settings(max_examples=examples(3))
@given(S.lstm(min_T=2))
def test_lstm_without_the_cell_state_path_is_caught(case):
    primals, options = case
    _assert_caught("lstm", lstm_vjp_no_cell_path, primals, options)


@settings(max_examples=examples(3))
@given(S.attention(min_d=2, min_T=2))   # one key: P = 1 and dS = 0, no scale to forget
def test_attention_without_the_scale_in_the_backward_is_caught(case):
    primals, options = case
    _assert_caught("attention", attention_vjp_no_scale, primals, options)


@settings(max_examples=examples(3))
@given(S.dense())
def test_dense_dropping_the_wrong_column_of_w_transposed_is_caught(case):
    primals, options = case
    _assert_caught("dense", dense_vjp_bias_column_off_by_one, primals, options)


@settings(max_examples=examples(3))
@given(S.pool())
def test_average_pooling_without_the_windows_mean_is_caught(case):
    primals, options = case
    assume(np.prod(S._two(options["size"])) > 1)       # a 1x1 window's mean is its one entry
    _assert_caught("avg_pool2d", avg_pool2d_vjp_unscaled, primals, options)


@settings(max_examples=examples(3))
@given(S.dropout())
def test_dropout_without_the_inverted_scale_in_the_backward_is_caught(case):
    (x, mask), options = case
    assume(options["rate"] > 0 and mask.any())         # rate 0 scales by 1; no kept entry, dx = 0
    _assert_caught("dropout", dropout_vjp_unscaled, (x, mask), options)


@settings(max_examples=examples(3))
@given(S.layer_norm())
def test_layer_norm_without_the_variance_path_is_caught(case):
    primals, options = case
    _assert_caught("layer_norm", layer_norm_vjp_mean_path_only, primals, options)


@settings(max_examples=examples(3))
@given(S.rnn(min_T=2))                                   # T = 1: no later step to backpropagate from
def test_rnn_without_backpropagation_through_time_is_caught(case):
    primals, options = case
    _assert_caught("rnn", rnn_vjp_no_recurrence, primals, options)
