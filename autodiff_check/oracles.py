"""Gradients computed without any hand derivation: finite differences and the complex step.

These work on any NumPy function ``f(params) -> scalar`` (no JAX needed), so they check a
user's own loss and gradient as well as ours. All arithmetic is float64 (complex128 for the
complex step).

Finite-difference error, and the tolerance derived from it. The central difference
``D(h) = (f(w + h e) - f(w - h e)) / 2h`` differs from the derivative by

    truncation  h^2 |f'''| / 6        (Taylor)
    rounding    eps_f / h             (each f carries an absolute rounding error eps_f)

With eps_f ~ u |f| (u = 2^-53), the step h = u^(1/3) max(1, |w|) ~ 6e-6 balances the two at
~1e-11 |f|-scale. We do not guess |f'''|: Richardson's argument gives
``D(2h) - D(h) = 3 h^2 f''' / 6 + O(h^4)``, so ``|D(h) - D(2h)| / 3`` estimates the truncation
error from the two steps actually taken. That estimate is itself blurred by rounding (by at
most eps_f / h in D(h) and eps_f / 2h in D(2h)), so, to leading order in h (the O(h^4)
terms are what the safety factor is for), truncation <= (|D(h) - D(2h)| + 1.5 eps_f / h) / 3
and the total error <= |D(h) - D(2h)| / 3 + 1.5 eps_f / h. The per-entry tolerance is

    tol = 3 |D(h) - D(2h)|  +  2 eps_f / h

i.e. the Richardson estimate with a safety factor of 9, plus the rounding part rounded up.
D(h) divides by the step actually taken, fl(w + h) - fl(w - h), not by 2h.

Richardson is a bound only in the Taylor regime, where D(kh) = f' + c h^2 k^2 + O(h^4): a step
too large for f's absolute scale (h ~ u^(1/3) |w| with |w| ~ 30 moving a tanh argument by ~2)
gives two differences that agree by accident. So differences are taken at halving steps
h, h/2, h/4, ...: for three successive ones D(4s), D(2s), D(s), in the Taylor regime
b = D(2s) - D(4s) is 4 times a = D(s) - D(2s), up to the O(h^4) terms and the rounding (a
carries <= 1.5 eps_f / s, b <= 0.75 eps_f / s, so b - 4a <= 6.75 eps_f / s). A triple passes
when |b - 4a| <= |b| / 4 + 7 eps_f / s (b/a within [3.2, 5.3] when rounding is negligible, the
O(h^4) part under 1/4 of the h^2 part; anything when both are rounding). One triple passes by
accident outside the Taylor regime (b/a = 7.8 and 1.9 were seen at a tanh argument moved by ~2),
so the step s is taken once two successive triples pass (four steps 8s..s all consistent);
after RICHARDSON_HALVINGS halvings without that the entry is not checkable (tol inf, counted
in ``n_unresolved``). Cost: at least 4 central differences (8 evaluations) per entry.

Kinks (relu, leaky_relu). A difference whose stencil straddles a kink z = 0 measures a
secant across the corner, not the derivative. Given ``kinks(params) -> array`` (the sign
pattern of the pre-activations at every kink), a coordinate whose stencil changes the pattern
is retried with the step halved, up to 20 times; if even then the kink lies inside the
stencil the entry is marked not checkable (its tolerance is inf, and the count is reported)
rather than compared against a secant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

U = np.finfo(np.float64).eps / 2  # unit roundoff of float64

Params = Sequence[np.ndarray]
LossFn = Callable[[list[np.ndarray]], float]
KinkFn = Callable[[list[np.ndarray]], np.ndarray]


def float64_layers(params: Params, name: str = "params", *, finite: bool = True) -> list[np.ndarray]:
    """Float64 copies of ``params``: a list or tuple of real arrays, one per layer, all finite
    unless ``finite`` is False."""
    if isinstance(params, np.ndarray) or not isinstance(params, (list, tuple)):
        raise TypeError(f"{name} must be a list of arrays, one per layer; got {type(params).__name__}")
    if not params:
        raise ValueError(f"{name} is empty: no layer")
    out = []
    for l, W in enumerate(params):
        W = np.asarray(W)
        if W.dtype.kind not in "biuf":
            raise TypeError(f"{name}[{l}] must be a real numeric array; got dtype {W.dtype}")
        W = np.array(W, dtype=np.float64)
        if finite and not np.isfinite(W).all():
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(W))[0])
            raise ValueError(f"{name}[{l}] contains NaN or inf (first at {bad}); derivatives need finite inputs")
        out.append(W)
    return out


def _like(v: Params, P: list[np.ndarray], name: str = "v") -> list[np.ndarray]:
    """A direction: float64 copies shaped layer by layer like ``P``."""
    V = float64_layers(v, name)
    if len(V) != len(P):
        raise ValueError(f"{name} has {len(V)} arrays for {len(P)} layers of params")
    for l, (D, W) in enumerate(zip(V, P)):
        if D.shape != W.shape:
            raise ValueError(f"{name}[{l}] has shape {D.shape}; params[{l}] has shape {W.shape}")
    return V


def _number(v) -> float | None:
    """``v`` as a float if it is one real number (Python or NumPy, 0-d arrays included; not a
    bool or a string), else None."""
    a = np.asarray(v) if not isinstance(v, (str, bytes, bool, np.bool_)) else None
    return float(a) if a is not None and a.ndim == 0 and a.dtype.kind in "iuf" else None


def _step(h, name: str) -> float | None:
    """A step size: None (the default) or a finite number > 0."""
    if h is None:
        return None
    t = _number(h)
    if t is None or not (np.isfinite(t) and t > 0):
        raise ValueError(f"{name} must be a finite number > 0; got {h!r}")
    return t


def _value(v, *, complex_step: bool = False) -> float | complex:
    """f's value as a scalar: real for differences; complex for the complex step, which reads
    its imaginary part (a real result means f dropped it, and would read as a zero derivative)."""
    a = np.asarray(v)
    if a.size != 1 or a.dtype.kind not in "biufc":
        what = f"an array of shape {a.shape}" if a.size != 1 else f"dtype {a.dtype}"
        raise ValueError(f"f must return a scalar number; got {what}")
    a = a.reshape(())
    if complex_step:
        if a.dtype.kind != "c":
            raise ValueError("f returned a real number for complex input: it drops the imaginary part (a float(), "
                             "abs, np.real or a real-typed array inside f), so the complex step cannot be used")
        return complex(a)
    if a.dtype.kind == "c":
        if a.imag != 0:
            raise ValueError(f"f must return a real number at real inputs; got {complex(a)}")
        a = a.real   # a complex type holding a real number
    return float(a)


def _pattern_of(kinks: KinkFn, P: list[np.ndarray]) -> np.ndarray:
    """``kinks(P)``, which must be an array (the side of every kink); None or a number would
    compare equal at every step and hide the kinks."""
    base = kinks(P)
    if not isinstance(base, np.ndarray) or base.ndim == 0:
        raise TypeError(f"kinks(params) must return an array (the side of every kink); got {type(base).__name__}")
    return base


def _functions(f, kinks=None) -> None:
    """A TypeError for an f, or a kinks given, that is not callable (before it is called)."""
    if not callable(f):
        raise TypeError(f"f must be a function of params returning a scalar; got {type(f).__name__}")
    if kinks is not None and not callable(kinks):
        raise TypeError(f"kinks must be a function of params returning the side of every kink, or None; "
                        f"got {type(kinks).__name__}")


def _finite_at_params(f: LossFn, P: list[np.ndarray]) -> float:
    f0 = _value(f(P))
    if not np.isfinite(f0):
        raise ValueError(f"f(params) is {f0}; derivatives need a finite value")
    return f0


def default_step(w: float | np.ndarray, u: float = U) -> float | np.ndarray:
    """h = u^(1/3) max(1, |w|), which balances truncation and rounding of a central difference."""
    return np.cbrt(u) * np.maximum(1.0, np.abs(w))


def _dtypes_of(dtypes, P) -> list:
    """Per layer of P: the float dtype f takes it in (``dtypes``), float64 when not given."""
    if dtypes is None:
        return [np.dtype(np.float64)] * len(P)
    if isinstance(dtypes, (str, type, np.dtype)):   # a string would be read letter by letter
        raise TypeError(f"dtypes must be a sequence of one float dtype per array of params; got the single dtype "
                        f"{dtypes!r} (write [{dtypes!r}] * {len(P)})")
    dtypes = [np.dtype(d) for d in dtypes]
    if len(dtypes) != len(P) or not all(np.issubdtype(d, np.floating) for d in dtypes):
        raise ValueError(f"dtypes must give one float dtype per array of params ({len(P)}); got {dtypes}")
    return dtypes


def _u(d: np.dtype) -> float:
    return float(np.finfo(d).eps) / 2


def _scalar(v) -> float:
    v = complex(v) if np.iscomplexobj(v) else float(v)
    return v


RICHARDSON_HALVINGS = 16  # steps h .. h / 2^16 (65536) to reach the Taylor regime


@dataclass
class NumericalGradient:
    """A finite-difference gradient with its per-entry error bound.

    ``grad[l]`` and ``tol[l]`` have the shape of layer l; ``tol`` is inf where a kink made the
    entry not checkable (counted in ``n_kinks``) or no step reached the Taylor regime (counted
    in ``n_unresolved``)."""

    grad: list[np.ndarray]
    tol: list[np.ndarray]
    n_kinks: int
    n_unresolved: int = 0


def _taylor(d1: float, d2: float, d4: float, eps_f: float, h: float) -> bool:
    """D(h), D(2h), D(4h) in the Taylor regime: |b - 4a| <= |b|/4 + 7 eps_f/h (module docstring)."""
    a, b = d1 - d2, d2 - d4
    return abs(b - 4 * a) <= abs(b) / 4 + 7 * eps_f / h


def _richardson(D: Callable[[float], float], h: float, eps_f: float) -> tuple[float, float, float]:
    """``(D(s), D(2s), s)`` at the first step s = h / 2^k where two successive triples pass
    :func:`_taylor` (module docstring); ``(last D, nan, nan)`` when none does."""
    ds = [D(h), D(h / 2), D(h / 4)]
    s, passed_before = h / 4, _taylor(ds[2], ds[1], ds[0], eps_f, h / 4)
    for _ in range(RICHARDSON_HALVINGS - 2):
        s /= 2
        ds.append(D(s))
        now = _taylor(ds[-1], ds[-2], ds[-3], eps_f, s)
        if now and passed_before:
            return ds[-1], ds[-2], s
        passed_before = now
    return ds[-1], float("nan"), float("nan")


def _central(f: LossFn, P: list[np.ndarray], W: np.ndarray, idx, h: float, dtype=np.float64) -> float:
    """(f(w + h) - f(w - h)) divided by the step actually taken, fl(w + h) - fl(w - h) in the
    ``dtype`` f takes w in: with 2h instead, the rounding of w +- h (u |w| / h relative) would
    enter the quotient."""
    w = W[idx]
    W[idx] = wp = float(np.asarray(w + h).astype(dtype))
    fp = _value(f(P))
    W[idx] = wm = float(np.asarray(w - h).astype(dtype))
    fm = _value(f(P))
    W[idx] = w
    if wp == wm:   # h below the spacing of the floats at w: no difference (the caller says so)
        return float("nan")
    return (fp - fm) / (wp - wm)


def _straddles(kinks: KinkFn, P, W, idx, h: float, base: np.ndarray) -> bool:
    w = W[idx]
    try:
        for s in (h, -h, h / 2, -h / 2):
            W[idx] = w + s
            if not np.array_equal(kinks(P), base):
                return True
        return False
    finally:
        W[idx] = w


def _f_error(f0: float, f_error: float | None, u: float = U) -> float:
    """eps_f: the caller's bound, or 16 u max(1, |f|) (module docstring)."""
    if f_error is None:
        return 16 * u * max(1.0, abs(f0))
    e = _number(f_error)
    if e is None or not (np.isfinite(e) and e >= 0):
        raise ValueError(f"f_error must be a finite number >= 0; got {f_error!r}")
    return e


def numerical_grad_with_error(
    f: LossFn, params: Params, *, eps: float | None = None, kinks: KinkFn | None = None,
    f_error: float | None = None, dtypes: Sequence | None = None,
) -> NumericalGradient:
    """Central differences per coordinate in float64, with the error bound of the module
    docstring. ``eps`` is the first step tried for acceptance (default ``u^(1/3) max(1, |w|)``
    per entry; differences start at 8 eps and halve until in the Taylor regime);
    ``f_error`` bounds the rounding error of ``f`` (default ``16 u max(1, |f(w)|)``).
    ``dtypes``: the float dtype f takes each array in (float32 params cast inside f): points
    are rounded to it, and u is its own in the default step and the largest in f_error's
    default (float64's otherwise: a float32 f held to it never reached the Taylor regime and
    halved its step below float32's spacing, every difference 0)."""
    _functions(f, kinks)
    P = float64_layers(params)
    eps = _step(eps, "eps")
    dts = _dtypes_of(dtypes, P)
    eps_f = _f_error(_finite_at_params(f, P), f_error, max(map(_u, dts), default=U))
    base = _pattern_of(kinks, P) if kinks is not None else None
    grads, tols, n_kinks, n_unresolved = [], [], 0, 0
    for W, dt in zip(P, dts):
        G, T = np.empty_like(W), np.empty_like(W)
        for idx in np.ndindex(W.shape):
            h = 8 * (float(eps) if eps is not None else float(default_step(W[idx], _u(dt))))  # the largest step: the
            # first that can be accepted is h / 8, the default step, where f is in the Taylor regime
            if base is not None:  # the whole stencil (w +- h, the largest step) on one side of every kink
                for _ in range(20):
                    if not _straddles(kinks, P, W, idx, h, base):
                        break
                    h /= 2
                else:
                    G[idx], T[idx] = np.nan, np.inf
                    n_kinks += 1
                    continue
            d1, d2, s = _richardson(lambda t: _central(f, P, W, idx, t, dt), h, eps_f)
            if np.isfinite(s):
                G[idx], T[idx] = d1, 3 * abs(d1 - d2) + 2 * eps_f / s
            else:  # the last estimate, kept for show; tol inf (a kink leaves grad NaN instead)
                G[idx], T[idx] = d1, np.inf
                n_unresolved += 1
        grads.append(G)
        tols.append(T)
    return NumericalGradient(grads, tols, n_kinks, n_unresolved)


def numerical_grad(f: LossFn, params: Params, *, eps: float | None = None) -> list[np.ndarray]:
    """Central differences ``(f(w + h e_i) - f(w - h e_i)) / 2h`` per coordinate, float64.

    ``f`` takes a list of arrays shaped like ``params`` and returns a scalar; the step is
    ``eps`` or, by default, ``u^(1/3) max(1, |w_i|)``. Cost: 2 evaluations per parameter."""
    _functions(f)
    P = float64_layers(params)
    eps = _step(eps, "eps")
    _finite_at_params(f, P)
    out = []
    for l, W in enumerate(P):
        G = np.empty_like(W)
        for idx in np.ndindex(W.shape):
            h = eps if eps is not None else float(default_step(W[idx]))
            G[idx] = _central(f, P, W, idx, h)
            if W[idx] + h == W[idx] - h:
                raise ValueError(f"eps = {h:g} is below the spacing of the floats at params[{l}]{list(idx)} = "
                                 f"{W[idx]:g}: w + eps and w - eps round to the same number")
        out.append(G)
    return out


def random_direction(params: Params, rng: np.random.Generator) -> list[np.ndarray]:
    """A Rademacher direction: every entry +1 or -1 with equal probability.

    Why Rademacher: if the error e = g_a - g_b has any entry with |e_i| > tau, then flipping
    v_i changes <e, v> by 2|e_i| > 2 tau, so at most one of v and its flip has |<e, v>| <= tau:
    a single direction misses the error with probability <= 1/2, and k independent
    directions miss it with probability <= 2^-k (1e-6 for k = 20)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got {type(rng).__name__}")
    if isinstance(params, np.ndarray) or not isinstance(params, (list, tuple)):
        raise TypeError(f"params must be a list of arrays, one per layer; got {type(params).__name__}")
    return [rng.choice(np.array([-1.0, 1.0]), size=np.shape(W)) for W in params]


def dot(a: Params, b: Params) -> float:
    """<a, b> summed over all layers."""
    return float(sum(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64)) for x, y in zip(a, b)))


@dataclass
class Directional:
    """A directional derivative estimate ``value`` of <grad, direction>, with its error bound
    ``tol``. ``direction`` is v as the step actually took it, (fl(w + h v) - fl(w - h v)) / 2h,
    which differs from v by the rounding of w +- h v; compare against <grad, direction>."""

    value: float
    tol: float
    direction: list[np.ndarray] | None = None


def directional_fd(
    f: LossFn, params: Params, v: Params, *, eps: float | None = None, kinks: KinkFn | None = None,
    f_error: float | None = None, dtypes: Sequence | None = None,
) -> Directional:
    """Central difference of t -> f(w + t v) at 0, with the error bound of the module
    docstring (step u^(1/3) max(1, |w|_inf) / |v|_inf), as an estimate of <grad, direction>
    for the direction the step actually took (``Directional.direction``), with the Taylor-regime
    check of the module docstring. ``value`` is NaN and ``tol`` inf when every step down to
    2^-20 h straddles a kink or no step reaches the Taylor regime. ``dtypes`` as in
    :func:`numerical_grad_with_error` (u: the largest of them)."""
    _functions(f, kinks)
    P = float64_layers(params)
    V = _like(v, P)
    eps = _step(eps, "eps")
    dts = _dtypes_of(dtypes, P)
    u = max(map(_u, dts), default=U)
    vmax = max((float(np.abs(x).max()) for x in V if x.size), default=0.0)
    if vmax == 0:
        raise ValueError("v is zero: a directional derivative needs a direction")
    wmax = max((float(np.abs(x).max()) for x in P if x.size), default=0.0)
    h = 8 * (eps if eps is not None else float(default_step(wmax, u)) / vmax)  # largest step
    eps_f = _f_error(_finite_at_params(f, P), f_error, u)

    def at(t: float) -> list[np.ndarray]:   # rounded to the dtypes f takes them in
        return [(W + t * D).astype(dt).astype(np.float64) for W, D, dt in zip(P, V, dts)]

    def central(t: float) -> tuple[float, list[np.ndarray]]:
        plus, minus = at(t), at(-t)
        return (_value(f(plus)) - _value(f(minus))) / (2 * t), [(A - B) / (2 * t) for A, B in zip(plus, minus)]

    if kinks is not None:  # the largest step is h: steps only shrink from there
        base = _pattern_of(kinks, P)
        for _ in range(20):
            if all(np.array_equal(kinks(at(s)), base) for s in (h, -h, h / 2, -h / 2)):
                break
            h /= 2
        else:
            return Directional(float("nan"), float("inf"), V)
    taken = {}

    def D(t: float) -> float:
        taken[t] = central(t)
        return taken[t][0]

    d1, d2, s = _richardson(D, h, eps_f)
    if not np.isfinite(s):
        return Directional(float("nan"), float("inf"), V)
    return Directional(d1, 3 * abs(d1 - d2) + 2 * eps_f / s, taken[s][1])


COMPLEX_STEP = 1e-20


def complex_step_directional(f: LossFn, params: Params, v: Params, *, h: float = COMPLEX_STEP) -> float:
    """``Im f(w + i h v) / h``: the directional derivative with no subtractive cancellation,
    exact to O(h^2) = O(1e-40) when f is analytic along the path and written for complex input."""
    _functions(f)
    W0 = float64_layers(params)
    h = _step(h, "h")
    P = [W + 1j * h * D for W, D in zip(W0, _like(v, W0))]
    return _value(f(P), complex_step=True).imag / h


def complex_step_grad(f: LossFn, params: Params, *, h: float = COMPLEX_STEP) -> list[np.ndarray]:
    """Per-coordinate complex step ``Im f(w + i h e_i) / h``, complex128 arithmetic."""
    _functions(f)
    P = [W.astype(np.complex128) for W in float64_layers(params)]
    h = _step(h, "h")
    out = []
    for W in P:
        G = np.empty(W.shape, dtype=np.float64)
        for idx in np.ndindex(W.shape):
            w = W[idx]
            W[idx] = w + 1j * h
            G[idx] = _value(f(P), complex_step=True).imag / h
            W[idx] = w
        out.append(G)
    return out
