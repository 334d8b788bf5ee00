"""Finite differences of a black box, and its complex step where that works: the machinery
behind the tolerances of :mod:`autodiff_check.check` (steps 1-4 of its docstring, and the
complex step's noise in step 5).

``measure`` evaluates f once, measures its noise (ECNoise) and picks the relative step;
``fd_dir`` takes a central difference along a direction with Richardson's error bound, shrinking
the step at kinks and falling back to one-sided differences at domain edges; ``probe_complex``
decides whether f propagates an imaginary part, and ``cs_dir``/``cs_noise`` use it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import noise as _noise
from .pytree import Flat

COMPLEX_H = 1e-20
#: FD.note of a kink read because J fell under the noise floor without decaying (not a jump that
#: stayed put over three steps): weaker evidence, also what a step too large for f's scale gives
KINK_UNDER_FLOOR = "kink read under the noise floor"
PROBE_ENTRIES = 4  # single entries the complex-step probe also tries, beside its dense direction


def real_scalar(v) -> bool:
    """A real number: Python or NumPy, 0-d arrays included; not a bool, string or complex."""
    a = np.asarray(v) if not isinstance(v, (str, bytes)) else None
    return a is not None and a.ndim == 0 and a.dtype.kind in "iuf"


@dataclass
class FD:
    value: float  # estimate of the derivative along v (per unit of the step actually taken)
    tol: float  # inf: not checkable
    status: str  # "ok", "kink", "nonfinite", "unresolved"
    taken: np.ndarray | None = None  # the direction actually stepped, (rnd(x+hv) - rnd(x-hv)) / 2h
    left: float = float("nan")
    left_tol: float = float("inf")
    right: float = float("nan")
    right_tol: float = float("inf")
    note: str = ""
    #: f was rough at a larger step (J above the floor) or is here: a kink near x that a smaller
    #: step got past, or (along several entries) kinks the confirmation one level down allowed for
    rough: bool = False


def level_eps(f0: float, eps_f: float, u: float, fs: dict) -> tuple[float, float]:
    """(for the tests of a step, for the tolerance): the error of one evaluation of f at
    x + k h v (``fs[k]``, k = +-1, +-2, or one side's 1, 2, 4), eps_f measured at x plus the
    rounding of what the step added to f, per unit of k (D(kh) divides by k h).

    Where both signs were taken, the odd part |f(x + kh) - f(x - kh)| / 2, which the central
    difference keeps, rounds by 16 u (its sums' cancellation: a linear map of inputs ~1e-8 has
    f(x) ~ 1e-8 but f(x + h) ~ 1e-6); it enters both. The even part |f(x + kh) + f(x - kh) -
    2 f(x)| / 2 (curvature) enters the tolerance only, by 2 u: in the tests of a step it would
    grow with the curvature and accept the coarse steps whose rounding is largest (a sum that
    cancels rounds by far more than 2 u of it; there the smaller steps the tests ask for keep
    it small). One side alone (a domain edge): 16 u |f(x + kh) - f(x)|, tolerance only."""
    val = {k: float(np.real(f)) for k, f in fs.items()}
    odd = even = one = 0.0
    for k, f in val.items():
        if -k in val and k > 0:
            odd = max(odd, abs(f - val[-k]) / 2 / k)
            even = max(even, abs(f + val[-k] - 2 * f0) / 2 / k)
        elif -k not in val:
            one = max(one, abs(f - f0) / abs(k))
    return eps_f + 16 * u * odd, eps_f + u * (16 * odd + 2 * even + 16 * one)


def _step(flat: Flat, x, v, pts, s) -> float:
    """The step actually taken from x towards pts[s] along v, signed (exact for a coordinate
    direction; x + s h v rounds to x's dtype, off from s h by up to half an ulp of x, and is 0
    once h is below it)."""
    return float((pts[s] - x) @ v) / float(v @ v)


def _slope(fs, f0, flat: Flat, x, v, pts, s) -> float:
    """(f(x + s h v) - f(x)) per unit of the step actually taken; NaN where x + s h v rounded to x."""
    step = _step(flat, x, v, pts, s)
    return (fs[s] - f0) / step if step else float("nan")


def evaluate(F, flat: Flat, x, v, h, offsets):
    pts = {s: flat.rnd(x + s * h * v) for s in offsets}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log/divide at a perturbed point: it is non-finite below
        fs = {s: F(pts[s]) for s in pts}
    return pts, fs


def one_sided(F, flat: Flat, x, v, f0, eps_f, h, side: int, pts, fs) -> FD | None:
    """At a domain edge (f finite on one side only): the one-sided Richardson derivative from the
    finite side, 2 F(h) - F(2h) with F(k) = (f(x + side k h v) - f(x)) / (the step taken), tolerance
    3 |F(h) - F(2h)| + 4 eps / h (the coefficients of f's values sum to 4/h; eps: eps_f and what the
    steps added, :func:`level_eps`). Trusted only in
    the Taylor regime: a = F(h) - F(2h) and b = F(2h) - F(4h) are in ratio 2 (f'' != 0) to 4
    (f'' = 0), so |b - 3a| <= 1.5 |a| up to rounding (a carries <= 2 eps_f / h, b <= eps_f / h:
    |b - 3a| and 1.5 |a| are off by <= 10 eps_f / h together); a log singularity (ratio 1) is
    refused."""
    p4, f4 = evaluate(F, flat, x, v, h, (4 * side,))
    if not np.isfinite(f4[4 * side]):
        return None
    pts, fs = {**pts, **p4}, {**fs, **f4}
    _, eps = level_eps(f0, eps_f, flat.u_along(v), {k * side: fs[k * side] for k in (1, 2, 4)})
    F1, F2, F4 = (_slope(fs, f0, flat, x, v, pts, k * side) for k in (1, 2, 4))
    if not np.isfinite(F1 + F2 + F4):   # a step below x's ulp: no slope at this level
        return None
    a, b = F1 - F2, F2 - F4
    if not abs(b - 3 * a) <= 1.5 * abs(a) + 10 * eps_f / h:   # the test of the step: eps_f (level_eps)
        return None
    return FD(2 * F1 - F2, 3 * abs(a) + 4 * eps / h, "ok", v,   # per unit of v: the steps taken are divided out
               note=f"one-sided difference from the {'right' if side > 0 else 'left'} (f is not finite on the other side)")


def fd_dir(F, flat: Flat, x, v, f0, eps_f, h, *, adapt: bool = True, levels: int = 12, confirm: bool = True) -> FD:
    """Central difference of t -> F(x + t v) at 0 with tolerance and kink detection, ``eps_f``
    the error of one evaluation of f (a number, or a function of the step)
    (:mod:`autodiff_check.check`'s docstring, steps 2-4). A kink is declared only when J stays within a factor 2 (0.5 <=
    J/J_prev <= 2) over two successive 8x smaller steps: outside the Taylor regime (a step too
    large for f's absolute scale) J changes erratically, and the step keeps shrinking. Where f
    is finite on one side only, the one-sided Richardson difference from the finite side.

    Along a direction with several nonzero entries (``confirm``), a step accepted where f shows
    roughness (a larger step's J above the floor, this J above its own noise 8 eps / h, or the
    curvature estimate's other step rough or not agreeing) is confirmed one level down: the
    kinks of many entries can cancel in J while their errors in D(h) add (relu over 100,000
    float32 inputs: J under the floor with 15 kinks inside the step, D(h) off by 2 against a
    tolerance of 1.4). It stands if the two estimates agree within their tolerances, its
    tolerance raised to the gap plus the smaller step's (which holds 8x fewer kinks, and 8x the
    noise: 1-5 % errors in float32 pass where they failed, a review found; see the comment);
    otherwise the smaller step becomes the candidate. Along one coordinate the
    single-kink rules above suffice, and there a confirmation would only loosen the tolerance
    of smooth f outside the Taylor regime."""
    prev_J, run = None, 0
    nonfinite, edge = False, None
    cand = None   # an estimate reached after f proved rough at a larger step, awaiting the next level
    several = confirm and np.count_nonzero(v) > 1
    u = flat.u_along(v)
    eps_of = eps_f if callable(eps_f) else (lambda h, e=eps_f: e)
    for _ in range(levels):
        eps_f = eps_of(h)   # f's error at x +- h v (:func:`autodiff_check.check`: where it grows away from x)
        pts, fs = evaluate(F, flat, x, v, h, (1, -1, 2, -2))
        if np.array_equal(pts[1], x) and np.array_equal(pts[-1], x):   # h below x's ulp: smaller is no better
            break
        fin = {s: bool(np.isfinite(fs[s])) for s in fs}
        if not all(fin.values()):
            nonfinite = True
            for side in (1, -1):
                if fin[side] and fin[2 * side] and not (fin[-side] and fin[-2 * side]):
                    got = one_sided(F, flat, x, v, f0, eps_f, h, side, pts, fs)
                    if got is not None and (edge is None or got.tol < edge.tol):
                        edge = got  # keep shrinking: a finite central difference may still come
            prev_J, run, h = None, 0, h / 8
            continue
        taken = (pts[1] - pts[-1]) / (2 * h)
        d1 = (fs[1] - fs[-1]) / (2 * h)
        d2 = (fs[2] - fs[-2]) / (4 * h)
        J = (2 * (fs[1] - 2 * f0 + fs[-1]) - (fs[2] - 2 * f0 + fs[-2]) / 2) / h
        floor, eps = level_eps(f0, eps_f, u, fs)   # floor: the tests of this step; eps: its tolerance

        def kink(under_floor: bool = False) -> FD:   # one-sided derivatives per step actually taken
            # (near x's ulp, h is not); under_floor: the weaker evidence, KINK_UNDER_FLOOR
            F1, F2, B1, B2 = (_slope(fs, f0, flat, x, v, pts, s) for s in (1, 2, -1, -2))
            return FD(float("nan"), float("inf"), "kink", taken, 2 * B1 - B2, 3 * abs(B1 - B2) + 4 * eps / h,
                      2 * F1 - F2, 3 * abs(F1 - F2) + 4 * eps / h, KINK_UNDER_FLOOR if under_floor else "")

        if cand is None and abs(J) <= 16 * floor / h and prev_J is not None and 4 * abs(J) >= abs(prev_J):
            # J fell under the noise floor (which grows as h shrinks) without decaying like
            # h^3 (512x per level for a smooth f): a jump of f' hidden by the floor, not a
            # smooth f, so the central difference (the mean of the two sides) is no derivative
            return kink(under_floor=True)
        if abs(J) <= 16 * floor / h:
            # + |J| / 2: a jump of f' under the floor moves the central difference (the mean of
            # the two sides) by half the jump from either side; for a smooth f, J = O(h^3)
            res = FD(d1, 3 * abs(d1 - d2) + 2 * eps / h + abs(J) / 2, "ok", taken)
            # rough: a larger step had J above the floor, or J here exceeds its noise (8 eps / h)
            rough = prev_J is not None or abs(J) > 8 * floor / h
            if adapt and cand is None:   # a confirmation is made at h / 8 itself, not at a step of its own
                with np.errstate(over="ignore"):  # f of size 1e160: f3 = inf, h_opt = 0, clipped to h / 64
                    f3 = 2 * abs(d2 - d1) / h / h   # (h**2 raises OverflowError for h > 1e154)
                    h_opt = np.cbrt(3 * eps_f / f3) if f3 > 0 else 8 * h
                h_new = float(np.clip(h_opt, h / 64, 8 * h))
                if not 0.5 <= h_new / h <= 2:
                    alt = fd_dir(F, flat, x, v, f0, eps_of, h_new, adapt=False, levels=1, confirm=confirm)
                    if several and (alt.status != "ok" or abs(alt.value - res.value) > alt.tol + res.tol):
                        rough = True   # the other step is rough, or the two disagree (maxpool at scale 100)
                    elif alt.status == "ok" and alt.tol < res.tol:
                        res = alt
            if cand is None and not (several and rough):
                res.rough = rough
                return res
            if cand is None:
                cand, prev_J, h = res, None, h / 8
                continue
            # the candidate is off by at most the gap plus the smaller step's own error, which
            # counts in full: half its noise term (4 standard deviations) caught 5 % errors that
            # this lets through (float32 softmax at logits ~1e3, max pooling at 1e-3), but failed
            # a correct relu over 10^5 float32 inputs (1 of 20 seeds, kinks cancelling in J at
            # both steps); a false alarm costs more trust than a loose tolerance the note states
            gap, own = abs(cand.value - res.value), res.tol
            if gap <= cand.tol + own:
                cand.tol = max(cand.tol, gap + own)
                cand.rough = True
                return cand
            cand, prev_J, h = res, None, h / 8
            continue
        cand = None
        run = run + 1 if prev_J is not None and 0.5 <= J / prev_J <= 2 else 0
        if run >= 2:  # the jump stays put over three steps: a kink at x
            return kink()
        prev_J, h = J, h / 8
    if edge is not None:
        return edge
    return FD(float("nan"), float("inf"), "nonfinite" if nonfinite else "unresolved")


@dataclass
class Context:
    flat: Flat
    F: Callable  # flat float64 (or complex) vector -> scalar
    f0: float
    eps_f: float
    hrel: float   # the relative step along a direction: cbrt(eps_f / |f0|) within the coarsest leaf's bounds
    noise_note: str
    #: per float dtype of the leaves, where they mix: (eps_f, cbrt(eps_f / |f0|)) of f measured
    #: along that dtype's entries alone (:func:`measure`); empty for one dtype
    by_dtype: dict = field(default_factory=dict)

    def eps_at(self, i: int) -> float:
        """f's error along entry i: of its leaves' dtype where dtypes mix, else eps_f."""
        got = self.by_dtype.get(self.flat.dtypes[self.flat.leaf_of(i)]) if self.by_dtype else None
        return self.eps_f if got is None else got[0]

    def hrel_at(self, i: int) -> float:
        """The relative step along entry i: cbrt(eps / |f0|) (eps of :meth:`eps_at`) within the
        bounds along a direction, [c / 4, 16 c], c = cbrt(u) of the coarsest leaf."""
        got = self.by_dtype.get(self.flat.dtypes[self.flat.leaf_of(i)]) if self.by_dtype else None
        if got is None:
            return self.hrel
        c = np.cbrt(self.flat.u)
        return float(np.clip(got[1], c / 4, 16 * c))


def noise_probe(flat: Flat, rng, *, floor: float = 1.0) -> tuple[np.ndarray, float]:
    """The direction p (Gaussian, max|p| = 1) and spacing h = sqrt(u) max(floor, |x|) along which
    noise is measured: floor 1 for ECNoise of f, which adapts h; 0 for the noise of g or an
    oracle entry by entry (:func:`entry_noise`, h the largest of its spacings), which must
    not step across the kinks of inputs far below 1 (relu at |x| ~ 1e-8: a probe of 1e-4
    flips every mask and reads the flips as noise). All-zero x: h = sqrt(u)."""
    p = rng.standard_normal(flat.n)
    p /= max(np.abs(p).max(), 1e-300)
    scale = max(floor, float(np.abs(flat.x).max()) if flat.n else 0.0)
    return p, float(np.sqrt(flat.u) * (scale if scale > 0 else 1.0))


def entry_noise(g: Callable[[np.ndarray], np.ndarray], flat: Flat, rng) -> np.ndarray:
    """Per-entry noise of ``g`` (a function of the flat inputs: a derivative, an oracle entry by
    entry) near ``flat.x``: :func:`autodiff_check.noise.shrinking_noise` along
    :func:`noise_probe`'s p (floor 0) from h = sqrt(u) max|x| down to 2 ulp of max|x| (4 sqrt(u)
    h), each input on its own dtype's lattice; 0 where g is not finite there."""
    p, h = noise_probe(flat, rng, floor=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s = _noise.shrinking_noise(g, flat.x, p, h, flat.ulp(), 4 * np.sqrt(flat.u) * h)
    return np.where(np.isfinite(s), s, 0.0)


def _eps_of(nz: _noise.Noise, f0: float, u_floor: float, u_assumed: float, what: str) -> tuple[float, str]:
    """eps_f and its note from ECNoise's result (module docstring of check, step 1): 3 sigma, or
    the spread where ECNoise found no level, at least u_floor |f0|; 16 u max(1, |f0|) where f
    never moved."""
    if nz.sigma is not None:
        eps_f = max(3 * nz.sigma, u_floor * abs(f0), np.finfo(np.float64).tiny)
        return eps_f, f"noise of {what}: sigma {nz.sigma:.1e} (ECNoise, {nz.evaluations} evaluations), eps_f {eps_f:.1e}"
    if nz.spread:  # ECNoise failed (e.g. f ~ 0): the spread of f at the smallest h that moved it
        eps_f = max(nz.spread, u_floor * abs(f0), np.finfo(np.float64).tiny)
        return eps_f, (f"noise of {what}: {nz.note}; eps_f = spread of f over 8 points {nz.spread_h:.1e} apart "
                       f"(an upper bound on its noise there) = {eps_f:.1e}")
    eps_f = 16 * u_assumed * max(1.0, abs(f0))
    return eps_f, f"noise of {what}: {nz.note}; assumed eps_f = 16 u max(1, |f|) = {eps_f:.1e}"


def _cbrt_ratio(eps_f: float, f0: float) -> float:
    with np.errstate(over="ignore", divide="ignore"):  # f(x) = 0: the largest relative step (clipped)
        return float(np.cbrt(np.float64(eps_f) / np.float64(abs(f0))))


def measure(flat: Flat, F, rng, loss_error: float | None, what: str, *, per_dtype: bool = True) -> Context:
    """f(x), f's noise eps_f and the relative step. Leaves of several float dtypes (and
    ``per_dtype``): also eps_f along each dtype's entries alone (the probe p on them, 0
    elsewhere). Along all of them a float32 leaf's inputs round to its ulps at every probe
    point, and ECNoise reads the jumps of f as noise (3e-8 for 0.3 + |s|^3 at s ~ 0.5): held to
    that, a float64 leaf's entry off by 1 % passed. Entry i is then held to its own dtype's. The
    spacing starts at the coarsest leaf's, as along all of them: a float64 leaf that f also
    casts to float32 moves that term in float32's steps, which spacings of float64's sqrt(u)
    never cross (noise read 7e-16, a correct gradient failed 12 of 20 seeds). Floored at the
    rounding of f's value, u_out |f|, and capped at the eps_f along every leaf; where f does
    not move along a dtype's entries or raises there, eps_f stands for them."""
    raw = F(flat.x)
    if isinstance(raw, complex) and raw.imag != 0:
        raise ValueError(f"{what} returned a complex number ({raw}) at real inputs; the checks here are of "
                         "real-valued functions")
    f0 = float(np.real(raw))
    if not np.isfinite(f0):
        raise ValueError(f"{what} is not finite at the given point ({f0}); derivatives need a finite value")
    by_dtype: dict = {}
    if loss_error is not None:
        if not (real_scalar(loss_error) and np.isfinite(loss_error) and loss_error >= 0):
            raise ValueError(f"loss_error must be a finite number >= 0; got {loss_error!r}")
        eps_f, note = float(loss_error), f"loss error {loss_error:.2e} (given)"
    else:
        p, h0 = noise_probe(flat, rng)
        nz = _noise.confirmed_noise(F, flat.x, p, _noise.estimate_noise(F, flat.x, p, h0), 4 * np.sqrt(flat.u) * h0)
        eps_f, note = _eps_of(nz, f0, flat.u_out, flat.u, what)
        dtypes = {d for d, fl in zip(flat.dtypes, flat.float_) if fl}
        for d in sorted(dtypes, key=lambda d: np.finfo(d).eps) if len(dtypes) > 1 and per_dtype else ():
            on = np.zeros(flat.n, bool)
            for L, fl, sl in zip(flat.dtypes, flat.float_, flat.slices):
                on[sl] = fl and L == d
            if not on.any():   # only empty leaves of this dtype
                continue
            pd = np.where(on, p, 0.0)
            pd /= max(np.abs(pd).max(), 1e-300)
            hd = float(np.sqrt(flat.u)) * max(1.0, float(np.abs(flat.x[on]).max()))
            try:   # f raising along these entries alone, or not moving there: eps_f stands for them
                nz = _noise.estimate_noise(F, flat.x, pd, hd, grow=False)
            except Exception:   # noqa: BLE001 - (a leaf f ignores but validates, walked out of its range)
                continue
            if nz.sigma is None and not nz.spread:
                continue
            # the floor: the rounding of f's value (a float32 leaf's inputs are exact; a float64
            # term of 8e4 beside it floored its entries at u32 |f| = 5e-3, and 1 % errors passed)
            eps_d, _ = _eps_of(nz, f0, flat.u_out, flat.u_out, what)
            eps_d = min(eps_d, eps_f)   # kinks read as noise: along fewer entries the probe crosses them farther
            by_dtype[d] = (eps_d, _cbrt_ratio(eps_d, f0))
        if by_dtype:
            note += "; along each dtype's entries alone: " + ", ".join(f"{d} {e:.1e}" for d, (e, _) in by_dtype.items())
    c = np.cbrt(flat.u)
    return Context(flat, F, f0, eps_f, float(np.clip(_cbrt_ratio(eps_f, f0), c / 4, 16 * c)), note, by_dtype)


def eps_at_step(ctx: Context, i: int, h: float) -> float | None:
    """The error of one evaluation of f at x + h e_i where it clearly exceeds eps_f (measured at
    x) and the rounding of f's value there: 3 sigma, sigma f's noise at x + h e_i by ECNoise along
    e_i in steps of 16 2^k ulp of x_i (k = 0, 6, 12, ... up to a relative spacing of sqrt(u):
    every point exact in x_i's dtype, so what varies is f's own rounding, not its input's), at the
    largest k where ECNoise settles: at the smallest spacings the terms that cancel may not move
    at all, and f only flips its last bit (float32 least squares: 3e-9 at k = 0, 1e-7 at k = 6);
    else None. 8 evaluations of f where the largest settles.

    For f whose terms cancel: 0.5 |M q - y|^2 near a consistent optimum c, whose residual rounds
    by ~u |M| |q| wherever q is. At c, f = 0 and its noise ~0; at x + h e_i it is ~h |M e_i| u |M|
    |q|, far above u |f(x + h e_i)|, and differences held to the noise at x failed correct
    gradients (docs/checker.md). Counted only above 4 eps_f (a second estimate of the same level,
    the largest of several, exceeds the first by chance: a sum of large opposite terms) and
    8 u |f(x1)|: the rounding of f's value alone reaches 3 sigma = 4.2 u |f| (f = A (q0 - c)^2 +
    B q0 at A h^2 ~ 3e7), which the tolerance already allows (2 u of the even part,
    :func:`level_eps`); counted again it let a derivative 1-10 % off pass. Only entry i moves, as
    in its central difference: noise of other entries' terms away from x is no error of this
    entry's difference (a review: a wrong entry beside a least-squares block passed when one
    measurement widened every entry)."""
    flat = ctx.flat
    x1 = flat.rnd(flat.x + h * np.eye(1, flat.n, i)[0])
    d = flat.dtypes[flat.leaf_of(i)]
    unit, u_d = 16 * float(np.spacing(np.abs(x1[i]).astype(d))), float(np.finfo(d).eps) / 2
    levels = [k for k in range(0, 64, 6) if 2.0**k * 64 * u_d <= 1.01 * np.sqrt(u_d)]
    for k in reversed(levels):   # the largest spacing ECNoise settles at (float32: k = 6, 0)
        pts = np.repeat(x1[None, :], 8, axis=0)
        pts[:, i] += np.arange(-4, 4) * 2.0**k * unit
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                vals = np.array([float(np.real(ctx.F(z))) for z in pts])
        except Exception:   # noqa: BLE001 - f refused a point near x + h e_i: no measurement there
            return None
        if not np.all(np.isfinite(vals)):
            return None
        sigma, inform = _noise.ecnoise(vals)
        if inform == 2:   # f did not move: nor will it at a smaller spacing
            return None
        if inform == 1:
            return 3 * sigma if 3 * sigma > max(4 * ctx.eps_at(i), 8 * flat.u_at(i) * abs(vals[4])) else None
    return None


# ----------------------------------------------------------------------------------------------
# the complex step, where it works


#: how a note that the complex step was not used begins: it says why, and nothing about the derivative
CS_SKIPPED = "complex step skipped (an oracle less, not a fault of the derivative): "


def _clipped(message: str, n: int = 160) -> str:
    """``message`` up to ``n`` characters, cut at a space with "..." where it is longer."""
    return message if len(message) <= n else message[:n].rsplit(" ", 1)[0] + " ..."


def probe_complex(ctx: Context, rng, against_fd: bool = True, only_disagreement: bool = False) -> tuple[bool, str]:
    """Does F take complex input and propagate the imaginary part? It must return a complex
    number without raising or warning, and (``against_fd``) Im F(x + i h p) / h must agree with
    finite differences along a random p and along single entries. ``only_disagreement`` (the
    float64 probe): only a disagreement or a kink where f' jumps (:func:`resolved_kink`)
    refuses; an error on complex input, an unsettled difference or a kink read under the noise
    floor is no evidence either way."""
    flat = ctx.flat
    p = rng.choice(np.array([-1.0, 1.0]), size=flat.n) * (1 + rng.random(flat.n))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = ctx.F(flat.x + 1j * COMPLEX_H * p)
    except Exception as e:  # noqa: BLE001 - any failure on complex input means: no complex step
        return only_disagreement, "" if only_disagreement else (
            CS_SKIPPED + f"f raised {type(e).__name__} on complex input ({_clipped(str(e))})")
    if not isinstance(out, complex):
        return only_disagreement, "" if only_disagreement else (
            CS_SKIPPED + "f returned a real number for complex input (float(...) or a cast drops the imaginary part)")
    if not against_fd:
        return True, ""
    # unconfirmed: the probe asks how close Im f / h comes to the slope, and a confirmation's wider
    # tolerance let the complex step of cs231n's float32 batch norm (x.var(): not analytic) through
    fd = fd_dir(ctx.F, flat, flat.x, p, ctx.f0, ctx.eps_f, ctx.hrel * max(1.0, float(np.abs(flat.x).max())),
                confirm=False)
    if fd.status != "ok" and not (only_disagreement and not resolved_kink(fd)):
        return False, CS_SKIPPED + "the probe direction crosses a kink"
    cs = cs_dir(ctx, fd.taken) if fd.status == "ok" else None  # along the direction the difference took
    if cs is not None and not abs(cs - fd.value) <= fd.tol:   # (float32 rounds x + hp)
        return False, (CS_SKIPPED + f"Im f(x + ihp)/h = {cs:.6g} but finite differences give {fd.value:.6g} "
                       f"+- {fd.tol:.1e}, {abs(cs - fd.value):.1e} apart (f is not complex-analytic: abs, maximum, "
                       "conj or real? Or f is flat at the step: " + _FLAT_AT_THE_STEP + ")")
    # and along PROBE_ENTRIES single entries: over many inputs the dense probe's tolerance grows
    # with f's noise while an elementwise abs loses only sign(x_i) per entry (L1 over 30,000
    # float32 inputs at 1e-3: 260 off against a tolerance of 200 along p; along e_i a kink)
    # (entries spread evenly over x, not drawn: the draws of rng stay those of the checks after it)
    for i in np.unique(np.linspace(0, flat.n - 1, PROBE_ENTRIES).astype(int)) if flat.n > 1 else ():
        e = np.zeros(flat.n)
        e[i] = 1.0
        fd = fd_dir(ctx.F, flat, flat.x, e, ctx.f0, ctx.eps_at(i), ctx.hrel_at(i) * max(1.0, abs(float(flat.x[i]))))
        # as along p: a kink within the step is no analytic f (abs at |x| << h)
        if fd.status == "kink" and not (only_disagreement and not resolved_kink(fd)):
            return False, CS_SKIPPED + f"entry {int(i)} has a kink within the step (abs, maximum?)"
        cs = cs_dir(ctx, fd.taken) if fd.status == "ok" else None
        if cs is not None and not abs(cs - fd.value) <= fd.tol:
            return False, (CS_SKIPPED + f"along entry {int(i)}, Im f(x + ih e)/h = {cs:.6g} but finite differences "
                           f"give {fd.value:.6g} +- {fd.tol:.1e}, {abs(cs - fd.value):.1e} apart (f is not "
                           "complex-analytic: abs, maximum, conj or real? Or f is flat at the step: "
                           + _FLAT_AT_THE_STEP + ")")
    return True, ""


# a review (2026-12-03): a cross-entropy m + log(sum exp(z - m)) - z_y at margins of 20 is ~1e-9
# computed from m ~ 40, so it rounds to steps of ulp(m) ~ 7e-15 and a step in z moving it by
# 1e-17 leaves it unchanged: the differences read 0, and the complex step, right, was set aside
_FLAT_AT_THE_STEP = "its value rounded at the scale of a far larger intermediate, which the differences cannot see"


def resolved_kink(fd: FD) -> bool:
    """Evidence that f' jumps: a kink whose jump in J stayed put over three steps (sum |w| along
    a direction crossing zeros of w), or whose one-sided derivatives differ by more than their
    tolerances. A kink read only because J fell under the noise floor without decaying is also
    what a step too large for f's scale gives a smooth f (layer norm at inputs ~1e-3 in float64),
    and its sides then agree."""
    return fd.status == "kink" and (fd.note != KINK_UNDER_FLOOR or abs(fd.left - fd.right) > fd.left_tol + fd.right_tol)


def cs_dir(ctx: Context, v: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ctx.F(ctx.flat.x + 1j * COMPLEX_H * v).imag / COMPLEX_H


def cs_noise(ctx: Context, entries: np.ndarray, rng) -> np.ndarray:
    """Per entry in ``entries``: the noise of the complex-step derivative along that coordinate
    (:func:`entry_noise` of z -> Im F(z + i h e_i) / h, 16 evaluations per entry and spacing),
    measured as g's is (:func:`autodiff_check.check._grad_noise`)."""
    flat = ctx.flat
    E = np.zeros((entries.size, flat.n))
    E[np.arange(entries.size), entries] = 1.0

    def cs_at(z):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.array([ctx.F(z + 1j * COMPLEX_H * e).imag / COMPLEX_H for e in E])

    return entry_noise(cs_at, flat, rng)
