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
    max(a, b):     c = max(c_a, c_b)                                (exact: no rounding of its own)
    -a:            c = c_a                                          (exact)

Inputs are exact (``Rounded.exact``): the tests round them to the tested dtype first. Every
rule is relative (fl(x op y) = (x op y)(1 + delta)): none holds where a result or an
intermediate underflows below the dtype's smallest normal number, and the tests keep away.
"""

from __future__ import annotations

import numpy as np

# Error of one transcendental evaluation, in u. NumPy's accuracy tests (its
# umath-validation-set files) hold tanh and log1p to 2 ulp and exp to 3 ulp in float32,
# 1-2 ulp in float64; 1 ulp <= 2u, and 1 / (1 + e^{-z}) adds two roundings to exp's: at most 8u.
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

    def __neg__(self):
        return Rounded(-self.v, self.c)

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

    @property
    def T(self):
        return Rounded(self.v.T, self.c.T)

    @property
    def shape(self):
        return self.v.shape

    def reshape(self, *shape):
        return Rounded(self.v.reshape(*shape), self.c.reshape(*shape))

    def sum(self, axis):
        k = np.prod([self.v.shape[a] for a in np.atleast_1d(axis)])
        return Rounded(self.v.sum(axis), self.c.sum(axis) + (k - 1) * np.abs(self.v).sum(axis))


def _r(x) -> Rounded:
    return x if isinstance(x, Rounded) else Rounded.exact(x)


def tanh(a: Rounded) -> Rounded:
    t = np.tanh(a.v)
    return Rounded(t, (1 - t * t) * a.c + TRANSCENDENTAL * np.abs(t))


def sigmoid(a: Rounded) -> Rounded:
    with np.errstate(over="ignore"):               # e^{-a} = inf below a = -709: s = 0, below the smallest normal
        s = 1 / (1 + np.exp(-a.v))
    return Rounded(s, s * (1 - s) * a.c + TRANSCENDENTAL * s)


def exp(a: Rounded) -> Rounded:
    e = np.exp(a.v)
    return Rounded(e, e * a.c + TRANSCENDENTAL * e)


def log1p(a: Rounded) -> Rounded:
    v = np.log1p(a.v)
    return Rounded(v, a.c / (1 + a.v) + TRANSCENDENTAL * np.abs(v))


def maximum(a, b) -> Rounded:
    a, b = _r(a), _r(b)
    return Rounded(np.maximum(a.v, b.v), np.maximum(a.c, b.c))


def concatenate(parts, axis) -> Rounded:
    return Rounded(np.concatenate([p.v for p in parts], axis), np.concatenate([p.c for p in parts], axis))


def stack(parts, axis) -> Rounded:
    return Rounded(np.stack([p.v for p in parts], axis), np.stack([p.c for p in parts], axis))
