"""Hidden-layer activations g and their derivatives g', each derived by hand.

Every activation is a small object with

    fn(z)       -> a = g(z)                 elementwise, same shape and dtype as z
    grad(z, a)  -> g'(z)                    ``a = fn(z)`` is passed so g' can reuse it

z may be any array-like (read by ``np.asanyarray``; a masked array gives back one with its
mask); integer and boolean z are taken as float64.

In-place forms of sigmoid and tanh, whose g' is a function of a alone, are speed and live
in ``manual_backprop.fast``.

All formulas are written so that no ``exp`` overflows, also at |z| = 1000 and beyond.
Those marked ``analytic`` are holomorphic on a strip around the real axis and accept
complex ``z`` (the complex-step oracle evaluates them at ``z + i h``).
"""

from __future__ import annotations

import math

import numpy as np


def exp_neg_abs(z: np.ndarray) -> np.ndarray:
    """``exp(-|z|)``, never larger than 1.

    For complex ``z`` it is the analytic continuation ``exp(-sign(Re z) z)`` taken
    branch by branch, so the complex step sees the same function as the real code.
    Integer and boolean z are taken as float64.
    """
    z = _as_float(z)
    if z.dtype.kind == "c":
        return np.exp(np.where(z.real >= 0, -z, z))
    return np.exp(-np.abs(z))


def _as_float(z) -> np.ndarray:
    """z as an array (``np.asanyarray``); integer and boolean z as float64 (the kernels below
    write into a float array)."""
    z = np.asanyarray(z)
    return z.astype(np.float64) if z.dtype.kind in ("b", "i", "u") else z


def _masked_like(z: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``r`` with ``z``'s mask where z is a masked array and r lost it (np.where and np.asarray
    drop it; the ufuncs keep it): every activation gives a masked z's mask back."""
    if isinstance(z, np.ma.MaskedArray) and not isinstance(r, np.ma.MaskedArray):
        return np.ma.masked_array(r, mask=np.ma.getmaskarray(z))
    return r


def sigmoid(z: np.ndarray) -> np.ndarray:
    """sigma(z) = 1 / (1 + e^{-z}), computed as written for real z: below z = -88.7 (float32)
    or -709.8 (float64) e^{-z} overflows to inf and 1 / (1 + inf) = 0, where the exact value is
    below the smallest normal number (not a warning; the rounding bound allows it). Integer and
    boolean z are taken as float64. For complex z (the complex step) ``1 / (1 + e)`` for
    Re z >= 0 and ``e / (1 + e)`` below, e = exp(-|z|), so that nothing overflows."""
    z = _as_float(z)
    if z.dtype.kind == "c":
        e = exp_neg_abs(z)
        return np.where(z.real >= 0, 1, e) / (1 + e)
    e = np.negative(z)
    with np.errstate(over="ignore"):
        if not isinstance(e, np.ndarray):              # a scalar
            return 1 / (1 + np.exp(e))
        np.exp(e, out=e)
    e += 1
    return np.divide(1, e, out=e)


def softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + e^z) = max(z, 0) + log1p(e^{-|z|}), as written: each ufunc vectorised (NumPy's
    ``logaddexp`` computes the same formula one element at a time, ten times slower, and
    within 1.4 ulp where NumPy's vectorised exp and log1p give 2.2 in float32). Integer and
    boolean z are taken as float64."""
    z = _as_float(z)
    if z.dtype.kind == "c":
        return np.where(z.real >= 0, z, 0) + np.log1p(exp_neg_abs(z))
    plain = np.asarray(z)
    return _masked_like(z, np.maximum(plain, plain.dtype.type(0)) + np.log1p(exp_neg_abs(plain)))


class Sigmoid:
    """g(z) = 1 / (1 + e^{-z});   g'(z) = g(z) (1 - g(z))."""

    name = "sigmoid"
    analytic = True

    def fn(self, z: np.ndarray) -> np.ndarray:
        return sigmoid(z)

    def grad(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        d = 1 - a
        d *= a
        return d


class Tanh:
    """g(z) = tanh z;   g'(z) = 1 - tanh^2 z."""

    name = "tanh"
    analytic = True

    def fn(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(_as_float(z))

    def grad(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        return 1 - a * a


class ReLU:
    """g(z) = max(z, 0);   g'(z) = 1 if z > 0 else 0 (the convention at the kink z = 0)."""

    name = "relu"
    analytic = False

    def fn(self, z: np.ndarray) -> np.ndarray:
        return np.maximum(_as_float(z), 0)

    def grad(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        z = _as_float(z)
        return (z > 0).astype(z.dtype)


class LeakyReLU:
    """g(z) = z if z >= 0 else s z;   g'(z) = 1 if z >= 0 else s, with slope s = 0.01."""

    name = "leaky_relu"
    analytic = False
    slope = 0.01

    def fn(self, z: np.ndarray) -> np.ndarray:
        z = _as_float(z)
        return _masked_like(z, np.where(z >= 0, z, self.slope * z))

    def grad(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        z = _as_float(z)
        return _masked_like(z, np.where(z >= 0, 1, self.slope).astype(z.dtype))


class Softplus:
    """g(z) = log(1 + e^z);   g'(z) = sigma(z) = 1 / (1 + e^{-z})."""

    name = "softplus"
    analytic = True

    def fn(self, z: np.ndarray) -> np.ndarray:
        return softplus(z)

    def grad(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        return sigmoid(z)


class GELU:
    """GELU, tanh approximation, with u = c (z + k z^3), c = sqrt(2 / pi), k = 0.044715:

        g(z)  = z / 2 (1 + tanh u)
        g'(z) = (1 + tanh u) / 2 + z / 2 (1 - tanh^2 u) c (1 + 3 k z^2)

    For |Re z| > 100, tanh u is +-1 to the last bit (|u| > 3.5e4) and 1 - tanh^2 u is 0, so u
    is computed from z clamped to +-100: the same numbers without overflowing z^3.
    """

    name = "gelu"
    analytic = True
    c = math.sqrt(2 / math.pi)
    k = 0.044715
    clamp = 100.0

    def _clamped(self, z: np.ndarray) -> np.ndarray:
        r = z.real
        return np.where(np.abs(r) > self.clamp, np.sign(r) * self.clamp, z).astype(z.dtype, copy=False)

    def fn(self, z: np.ndarray) -> np.ndarray:
        z = _as_float(z)
        zc = self._clamped(z)
        t = np.tanh(self.c * (zc + self.k * zc**3))
        return 0.5 * z * (1 + t)

    def grad(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        z = _as_float(z)
        zc = self._clamped(z)
        t = np.tanh(self.c * (zc + self.k * zc**3))
        return _masked_like(z, 0.5 * (1 + t) + 0.5 * zc * (1 - t * t) * self.c * (1 + 3 * self.k * zc * zc))


ACTIVATIONS = {a.name: a for a in (Sigmoid(), Tanh(), ReLU(), LeakyReLU(), Softplus(), GELU())}


def get_activation(name: str):
    """The activation object called ``name``; ``ValueError`` naming the supported ones otherwise."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; supported: {', '.join(sorted(ACTIVATIONS))}"
        ) from None
