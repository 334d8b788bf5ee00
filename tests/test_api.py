"""Public API contract of both backends: same names, same validation, stable numerics."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff_check
import autodiff_check as ac
import manual_backprop
import manual_backprop as mb
from strategies import examples, problems
from support import assert_same_gradient

BACKENDS = [manual_backprop, autodiff_check]
API = ["init_params", "add_bias", "forward", "loss", "loss_and_grad", "sgd_step", "predict", "accuracy", "one_hot"]


def test_both_backends_expose_the_same_api():
    for name in API:
        assert callable(getattr(manual_backprop, name)) and callable(getattr(autodiff_check, name))


def _net():
    params = manual_backprop.init_params([3, 4, 2], seed=0)
    x = np.arange(6.0).reshape(2, 3) / 6
    y = manual_backprop.one_hot([0, 1], 2)
    return params, x, y


def _bad_cases():
    p, x, y = _net()
    nan_x = x.copy()
    nan_x[1, 2] = np.nan
    inf_p = [W.copy() for W in p]
    inf_p[1][0, 1] = np.inf
    return {
        "unknown activation": (dict(activation="swish"), ValueError, "unknown activation 'swish'; supported: gelu"),
        "unknown loss": (dict(loss="hinge"), ValueError, "unknown loss 'hinge'; supported: binary_cross_entropy"),
        "x features": (dict(x=np.ones((2, 5))), ValueError, "x has 5 features per example but params\\[0\\]"),
        "x rank 1": (dict(x=np.ones(3)), ValueError, "x must be 2-D"),
        "x rank 3": (dict(x=np.ones((2, 3, 1))), ValueError, "x must be 2-D"),
        "empty batch": (dict(x=np.ones((0, 3)), y=np.ones((0, 2))), ValueError, "x is an empty batch"),
        "NaN in x": (dict(x=nan_x), ValueError, r"x contains NaN or inf \(first at \(1, 2\)\)"),
        "inf in params": (dict(params=inf_p), ValueError, r"params\[1\] contains NaN or inf"),
        "string x": (dict(x=np.array([["a", "b", "c"]] * 2)), TypeError, "x must be a real numeric array"),
        "y None": (dict(y=None), TypeError, r"^y is None; expected a 2-D array$"),
        "y labels": (dict(y=np.array([0, 1])), ValueError, "one_hot"),
        "y shape": (dict(y=np.ones((2, 3))), ValueError, r"y must have shape \(batch, n_out\) = \(2, 2\)"),
        "y batch": (dict(y=np.ones((3, 2)) / 2), ValueError, r"y must have shape"),
        "bce target > 1": (dict(y=np.array([[0, 2.0], [1, 0]])), ValueError, r"targets y must lie in \[0, 1\]"),
        "softmax rows": (dict(y=np.array([[0.5, 0.2], [1, 0]]), loss="softmax_cross_entropy"), ValueError,
                         "row 0 sums to 0.7"),
        "softmax negative": (dict(y=np.array([[1.5, -0.5], [1, 0]]), loss="softmax_cross_entropy"), ValueError,
                             "must be non-negative"),
        "empty params": (dict(params=[]), ValueError, "params is empty"),
        "params not a list": (dict(params=p[0]), TypeError, "params must be a list"),
        "params 1-D": (dict(params=[p[0], p[1][0]]), ValueError, r"params\[1\] must be 2-D"),
        "params do not chain": (dict(params=[p[0], np.ones((3, 2))]), ValueError,
                                r"params do not chain: .* params\[1\] needs 5 rows"),
        "params mixed dtype": (dict(params=[p[0], p[1].astype(np.float32)]), TypeError, "params mix dtypes"),
        "params int": (dict(params=[W.astype(int) for W in p]), TypeError, "dtype must be one of float32, float64"),
        # two faults: the gradient paths of both backends name x and y before a NaN weight
        "inf in params and y": (dict(params=inf_p, y=np.array([[0, 2.0], [1, 0]])), ValueError,
                                r"targets y must lie in \[0, 1\]"),
        "inf in params and x": (dict(params=inf_p, x=nan_x), ValueError, r"x contains NaN or inf"),
        "softmax rows overflow": (dict(y=np.array([[1e308, 1e308], [1, 0]]), loss="softmax_cross_entropy"), ValueError,
                                  "row 0 sums to inf"),   # and no overflow warning from the row sum
        # np.asarray drops a mask: the hidden value under it (here 1e6) was used (a review, 2026-12-04)
        "masked x": (dict(x=np.ma.masked_array(np.full((2, 3), 1e6), mask=[[1, 0, 0], [0, 0, 0]])), TypeError,
                     r"^x is a masked array, whose mask would be ignored"),
        "masked y": (dict(y=np.ma.masked_array(np.eye(2), mask=[[1, 0], [0, 0]])), TypeError,
                     r"^y is a masked array, whose mask would be ignored"),
        "matrix params": (dict(params=[W.view(np.matrix) for W in p]), TypeError,
                          r"^params\[0\] is an np.matrix; pass np.asarray\(params\[0\]\)$"),
        "ragged x": (dict(x=[[1.0, 2.0, 3.0], [4.0, 5.0]]), ValueError, r"^x is not an array of numbers \("),
    }


CASES = _bad_cases()


@pytest.mark.parametrize("backend", BACKENDS, ids=["manual", "jax"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_named(backend, case):
    p, x, y = _net()
    overrides, error, message = CASES[case]
    args = dict(params=p, x=x, y=y) | {k: v for k, v in overrides.items() if k in ("params", "x", "y")}
    kw = {k: v for k, v in overrides.items() if k in ("activation", "loss")}
    with pytest.raises(error, match=message):
        backend.loss_and_grad(args["params"], args["x"], args["y"], **kw)
    if not case.startswith("inf in params and"):   # loss and forward check params first, in both backends
        with pytest.raises(error, match=message):
            backend.loss(args["params"], args["x"], args["y"], **kw)
    with pytest.raises(error, match=message):
        backend.sgd_step(args["params"], args["x"], args["y"], 0.1, **kw)
    if case == "inf in params and x":
        with pytest.raises(ValueError, match="lr must be >= 0"):   # lr is checked before the weights too
            backend.sgd_step(p[:1] + args["params"][1:], x, y, -1.0)


@pytest.mark.parametrize("sizes,error,message", [
    ([5], ValueError, "at least two sizes"),
    ([], ValueError, "at least two sizes"),
    ([3, 0, 2], ValueError, r"layer_sizes\[1\] must be positive; got 0"),
    ([3, -1], ValueError, "must be positive"),
    ([3, 2.5], TypeError, r"layer_sizes\[1\] must be an int"),
    (7, TypeError, "layer_sizes must be a sequence"),
])
def test_init_params_rejects_bad_sizes(sizes, error, message):
    with pytest.raises(error, match=message):
        manual_backprop.init_params(sizes)


@pytest.mark.parametrize("dtype", ["int32", np.complex64, "U3", object])
def test_init_params_rejects_non_float_dtypes(dtype):
    with pytest.raises(TypeError, match="dtype must be"):
        manual_backprop.init_params([2, 2], dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS, ids=["manual", "jax"])
def test_labels_out_of_range_are_refused(backend):
    p, x, _ = _net()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\); got values in \[0, 2\]"):
        backend.accuracy(p, x, np.array([0, 2]))
    with pytest.raises(ValueError, match="labels has 3 entries but x has 2"):
        backend.accuracy(p, x, np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        backend.one_hot([-1, 0], 3)
    masked = np.ma.masked_array([0, 1], mask=[0, 1])   # counted, and encoded, as if unmasked (a review)
    for call in (lambda: backend.accuracy(p, x, masked), lambda: backend.one_hot(masked, 2)):
        with pytest.raises(TypeError, match="^labels is a masked array, whose mask would be ignored"):
            call()


@pytest.mark.parametrize("backend", BACKENDS, ids=["manual", "jax"])
@pytest.mark.parametrize("activation", sorted(manual_backprop.ACTIVATIONS))
@pytest.mark.parametrize("loss", sorted(manual_backprop.LOSSES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_preactivations_stay_finite(backend, activation, loss, dtype):
    """Pre-activations at +-1000 (and +-1e4 in float64) in every layer: finite loss and
    gradient and no floating-point warning (the suite runs with warnings as errors)."""
    params = [np.array([[0, 0], [1, -1]], dtype), np.array([[0, 0], [1, -1], [-1, 1]], dtype)]
    zmax = 1e3 if dtype == np.float32 else 1e4
    x = np.array([[zmax], [-zmax], [1e3], [0.0]], dtype)
    y = np.array([[1, 0], [0, 1], [0.5, 0.5], [1, 0]], dtype)
    J, grads = backend.loss_and_grad(params, x, y, activation=activation, loss=loss)
    assert np.isfinite(J)
    assert all(np.isfinite(g).all() and g.dtype == dtype for g in grads)
    out = backend.forward(params, x, activation=activation, loss=loss)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("backend", BACKENDS, ids=["manual", "jax"])
@pytest.mark.parametrize("loss,expected", [
    ("binary_cross_entropy", 2000.0),   # softplus(1000) + softplus(1000), not log(0)
    ("softmax_cross_entropy", 2000.0),  # logsumexp(1000, -1000) - (-1000)
    ("mean_squared_error", 1001000.5),  # (1000^2 + 1001^2) / 2
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_confidently_wrong_logits_give_the_exact_large_loss(backend, loss, expected, dtype):
    params = [np.array([[0, 0], [1, -1]], dtype)]  # one layer: z = (1000, -1000)
    x, y = np.array([[1000.0]], dtype), np.array([[0.0, 1.0]], dtype)
    J, grads = backend.loss_and_grad(params, x, y, loss=loss)
    assert J == pytest.approx(expected, rel=1e-6)
    assert all(np.isfinite(g).all() for g in grads)


@settings(max_examples=examples(10), deadline=None)
@given(data=st.data(), activation=st.sampled_from(sorted(mb.ACTIVATIONS)),
       loss=st.sampled_from(sorted(mb.LOSSES)))
def test_jax_sgd_step_matches_the_manual_one(data, activation, loss):
    """float64: the JAX step returns new arrays equal to the manual in-place step to within the
    tolerance of two exact gradients (autodiff_check.exact_atol) times lr, plus rounding of W."""
    params, x, y = data.draw(problems(loss, magnitude=10.0))
    lr = 0.5
    before = [W.copy() for W in params]
    J_j, new = ac.sgd_step(params, x, y, lr, activation=activation, loss=loss)
    assert all(np.array_equal(a, b) for a, b in zip(params, before))  # JAX leaves params alone
    J_m, stepped = mb.sgd_step([W.copy() for W in params], x, y, lr, activation=activation, loss=loss)
    assert J_m == pytest.approx(J_j, rel=ac.EXACT_RTOL, abs=ac.EXACT_RTOL)
    _, g = mb.loss_and_grad(params, x, y, activation=activation, loss=loss)
    atol = ac.exact_atol(g, ac.rounding_bound(params, x, y, activation, loss).grad)
    u = ac.unit_roundoff(np.float64)
    for a, b, t, W in zip(stepped, new, atol, params):
        assert np.all(np.abs(a - b) <= lr * t + 4 * u * np.abs(W)), np.max(np.abs(a - b))


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), "0.1", None, True])
def test_jax_sgd_step_refuses_bad_learning_rates_like_the_manual_one(lr):
    params, x, y = mb.init_params([3, 2], seed=0), np.ones((1, 3)), mb.one_hot([1], 2)
    for backend in (mb, ac):
        with pytest.raises(TypeError, match="lr must be a finite real number"):
            backend.sgd_step(params, x, y, lr)


def test_a_negative_learning_rate_is_refused_and_zero_changes_nothing_in_both_backends():
    params, x, y = mb.init_params([3, 2], seed=0), np.ones((1, 3)), mb.one_hot([1], 2)
    for backend in (mb, ac):
        with pytest.raises(ValueError, match=r"^lr must be >= 0 \(a negative rate climbs the loss\); got -0\.1$"):
            backend.sgd_step([W.copy() for W in params], x, y, -0.1)
        J, stepped = backend.sgd_step([W.copy() for W in params], x, y, 0.0)
        assert J == pytest.approx(mb.loss(params, x, y), rel=1e-12)   # both: J before the step
        assert all(np.array_equal(a, b) for a, b in zip(stepped, params))


@pytest.mark.parametrize("v, exc, message", [
    (lambda p: p[0], TypeError, r"^v must be a list of 2 arrays shaped like params$"),
    (lambda p: p[:1], TypeError, r"^v must be a list of 2 arrays shaped like params$"),
    (lambda p: [p[0], p[1].T], ValueError, r"^v\[1\] must have the shape of params\[1\], \(4, 2\); got \(2, 4\)$"),
    (lambda p: [p[0], np.full_like(p[1], np.nan)], ValueError, r"^v\[1\] contains NaN or inf, or values beyond float64's range \(first at \(0, 0\)\)$"),
    (lambda p: [p[0].astype(complex), p[1]], TypeError, r"^v\[0\] must be a real numeric array; got dtype complex128$"),
    (lambda p: [p[0].astype(np.float32) * np.float32(3e38), p[1]], None, None),   # float32 v into float64: fine
])
def test_directional_derivative_checks_its_direction(v, exc, message):
    params, x, y = mb.init_params([2, 3, 2], seed=0), np.ones((1, 2)), mb.one_hot([1], 2)
    if exc is None:
        assert np.isfinite(ac.directional_derivative(params, x, y, v(params)))
        f32 = [W.astype(np.float32) for W in params]   # and a float64 v beyond float32's range, into float32
        with pytest.raises(ValueError, match=r"^v\[0\] contains NaN or inf, or values beyond float32's range"):
            ac.directional_derivative(f32, x.astype(np.float32), y.astype(np.float32), [np.full((3, 3), 1e39), f32[1]])
        return
    with pytest.raises(exc, match=message):
        ac.directional_derivative(params, x, y, v(params))


def test_an_overflowing_learning_rate_is_refused_by_both_backends():
    params = [W.astype(np.float32) for W in mb.init_params([3, 2], seed=0)]
    x, y = np.ones((1, 3), np.float32), np.ones((1, 2), np.float32)
    for backend in (mb, ac):
        with pytest.raises(ValueError, match="overflows float32"):
            backend.sgd_step(params, x, y, 1e39)
        with pytest.raises(ValueError, match="^lr = 1" + "0" * 400 + " overflows float32$"):
            backend.sgd_step(params, x, y, 10**400)   # was NumPy's "ufunc 'isfinite' not supported" (a review)


def test_a_positive_learning_rate_that_is_zero_in_the_dtype_is_refused_by_both_backends():
    """1e-60 is 0 in float32: sgd_step returned as if it had stepped and left every weight as it
    was, while the command line refused the same rate (a review, 2026-12-04)."""
    params = [W.astype(np.float32) for W in mb.init_params([3, 2], seed=0)]
    x, y = np.ones((1, 3), np.float32), np.ones((1, 2), np.float32)
    for backend in (mb, ac):
        with pytest.raises(ValueError, match=r"^lr = 1e-60 is 0 in float32 \(below its smallest positive number, "
                                             r"1\.4e-45\): the step would change nothing$"):
            backend.sgd_step([W.copy() for W in params], x, y, 1e-60)
        J, stepped = backend.sgd_step([W.copy() for W in params], x, y, 1e-44)   # subnormal, not 0: a step
        assert J == mb.loss(params, x, y)
        if np.finfo(np.longdouble).max == np.finfo(np.float64).max:   # long double is double here
            continue
        with pytest.raises(ValueError, match=r"is 0 in float64"):   # 0 as a Python float already (a review)
            backend.sgd_step(mb.init_params([3, 2]), np.ones((1, 3)), mb.one_hot([1], 2), np.longdouble("1e-400"))
        with pytest.raises(ValueError, match=r"^lr = .* overflows float64$"):
            backend.sgd_step(mb.init_params([3, 2]), np.ones((1, 3)), mb.one_hot([1], 2), np.longdouble("1e400"))


# ------------------------------------------------------------------ a hostile-input sweep of both APIs
# Each case here failed before: the Sequential twins checked little, overflows and casts warned.

from autodiff_check import sequential as AS  # noqa: E402
from manual_backprop import model as MM  # noqa: E402

X = np.random.default_rng(0).uniform(size=(5, 4))
Y = mb.one_hot(np.arange(5) % 2, 2)
MM_NET, AS_NET = MM.mlp([4, 3, 2]), AS.mlp([4, 3, 2])


@pytest.mark.parametrize("name, call, exc, message", [
    ("bce y=2", lambda n, p: n.loss(p, X, 2 * Y), ValueError, "targets y must lie in [0, 1]"),
    ("y narrow", lambda n, p: n.loss(p, X, Y[:, :1]), ValueError, "y must have shape (batch, n_out) = (5, 2)"),
    ("y one row", lambda n, p: n.loss(p, X, Y[:1]), ValueError, "y must have shape (batch, n_out) = (5, 2)"),
    ("y None", lambda n, p: n.loss_and_grad(p, X, None), TypeError, "y is None"),
    ("y NaN", lambda n, p: n.loss(p, X, Y * np.nan), ValueError, "y contains NaN or inf"),
    ("y complex", lambda n, p: n.loss(p, X, Y.astype(complex)), TypeError, "y must be a real numeric array"),
    ("x NaN", lambda n, p: n.loss(p, X * np.nan, Y), ValueError, "x contains NaN or inf"),
    ("empty batch", lambda n, p: n.loss(p, X[:0], Y[:0]), ValueError, "dense: x is empty"),
    ("x int", lambda n, p: n.forward(p, X.astype(int)), TypeError, "dense: x must be a float32 or float64 array"),
    ("x wide", lambda n, p: n.forward(p, np.ones((5, 5))), ValueError, "dense: W must have n_in + 1 = 6 rows"),
    ("mixed dtypes", lambda n, p: n.loss_and_grad([tuple(a.astype(np.float32) for a in p[0])] + p[1:], X, Y),
     TypeError, "dense: W is float32 but x is float64"),
])
def test_both_sequentials_refuse_alike(name, call, exc, message):
    for net in (MM_NET, AS_NET):
        with pytest.raises(exc, match=re.escape(message)):
            call(net, MM_NET.init(seed=1))


def test_both_sequentials_check_every_example_s_ids_and_refuse_untrained_parameters():
    """The twin ran the NumPy network on example 0 only: an id of -1 in example 1 read row 4 (JAX
    clamps), an id of 7 was called an overflow. A boolean mask given as a dropout parameter crashed
    the NumPy loss_and_grad (its gradient is None) and the twin refused it for example 0's shape."""
    net = [MM.Layer("embedding", ((5, 2),), {}, ("he",)), MM.Reshape(-1), MM.Dense(4, 2)]
    for twin in (MM, AS):
        seq = twin.Sequential(net, loss="mean_squared_error")
        p = seq.init(seed=0)
        for bad in (-1, 7):
            with pytest.raises(ValueError, match=re.escape("embedding: ids must lie in [0, V)")):
                seq.forward(p, np.array([[0, 4], [1, bad]]))
        masked = twin.Sequential([MM.Dense(2, 2), MM.Layer("dropout", ((3, 2),), {"rate": 0.5}, ("zeros",))],
                                 loss="mean_squared_error")
        p = [(np.ones((3, 2)),), (np.ones((3, 2), bool),)]
        with pytest.raises(TypeError, match=re.escape("params[1][0] (dropout) must be a float array")):
            masked.loss_and_grad(p, np.ones((3, 2)), np.zeros((3, 2)))


def test_both_sequentials_name_the_same_overflow():
    """Example 0 overflows only in the logits, example 1 already in layer 1: both name layer 1
    (the twin ran the NumPy network on example 0 first, for its argument checks, and named the
    logits). A gradient that overflows while the loss does not is named with its layer, and a
    network of no layers is the loss of x itself."""
    f = np.float32
    P = [(np.array([[0], [10]], f),), (), (np.array([[3e38], [3e38]], f),)]
    x = np.array([[1], [-1e38]], f)
    for twin in (MM, AS):
        with pytest.raises(mb.NonFiniteError, match=re.escape("the outputs of layer 1 (dense) are NaN or inf")):
            twin.mlp([1, 1, 1]).forward(P, x)
        # z = 3e38 * 1e-37 = 30, J = 450, but dJ/dW[1:] = 3e38 * 30
        with pytest.raises(mb.NonFiniteError, match=re.escape("the gradients of layer 1 (dense) are NaN or inf")):
            twin.mlp([1, 1], loss="mean_squared_error").loss_and_grad(
                [(np.array([[0], [1e-37]], f),)], np.array([[3e38]], f), np.zeros((1, 1), f))
    x, y = np.ones((3, 2)), np.eye(2)[[0, 1, 0]]
    (J, g), (Jj, gj) = MM.Sequential([]).loss_and_grad([], x, y), AS.Sequential([]).loss_and_grad([], x, y)
    assert g == gj == [] and abs(J - Jj) <= 4 * np.finfo(float).eps * J   # softmax CE of [1, 1]: log 2 (a few roundings)


def test_both_sequentials_expose_the_same_api():
    public = {cls: {n for n in vars(cls) if not n.startswith("_")} for cls in (MM.Sequential, AS.Sequential)}
    assert public[MM.Sequential] == public[AS.Sequential]
    for net in (MM_NET, AS_NET):
        with pytest.raises(ValueError, match=re.escape("params[0] (dense) must hold arrays of shapes ((5, 3),)")):
            net.check_params([(np.ones((4, 3)),), ()] + MM_NET.init()[2:])


@pytest.mark.parametrize("twin", [MM, AS], ids=["manual_backprop", "autodiff_check"])
def test_both_sequentials_refuse_nan_params_and_raise_on_overflow(twin):
    net = twin.mlp([4, 3, 2], loss="mean_squared_error")
    p = net.init(seed=1)
    with pytest.raises(mb.NonFiniteError, match="the loss is NaN or inf"):
        net.loss(p, X, 0 * Y + 1e300)
    p[0][0][1, 1] = np.nan
    with pytest.raises(ValueError, match=re.escape("params[0][0] contains NaN or inf")):
        net.loss_and_grad(p, X, Y)


def test_both_sequentials_agree_on_valid_input():
    """mlp([4, 3, 2]) is the flat network's equations in layers, so autodiff_check.rounding_bound
    of the flat network bounds each side's rounding error to first order: the two J within twice
    its loss bound and the two gradients within twice its gradient bound, each with a factor 2
    more for terms of second order in u (as autodiff_check.exact_atol's)."""
    p = MM_NET.init(seed=1)
    (J, g), (Jj, gj) = MM_NET.loss_and_grad(p, X, Y), AS_NET.loss_and_grad(p, X, Y)
    flat, g, gj = [W for (W,) in p[::2]], [G for (G,) in g[::2]], [G for (G,) in gj[::2]]
    assert [len(layer) for layer in p[1::2]] == [0]                # the sigmoid between has none
    bound = ac.rounding_bound(flat, X, Y, "sigmoid", "binary_cross_entropy")
    assert abs(J - Jj) <= 4 * bound.loss
    assert_same_gradient(g, gj, [4 * e for e in bound.grad])


@pytest.mark.parametrize("backend", [mb, ac], ids=["manual_backprop", "autodiff_check"])
def test_an_overflow_is_a_non_finite_error_on_both_backends(backend):
    P = mb.init_params([4, 3, 2], seed=3)
    kw = dict(activation="relu", loss="mean_squared_error")
    with pytest.raises(mb.NonFiniteError):
        backend.loss_and_grad(P, np.full((5, 4), 1e160), Y, **kw)
    with pytest.raises(mb.NonFiniteError, match=r"\(inputs, targets or weights too large"):   # y's fault, named
        backend.loss(P, X, 0 * Y + 1e200, **kw)
    with pytest.raises(mb.NonFiniteError):
        backend.sgd_step([W.copy() for W in P], np.full((5, 4), 1e150), Y, 1e10, **kw)
    P32 = mb.init_params([4, 3, 2], dtype=np.float32)
    with pytest.raises(ValueError, match=r"x has values beyond float32's range \(first at \(0, 0\): 1e\+39\)"):
        backend.loss_and_grad(P32, np.full((5, 4), 1e39), Y)


@pytest.mark.parametrize("backend", [mb, ac], ids=["manual_backprop", "autodiff_check"])
def test_both_flat_backends_refuse_an_overflowing_z_in_every_call(backend):
    """z_1 = x W_1[1:] + W_1[0] overflows float32 at x = 3e38 and the sigmoid after it saturates,
    so J and the gradient come out finite: the reference's forward, predict, accuracy and loss
    warned (an error here) where loss_and_grad raised, and the JAX twin returned numbers. Each
    z_l is checked as it is formed (z_2 too), and the loss after them (MSE of targets near 1e300)."""
    P32, y = mb.init_params([4, 3, 2], dtype=np.float32), Y.astype(np.float32)
    big = np.full((5, 4), 3e38, np.float32)
    for call in (lambda: backend.forward(P32, big), lambda: backend.predict(P32, big),
                 lambda: backend.accuracy(P32, big, np.arange(5) % 2), lambda: backend.loss(P32, big, y)):
        with pytest.raises(mb.NonFiniteError, match=r"^z_1 is NaN or inf although x and params are finite: an "
                                                    r"overflow in float32"):
            call()
    for call in (lambda: backend.loss_and_grad(P32, big, y), lambda: backend.sgd_step([W.copy() for W in P32], big, y, 0.1)):
        with pytest.raises(mb.NonFiniteError, match="^the loss is NaN or inf"):
            call()
    P = mb.init_params([4, 3, 2])
    last = [P[0], np.full_like(P[1], 1e308)]    # z_2 = 1e308 (1 + sum of 3 sigmoids): inf
    with pytest.raises(mb.NonFiniteError, match=r"^z_2 is NaN or inf"):
        backend.forward(last, np.ones((5, 4)))
    with pytest.raises(mb.NonFiniteError, match=r"^the loss is NaN or inf although x and params are finite"):
        backend.loss(P, np.ones((5, 4)), np.full((5, 2), 1e200), loss="mean_squared_error")
    assert np.isfinite(backend.loss(P, np.ones((5, 4)), np.full((5, 2), 1e100), loss="mean_squared_error"))


@pytest.mark.parametrize("twin", [MM, AS], ids=["manual_backprop", "autodiff_check"])
def test_both_sequentials_refuse_a_layer_output_that_overflows(twin):
    """The same float32 overflow in the first dense layer, hidden from the logits by the sigmoid
    after it: both Sequentials returned finite numbers."""
    net = twin.mlp([4, 3, 2])
    p, y, big = net.init(seed=0, dtype=np.float32), Y.astype(np.float32), np.full((5, 4), 3e38, np.float32)
    for call in (lambda: net.forward(p, big), lambda: net.predict(p, big), lambda: net.loss(p, big, y),
                 lambda: net.loss_and_grad(p, big, y)):
        with pytest.raises(mb.NonFiniteError, match=re.escape("the outputs of layer 1 (dense) are NaN or inf")):
            call()
    p[-1][0][1:] = 3e38               # the logits overflow instead: x = 0 makes a = 1/2, z = 1.5 * 3e38
    with pytest.raises(mb.NonFiniteError, match="^the logits are NaN or inf"):
        net.loss_and_grad(p, np.zeros((5, 4), np.float32), y)


def test_shared_argument_checks_name_the_argument():
    for call, message in ((lambda: mb.one_hot([1e20], 3), r"^labels must lie in \[0, 3\); got values in \[1e\+20, 1e\+20\]$"),
                          (lambda: mb.one_hot([0], 2.5), "^n_classes must be a positive integer"),
                          (lambda: mb.one_hot([0], True), "^n_classes must be a positive integer"),
                          (lambda: mb.one_hot([0], 0), "^n_classes must be a positive integer"),
                          (lambda: mb.init_params([2, 2], seed=-1), "^seed must be a non-negative integer"),
                          (lambda: mb.init_params([2, 2], seed=1.5), "^seed must be a non-negative integer"),
                          (lambda: mb.init_params([2, 2], seed=True), "^seed must be a non-negative integer"),
                          (lambda: MM_NET.init(seed=-1), "seed must be a non-negative integer"),
                          (lambda: ac.add_bias(np.ones(3)), "add_bias expects a 2-D")):
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(TypeError, match="workspace must be a manual_backprop.fast.Workspace or None; got dict"):
        mb.fast.loss_and_grad(mb.init_params([4, 3, 2]), X, Y, workspace={})
    J1, _ = mb.sgd_step(mb.init_params([4, 3, 2]), X, Y, np.int64(1))   # a NumPy integer rate is a rate
    J2, _ = mb.sgd_step(mb.init_params([4, 3, 2]), X, Y, 1.0)
    assert J1 == J2


@pytest.mark.parametrize("backend", BACKENDS, ids=["manual", "jax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_far_beyond_its_clamp_has_a_finite_gradient_in_both_backends(backend, dtype):
    """z ~ 1e19 (float32) / 1e154 (float64): z^3 overflows. manual_backprop clamps u at |z| = 100;
    the JAX twin used jax.nn.gelu, whose derivative was then 0 * inf = NaN: NonFiniteError."""
    big = 1e20 if dtype == np.float32 else 1e155
    params = [np.array([[0, 0], [big, -big]], dtype), np.array([[0, 0], [1e-30, 0], [0, 1e-30]], dtype)]
    x, y = np.ones((1, 1), dtype), np.array([[1.0, 0.0]], dtype)
    J, grads = backend.loss_and_grad(params, x, y, activation="gelu", loss="softmax_cross_entropy")
    assert np.isfinite(J) and all(np.isfinite(g).all() for g in grads)
    # and float32 stays float32 (the twin's first version computed gelu in float64)
    out = backend.forward([np.array(W, dtype) for W in ([[0.0], [1.0]], [[0.0], [1.0]])], np.array([[-5.5]], dtype),
                          activation="gelu", loss="mean_squared_error")
    assert out.dtype == dtype



@pytest.mark.parametrize("backend", BACKENDS, ids=["manual", "jax"])
def test_with_a_nan_in_x_the_gradient_paths_name_a_bad_y_or_lr_first_on_both_backends(backend):
    """The gradient paths meet a NaN in x through z_1, after y and lr are checked (they no
    longer scan x first); the JAX twin still scanned it first, and named x where
    manual_backprop named y (a review). Both name y, then lr, then x."""
    p, x, y = _net()
    x[1, 2] = np.nan
    bad_y = np.array([[0, 2.0], [1, 0]])
    with pytest.raises(ValueError, match=r"targets y must lie in \[0, 1\]"):
        backend.loss_and_grad(p, x, bad_y)
    with pytest.raises(ValueError, match=r"targets y must lie in \[0, 1\]"):
        backend.sgd_step(p, x, bad_y, 0.1)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        backend.sgd_step(p, x, y, -1.0)
    with pytest.raises(ValueError, match=r"^x contains NaN or inf \(first at \(1, 2\)\)"):
        backend.sgd_step(p, x, y, 0.1)
