"""Networks composed of layers (manual_backprop.model) and their JAX twin (autodiff_check.sequential)."""

from __future__ import annotations

import numpy as np
import pytest

import manual_backprop as mb
from autodiff_check import sequential as jseq
from layer_checks import U64, exact_tol
from manual_backprop import model


def _cnn_batch(seed, B=3, dtype=np.float64):
    """Inputs away from relu's kink and pooling ties: continuous values, and biases made
    non-zero so that no pre-activation is exactly 0."""
    rng = np.random.default_rng(seed)
    net = model.mnist_cnn()
    params = net.init(seed, dtype=dtype)
    params = [tuple(a + 0.01 * rng.standard_normal(a.shape).astype(dtype) for a in p) for p in params]
    x = rng.uniform(0, 1, (B, 784)).astype(dtype)
    y = mb.one_hot(rng.integers(0, 10, B), 10, dtype=dtype)
    return net, params, x, y


def test_cnn_gradient_matches_its_jax_twin():
    """Tolerance from layer_checks.exact_tol: n = every parameter, input and logit entry
    (every sum in the forward and backward runs over fewer terms), normwise per array."""
    net, params, x, y = _cnn_batch(0)
    J, grads = net.loss_and_grad(params, x, y)
    twin = jseq.mnist_cnn()
    Jj, gj = twin.loss_and_grad(params, x, y)
    n = sum(a.size for p in params for a in p) + x.size + y.size
    assert abs(J - Jj) <= 2 * n * U64 * 8 * abs(Jj)
    for l, (gl, gjl) in enumerate(zip(grads, gj)):
        assert len(gl) == len(gjl) == len(params[l])
        for G, Gj in zip(gl, gjl):
            assert G.shape == Gj.shape
            assert np.all(np.abs(G - Gj) <= exact_tol(Gj, n, U64)), f"layer {l} ({net.layers[l].name})"
    assert np.array_equal(net.predict(params, x), twin.predict(params, x))


def test_cnn_init_is_seeded_and_shared_by_both_backends():
    a, b = model.mnist_cnn().init(3), jseq.mnist_cnn().init(3)
    assert all(np.array_equal(u, v) for p, q in zip(a, b) for u, v in zip(p, q))
    assert not np.array_equal(a[1][0], model.mnist_cnn().init(4)[1][0])
    f32 = model.mnist_cnn().init(3, dtype=np.float32)
    assert all(u.dtype == np.float32 and np.array_equal(u, v.astype(np.float32)) for p, q in zip(f32, a) for u, v in zip(p, q))


def test_cnn_float32_training_step_stays_float32_and_lowers_the_loss():
    net, params, x, y = _cnn_batch(1, B=8, dtype=np.float32)
    J, grads = net.loss_and_grad(params, x, y)
    assert all(g.dtype == np.float32 for gl in grads for g in gl)
    stepped = [tuple(a - np.float32(0.05) * g for a, g in zip(p, gl)) for p, gl in zip(params, grads)]
    assert net.loss(stepped, x, y) < J


def test_bad_params_and_targets_are_named():
    net, params, x, y = _cnn_batch(2)
    with pytest.raises(ValueError, match=r"params\[1\] \(conv2d\) must hold arrays of shapes"):
        net.loss_and_grad(params[:1] + [(params[1][0],)] + params[2:], x, y)
    with pytest.raises(ValueError, match=r"y must have shape \(batch, n_out\) = \(3, 10\)"):
        net.loss_and_grad(params, x, y[:, :5])
    with pytest.raises(ValueError, match=r"layers\[0\] must be a Layer"):
        model.Sequential(["dense"])
