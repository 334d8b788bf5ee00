"""The running error bounds the layer tests use (tests/running_error.py) hold: each rule, and a
chain of them like a recurrent unit's derivative, evaluated in float32 errs by at most C u32
against the same formula in float64 (whose own error, C u64, is added)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

import running_error as R
from running_error import Dual, Rounded
from strategies import examples

U32, U64 = 2.0**-24, 2.0**-53


@st.composite
def operands(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, k = draw(st.integers(1, 6)), draw(st.integers(1, 40))
    scale = draw(st.sampled_from([0.1, 1.0, 4.0]))
    return [(scale * rng.standard_normal(shape)).astype(np.float32) for shape in ((n, k), (k, n), (n,))]


def _within(got32, bound: Rounded):
    err = np.abs(np.asarray(got32, np.float64) - bound.v)
    assert np.all(err <= (U32 + U64) * bound.c), float(np.max(err / ((U32 + U64) * bound.c)))


@settings(max_examples=examples(20))
@given(operands())
def test_each_rule_bounds_its_float32_evaluation(ops):
    A, B, b = ops
    a, bb, v = Rounded.exact(A), Rounded.exact(B), Rounded.exact(b)
    _within(A @ B, a @ bb)
    _within(A[0] + B[:, 0], a[0] + bb[:, 0])
    _within(A[0] - B[:, 0], a[0] - bb[:, 0])
    _within(A[0] * B[:, 0], a[0] * bb[:, 0])
    _within(A[0] / B[:, 0], a[0] / bb[:, 0])
    _within(b[0] / (A[0] / B[:, 0]), v[0] / (a[0] / bb[:, 0]))      # a divisor already in error
    _within(A.sum(1), a.sum(1))
    _within(np.tanh(b), R.tanh(v))
    _within(1 / (1 + np.exp(-b)), R.sigmoid(v))
    _within(np.exp(b), R.exp(v))
    _within(np.log1p(np.exp(b)), R.log1p(R.exp(v)))                   # log1p's argument in error
    _within(np.maximum(A[0] * B[:, 0], b[0]), R.maximum(a[0] * bb[:, 0], v[0]))
    _within(np.log(np.exp(b)), R.log(R.exp(v)))                       # log's argument in error
    _within(np.logaddexp(A[0] * B[:, 0], b[0]), R.logaddexp(a[0] * bb[:, 0], v[0]))
    _within(np.where(b > 0, -b, np.abs(b)), R.where(b > 0, -v, abs(v)))


H32 = 2.0**-40   # the float32 complex step: a power of 2 (x h and / h exact), h^2 / u32 = 1.4e-17


def _within_dual(got, bound: Dual):
    _within(np.real(got), bound.re)
    _within(np.imag(got) / H32, bound.du)


@settings(max_examples=examples(20))
@given(operands())
def test_each_complex_step_rule_bounds_its_complex64_evaluation(ops):
    """The Dual rules (the complex step's imaginary part divided by h, and its real part) against
    NumPy's complex64 arithmetic and its glibc complex functions, |Re| within ctanhf's and cexpf's
    unscaled ranges (44 and 88; ctanh's branch beyond 354 is argued in running_error, not held
    here: in float32 its imaginary part underflows). The complex numbers are exact inputs:
    float32 parts, h a power of 2. Without the rat term of Smith's quotient, the second term of
    the product, or ctanh's 4 T + 4 or its input-error term, this test fails."""
    A, B, b = ops
    # |Re z w| <= 16: h sech^2(16) = 4e-26 is still a normal float32 (a subnormal result loses
    # relative accuracy, which no first-order rule bounds)
    x, xd, y, yd = (np.clip(o, -4, 4) for o in (A[0], B[:, 0], B[:, -1], A[-1]))
    pos, gt_m1 = np.exp(x), np.exp(y) - np.float32(0.5)                 # Re > 0 and Re > -1 (float32 values, exact)
    z, w, p, q = (np.asarray(re + 1j * H32 * du, np.complex64) for re, du in ((x, xd), (y, yd), (pos, xd), (gt_m1, yd)))
    Z, W, P, Q = (Dual(Rounded.exact(re), Rounded.exact(du)) for re, du in ((x, xd), (y, yd), (pos, xd), (gt_m1, yd)))
    _within_dual(z + w, Z + W)
    _within_dual(z - w, Z - W)
    _within_dual(z * w, Z * W)
    _within_dual(z / w, Z / W)
    _within_dual(b[0] / (z / w), b[0] / (Z / W))                       # a divisor already in error
    _within_dual(np.float32(0.75) * z - w * np.float32(3), 0.75 * Z - W * 3)   # a real factor: du's 0 * x exact
    _within_dual((z * w).sum(0), (Z * W).sum(0))
    _within_dual(np.exp(z), R.exp(Z))
    _within_dual(np.exp(z * w), R.exp(Z * W))                          # exp's argument in error
    _within_dual(np.tanh(z), R.tanh(Z))
    _within_dual(np.tanh(z * w), R.tanh(Z * W))
    _within_dual(np.log(p), R.log(P))
    _within_dual(np.log(np.exp(z)), R.log(R.exp(Z)))
    _within_dual(np.log1p(q), R.log1p(Q))
    _within_dual(np.log1p(np.exp(z)), R.log1p(R.exp(Z)))
    _within_dual(1 / (1 + np.exp(-z)), 1 / (1 + R.exp(-Z)))
    _within_dual(z * (z * z), Z * (Z * Z))
    _within_dual(np.where(x >= 0, z, 0), R.where(x >= 0, Z, 0))


def test_exp_and_log1p_carry_their_arguments_error():
    """Where the argument's own error dominates the 8u of the evaluation: e^a for |a| up to 80
    (a 1u error in a is 80u in e^a), and log1p(a) for a near -1 (a 1u error in a is 1/(1 + a) =
    100u and more in log1p a): without the c_a terms these evaluations exceed the bound."""
    x, w = np.linspace(8, 72, 200, dtype=np.float32), np.float32(1.1)
    for a in (x, -x):
        _within(np.exp(a * w), R.exp(Rounded.exact(a) * Rounded.exact(w)))
    p, q = np.linspace(0.99, 0.9999, 200, dtype=np.float32), np.float32(1 / 1.0001)   # 1 - p q in (1e-4, 0.01)
    _within(np.log1p(-(p * q)), R.log1p(-(Rounded.exact(p) * Rounded.exact(q))))


@settings(max_examples=examples(20))
@given(operands())
def test_a_saturating_derivative_chain_is_bounded(ops):
    """The case the bounds exist for: t = tanh(x W + b), then dy (1 - t t); saturated units
    (|x W| up to 4 sqrt(k)) make 1 - t^2 lose relative accuracy."""
    A, B, b = ops
    dy = np.float32(1.5)
    t32 = np.tanh(A @ B[:, :1] + b[:1])
    t = R.tanh(Rounded.exact(A) @ Rounded.exact(B[:, :1]) + Rounded.exact(b[:1]))
    _within(dy * (1 - t32 * t32), dy * (1 - t * t))


def test_the_bound_is_not_relative_to_the_result():
    """At t = tanh(6) the derivative 1 - t^2 = 2.5e-5 is computed with the absolute error of t
    (about u): the bound says so, 2 |t| TRANSCENDENTAL u at least, where a bound relative to the
    result would be some multiple of 2.5e-5 u."""
    t = R.tanh(Rounded.exact(np.array([6.0])))
    d = 1 - t * t
    assert d.v[0] < 3e-5 and d.c[0] >= 2 * 0.99 * R.TRANSCENDENTAL
