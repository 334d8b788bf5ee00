"""Running error analysis (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
sec. 3.3): evaluate a formula on values that carry a first-order bound on the rounding error
of computing them, so that the bound follows the formula's own operations.

Used where a gradient's rounding error is not relative to the gradient: an activation's
derivative computed from its output, 1 - tanh^2 or s (1 - s), loses relative accuracy as the
unit saturates (1 - t t with t = 0.99 has the absolute error of t, 2|t| err(t), which is 50
times |1 - t^2| u); a bound proportional to the result misses it, this one does not.

``Rounded(v, c)`` is a value v (computed in float64; its own error is second order) whose
computed counterpart errs by at most ``c * u``: c is a coefficient in units of the unit
roundoff u, so one evaluation serves float32 (u = 2^-24) and float64 (u = 2^-53). Rules, each
the first-order bound of one floating-point operation with operands already in error:

    a + b, a - b:  c = c_a + c_b + |v|
    a * b:         c = |a| c_b + |b| c_a + |v|
    a / b:         c = c_a / |b| + |a| c_b / b^2 + |v|
    A @ B:         c = c_A |B| + |A| c_B + k |A| |B|      (gamma_k bound, k the inner size)
    sum of k:      c = sum c + (k - 1) sum |a|
    tanh(a):       c = (1 - t^2) c_a + TRANSCENDENTAL |t|
    sigmoid(a):    c = s (1 - s) c_a + TRANSCENDENTAL |s|
    exp(a):        c = |e^a| c_a + TRANSCENDENTAL |e^a|
    log1p(a):      c = c_a / (1 + a) + TRANSCENDENTAL |log1p a|     (a > -1)
    log(a):        c = c_a / |a| + TRANSCENDENTAL |log a|           (a > 0)
    logaddexp(a, b): NumPy's npy_logaddexp, max(a, b) + log1p(exp(-|a - b|)), rule by rule
    max(a, b):     c = max(c_a, c_b)                                (exact: no rounding of its own)
    -a, |a|, where(cond, a, b): exact

Inputs are exact (``Rounded.exact``): the tests round them to the tested dtype first. Every
rule is relative (fl(x op y) = (x op y)(1 + delta)): none holds where a result or an
intermediate underflows below the dtype's smallest normal number, and the tests keep away.

``Dual(re, du)`` is the complex number re + i h du that the complex step evaluates, h so small
(1e-20 in float64, or 2^-40 in the float32 rule test) that h^2 terms lie below the first order:
each of re and du (the imaginary part divided by h) is a Rounded, and each complex operation is
bounded through the real operations NumPy (2.x, on glibc) performs for it. Those formulas were
checked bit for bit against NumPy's float64 results (2026-12, NumPy 2.4, glibc 2.36: Smith's
quotient, cexp, ctanh and nc_log1p exactly; the product's imaginary part may be fused, one
rounding fewer; clog's real part takes glibc's own accurate paths), and each rule is held to its
complex64 evaluation in test_running_error. A libm call (sin, sinh, cosh, hypot, atan2, scalar
exp and log) counts TRANSCENDENTAL, as NumPy's own: glibc aims at a few ulp for each real and
complex part (glibc manual, "Known Maximum Errors in Math Functions"):

    a + b, a - b:  componentwise
    a * b:         re = a.re b.re (a.du b.du h^2 is second order); du = a.re b.du + a.du b.re
    a / b:         Smith's algorithm, |b.re| >= h |b.du|: rat = b.du / b.re, scl = 1 / b.re,
                   re = a.re scl, du = (a.du - a.re rat) scl        (b.du rat h^2 dropped)
    sum:           componentwise
    exp:           glibc cexp, e^x (cos y, sin y), cos y = 1 exactly for |y| < 2^-27:
                   re = exp(x); du = exp(x) sin(y) / h, sin one more TRANSCENDENTAL
    tanh:          glibc ctanh, for |x| <= 354 (44 in complex64): (sinh x cosh x, sin y cos y) /
                   (sinh^2 x + cos^2 y), four libm calls and four roundings in each part
                   (4 T + 4 of the part); beyond, glibc takes re = +-1 and du underflows to 0
                   (4 e^-708 h), as the rule's sech^2 x does
    log:           glibc clog, log(hypot(x, y)) and atan2(y, x): hypot and log one
                   TRANSCENDENTAL each (clog's accurate paths near |x| = 1 aim at a few ulp
                   of the real part itself, below that); du = y / x, one more
    log1p:         NumPy's nc_log1p, log(hypot(x + 1, y)) and atan2(y, x + 1): log of x + 1

Exact zeros stay exact: an operand with du = 0 (a real number in complex form) adds no rounding
of its own to du (0 * x and 0 + x are exact). The h^2 terms are second order only where
|re| >> h: at |x| ~ h the rules for z z z and z^3 fail (a review, complex64 at h = 2^-40); the
tests' nonzero points are 1e-8 and more, and z = 0 has its own allowance (_step_error).
"""

from __future__ import annotations

import numpy as np

# Error of one transcendental evaluation, in u. NumPy's accuracy tests (its
# umath-validation-set files) hold tanh and log1p to 2 ulp, exp to 3 ulp and log to 4 ulp
# in float32, 1-2 ulp in float64; 1 ulp <= 2u, and 1 / (1 + e^{-z}) adds two roundings to exp's: at most 8u.
# The JAX twin is the other side of the float64 comparison: XLA's float64 tanh measured
# 6.9u at worst over 400,000 points in [-20, 20] against 80-bit long double (2026-11-30;
# a measurement of the oracle, not of the code under test). 8u covers both.
TRANSCENDENTAL = 8.0


class Rounded:
    __slots__ = ("v", "c")
    __array_priority__ = 1000          # a NumPy array on the left defers to Rounded's operators

    def __init__(self, v, c):
        self.v, self.c = np.asarray(v, np.float64), np.asarray(c, np.float64)

    @classmethod
    def exact(cls, v) -> "Rounded":
        v = np.asarray(v, np.float64)
        return cls(v, np.zeros_like(v))

    def __add__(self, other):
        o = _r(other)
        v = self.v + o.v
        return Rounded(v, self.c + o.c + np.abs(v))

    __radd__ = __add__

    def __sub__(self, other):
        o = _r(other)
        v = self.v - o.v
        return Rounded(v, self.c + o.c + np.abs(v))

    def __rsub__(self, other):
        return _r(other) - self

    def __mul__(self, other):
        o = _r(other)
        v = self.v * o.v
        return Rounded(v, np.abs(self.v) * o.c + np.abs(o.v) * self.c + np.abs(v))

    __rmul__ = __mul__

    def __truediv__(self, other):
        o = _r(other)
        v = self.v / o.v
        return Rounded(v, self.c / np.abs(o.v) + np.abs(self.v) * o.c / o.v**2 + np.abs(v))

    def __rtruediv__(self, other):
        return _r(other) / self

    def __matmul__(self, other):
        o = _r(other)
        k = self.v.shape[-1]
        A, B = np.abs(self.v), np.abs(o.v)
        return Rounded(self.v @ o.v, self.c @ B + A @ o.c + k * (A @ B))

    def __getitem__(self, index):
        return Rounded(self.v[index], self.c[index])

    def __neg__(self):
        return Rounded(-self.v, self.c)

    def __abs__(self):
        return Rounded(np.abs(self.v), self.c)

    @property
    def T(self):
        return Rounded(self.v.T, self.c.T)

    @property
    def shape(self):
        return self.v.shape

    def reshape(self, *shape):
        return Rounded(self.v.reshape(*shape), self.c.reshape(*shape))

    def sum(self, axis, keepdims=False):
        k = np.prod([self.v.shape[a] for a in np.atleast_1d(axis)])
        return Rounded(self.v.sum(axis, keepdims=keepdims),
                       self.c.sum(axis, keepdims=keepdims) + (k - 1) * np.abs(self.v).sum(axis, keepdims=keepdims))

    def is_exact_zero(self) -> bool:
        return not (np.any(self.v) or np.any(self.c))


def _r(x) -> Rounded:
    if isinstance(x, Dual):
        raise TypeError("a Dual operand: Rounded defers to Dual's reflected operator")
    return x if isinstance(x, Rounded) else Rounded.exact(x)


def _defer_to_dual(op):
    def method(self, other):
        return NotImplemented if isinstance(other, Dual) else op(self, other)
    return method


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__"):
    setattr(Rounded, _name, _defer_to_dual(getattr(Rounded, _name)))


def tanh(a):
    if isinstance(a, Dual):
        return _ctanh(a)
    t = np.tanh(a.v)
    return Rounded(t, (1 - t * t) * a.c + TRANSCENDENTAL * np.abs(t))


def sigmoid(a: Rounded) -> Rounded:
    with np.errstate(over="ignore"):               # e^{-a} = inf below a = -709: s = 0, below the smallest normal
        s = 1 / (1 + np.exp(-a.v))
    return Rounded(s, s * (1 - s) * a.c + TRANSCENDENTAL * s)


def exp(a):
    if isinstance(a, Dual):
        return _cexp(a)
    e = np.exp(a.v)
    return Rounded(e, e * a.c + TRANSCENDENTAL * e)


def log1p(a):
    if isinstance(a, Dual):
        return _clog(a + 1)
    v = np.log1p(a.v)
    return Rounded(v, a.c / (1 + a.v) + TRANSCENDENTAL * np.abs(v))


def log(a):
    if isinstance(a, Dual):
        return _clog(a)
    v = np.log(a.v)
    return Rounded(v, a.c / np.abs(a.v) + TRANSCENDENTAL * np.abs(v))


def logaddexp(a, b) -> Rounded:
    """NumPy's npy_logaddexp: x + log1p(exp(-(x - y))) for x > y, y + log1p(exp(x - y)) otherwise
    (and x + log 2 for x == y, within the same bound)."""
    a, b = _r(a), _r(b)
    return maximum(a, b) + log1p(exp(-abs(a - b)))


def where(cond, a, b):
    """np.where: a selection, exact."""
    if isinstance(a, Dual) or isinstance(b, Dual):
        a, b = _d(a), _d(b)
        return Dual(where(cond, a.re, b.re), where(cond, a.du, b.du))
    a, b = _r(a), _r(b)
    return Rounded(np.where(cond, a.v, b.v), np.where(cond, a.c, b.c))


def maximum(a, b) -> Rounded:
    a, b = _r(a), _r(b)
    return Rounded(np.maximum(a.v, b.v), np.maximum(a.c, b.c))


def concatenate(parts, axis) -> Rounded:
    return Rounded(np.concatenate([p.v for p in parts], axis), np.concatenate([p.c for p in parts], axis))


def stack(parts, axis) -> Rounded:
    return Rounded(np.stack([p.v for p in parts], axis), np.stack([p.c for p in parts], axis))


# ---------------------------------------------------------------- complex step


class Dual:
    """re + i h du evaluated in complex arithmetic; see the module docstring for the rules."""

    __slots__ = ("re", "du")
    __array_ufunc__ = None             # a NumPy array on either side defers to Dual's operators

    def __init__(self, re, du):
        self.re, self.du = _r(re), _r(du)

    @classmethod
    def step(cls, x, direction=1.0) -> "Dual":
        """x + i h direction, both exact (the test's z + 1j * H)."""
        x = np.asarray(x, np.float64)
        return cls(Rounded.exact(x), Rounded.exact(np.broadcast_to(direction, x.shape)))

    def __add__(self, other):
        o = _d(other)
        return Dual(self.re + o.re, _plus(self.du, o.du))

    __radd__ = __add__

    def __sub__(self, other):
        o = _d(other)
        return Dual(self.re - o.re, _plus(self.du, -o.du))

    def __rsub__(self, other):
        return _d(other) - self

    def __neg__(self):
        return Dual(-self.re, -self.du)

    def __mul__(self, other):
        o = _d(other)
        return Dual(self.re * o.re, _plus(_times(self.re, o.du), _times(self.du, o.re)))

    __rmul__ = __mul__

    def __truediv__(self, other):
        o = _d(other)
        scl = 1 / o.re
        rat = o.du if o.du.is_exact_zero() else o.du / o.re
        return Dual(self.re * scl, _times(_plus(self.du, -_times(self.re, rat)), scl))

    def __rtruediv__(self, other):
        return _d(other) / self

    def sum(self, axis, keepdims=False):
        return Dual(self.re.sum(axis, keepdims), self.du.sum(axis, keepdims))

    def im_over_h(self) -> Rounded:
        """Im(...) / h as the test computes it: one more rounding (the division by h)."""
        return Rounded(self.du.v, self.du.c + np.abs(self.du.v))


def _d(x) -> Dual:
    if isinstance(x, Dual):
        return x
    x = _r(x)
    return Dual(x, Rounded.exact(np.zeros_like(x.v)))


def _plus(a: Rounded, b: Rounded) -> Rounded:
    """a + b, exact where an operand is an exact zero (0 + x = x)."""
    if b.is_exact_zero():
        return a
    if a.is_exact_zero():
        return b
    return a + b


def _times(a: Rounded, b: Rounded) -> Rounded:
    """a * b, an exact zero where either is (0 * x = 0: nothing to round)."""
    if a.is_exact_zero() or b.is_exact_zero():
        return Rounded.exact(np.zeros(np.broadcast_shapes(a.shape, b.shape)))
    return a * b


def _libm(a: Rounded) -> Rounded:
    """One more libm evaluation of a tiny argument (sin y = y, atan2(y, x) = y / x, hypot(x, y)
    = |x|): TRANSCENDENTAL of the value on top of a's error."""
    return Rounded(a.v, a.c + TRANSCENDENTAL * np.abs(a.v))


def _cexp(a: Dual) -> Dual:
    e = exp(a.re)
    return Dual(e, _times(e, _libm(a.du)))


def _ctanh(a: Dual) -> Dual:
    x, y = a.re, a.du
    t = np.tanh(x.v)
    q = np.exp(-2 * np.abs(x.v))
    sech2 = 4 * q / (1 + q) ** 2                 # 1 - tanh^2 x, without 1 - t t's cancellation
    part = 4 * TRANSCENDENTAL + 4                # sinh, cosh, sin, cos; two products, a sum, a quotient
    re = Rounded(t, sech2 * x.c + part * np.abs(t))
    if y.is_exact_zero():
        return Dual(re, y)
    dv = sech2 * y.v
    du = Rounded(dv, sech2 * y.c + 2 * np.abs(t * dv) * x.c + part * np.abs(dv))
    return Dual(re, du)


def _clog(a: Dual) -> Dual:
    """log(hypot(x, y)) and atan2(y, x) of x + i y, x > 0."""
    if np.any(a.re.v <= 0):
        raise ValueError("the rule covers Re > 0 only (atan2 near pi otherwise)")
    re = log(_libm(abs(a.re)))
    if a.du.is_exact_zero():
        return Dual(re, a.du)
    return Dual(re, _libm(a.du / a.re))
