"""The pieces of the derivation: each activation's g and g', each loss's value, output and
output error, against formulas written out independently here and the complex step.

JAX-free and fast: part of the mutation-testing subset (docs/mutation.md), whose pytest runs
with ``-x``, so point checks come first.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

import manual_backprop as mb
from manual_backprop import activations as A
from manual_backprop.activations import ACTIVATIONS, get_activation
from manual_backprop.losses import LOSSES, get_loss

import running_error as R
from running_error import Rounded

H = 1e-20  # complex step
C = math.sqrt(2 / math.pi)
K = 0.044715


# ---------------------------------------------------------------- independent references


def sigmoid_ref(z):
    """The textbook 1 / (1 + e^{-z}): accurate for z > -700, complex-capable."""
    return 1 / (1 + np.exp(-np.asarray(z)))


def gelu_ref(z):
    z = np.asarray(z)
    return 0.5 * z * (1 + np.tanh(C * (z + K * z**3)))


# analytic activations: a reference valid (and accurate) for |Re z| <= 50, complex-capable
ANALYTIC_REF = {
    "sigmoid": sigmoid_ref,
    "tanh": np.tanh,
    "softplus": lambda z: np.log1p(np.exp(np.asarray(z))),
    "gelu": gelu_ref,
}
KINKED_REF = {
    "relu": lambda z: np.asarray(z) * (np.asarray(z) > 0),
    "leaky_relu": lambda z: np.where(np.asarray(z) > 0, z, 0.01 * np.asarray(z)),
}
KINKED_GRAD_REF = {
    "relu": lambda z: np.where(np.asarray(z) > 0, 1.0, 0.0),
    "leaky_relu": lambda z: np.where(np.asarray(z) < 0, 0.01, 1.0),
}
# real-only references valid everywhere (used for the network forward pass at any |z|)
REF_EVERYWHERE = {
    "sigmoid": sigmoid_ref,
    "tanh": np.tanh,
    "softplus": lambda z: np.logaddexp(0, z),
    "gelu": gelu_ref,
    **KINKED_REF,
}


def cs_derivative(f, z):
    """Im f(z + i h) / h: the derivative of an analytic f, exact to rounding."""
    return np.imag(f(np.asarray(z, np.float64) + 1j * H)) / H


def bce_naive(z, y):
    p = 1 / (1 + np.exp(-z))
    return -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p), axis=1)


def bce_stable(z, y):
    return np.sum(np.logaddexp(0, z) - y * z, axis=1)


def softmax_naive(z):
    e = np.exp(z)
    return e / np.sum(e, axis=1, keepdims=True)


def softmax_ce_naive(z, y):
    return -np.sum(y * np.log(softmax_naive(z)), axis=1)


def softmax_ce_stable(z, y):
    return -np.sum(y * (z - np.logaddexp.reduce(z, axis=1, keepdims=True)), axis=1)


def mse_ref(z, y):
    return 0.5 * np.sum((z - y) ** 2, axis=1)


LOSS_REF = {
    "binary_cross_entropy": (bce_naive, bce_stable),
    "softmax_cross_entropy": (softmax_ce_naive, softmax_ce_stable),
    "mean_squared_error": (mse_ref, mse_ref),
}


def forward_ref(params, x, activation):
    """z_L with the bias column concatenated, as in the post (not as the code does it)."""
    a = x
    for W in params[:-1]:
        a = REF_EVERYWHERE[activation](np.concatenate([np.ones((a.shape[0], 1)), a], axis=1) @ W)
    return np.concatenate([np.ones((a.shape[0], 1)), a], axis=1) @ params[-1]


# ---------------------------------------------------------------- activations, pointwise

POINTS = np.array([-50.0, -20.0, -3.0, -1.0, -0.5, -1e-3, -1e-8, 0.0, 1e-8, 1e-3, 0.5, 1.0, 3.0, 20.0, 50.0])


def test_activation_names():
    assert sorted(ACTIVATIONS) == ["gelu", "leaky_relu", "relu", "sigmoid", "softplus", "tanh"]
    for name, act in ACTIVATIONS.items():
        assert act.name == name and get_activation(name) is act
    assert {n for n, a in ACTIVATIONS.items() if a.analytic} == set(ANALYTIC_REF)


U64 = np.finfo(np.float64).eps / 2


def _step_error(name: str, v):
    """The complex step's own error, beside rounding, at a point where the value (or derivative)
    concerned is v: Re g(x + ih) = g(x) - h^2 g''(x) / 2, Im g(x + ih) / h = g'(x) - h^2 g'''(x) / 6,
    and the real part of g' continued is g'(x) - h^2 g'''(x) / 2. For tanh, sigmoid and softplus
    |g''| <= 2 |g| and |g'''| <= 4 |g'| (tanh: g'' = -2 t s, g''' = -2 s (1 - 3 t^2), s = 1 - t^2;
    sigmoid: g'' = p (1 - 2 g), g''' = p (1 - 6 p), p = g (1 - g) <= g; softplus: g'' = p <= sigma
    <= log(1 + e^z)), so 2 h^2 |v| bounds each: relative, below u by 1e-24. GELU's g'' is not
    relative to g (g(0) = 0, g''(0) = C): |g''| <= 0.80 and |g'''| <= 0.78 over the real line
    (maxima of the exact derivatives on a grid of step 0.01 over [-8, 8], saturated beyond), so
    h^2 absolute; it matters where the value is 0 (gelu(0 + ih) has real part -h^2 C / 2)."""
    return H * H if name == "gelu" else 2 * H * H * np.abs(v)


def _ref_running_error(name: str, z):
    """ANALYTIC_REF[name] as this file writes it, each operation with its rounding bound: on a
    Rounded z the real reference, on a Dual z (running_error.Dual) its complex step, whose .du is
    the forward-mode chain Im ref(z + ih) / h computes. z**3 is libm's pow in real arithmetic
    (within 1 ulp, 2 |z^3| u: what z z z's rule gives) and z (z z) in complex (npy_cpow's n = 3)."""
    const = lambda c: Rounded(c, abs(c))                                    # noqa: E731
    if name == "sigmoid":
        return 1 / (1 + R.exp(-z))
    if name == "tanh":
        return R.tanh(z)
    if name == "softplus":
        return R.log1p(R.exp(z))
    return 0.5 * z * (1 + R.tanh(const(C) * (z + const(K) * (z * (z * z)))))


def _assert_within(got, ref, tol, what):
    err = np.abs(got - ref)
    if not np.all(err <= tol):
        ratio = np.divide(err, tol, out=np.where(err > 0, np.inf, 0.0), where=tol > 0)
        raise AssertionError(f"{what}: |code - ref| / bound = {np.max(ratio)} at flat index {np.argmax(ratio)}")


@pytest.mark.parametrize("name", sorted(ANALYTIC_REF))
def test_analytic_activation_values_and_derivatives(name):
    """The code against the references, each point within the sum of the two sides' rounding
    bounds: |code - exact| <= u C_code (the running error of the code's formula, _running_error,
    at real z and at z + ih) and |ref - exact| <= u C_ref (that of the
    reference's formula, and for cs_derivative that of the forward-mode chain the complex step
    computes, plus the division by h), so |code - ref| <= u (C_code + C_ref). "Exact" is g with
    the float64 constants C and K that code and reference share. No bound looks at the code's
    outputs: each is computed from z, the formulas and u."""
    assert (C, K) == (A.GELU.c, A.GELU.k)
    act, ref = ACTIVATIONS[name], ANALYTIC_REF[name]
    code, code_d = _running_error(name, POINTS)
    g_ref = _ref_running_error(name, Rounded.exact(POINTS))
    d_ref_bound = _ref_running_error(name, R.Dual.step(POINTS)).im_over_h()
    step_g, step_d = _step_error(name, g_ref.v), _step_error(name, d_ref_bound.v)   # the step's own h^2 terms
    a = act.fn(POINTS)
    _assert_within(a, ref(POINTS), U64 * (code.c + g_ref.c), "g")
    d_ref = cs_derivative(ref, POINTS)
    _assert_within(act.grad(POINTS, a), d_ref, U64 * (code_d.c + d_ref_bound.c) + step_d, "g'")
    # the complex continuation the complex-step oracle sees: value and derivative
    zc = POINTS + 1j * H
    ac_ = act.fn(zc)
    cplx, cplx_d = _running_error(name, R.Dual.step(POINTS))
    # (NumPy's complex log1p is log(1 + z): softplus's real part has absolute, not relative,
    # accuracy in its tail, which the Dual rule for log1p says: log(hypot(x + 1, y)))
    _assert_within(ac_.real, ref(POINTS), U64 * (cplx.re.c + g_ref.c) + step_g, "Re g(z + ih)")
    _assert_within(np.imag(ac_) / H, d_ref, U64 * (cplx.im_over_h().c + d_ref_bound.c) + step_d, "Im g(z + ih) / h")
    # the derivative also accepts complex input and stays the same function there
    _assert_within(act.grad(zc, ac_).real, d_ref, U64 * (cplx_d.re.c + d_ref_bound.c) + step_d, "Re g'(z + ih)")


@pytest.mark.parametrize("name", sorted(ANALYTIC_REF))
def test_complex_step_at_exactly_zero_real_part(name):
    """Re z == 0 is where the stable formulas switch branch: both branches must continue the
    same analytic function, so Im g(0 + ih)/h must be g'(0)."""
    act = ACTIVATIONS[name]
    d0 = {"sigmoid": 0.25, "tanh": 1.0, "softplus": 0.5, "gelu": 0.5}[name]
    z = np.array([0.0 + 1j * H, -0.0 + 1j * H, 0.0 - 1j * H])
    np.testing.assert_allclose(np.imag(act.fn(z)) / (np.imag(z)), d0, rtol=1e-15)
    np.testing.assert_allclose(act.fn(z).real, ANALYTIC_REF[name](0.0), rtol=1e-15, atol=1e-30)  # O(h^2)


def test_exact_known_values():
    s, t, sp, g = (ACTIVATIONS[n] for n in ("sigmoid", "tanh", "softplus", "gelu"))
    z0 = np.array([0.0])
    assert s.fn(z0)[0] == 0.5 and s.grad(z0, s.fn(z0))[0] == 0.25
    assert t.fn(z0)[0] == 0.0 and t.grad(z0, t.fn(z0))[0] == 1.0
    assert sp.fn(z0)[0] == math.log(2) and sp.grad(z0, sp.fn(z0))[0] == 0.5
    assert g.fn(z0)[0] == 0.0 and g.grad(z0, g.fn(z0))[0] == 0.5
    assert mb.activations.sigmoid(z0)[0] == 0.5 and mb.activations.softplus(z0)[0] == math.log(2)
    assert mb.activations.exp_neg_abs(np.array([0.0, 2.0, -2.0])).tolist() == [1.0, math.exp(-2), math.exp(-2)]
    zc = np.array([2.0 + 1j * H, -2.0 + 1j * H])
    e = mb.activations.exp_neg_abs(zc)
    np.testing.assert_allclose(e.real, math.exp(-2), rtol=1e-15)
    np.testing.assert_allclose(e.imag / H, [-math.exp(-2), math.exp(-2)], rtol=1e-15)


def test_relu_and_leaky_relu_pointwise():
    relu, leaky = ACTIVATIONS["relu"], ACTIVATIONS["leaky_relu"]
    z = np.array([-50.0, -2.0, -1e-8, -0.0, 0.0, 1e-8, 2.0, 50.0])
    for name, act in (("relu", relu), ("leaky_relu", leaky)):
        a = act.fn(z)
        np.testing.assert_array_equal(a, KINKED_REF[name](z))
        np.testing.assert_array_equal(act.grad(z, a), KINKED_GRAD_REF[name](z))
    assert leaky.slope == 0.01
    np.testing.assert_array_equal(leaky.fn(np.array([-2.0, 3.0])), [-0.02, 3.0])
    zero = np.array([0.0])
    assert relu.grad(zero, relu.fn(zero))[0] == 0.0  # convention at the kink
    assert leaky.grad(zero, leaky.fn(zero))[0] == 1.0  # z >= 0 branch
    assert relu.fn(zero)[0] == 0.0 and leaky.fn(zero)[0] == 0.0


def test_large_magnitudes_exact_and_without_warnings():
    """|z| = 1000 and 1e200: saturated values exactly, no overflow (warnings are errors)."""
    z = np.array([-1e200, -1000.0, 1000.0, 1e200])
    A = {n: ACTIVATIONS[n] for n in ACTIVATIONS}
    cases = {
        "sigmoid": ([0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]),
        "tanh": ([-1.0, -1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]),
        "softplus": ([0.0, 0.0, 1000.0, 1e200], [0.0, 0.0, 1.0, 1.0]),
        "gelu": ([0.0, 0.0, 1000.0, 1e200], [0.0, 0.0, 1.0, 1.0]),
        "relu": ([0.0, 0.0, 1000.0, 1e200], [0.0, 0.0, 1.0, 1.0]),
        "leaky_relu": ([-1e198, -10.0, 1000.0, 1e200], [0.01, 0.01, 1.0, 1.0]),
    }
    for name, (val, der) in cases.items():
        a = A[name].fn(z)
        assert a.tolist() == val, name
        assert A[name].grad(z, a).tolist() == der, name
    # float64 where tanh rounds to +-1 (|u| > 19.1): exact, where the first-order bounds of
    # test_analytic_activation_values_and_derivatives allow tanh 8 u and GELU amplifies it
    z64 = np.array([-50.0, -20.0, 20.0, 50.0])
    for name, (val, der) in {"tanh": ([-1, -1, 1, 1], [0, 0, 0, 0]), "gelu": ([0, 0, 20, 50], [0, 0, 1, 1])}.items():
        a = A[name].fn(z64)
        assert a.tolist() == val and A[name].grad(z64, a).tolist() == der, name
    # float32 saturates as exactly (tanh u = +-1 to the last bit beyond GELU's clamp too), where
    # test_activation_dtype_preserved's first-order bound cannot tell: it allows tanh 8 u there
    z32 = np.array([-1000.0, -150.0, 150.0, 1000.0], np.float32)
    for name, (val, der) in {"sigmoid": ([0, 0, 1, 1], [0, 0, 0, 0]), "tanh": ([-1, -1, 1, 1], [0, 0, 0, 0]),
                             "gelu": ([0, 0, 150, 1000], [0, 0, 1, 1])}.items():
        a = A[name].fn(z32)
        assert a.dtype == np.float32 and a.tolist() == val, name
        assert A[name].grad(z32, a).tolist() == der, name
    # 50: not yet saturated for sigmoid's lower tail and softplus
    s = A["sigmoid"].fn(np.array([-50.0, 50.0]))
    np.testing.assert_allclose(s[0], math.exp(-50) / (1 + math.exp(-50)), rtol=1e-15)
    assert s[1] == 1.0
    np.testing.assert_allclose(A["softplus"].fn(np.array([-50.0]))[0], math.exp(-50), rtol=1e-15)
    np.testing.assert_allclose(A["softplus"].grad(np.array([-50.0]), None)[0], math.exp(-50), rtol=1e-14)
    # GELU's clamp at |z| = 100 changes nothing: compare against the unclamped formula nearby
    zg = np.array([-150.0, -100.5, -99.5, 99.5, 100.5, 150.0, 1e5])
    np.testing.assert_allclose(A["gelu"].fn(zg), gelu_ref(zg), rtol=1e-15, atol=1e-300)
    assert A["gelu"].grad(zg, A["gelu"].fn(zg)).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    # complex input far out, as the complex step passes it
    zc = np.array([-1000.0 + 1j * H, 1000.0 + 1j * H, 1e200 + 1j * H, -1e200 + 1j * H])
    g = A["gelu"].fn(zc)
    np.testing.assert_array_equal(g.real, [0.0, 1000.0, 1e200, 0.0])
    np.testing.assert_array_equal(g.imag / H, [0.0, 1.0, 1.0, 0.0])
    for n in ("sigmoid", "softplus", "tanh"):
        np.testing.assert_array_equal(A[n].fn(zc).real, A[n].fn(zc.real), err_msg=n)


def _softplus_code(z):
    """manual_backprop.activations.softplus as written: max(z, 0) + log1p(e^{-|z|}) for real z; for
    complex z the branch on Re z >= 0, z or 0, plus log1p(exp_neg_abs(z))."""
    if isinstance(z, R.Dual):
        right = z.re.v >= 0
        return R.where(right, z, 0) + R.log1p(R.exp(R.where(right, -z, z)))
    return R.maximum(z, 0) + R.log1p(R.exp(-abs(z)))


def _running_error(name: str, z) -> tuple:
    """g(z) and g'(z) as the docstrings of manual_backprop.activations write them, each operation
    carrying its first-order rounding bound (tests/running_error.py); a constant such as 0.01 or
    sqrt(2 / pi) is rounded to the dtype, |c| u. Bounds an evaluation of those formulas in a
    dtype where every intermediate is a normal number (no underflow term: below float32's
    smallest normal, e.g. sigma(-100), the bound does not hold): C u of the exact value. The
    constants are this file's, not the code's. GELU's z^3 is np.power in the code, modelled as
    z z z (2u); a review measured np.power's float32 cube within 1 ulp (<= 2u), 2026-12-04.
    z an array (real), or a running_error.Dual: the code's complex continuation for the complex
    step (the branch on Re z >= 0, exp_neg_abs's; GELU's cube z (z z), npy_cpow's, and no clamp:
    |Re z| <= 50 there), each complex operation bounded by Dual's rules."""
    complex_ = isinstance(z, R.Dual)
    z = z if complex_ else Rounded.exact(z)
    const = lambda c: Rounded(c, abs(c))                                    # noqa: E731
    if name in ("sigmoid", "softplus"):
        if complex_:
            right = z.re.v >= 0
            e = R.exp(R.where(right, -z, z))
            s = R.where(right, 1, e) / (1 + e)
        else:
            s = R.sigmoid(z)
        if name == "sigmoid":
            return s, (1 - s) * s
        return _softplus_code(z), s
    if name == "tanh":
        t = R.tanh(z)
        return t, 1 - t * t
    if name in ("relu", "leaky_relu"):
        s = 0.0 if name == "relu" else 0.01
        neg = const(s) * z
        return (Rounded(np.where(z.v >= 0, z.v, neg.v), np.where(z.v >= 0, 0, neg.c)),
                Rounded(np.where(z.v >= 0, 1, s), np.where(z.v >= 0, 0, s)))      # the slope, rounded
    zc = z if complex_ else Rounded.exact(np.clip(z.v, -100, 100))          # GELU's clamp
    t = R.tanh(const(C) * (zc + const(K) * (zc * (zc * zc) if complex_ else zc * zc * zc)))
    return 0.5 * z * (1 + t), 0.5 * (1 + t) + 0.5 * zc * (1 - t * t) * const(C) * (1 + const(3 * K) * zc * zc)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_dtype_preserved(name, dtype):
    """Same dtype and shape out; and in float32 the same function as in float64: at z exact in
    both, each evaluation is within C u of the exact g(z) (C from _running_error), so the two
    differ by at most (u32 + u64) C."""
    act = ACTIVATIONS[name]
    z = np.array([-1e3, -3.0, -0.5, 0.0, 0.5, 3.0, 1e3], dtype=dtype)
    a = act.fn(z)
    g = act.grad(z, a)
    assert a.dtype == dtype and g.dtype == dtype
    assert a.shape == z.shape and g.shape == z.shape
    if dtype == np.float64:
        return                             # the comparison below would hold the code to itself
    z64 = z.astype(np.float64)
    bound_a, bound_g = _running_error(name, z64)
    u = np.finfo(dtype).eps / 2 + np.finfo(np.float64).eps / 2
    assert np.all(np.abs(a - act.fn(z64)) <= u * bound_a.c), np.abs(a - act.fn(z64)) / bound_a.c
    assert np.all(np.abs(g - act.grad(z64, act.fn(z64))) <= u * bound_g.c), np.abs(g - act.grad(z64, act.fn(z64))) / bound_g.c


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_nan_in_is_a_nan_out_without_a_warning(name, dtype):
    """g is elementwise: a NaN entry gives NaN there, leaves its neighbours alone, and raises
    no RuntimeWarning (the suite turns warnings into errors); the gradient paths then name the
    NaN themselves (raise_not_finite)."""
    act = ACTIVATIONS[name]
    z = np.array([[-1.0, np.nan, 2.0]], dtype)
    a = act.fn(z)
    assert np.isnan(a[0, 1]) and np.all(np.isfinite(a[0, [0, 2]]))
    assert np.all(a[0, [0, 2]] == act.fn(z[:, [0, 2]])[0])


def test_activation_shape_2d():
    z = np.linspace(-5, 5, 12).reshape(3, 4)
    for name, act in ACTIVATIONS.items():
        a = act.fn(z)
        assert a.shape == (3, 4), name
        assert act.grad(z, a).shape == (3, 4), name


def test_unknown_activation_and_loss_names():
    msg = "unknown activation 'swish'; supported: gelu, leaky_relu, relu, sigmoid, softplus, tanh"
    with pytest.raises(ValueError) as e:
        get_activation("swish")
    assert str(e.value) == msg and e.value.__cause__ is None and e.value.__suppress_context__
    with pytest.raises(ValueError, match="unknown activation"):
        get_activation(["sigmoid"])  # unhashable: TypeError inside, ValueError outside
    msg = "unknown loss 'hinge'; supported: binary_cross_entropy, mean_squared_error, softmax_cross_entropy"
    with pytest.raises(ValueError) as e:
        get_loss("hinge")
    assert str(e.value) == msg and e.value.__cause__ is None and e.value.__suppress_context__
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss({})
    for name, l in LOSSES.items():
        assert l.name == name and get_loss(name) is l and l.analytic


# ---------------------------------------------------------------- losses, directly

Z = np.array(
    [
        [-3.0, 0.0, 2.5],
        [1e-3, -1e-3, 0.7],
        [4.0, -4.0, 0.0],
        [-0.2, 1.3, -2.2],
    ]
)


def _targets(loss, shape, rng):
    if loss == "binary_cross_entropy":
        y = rng.uniform(0, 1, shape)
        y.flat[0], y.flat[1] = 0.0, 1.0  # the ends of [0, 1] are allowed
        return y
    if loss == "softmax_cross_entropy":
        return rng.dirichlet(np.ones(shape[1]), size=shape[0])
    return rng.normal(0, 3, shape)


def _loss_running_error(name: str, z, y: np.ndarray):
    """Rounding bounds, per example or per entry, of the loss formulas as losses.py and this
    file's references write them, rule by rule; z a Rounded (real) or a Dual (a complex step),
    y exact. Returns a dict: value, delta, output (the code's) and naive, stable, expected (the
    references'). np.sum of 3 terms and logaddexp.reduce's left fold follow the rules for sums
    and for logaddexp; x**2 is np.square, x * x."""
    Y = Rounded.exact(y)
    out = {}
    if name == "binary_cross_entropy":
        out["value"] = (_softplus_code(z) - Y * z).sum(1)
        p = 1 / (1 + R.exp(-z))                                             # bce_naive's p
        out["naive"] = -(Y * R.log(p) + (1 - Y) * R.log(1 - p)).sum(1)
        if isinstance(z, Rounded):
            out["stable"] = (R.logaddexp(0, z) - Y * z).sum(1)
            out["delta"] = R.sigmoid(z) - Y                                 # 1 / (1 + e^{-z}) - y
            out["output"] = out["expected"] = R.sigmoid(z)
        return out
    if name == "softmax_cross_entropy":
        re = z.re.v if isinstance(z, R.Dual) else z.v
        m = Rounded.exact(re.max(axis=1, keepdims=True))                   # max of exact numbers: exact
        e = R.exp(z - m)
        lse = m[:, 0] + R.log(e.sum(1))
        out["value"] = Y.sum(1) * lse - (Y * z).sum(1)
        en = R.exp(z)                                                       # softmax_naive
        out["naive"] = -(Y * R.log(en / en.sum(1, keepdims=True))).sum(1)
        if isinstance(z, Rounded):
            lse_fold = z[:, :1]
            for j in range(1, z.shape[1]):
                lse_fold = R.logaddexp(lse_fold, z[:, j:j + 1])
            out["stable"] = -(Y * (z - lse_fold)).sum(1)
            out["output"] = e / e.sum(1, keepdims=True)
            out["delta"] = out["output"] * Y.sum(1, keepdims=True) - Y
            out["expected"] = en / en.sum(1, keepdims=True)
        return out
    r = z - Y
    out["value"] = out["naive"] = out["stable"] = 0.5 * (r * r).sum(1)
    if isinstance(z, Rounded):
        out["delta"] = z - Y
        out["output"] = out["expected"] = z                                 # the identity: exact
    return out


# The complex step's own error in the loss checks: Re l(z + ih e_j) = l(z) - h^2 d2l / 2 and
# Im l(z + ih e_j) / h = dl - h^2 d3l / 6, with |d2l| = sigma' <= 1/4, s p (1 - p) <= 1/4 (s = 1
# here) or 1, |d3l| = |sigma''| <= 0.1, |s p (1 - p)(1 - 2p)| <= 0.1 or 0: h^2 bounds each.
LOSS_STEP_ERROR = H * H


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_value_delta_and_output_against_references(name):
    """Each comparison within the sum of the two sides' rounding bounds (u (C_code + C_ref),
    _loss_running_error), per example or per entry; the bounds come from Z, y, the formulas and
    u, never from the code's outputs."""
    rng = np.random.default_rng(1)
    lossfn, (naive, stable) = LOSSES[name], LOSS_REF[name]
    y = _targets(name, Z.shape, rng)
    b = _loss_running_error(name, Rounded.exact(Z), y)
    v = lossfn.value(Z, y)
    assert v.shape == (Z.shape[0],)
    _assert_within(v, naive(Z, y), U64 * (b["value"].c + b["naive"].c), "value vs naive")
    _assert_within(v, stable(Z, y), U64 * (b["value"].c + b["stable"].c), "value vs stable")
    # delta = dl/dz, against the complex step of the *reference* value, per logit
    d = lossfn.delta(Z, y)
    assert d.shape == Z.shape
    for j in range(Z.shape[1]):
        e = np.zeros_like(Z)
        e[:, j] = 1
        cs = _loss_running_error(name, R.Dual.step(Z, e), y)
        _assert_within(d[:, j], np.imag(naive(Z + 1j * H * e, y)) / H,
                       U64 * (b["delta"].c[:, j] + cs["naive"].im_over_h().c) + LOSS_STEP_ERROR, f"delta[:, {j}] vs naive's step")
        # and against the complex step of the code's own value (the continuation the oracle uses)
        vc = lossfn.value(Z + 1j * H * e, y)
        _assert_within(vc.real, v, U64 * (cs["value"].re.c + b["value"].c) + LOSS_STEP_ERROR, f"Re value(z + ih e_{j})")
        _assert_within(np.imag(vc) / H, d[:, j],
                       U64 * (cs["value"].im_over_h().c + b["delta"].c[:, j]) + LOSS_STEP_ERROR, f"Im value(z + ih e_{j}) / h")
    out = lossfn.output(Z)
    expected = {"binary_cross_entropy": 1 / (1 + np.exp(-Z)), "softmax_cross_entropy": softmax_naive(Z), "mean_squared_error": Z}[name]
    _assert_within(out, expected, U64 * (b["output"].c + b["expected"].c), "output")
    # the loss object does not modify its inputs
    np.testing.assert_array_equal(Z[0], [-3.0, 0.0, 2.5])


def test_output_functions_at_large_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0], [50.0, -50.0, 0.0]])
    bce, sce, mse = (LOSSES[n] for n in ("binary_cross_entropy", "softmax_cross_entropy", "mean_squared_error"))
    np.testing.assert_array_equal(bce.output(z)[0], [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(sce.output(z)[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(sce.output(z)[1], [1 / 3] * 3, rtol=1e-15)
    np.testing.assert_allclose(sce.output(z)[2], softmax_naive(z[2:])[0], rtol=1e-14)
    assert mse.output(z) is z
    # forward() applies the output function
    params = [np.array([[0.0, 0.0, 0.0], [1.0, 0.0, -1.0]])]
    x = np.array([[1000.0], [2.0]])
    np.testing.assert_array_equal(mb.forward(params, x, loss="softmax_cross_entropy")[0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(mb.forward(params, x)[0], [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(mb.forward(params, x, loss="mean_squared_error"), [[1000.0, 0.0, -1000.0], [2.0, 0.0, -2.0]])


def test_loss_values_at_large_logits():
    """|z| up to 1000: exact in the stable forms, no overflow or log(0) anywhere."""
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 50.0], [-1000.0, -1000.0, -1000.0]])
    y_bce = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.25], [0.0, 0.5, 1.0]])
    y_sce = np.array([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.2, 0.3, 0.5]])
    bce, sce = LOSSES["binary_cross_entropy"], LOSSES["softmax_cross_entropy"]
    np.testing.assert_allclose(bce.value(z, y_bce), bce_stable(z, y_bce), rtol=1e-15)
    # row 2 is -1000 + log 3 + 1000: a cancellation of 1e3 u
    np.testing.assert_allclose(sce.value(z, y_sce), [0.0, 1475.0, math.log(3)], rtol=1e-12)
    np.testing.assert_allclose(sce.value(z, y_sce), softmax_ce_stable(z, y_sce), rtol=1e-12)
    np.testing.assert_array_equal(bce.delta(z, y_bce)[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(sce.delta(z, y_sce), softmax_naive(z - z.max(axis=1, keepdims=True)) - y_sce, atol=1e-15)


INF, NAN = math.inf, math.nan


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_values_at_infinite_logits_are_the_limits(dtype):
    """z = +-inf gives the limit of the finite formula, 0 * inf counting 0 (as 0 log 0 = 0):
    BCE's l_k = softplus(z_k) - y_k z_k tends to (1 - y_k) z_k at +inf and -y_k z_k at -inf;
    softmax's l = sum_k y_k (lse(z) - z_k), where a -inf logit is a class masked out (p_k = 0).
    NaN where no limit exists. Exact values, the dtype kept, no warning (warnings are errors)."""
    bce, sce = LOSSES["binary_cross_entropy"], LOSSES["softmax_cross_entropy"]
    # the limits also where y is outside [0, 1], as the formula extrapolates: (1 - 2) inf, -1 inf
    z = np.array([[INF, -INF, 2.0], [INF, 0, 0], [-INF, 0, 0], [NAN, 0, 0], [INF, -INF, 0]], dtype)
    y = np.array([[1.0, 0.0, 0.5], [0.5, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [2.0, -1.0, 0]], dtype)
    v = bce.value(z, y)
    assert v.dtype == dtype
    at_2 = bce.value(np.array([[2.0]], dtype), np.array([[0.5]], dtype))[0]   # softplus(2) - 1, alone
    log2 = bce.value(np.zeros((1, 1), dtype), np.zeros((1, 1), dtype))[0]
    np.testing.assert_array_equal(v, np.array([at_2, INF, INF, NAN, -INF], dtype))
    np.testing.assert_array_equal(bce.value(z[4:], np.array([[1.0, 0, 0]], dtype)), np.array([log2], dtype))
    np.testing.assert_array_equal(bce.delta(z, y)[1:3], np.array([[0.5, 0.5, 0.5], [-1, 0.5, 0.5]], dtype))

    masked, kept = [0.0, -INF, 1.0], [0.0, 1.0]        # the same row with class 1 masked out, and without it
    z = np.array([masked, [INF, 0, -INF], [INF, 0, -INF], [INF, INF, 0], [-INF, -INF, -INF], [NAN, INF, 0],
                  [INF, 0, -INF], [1, 2, 3]], dtype)
    y = np.array([[0.5, 0, 0.5], [1, 0, 0], [0.5, 0.5, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0.2, 0.3, 0.5]], dtype)
    v = sce.value(z, y)
    assert v.dtype == dtype
    alone = sce.value(np.array([kept], dtype), np.array([[0.5, 0.5]], dtype))[0]
    finite_row = sce.value(z[-1:], y[-1:])[0]          # finite rows beside them: the finite path's bits
    np.testing.assert_array_equal(v, np.array([alone, 0, INF, NAN, NAN, NAN, INF, finite_row], dtype))
    np.testing.assert_array_equal(sce.value(z[6:7], np.zeros((1, 3), dtype)), np.zeros(1, dtype))  # no weight anywhere
    p = sce.output(z)
    assert p.dtype == dtype
    np.testing.assert_array_equal(p[0], np.insert(sce.output(np.array([kept], dtype))[0], 1, 0))
    np.testing.assert_array_equal(p[1:3], np.array([[1, 0, 0]] * 2, dtype))
    np.testing.assert_array_equal(p[3], [NAN, NAN, 0])    # two +inf: no limit at them, 0 below
    assert np.isnan(p[4:6]).all()
    np.testing.assert_array_equal(p[7], sce.output(z[-1:])[0])
    d = sce.delta(z, y)
    np.testing.assert_array_equal(d[[1, 2, 6]], np.array([[0, 0, 0], [0.5, -0.5, 0], [1, -1, 0]], dtype))
    assert d[0, 1] == 0


def test_softmax_limits_where_infinite_logits_grow_apart():
    """l = sum_k y_k (lse(z) - z_k) with each infinite logit growing on its own: with +inf
    logits every term below them diverges with the sign of its weight (and cancels exactly
    where the weights below sum to 0, leaving -sum y_k z_k); at one of two +inf logits, or in a
    row of -inf only, a term's limit depends on the growth: NaN unless a term of the same sign
    diverges; terms diverging with both signs: NaN. A class alone is p = 1, l = 0. Exact values,
    no warning (warnings are errors)."""
    sce, bce = LOSSES["softmax_cross_entropy"], LOSSES["binary_cross_entropy"]
    rows = [  # z, y, l
        ([INF, INF, 0], [0, 0, 1], INF),            # weight only below two +inf logits
        ([INF, INF, 0], [1, 0, 1], INF),            # ... and one on a +inf logit, same sign
        ([INF, INF, 0], [1, 0, 0], NAN),            # only on a +inf logit: between 0 and inf
        ([INF, 0, 0], [0, 1, -0.5], INF),           # weights below of both signs, sum > 0
        ([INF, 1, 2], [0.5, 0.25, -0.25], 0.25),    # ... summing to 0: -(0.25 * 1 - 0.25 * 2)
        ([INF, 0, -INF], [0, 1, -1], -INF),         # weights below sum to 0: lse cancels, -|z_3| stays
        ([0, -INF, -INF], [0, 1, -1], NAN),         # two -inf entries pulling apart
        ([-INF, -INF, -INF], [0, 0, 0], 0),         # no weight: nothing to lose
        ([-INF, -INF, -INF], [1, 0, 0], NAN),       # all -inf: the shares depend on the growth
        ([INF, INF, 0], [-1, 0, 0], NAN),           # a negative weight at one of two +inf logits
        ([INF, 0, 0], [0, -1, 0], -INF),            # a negative weight below a +inf logit
        ([0, 1, -INF], [-1, 0, 0], None),           # no +inf, nothing diverges: s lse - sum y z
        ([0, -INF, 1], [NAN, 0, 1], NAN),           # a NaN target
    ]
    z = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    finite = sce.value(np.array([[0.0, 1.0]]), np.array([[-1.0, 0.0]]))[0]   # the same row, -inf left out
    np.testing.assert_array_equal(sce.value(z, y), [finite if r[2] is None else r[2] for r in rows])
    np.testing.assert_array_equal(sce.value(np.array([[-INF, -INF]]), np.array([[1.0, 0.0]])), [NAN])
    np.testing.assert_array_equal(sce.output(z[:1]), [[NAN, NAN, 0]])     # 0 below, no limit at the top
    np.testing.assert_array_equal(sce.delta(z[:1], y[:1]), [[NAN, NAN, -1]])
    # one class: p = 1 and l = y (z - z) = 0 for every z, -inf too
    np.testing.assert_array_equal(sce.output(np.array([[-INF], [INF], [3.0]])), [[1], [1], [1]])
    np.testing.assert_array_equal(sce.value(np.array([[-INF], [INF]]), np.array([[1.0], [1.0]])), [0, 0])
    # a row whose limit is NaN beside finite overflowing entries, and BCE entries of both signs
    # at infinity: NaN without an overflow or invalid-value warning from the sums
    np.testing.assert_array_equal(sce.value(np.array([[NAN, 1e308, 1e308]]), np.array([[0, 1.0, 1.0]])), [NAN])
    np.testing.assert_array_equal(bce.value(np.array([[INF, INF]]), np.array([[0.0, 2.0]])), [NAN])


def _softmax_ce_limit(z, y) -> float:
    """The oracle: l = sum_k y_k (lse(z) - z_k) as each infinite logit u -> inf on its own,
    written as const + sum_i c_i u_i + terms with no limit ("open": between 0 and inf times the
    sign of their weight), one row of Python floats."""
    if any(map(math.isnan, z + y)):
        return NAN
    if len(z) == 1:
        return 0.0                                     # y (z - z)
    top = [k for k, v in enumerate(z) if v == INF]
    low = [k for k, v in enumerate(z) if v == -INF]
    fin = [k for k, v in enumerate(z) if math.isfinite(v)]
    if not top and not fin:                            # all -inf: every term open
        coefs, const, open_ = [], 0.0, [y[k] for k in low]
    elif not top:                                      # y_k (L + u_k) at each -inf entry
        L = max(z[k] for k in fin) + math.log(sum(math.exp(z[k] - max(z[j] for j in fin)) for k in fin))
        coefs, const, open_ = [y[k] for k in low], sum(y[k] * (L - z[k]) for k in fin), []
    else:                                              # lse = u* + O(1): below it y_k (u* - z_k), + u_k at -inf
        coefs = [sum(y[k] for k in fin + low)] + [y[k] for k in low]
        const, open_ = -sum(y[k] * z[k] for k in fin), ([y[k] for k in top] if len(top) > 1 else [])
    signs = {math.copysign(1, c) for c in coefs if c != 0}
    open_signs = {math.copysign(1, c) for c in open_ if c != 0}
    if not signs:
        return NAN if open_signs else const
    if len(signs) > 1 or (open_signs - signs):
        return NAN
    return signs.pop() * INF


def test_softmax_limits_against_an_oracle_of_them():
    """Every row of 1-3 logits in {+-inf, 0, 1.5, -2} with weights in {0, 1, -0.5, 0.25}
    (8,420 rows) against the oracle above. Finite limits within the two sides' rounding: each
    side sums at most 2n + 2 terms (y_k lse, y_k z_k, lse's own m + log sum), their magnitudes
    summing to at most M = sum_k |y_k| (2 max|z_finite| + log n + 2), in its own order: within
    gamma_{2n+4} M <= (2n + 5) u M of the exact value (Higham 3.5, exp and log within u each);
    the bound is the sum of both sides'."""
    sce = LOSSES["softmax_cross_entropy"]
    zs, ys = (INF, -INF, 0.0, 1.5, -2.0), (0.0, 1.0, -0.5, 0.25)
    rows = 0
    for n in (1, 2, 3):
        Z = [z for z in itertools.product(zs, repeat=n) for _ in itertools.product(ys, repeat=n)]
        Y = [y for _ in itertools.product(zs, repeat=n) for y in itertools.product(ys, repeat=n)]
        got = sce.value(np.array(Z), np.array(Y))
        for z, y, v in zip(Z, Y, got):
            want = _softmax_ce_limit(list(z), list(y))
            if math.isfinite(want):
                M = sum(map(abs, y)) * (2 * max((abs(a) for a in z if math.isfinite(a)), default=0.0) + math.log(n) + 2)
                assert abs(v - want) <= 2 * (2 * n + 5) * U64 * M, (z, y, v, want)
            else:
                assert v == want or (math.isnan(v) and math.isnan(want)), (z, y, v, want)
            rows += 1
    assert rows == 8420


def test_loss_limits_take_masked_arrays_as_the_finite_path_does_or_refuse_them():
    """BCE sums the entries not masked, as for finite z; softmax would count a masked class's
    weight in s but not in the products, so a masked z with infinite logits is refused (the way
    to leave a class out is z = -inf). A z that is not 2-D is refused with the loss's name, finite
    or not (a 3-D z was summed over its axis 1)."""
    bce, sce = LOSSES["binary_cross_entropy"], LOSSES["softmax_cross_entropy"]
    y = np.array([[1.0, 0, 0]])
    z = np.ma.masked_array([[0.5, INF, -INF]], mask=[[0, 1, 0]])
    v = bce.value(z, y)
    assert isinstance(v, np.ma.MaskedArray)
    np.testing.assert_array_equal(v, bce.value(np.array([[0.5]]), y[:, :1]))
    with pytest.raises(ValueError, match="^softmax_cross_entropy: a masked z with NaN or inf logits is not supported; "
                       "give a class that is left out the logit -inf instead of a mask$"):
        sce.output(np.ma.masked_array([[0.5, 2.0, -INF]], mask=[[0, 1, 0]]))
    z = np.ma.masked_array([[0.5, -INF]])              # nothing masked: the limits, as masked arrays
    p, v = sce.output(z), sce.value(z, y[:, :2])
    assert isinstance(p, np.ma.MaskedArray) and isinstance(v, np.ma.MaskedArray)
    np.testing.assert_array_equal(p, [[1, 0]])
    np.testing.assert_array_equal(v, [0])
    assert type(sce.value(z.data, y[:, :2])) is np.ndarray
    # an infinite logit under the mask, or every entry masked: the finite path, as before the limits
    for z in (np.ma.masked_array([[0.5, INF]], mask=[[0, 1]]), np.ma.masked_array([[0.5, 1.0]], mask=[[1, 1]])):
        np.testing.assert_array_equal(sce.output(z).mask, z.mask)
        assert bce.value(z, y[:, :2]).mask.tolist() == [z.mask.all()]
    for bad in (np.array([[[NAN, 0.0, 1.0]]]), np.zeros((1, 1, 3)), np.zeros(3)):   # finite or not
        for call in (bce.value, sce.value, sce.output, sce.delta):
            name, shape = call.__self__.name, re.escape(str(bad.shape))
            with pytest.raises(ValueError, match=f"{name} takes logits z of shape \\(batch, n_out\\); got shape {shape}"):
                call(bad) if call.__name__ == "output" else call(bad, np.zeros(bad.shape))


def test_softmax_with_targets_not_summing_to_one():
    """value and delta hold for any non-negative y: l = s lse(z) - <y, z>, dl/dz = s p - y."""
    sce = LOSSES["softmax_cross_entropy"]
    y = np.array([[2.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [3.0, 0.0, 0.0]])
    np.testing.assert_allclose(sce.value(Z, y), softmax_ce_naive(Z, y), rtol=1e-13, atol=1e-200)
    expected = softmax_naive(Z) * y.sum(axis=1, keepdims=True) - y
    np.testing.assert_allclose(sce.delta(Z, y), expected, rtol=1e-13, atol=1e-200)


def test_check_targets():
    bce, sce, mse = (LOSSES[n] for n in ("binary_cross_entropy", "softmax_cross_entropy", "mean_squared_error"))
    ok = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.25]])
    assert bce.check_targets(ok) is None
    with pytest.raises(ValueError, match=r"^binary_cross_entropy targets y must lie in \[0, 1\]; got values in \[-0.5, 1.0\]$"):
        bce.check_targets(np.array([[0.0, -0.5], [1.0, 0.3]]))
    with pytest.raises(ValueError, match=r"^binary_cross_entropy targets y must lie in \[0, 1\]; got values in \[0.0, 1.5\]$"):
        bce.check_targets(np.array([[0.0, 1.5], [1.0, 0.3]]))
    # softmax: rows of probabilities
    assert sce.check_targets(np.array([[0.25, 0.75, 0.0], [0.0, 0.0, 1.0]])) is None
    assert sce.check_targets(np.array([[0.5 + 2.9e-6, 0.5, 0.0]])) is None  # within 1e-6 per entry
    assert sce.check_targets(np.array([[0.5 - 2.9e-6, 0.5, 0.0]])) is None
    assert sce.check_targets(np.array([[0.1, 0.2, 0.7]], dtype=np.float32)) is None
    with pytest.raises(ValueError, match=r"^softmax_cross_entropy targets y must be non-negative; got min -0.25$"):
        sce.check_targets(np.array([[1.25, -0.25], [0.5, 0.5]]))
    with pytest.raises(ValueError, match=r"^softmax_cross_entropy targets y must be non-negative; got min -1e-12$"):
        sce.check_targets(np.array([[1.0, 0.0], [0.5, 0.5], [1.0 + 1e-12, -1e-12]]))
    with pytest.raises(ValueError, match=r"^softmax_cross_entropy targets y must be rows of probabilities summing to 1; row 1 sums to 0.5$"):
        sce.check_targets(np.array([[1.0, 0.0], [0.25, 0.25], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"row 0 sums to 1.0000031"):
        sce.check_targets(np.array([[0.5 + 3.1e-6, 0.5, 0.0]]))
    with pytest.raises(ValueError, match=r"row 0 sums to 0.9999969"):
        sce.check_targets(np.array([[0.5 - 3.1e-6, 0.5, 0.0]]))
    with pytest.raises(ValueError, match=r"row 0 sums to 2.0"):
        sce.check_targets(np.array([[1.0, 1.0]]))
    assert mse.check_targets(np.array([[-1e300, 5.0]])) is None


def test_softmax_target_sums_are_exact_whatever_the_dtype():
    """The row-sum tolerance (1e-6 per entry) applies to the exact sum: the same numbers get
    the same verdict as float32 or float64, and a sum off by exactly the tolerance passes."""
    sce = LOSSES["softmax_cross_entropy"]
    # 1 + 3.02e-6 exactly: beyond 3 entries x 1e-6. A float32 accumulation would round the
    # sum to 1 + 25 ulp = 1 + 2.98e-6 and wrongly accept it.
    row = np.array([[0.5, 0.5, 3.02e-6]], dtype=np.float32)
    for dtype in (np.float32, np.float64):
        with pytest.raises(ValueError, match="row 0 sums to 1.00000301"):
            sce.check_targets(row.astype(dtype))
    # |sum - 1| == 1e-6 * n exactly (n = 1332 makes that representable): accepted, ">" not ">="
    n = 1332
    t = 1e-6 * n
    y = np.zeros((1, n))
    y[0, 0] = 1 - t
    assert abs(np.sum(y) - 1) == t
    assert sce.check_targets(y) is None
    y[0, 0] = np.nextafter(1 - t, 0)  # one ulp further out
    with pytest.raises(ValueError, match="row 0 sums to"):
        sce.check_targets(y)


@pytest.mark.parametrize("z", [np.float64(0.3), np.float32(-2.0), 0.7, np.float64(-800.0)])
def test_sigmoid_of_a_scalar_is_the_formula(z):
    """A scalar takes its own branch (no in-place reciprocal on a scalar): 1 / (1 + e^{-z}),
    the same operations, the same type."""
    with np.errstate(over="ignore"):
        expected = 1 / (1 + np.exp(np.negative(z)))
    s = A.sigmoid(z)
    assert np.ndim(s) == 0 and type(s) is type(expected) and s == expected


@pytest.mark.parametrize("fn, ref", [(A.sigmoid, sigmoid_ref), (A.softplus, lambda z: np.log1p(np.exp(z)))])
@pytest.mark.parametrize("z", [np.array([-3, 0, 2]), np.array([0, 7, 255], np.uint8), np.array([True, False])])
def test_integer_and_boolean_inputs_are_taken_as_float64(fn, ref, z):
    """An integer or boolean z is computed in float64 (review finding: sigmoid raised from
    np.exp's out= and, for unsigned z, negated it around 2^8; softplus of uint8 wrapped -|z|
    around and warned; softplus of booleans raised)."""
    out = fn(z)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref(z.astype(np.float64)), rtol=4 * np.finfo(np.float64).eps)


class _ArrayLike:
    """An object NumPy reads through ``__array__`` alone, as it reads a torch tensor."""

    def __init__(self, a):
        self.a = np.asarray(a)

    def __array__(self, dtype=None, copy=None):
        return self.a if dtype is None else self.a.astype(dtype)


@pytest.mark.parametrize("fn", [A.sigmoid, A.softplus, A.exp_neg_abs])
def test_an_array_like_gives_what_its_array_gives(fn):
    """A list (complex too: complex-step points written by hand) and an object with
    ``__array__`` give the numbers and type their ndarray gives; an integer masked array gives
    what the float64 one gives, a masked array from sigmoid, its mask kept. (A review: softplus
    and exp_neg_abs of a complex list raised AttributeError; before aaf8d18 sigmoid turned an
    integer masked array into a plain one, its mask dropped.)"""
    for z in ([0.5 + 1e-20j, -2 + 3e-20j], [-3, 0, 2], [-0.5, 4.0]):
        expected = fn(np.array(z))
        for same in (z, _ArrayLike(z)):
            got = fn(same)
            assert type(got) is type(expected) and got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)
    masked = np.ma.array([-3, 0, 2], mask=[False, True, False])
    got, expected = fn(masked), fn(masked.astype(np.float64))
    assert type(got) is type(expected) and got.dtype == expected.dtype == np.float64
    np.testing.assert_array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(expected))
    np.testing.assert_array_equal(np.ma.getdata(got), np.ma.getdata(expected))
    assert isinstance(got, np.ma.MaskedArray)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_gives_a_masked_z_its_mask_back(name):
    """fn and grad of a masked array are masked arrays with its mask, their data those of the
    plain array; leaky relu's fn and grad, softplus's fn and gelu's grad dropped the mask and
    returned a plain array of values computed from the masked entries too (np.where, np.asarray)."""
    g = ACTIVATIONS[name]
    data = np.array([[-2.0, -0.5, 0.0], [0.25, 1.0, 3.0]])
    mask = np.array([[False, True, False], [True, False, False]])
    z = np.ma.masked_array(data, mask=mask)
    a = g.fn(z)
    for got, want in ((a, g.fn(data)), (g.grad(z, a), g.grad(data, g.fn(data)))):
        assert isinstance(got, np.ma.MaskedArray), type(got)
        np.testing.assert_array_equal(np.ma.getmaskarray(got), mask)
        np.testing.assert_array_equal(got.compressed(), want[~mask])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_reads_z_as_float64_when_given_integers_or_an_array_like(name):
    """fn and grad of a list, an ``__array__`` object, and int, uint8 and bool arrays are those of
    the float64 array of the same values (a review: relu's grad, leaky relu's and gelu's fn and
    grad raised on a list; tanh of uint8 came out in float16, 3 digits)."""
    g = ACTIVATIONS[name]
    for z in ([-1.5, 0.0, 2.0], [-1, 0, 2], np.array([1, 0, 2], np.uint8), np.array([True, False])):
        z64 = np.array(z, dtype=np.float64)
        expected = g.fn(z64), g.grad(z64, g.fn(z64))
        for same in ([z] if isinstance(z, list) else []) + [_ArrayLike(z), np.asarray(z)]:
            a = g.fn(same)
            for got, want in zip((a, g.grad(same, a)), expected):
                assert got.dtype == np.float64
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_reads_z_and_y_as_float64_when_given_integers_or_an_array_like(name):
    """output, value and delta of lists, ``__array__`` objects and int8, uint8 and bool arrays
    are those of the float64 arrays (a review: every loss raised a TypeError on two lists and
    softmax's an AttributeError on one; softmax of uint8 logits overflowed to NaN and of int8
    came out in float16; MSE's delta of uint8 0 and 1 wrapped to 255)."""
    ell = LOSSES[name]
    z, y = [[3, 1, 0], [0, 2, 1]], [[1, 0, 0], [0, 0, 1]]     # one-hot rows: every loss's domain
    for kind in (lambda v: v, _ArrayLike, lambda v: np.array(v, np.int8), lambda v: np.array(v, np.uint8),
                 lambda v: np.array(v, bool)):
        zk, yk = kind(z), kind(y)
        z64, y64 = np.asarray(zk).astype(np.float64), np.asarray(yk).astype(np.float64)
        expected = ell.output(z64), ell.value(z64, y64), ell.delta(z64, y64)
        for got, want in zip((ell.output(zk), ell.value(zk, yk), ell.delta(zk, yk)), expected):
            assert np.asarray(got).dtype == np.float64
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_refuses_targets_outside_its_domain_with_its_name(name):
    """NaN, inf, complex, 1-D, empty and 3-D targets get an error that starts with the loss's
    name (a review: NaN passed every loss's check, inf and None MSE's; a 1-D y was an AxisError
    and an empty one a reduction error from NumPy); a list of a one-hot row is taken."""
    ell = LOSSES[name]
    for y, error in ((np.array([[np.nan, 1.0]]), ValueError), (np.array([[np.inf, 0.0]]), ValueError),
                     (np.array([[0.5 + 1j, 0.5]]), TypeError), (np.array([0.0, 1.0]), ValueError),
                     (np.zeros((0, 2)), ValueError), (np.full((1, 2, 2), 0.5), ValueError),
                     (None, TypeError)):
        with pytest.raises(error, match=rf"^{name} targets y must "):
            ell.check_targets(y)
    assert ell.check_targets([[0, 1]]) is None
