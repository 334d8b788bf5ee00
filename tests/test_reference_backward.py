"""The reference backward pass (manual_backprop.network) on fixed small networks: the loss
against a forward pass written out here in the post's bias-column form, the gradient against
oracles that never look at the derivation (complex step; finite differences with kink
handling), the kink convention worked by hand. JAX-free and fast: part of the
mutation-testing subset (docs/mutation.md); tests/test_gradients.py draws networks by
hypothesis and adds JAX's oracles. The reference's refusals are here although
tests/test_api.py holds both backends to the same messages: the subset runs without JAX.
"""

from __future__ import annotations

import numpy as np
import pytest

import manual_backprop as mb
from autodiff_check.check import activation_pattern, check_gradients
from autodiff_check.error_bounds import EVAL_ULPS, logits_bound, rounding_bound, unit_roundoff
from manual_backprop.activations import ACTIVATIONS
from strategies import PAIRS
from test_activations_and_losses import LOSS_REF, REF_EVERYWHERE, _targets, forward_ref


# ---------------------------------------------------------------- the backward pass


def _net(sizes, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, scale, (n_in + 1, n_out)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def _zero_net():
    """Two hidden layers, and an example x = 0 with zero biases: every hidden pre-activation
    of that example is exactly 0 (for g(0) = 0) — the kink, and the branch point of the stable
    formulas."""
    params = _net([3, 4, 3, 2], seed=7)
    for W in params:
        W[0, :2] = 0.0
    x = np.array([[0.0, 0.0, 0.0], [0.3, -1.2, 0.8], [1e-3, -2e-3, 5e-4], [-0.9, 0.4, 1.1]])
    return params, x


def _networks():
    """(label, params, x): small networks with hidden pre-activations on both sides of 0,
    near 0, and up to |z| ~ 50; input size differs from the last hidden size and batch from
    the number of outputs, so a mis-indexed layer fails loudly."""
    p1 = _net([3, 5, 4, 2], seed=3)
    x1 = np.random.default_rng(4).normal(0, 1, (5, 3))
    p2 = _net([4, 6, 3], seed=5, scale=3.0)
    x2 = np.random.default_rng(6).normal(0, 4, (4, 4))
    p3 = _net([2, 3], seed=8)  # no hidden layer
    x3 = np.random.default_rng(9).normal(0, 2, (4, 2))
    pz, xz = _zero_net()
    return [("moderate", p1, x1), ("large", p2, x2), ("no_hidden", p3, x3), ("zero", pz, xz)]


NETWORKS = _networks()


def test_networks_cover_the_intended_range():
    _, p, x = NETWORKS[1]
    z1 = x @ p[0][1:] + p[0][0]
    assert 30 < np.abs(z1).max() < 60 and (z1 < 0).any() and (z1 > 0).any()
    _, p, x = NETWORKS[0]
    z1 = x @ p[0][1:] + p[0][0]
    assert np.abs(z1).min() < 0.2 and (z1 < 0).any() and (z1 > 0).any()


@pytest.mark.parametrize("activation,loss", PAIRS)
def test_loss_and_grad_against_references_and_oracles(activation, loss):
    rng = np.random.default_rng(11)
    analytic = ACTIVATIONS[activation].analytic
    for label, params, x in NETWORKS:
        y = _targets(loss, (x.shape[0], params[-1].shape[1]), rng)
        kw = dict(activation=activation, loss=loss)
        before = [W.copy() for W in params]
        J, grads = mb.loss_and_grad(params, x, y, **kw)
        for W, W0 in zip(params, before):
            np.testing.assert_array_equal(W, W0)  # params untouched
        assert isinstance(J, float)
        assert [g.shape for g in grads] == [W.shape for W in params]
        assert all(g.dtype == np.float64 for g in grads)
        # J against the reference forward pass and loss formula written in this file
        zL = forward_ref(params, x, activation)
        naive, stable = LOSS_REF[loss]
        ref = stable(zL, y) if label == "large" else naive(zL, y)
        # each within bound.loss of the exact J (the bound holds for any summation order; the
        # naive loss formulas only on these moderate logits, the stable ones on "large")
        tol = 2 * rounding_bound(params, x, y, activation, loss).loss
        assert abs(J - np.mean(ref)) <= tol, label
        assert abs(mb.loss(params, x, y, **kw) - J) <= tol, label
        assert type(mb.loss(params, x, y, **kw)) is float   # complex only for complex params (the complex step)
        # the gradient against an oracle that never looks at the derivation
        verdict = check_gradients(
            lambda P: mb.loss(P, x, y, **kw),
            lambda P: mb.loss_and_grad(P, x, y, **kw)[1],
            params,
            analytic=analytic,
            kinks=None if analytic else (lambda P: activation_pattern(P, x, activation)),
            oracles=["complex_step"] if analytic else ["fd"],
            name=f"{activation}/{loss}/{label}",
        )
        assert verdict.passed, str(verdict)


def test_kink_convention_in_the_backward_pass():
    """At z == 0 exactly, relu passes no gradient and leaky_relu the full gradient. (y = 0.5:
    with y = 0, relu's z_L and so every delta was 0 whatever the convention.)"""
    params, x = _zero_net()
    y = np.full((x.shape[0], 2), 0.5)
    x1 = x[:1]
    A, u = np.abs, unit_roundoff(np.float64)
    for activation, factor in (("relu", 0.0), ("leaky_relu", 1.0)):
        _, g = mb.loss_and_grad(params, x1, y[:1], activation=activation, loss="mean_squared_error")
        # example 0: z_1 = b_1 (zeros in the first two units), a_1 = g(z_1)
        z1 = params[0][0]
        a1 = REF_EVERYWHERE[activation](z1)
        z2 = a1 @ params[1][1:] + params[1][0]
        a2 = REF_EVERYWHERE[activation](z2)
        zL = a2 @ params[2][1:] + params[2][0]
        d3 = zL - y[0]  # MSE, batch 1
        s2 = np.where(z2 > 0, 1.0, np.where(z2 < 0, 0.0 if activation == "relu" else 0.01, factor))
        s1 = np.where(z1 > 0, 1.0, np.where(z1 < 0, 0.0 if activation == "relu" else 0.01, factor))
        d2 = (d3 @ params[2][1:].T) * s2
        d1 = (d2 @ params[1][1:].T) * s1
        # both sides evaluate these sums in float64, in any order: each entry is <= 20 roundings
        # deep (a_1 1, z_2 5 terms, a_2 1, z_L 4, d_3 1, back 2 + 1 and 3 + 1), so they differ by
        # <= 2 * 20 u times the same chain run in absolute values (|g(z)| <= |z|, |g'| <= 1)
        r3 = (A(a1) @ A(params[1][1:]) + A(params[1][0])) @ A(params[2][1:]) + A(params[2][0]) + A(y[0])
        r2 = (r3 @ A(params[2][1:]).T) * s2
        r1 = (r2 @ A(params[1][1:]).T) * s1
        for gl, dl, rl in ((g[2][0], d3, r3), (g[1][0], d2, r2), (g[0][0], d1, r1)):
            assert np.all(A(gl - dl) <= 2 * 20 * u * rl), (activation, gl, dl)


def test_defaults_are_the_posts_network():
    _, params, x = NETWORKS[0]
    y = _targets("binary_cross_entropy", (x.shape[0], 2), np.random.default_rng(2))
    J, g = mb.loss_and_grad(params, x, y)
    J2, g2 = mb.loss_and_grad(params, x, y, activation="sigmoid", loss="binary_cross_entropy")
    assert J == J2
    for a, b in zip(g, g2):
        np.testing.assert_array_equal(a, b)


def test_targets_and_names_are_checked_before_any_arithmetic():
    _, params, x = NETWORKS[0]
    y = np.full((x.shape[0], 2), 0.5)
    with pytest.raises(ValueError, match="binary_cross_entropy targets"):
        mb.loss_and_grad(params, x, y + 1)
    with pytest.raises(ValueError, match="unknown activation"):
        mb.loss_and_grad(params, x, y, activation="swish")


def test_public_entry_points_around_the_backward_pass():
    """loss() and forward() accept complex parameters (the complex step needs them);
    loss_and_grad() does not; every entry point refuses NaN parameters by default, and the
    defaults are the post's network (sigmoid, binary_cross_entropy)."""
    _, params, x = NETWORKS[0]
    y = _targets("binary_cross_entropy", (x.shape[0], 2), np.random.default_rng(3))
    pc = [W.astype(np.complex128) for W in params]
    assert mb.loss(params, x, y) == mb.loss(params, x, y, activation="sigmoid", loss="binary_cross_entropy")
    assert mb.loss(pc, x, y) == complex(mb.loss(params, x, y))
    for activation in ("tanh", "sigmoid"):
        out = mb.forward(pc, x, activation=activation, loss="mean_squared_error")
        assert out.dtype == np.complex128
        # each side within ez of the exact z_L (any summation order); sigma(z) then within
        # sigma' ez + EVAL_ULPS u sigma <= p (ez + EVAL_ULPS u), p = sigma(z)
        ez, z = logits_bound(params, x, activation), forward_ref(params, x, activation)
        p = 1 / (1 + np.exp(-z))
        assert np.all(np.abs(out.real - z) <= 2 * ez)
        assert np.all(np.abs(mb.forward(params, x, activation=activation) - p)
                      <= 2 * p * (ez + EVAL_ULPS * unit_roundoff(np.float64)))
    np.testing.assert_array_equal(mb.forward(params, x), mb.forward(params, x, activation="sigmoid", loss="binary_cross_entropy"))
    with pytest.raises(TypeError, match="dtype must be one of float32, float64; got complex128"):
        mb.loss_and_grad(pc, x, y)
    bad = [W.copy() for W in params]
    bad[0][1, 1] = np.inf
    with pytest.raises(ValueError, match=r"params\[0\] contains NaN or inf"):
        mb.loss(bad, x, y)
    with pytest.raises(ValueError, match=r"params\[0\] contains NaN or inf"):
        mb.forward(bad, x)


# ---------------------------------------------------------------- helpers around the network
# (mutation-killing subset for the non-derivation helpers of network.py; tests/test_api.py
# checks the same entry points across both backends, with JAX)


def test_predict_and_accuracy_read_the_logits():
    """predict = argmax_k z_L[:, k] (the default activation is sigmoid), accuracy the fraction
    of labels it matches; labels are checked against the batch and the number of classes."""
    _, params, x = NETWORKS[0]
    for activation, kw in [("sigmoid", {}), ("relu", {"activation": "relu", "loss": "softmax_cross_entropy"})]:
        want = np.argmax(forward_ref(params, x, activation), axis=1)
        assert 0 < want.sum() < len(want)                 # both classes occur: the axis matters
        assert np.array_equal(mb.predict(params, x, **kw), want)
        labels = want.copy()
        labels[:2] = 1 - labels[:2]
        assert mb.accuracy(params, x, labels, **kw) == (len(want) - 2) / len(want)
        assert mb.accuracy(params, x, want, **kw) == 1.0
    with pytest.raises(ValueError, match=r"^labels has 4 entries but x has 5 examples"):
        mb.accuracy(params, x, want[:4])
    with pytest.raises(ValueError, match=r"^labels must lie in \[0, 2\); got values in \[0, 2\]"):
        mb.accuracy(params, x, np.array([0, 1, 2, 0, 1]))
    with pytest.raises(ValueError, match="unknown activation"):
        mb.predict(params, x, activation="swish")
    with pytest.raises(ValueError, match="^unknown loss 'bogus'"):
        mb.accuracy(params, x, want, loss="bogus")
    # x = -2, one hidden unit: relu gives z_2 = [0, 0.05] (class 1), sigmoid [0.119, 0.05] (class 0)
    p2 = [np.array([[0.0], [1.0]]), np.array([[0.0, 0.05], [1.0, 0.0]])]
    assert mb.accuracy(p2, np.array([[-2.0]]), np.array([1]), activation="relu") == 1.0
    assert mb.accuracy(p2, np.array([[-2.0]]), np.array([1])) == 0.0


def test_add_bias_prepends_a_column_of_ones_in_the_input_dtype():
    x = np.array([[2.0, 3.0], [4.0, 5.0]], np.float32)
    xb = mb.add_bias(x)
    assert xb.dtype == np.float32 and np.array_equal(xb, [[1, 2, 3], [1, 4, 5]])
    assert np.array_equal(mb.add_bias([[7.0]]), [[1.0, 7.0]])
    with pytest.raises(ValueError, match=r"^add_bias expects a 2-D \(batch, n\) array; got shape \(3,\)"):
        mb.add_bias(np.ones(3))


def test_one_hot_rows_in_the_requested_dtype():
    y = mb.one_hot([2, 0], 3, dtype=np.float32)
    assert y.dtype == np.float32 and np.array_equal(y, [[0, 0, 1], [1, 0, 0]])
    assert mb.one_hot(np.array([1]), 2).dtype == np.float64


def test_init_params_scale_and_seed():
    """W_l = standard_normal((n_{l-1} + 1, n_l)) sqrt(2 / (n_{l-1} + n_l)), drawn layer after
    layer from default_rng(seed), seed 0 by default, float32 the float64 draws cast; the post's
    sizes give its 648,010 parameters."""
    params = mb.init_params([784, 500, 500, 10], seed=3)
    rng = np.random.default_rng(3)
    for W, (n_in, n_out) in zip(params, [(784, 500), (500, 500), (500, 10)]):
        assert W.dtype == np.float64
        assert np.array_equal(W, rng.standard_normal((n_in + 1, n_out)) * np.sqrt(2 / (n_in + n_out)))
    assert sum(W.size for W in params) == 648_010
    default, zero = mb.init_params([3, 4, 2]), mb.init_params([3, 4, 2], seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(default, zero))
    assert not np.array_equal(zero[0], mb.init_params([3, 4, 2], seed=4)[0])
    f32 = mb.init_params([3, 4, 2], dtype=np.float32)
    assert all(a.dtype == np.float32 and np.array_equal(a, b.astype(np.float32)) for a, b in zip(f32, zero))


def test_every_call_of_the_reference_refuses_an_overflow_as_loss_and_grad_does():
    """forward, predict, accuracy and loss warned (an error here) where loss_and_grad raised:
    each z_l is checked as it is formed, and the loss after it (MSE of targets near 1e300)."""
    P32 = mb.init_params([4, 3, 2], dtype=np.float32)
    big, y = np.full((5, 4), 3e38, np.float32), mb.one_hot(np.arange(5) % 2, 2, dtype=np.float32)
    for call in (lambda: mb.forward(P32, big), lambda: mb.predict(P32, big),
                 lambda: mb.accuracy(P32, big, np.arange(5) % 2), lambda: mb.loss(P32, big, y)):
        with pytest.raises(mb.NonFiniteError, match=r"^z_1 is NaN or inf although x and params are finite: an overflow in "
                                                    r"float32"):
            call()
    P = mb.init_params([4, 3, 2])
    last = [P[0], np.full_like(P[1], 1e308)]    # z_2 = 1e308 (1 + sum of 3 sigmoids): inf
    with pytest.raises(mb.NonFiniteError, match=r"^z_2 is NaN or inf"):
        mb.forward(last, np.ones((5, 4)))
    with pytest.raises(mb.NonFiniteError, match=r"^the loss is NaN or inf although x and params are finite"):
        mb.loss(P, np.ones((5, 4)), np.full((5, 2), 1e200), loss="mean_squared_error")
    assert np.isfinite(mb.loss(P, np.ones((5, 4)), np.full((5, 2), 1e100), loss="mean_squared_error"))


def test_arguments_are_named_before_anything_is_computed():
    P32 = mb.init_params([4, 3, 2], dtype=np.float32)
    y = mb.one_hot(np.arange(5) % 2, 2)
    with pytest.raises(ValueError, match=r"^x has values beyond float32's range \(first at \(0, 0\): 1e\+39\)"):
        mb.loss_and_grad(P32, np.full((5, 4), 1e39), y)
    with pytest.raises(TypeError, match=r"^y is None; expected a 2-D array$"):
        mb.loss_and_grad(P32, np.ones((5, 4)), None)
    for bad in (2.5, True, 0):
        with pytest.raises(ValueError, match=r"^n_classes must be a positive integer"):
            mb.one_hot([0], bad)
    with pytest.raises(ValueError, match=r"^labels must lie in \[0, 3\); got values in \[1e\+20, 1e\+20\]$"):
        mb.one_hot([1e20], 3)
    for seed in (-1, 1.5, True):
        with pytest.raises(ValueError, match=r"^seed must be a non-negative integer"):
            mb.init_params([2, 2], seed=seed)
