"""Networks composed of layers (manual_backprop.model) and their JAX twin (autodiff_check.sequential)."""

from __future__ import annotations

import numpy as np
import pytest

import manual_backprop as mb
from autodiff_check import sequential as jseq
from layer_checks import U64, exact_tol
from manual_backprop import model
from support import cnn_batch


def test_cnn_gradient_matches_its_jax_twin():
    """Tolerance from layer_checks.exact_tol: n = every parameter, input and logit entry
    (every sum in the forward and backward runs over fewer terms), normwise per array."""
    net, params, x, y = cnn_batch(0)
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


def test_the_twin_names_a_layers_refusal_as_the_numpy_network_does():
    """Both say which layer refused, and of the whole x: the twin checks its arguments by
    running the NumPy network on one example, whose shape its messages gave (review finding)."""
    spec = model.mlp([6, 3, 2], loss="mean_squared_error")
    twin = jseq.Sequential(spec.layers, loss="mean_squared_error")
    params, y = spec.init(seed=1), np.full((5, 2), 0.5)
    for x, error in ((np.ones((5, 7)), ValueError), (np.ones(4), ValueError), (np.ones((5, 6), np.float32), TypeError)):
        for call in (lambda n: n.forward(params, x), lambda n: n.loss_and_grad(params, x, y),
                     lambda n: n.predict(params, x)):
            with pytest.raises(error) as numpy_says:
                call(spec)
            with pytest.raises(error) as twin_says:
                call(twin)
            assert str(twin_says.value) == str(numpy_says.value)
            assert str(numpy_says.value).startswith("layer 1 of 3: dense: ")


@pytest.mark.parametrize("loss", sorted(mb.LOSSES))
def test_a_loss_on_outputs_that_are_not_logits_is_refused_by_both_backends(loss):
    """A model whose last layer gives (B, C, H, W) is refused a loss with one message by both
    backends (a review: the NumPy network took the loss over axis 1 of a 4-D output, MSE summed
    over every entry, softmax over the channels; the twin refused it with a (batch, C) shape)."""
    spec = model.Sequential([model.Conv2d(1, 2, 3)], loss=loss)
    twin = jseq.Sequential(spec.layers, loss=loss)
    params = spec.init(seed=0)
    x, y = np.random.default_rng(0).standard_normal((2, 1, 5, 5)), np.full((2, 2, 3, 3), 0.5)
    said = []
    for net in (spec, twin):
        for call in (net.loss, net.loss_and_grad):
            with pytest.raises(ValueError, match=r"^the loss needs logits of shape \(batch, n_out\); the last "
                                                 r"layer's outputs have shape \(2, 2, 3, 3\)") as e:
                call(params, x, y)
            said.append(str(e.value))
    assert len(set(said)) == 1
    assert net.forward(params, x).shape == (2, 2, 3, 3)   # the outputs themselves are not refused


def test_the_twin_accepts_a_batch_its_layers_parameters_carry():
    """Attention whose k and v are parameters of batch N = 3: x[:1], which the twin checks
    first, does not fit them; the whole x does, and both networks compute it (review finding:
    the twin refused it). Tolerance as the CNN's above: n = every parameter, input and output."""
    N, T, d = 3, 2, 4
    layers_ = [model.Reshape(T, d), model.Layer("attention", ((N, T, d), (N, T, d)), {}, ("he", "he")),
               model.Flatten(), model.Dense(T * d, 2)]
    spec = model.Sequential(layers_, loss="mean_squared_error")
    twin = jseq.Sequential(layers_, loss="mean_squared_error")
    params, x = spec.init(seed=0), np.random.default_rng(0).standard_normal((N, T * d))
    y = np.full((N, 2), 0.3)
    J, grads = spec.loss_and_grad(params, x, y)
    Jj, gj = twin.loss_and_grad(params, x, y)
    n = sum(a.size for p in params for a in p) + x.size + y.size
    assert abs(J - Jj) <= 2 * n * U64 * 8 * abs(Jj)
    for gl, gjl in zip(grads, gj):
        for G, Gj in zip(gl, gjl):
            assert np.all(np.abs(G - Gj) <= exact_tol(Gj, n, U64))
    with pytest.raises(ValueError, match=r"^layer 2 of 4: attention: k must have shape \(4, 2, 4\)"):
        twin.loss(params, np.ones((4, T * d)), np.full((4, 2), 0.3))     # x's own batch, not x[:1]'s


def test_the_twins_refusals_come_once_and_name_the_layer():
    """A refusal of the whole x (NaN in a parameter) has no second copy chained under it
    (review finding: 'During handling of the above exception ...'); an embedding id out of
    range in a later row is named as layer 1, as the NumPy network names it."""
    spec = model.mlp([4, 3, 2], loss="mean_squared_error")
    twin = jseq.Sequential(spec.layers, loss="mean_squared_error")
    params = spec.init(seed=1)
    params[0][0][1, 1] = np.nan
    with pytest.raises(ValueError, match=r"^params\[0\]\[0\] contains NaN") as raised:
        twin.forward(params, np.ones((5, 4)))
    assert raised.value.__context__ is None
    layers_ = [model.Layer("embedding", ((6, 3),), {}, ("he",)), model.Flatten(), model.Dense(6, 2)]
    spec = model.Sequential(layers_, loss="mean_squared_error")
    twin = jseq.Sequential(layers_, loss="mean_squared_error")
    params, ids = spec.init(seed=0), np.array([[0, 1], [2, 9]])
    with pytest.raises(ValueError) as numpy_says:
        spec.forward(params, ids)
    with pytest.raises(ValueError) as twin_says:
        twin.forward(params, ids)
    assert str(twin_says.value) == str(numpy_says.value)
    assert str(numpy_says.value).startswith("layer 1 of 3: embedding: ids must lie in [0, V)")


def test_where_the_whole_x_does_not_fit_the_twin_says_what_the_one_example_said(monkeypatch):
    """The whole-x run after a refused example is one NumPy forward of x (13 GB for a CNN on
    60,000 images, in a review's estimate): a MemoryError there gives way to the refusal."""
    spec = model.mlp([4, 3, 2], loss="mean_squared_error")
    twin = jseq.Sequential(spec.layers, loss="mean_squared_error")
    real = twin._spec._forward

    def forward(params, x, **kw):
        if len(x) > 1:
            raise MemoryError("no room for the whole x")
        return real(params, x, **kw)

    monkeypatch.setattr(twin._spec, "_forward", forward)
    with pytest.raises(ValueError, match=r"^layer 1 of 3: dense: W must have n_in \+ 1 = 6 rows for x of shape \(1, 5\)"):
        twin.forward(spec.init(seed=1), np.ones((7, 5)))


