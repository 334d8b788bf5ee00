"""How noisy is a black-box function? ECNoise (Moré and Wild, SIAM J. Sci. Comput. 33(3), 2011).

Rounding makes a computed f(x) = f_exact(x) + eps(x), with eps varying erratically from one x to
the next. Sample f at m + 1 equally spaced points x + (i - m/2) h p (i = 0..m, p a direction)
and form the difference table Delta^k f. For a smooth f, Delta^k of the smooth part is
h^k |p|^k f^(k), which shrinks fast with k once h is small; Delta^k of independent noise of
standard deviation sigma has E[(Delta^k eps)^2] = C(2k, k) sigma^2. So for every k where the
smooth part has died out,

    sigma_k = sqrt( gamma_k * mean_i (Delta^k f_i)^2 ),     gamma_k = (k!)^2 / (2k)!

estimates sigma. ECNoise accepts sigma_k at the first k where sigma_k, sigma_{k+1}, sigma_{k+2}
agree within a factor 4 and Delta^k f changes sign (noise, not a smooth trend). When all
first differences are 0, h is too small (the points round to the same f): h grows 100-fold;
when the values spread by more than 10 % or no k qualifies, h is too large: h shrinks 100-fold.
Where f(x) ~ 0 the 10 % rule cannot pass (the noise alone exceeds 10 % of |f|); then
:func:`estimate_noise` returns the spread max - min of f over the 8 points at the smallest h
whose differences were not all 0: noise plus a smooth change of at most 7 h |f'|, an upper bound
on the noise's range there (8 Gaussian samples spread ~2.8 sigma on average).

The same table, evaluated for every entry of a vector function (a gradient) at once, gives a
per-entry noise level: :func:`vector_noise` (levels of order 3 to 5, the largest, at one
spacing). A smooth change on a finer scale than that spacing passes the table for noise;
:func:`shrinking_noise` reads the table at spacings 64 times smaller each until a smaller one
agrees, which noise does and smooth change does not. For f itself, :func:`confirmed_noise` reads
ECNoise again where f's values bend at one place alone (a kink near x, read as noise in
proportion to the spacing): at smaller spacings where the bend is at x, on both sides of it.
"""

from __future__ import annotations

from collections.abc import Callable
import warnings
from dataclasses import dataclass

import numpy as np

N_POINTS = 8  # m + 1: the paper's default (differences up to order 7)


@dataclass
class Noise:
    """``sigma``: the standard deviation of f's noise near x (``None`` when ECNoise found no
    level); ``h``: the spacing it used; ``evaluations``; ``note``: why it failed, if it did."""

    sigma: float | None
    h: float
    evaluations: int
    note: str = ""
    spread: float | None = None  # when ECNoise failed: max - min of f at the smallest h that moved f
    spread_h: float | None = None
    values: np.ndarray | None = None  # where sigma was found: f at the N_POINTS points it was read from


def ecnoise(fvals: np.ndarray) -> tuple[float, int]:
    """``(sigma, inform)`` from f at equally spaced points (Moré and Wild's ECNoise): inform 1:
    sigma found; 2: h too small (no differences); 3: h too large (no flat level)."""
    f = np.asarray(fvals, dtype=np.float64)
    fmin, fmax = float(f.min()), float(f.max())
    scale = max(abs(fmin), abs(fmax))
    if scale > 0 and (fmax - fmin) / scale > 0.1:
        return float("nan"), 3
    levels, sign_change = [], []
    d, gamma = f, 1.0
    for k in range(1, len(f)):
        d = np.diff(d)
        if k == 1 and not np.any(d):
            return 0.0, 2
        gamma *= 0.5 * k / (2 * k - 1)  # (k!)^2 / (2k)!
        levels.append(float(np.sqrt(gamma) * _rms(d)))
        sign_change.append(bool(d.min() < 0 < d.max()))
    for k in range(len(levels) - 2):
        lo, hi = min(levels[k:k + 3]), max(levels[k:k + 3])
        if hi <= 4 * lo and sign_change[k]:
            return levels[k], 1
    return float("nan"), 3


def _along(f: Callable[[np.ndarray], float], x: np.ndarray, p: np.ndarray, h: float,
           start: int = -(N_POINTS // 2), n: int = N_POINTS) -> np.ndarray:
    """f at the n points x + (start + i) h p, i = 0..n - 1, as float64 (real parts)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log/divide near x: non-finite values are the callers' to judge
        return np.array([float(np.real(f(x + t * p))) for t in (np.arange(n) + start) * h])


def estimate_noise(f: Callable[[np.ndarray], float], x: np.ndarray, p: np.ndarray, h0: float,
                   *, tries: int = 6, grow: bool = True) -> Noise:
    """ECNoise along ``p`` from ``x``, starting at spacing ``h0`` and adapting it (module
    docstring). ``f`` takes a flat float64 vector (it casts to its own dtypes). ``grow=False``:
    where f does not move at a spacing, stop there (no noise found) rather than try 100x it."""
    h, evals = h0, 0
    spread = spread_h = None
    for _ in range(tries):
        vals = _along(f, x, p, h)
        evals += N_POINTS
        if not np.all(np.isfinite(vals)):
            return Noise(None, h, evals, "f is not finite near x")
        sigma, inform = ecnoise(vals)
        if inform == 1:
            return Noise(sigma, h, evals, values=vals)
        if inform == 2 and not grow:
            return Noise(None, h, evals, "f did not move")
        if inform == 3 and (spread_h is None or h < spread_h):
            spread, spread_h = float(vals.max() - vals.min()), h
        h = h * 100 if inform == 2 else h / 100
    return Noise(None, h, evals, f"ECNoise found no noise level in {tries} tries", spread, spread_h)


def _kink_at_x(vals: np.ndarray) -> bool:
    """Do f's values along the probe bend at x alone? The second difference centred on t = 0
    more than 8 times every other: a kink at x (relu at an input of exactly 0, a tie of a max)
    gives that one, ~ the jump in slope times the spacing, and nothing else where the rest is
    smooth; noise, smooth curvature and a staircase of rounded intermediates spread theirs."""
    d2 = np.abs(np.diff(vals, 2))
    c = N_POINTS // 2 - 1                        # (f(-h) - 2 f(0) + f(h)), t = 0 the point N_POINTS // 2
    return bool(d2[c] > 8 * np.delete(d2, c).max())


def _bend(vals: np.ndarray, ends: bool = False) -> tuple[int, int] | None:
    """Where f's values along the probe bend at one place alone, the points (lo, hi) it lies
    between (lo == hi: at a point), else None. The bend: the largest second difference, with its
    larger neighbour where that has the same sign, more than 8 times every other. A kink between
    two points or at one gives that pair, of one sign and summing to the jump in slope times the
    spacing; noise and smooth curvature spread theirs, and a jump of f (a staircase of rounded
    intermediates, f casting to float32) gives a pair of opposite signs, of which only one shows
    where the largest is at an end of the table: there no bend is read (:func:`confirmed_noise`
    reads one more point beyond it first), unless ``ends`` (a table that should bend nowhere)."""
    d2 = np.diff(vals, 2)                        # d2[m] is centred on point m + 1
    a = np.abs(d2)
    i = int(a.argmax())
    if i in (0, a.size - 1) and not ends:   # at an end, a jump of f shows only one of its pair: no telling
        return None
    j = max((k for k in (i - 1, i + 1) if 0 <= k < a.size), key=lambda k: a[k])
    pair = sorted([i, j]) if np.sign(d2[i]) == np.sign(d2[j]) != 0 else [i]
    if not (a[pair] / 8).sum() > np.delete(a, pair).max():   # (/ 8 first: f ~ 1e300 would overflow)
        return None
    return pair[0] + 1, pair[-1] + 1


def confirmed_noise(f: Callable[[np.ndarray], float], x: np.ndarray, p: np.ndarray, nz: Noise,
                    h_min: float) -> Noise:
    """``nz``'s level, unless it is a kink's: a probe crossing a kink reads the jump in slope as
    noise, in proportion to the spacing (relu at an input of exactly 0: 2e-10 for float64 noise
    of 4e-16, every entry's tolerance 15,000-fold too wide; a review).

    Where f's values bend at x alone (:func:`_kink_at_x`), they are read again at spacings
    SHRINK times smaller, down to ``h_min``, until they no longer do; ECNoise's reading there
    replaces the level if smaller and not collapsed (at least SHRINK / 16 of it per step taken:
    f barely moving at the smaller spacing under-reads its rounding; relu at 1e-10 still crosses
    the kink there). Then, where the values bend at one place alone (:func:`_bend`; at x, or
    elsewhere: relu at an input of 1e-8), 8 points on each side of the bend, one point clear of
    it, are read, at the spacing on one side and GOLDEN times it on the other: a kink is smooth on
    both sides, with the same noise at any spacing, where a staircase whose steps move f by near
    a multiple of its quantum drifts smoothly at one spacing and under-reads (a review). The
    larger of the two readings replaces the level (the first, or the one at smaller spacings) if
    both are ECNoise's, neither side bends, they agree within CONFIRM, it is smaller, and it
    accounts for the first values beside the bend (their second differences, less their mean,
    within 8 sqrt(6) of it; noise's deviate by sqrt(6) sigma), and if f's slope from one side to
    the other turned by at least half the bend's turn, and the same way: a staircase of rounded
    intermediates (f casting to float32) whose steps fall in a row looks like a bend, flat beside
    it on both sides, but its slope does not turn there. Otherwise the level stands. No
    evaluation of f where the values bend nowhere and most at no end of the table
    (``nz.values``, as ECNoise read them)."""
    if nz.sigma is None or nz.sigma == 0:
        return nz
    evals, level = nz.evaluations, nz.sigma
    if _kink_at_x(nz.values):
        closer = _read_closer(f, x, p, nz, h_min, evals)
        evals, level = closer.evaluations, closer.sigma
    vals, first = nz.values, -(N_POINTS // 2)    # vals[k] is f at x + (first + k) h p
    end = int(np.abs(np.diff(vals, 2)).argmax())
    if end in (0, N_POINTS - 3):   # one more point beyond that end: a jump's other half, or nothing
        t = first - 1 if end == 0 else first + N_POINTS
        more, evals = _along(f, x, p, nz.h, t, 1), evals + 1
        vals, first = (np.concatenate([more, vals]), t) if end == 0 else (np.concatenate([vals, more]), first)
    bend = _bend(vals) if np.all(np.isfinite(vals)) else None
    if bend is None:
        return Noise(level, nz.h, evals)
    lo, hi = bend
    d2 = np.diff(vals, 2)
    turn = float(d2[lo - 1:hi].sum())                      # the bend's change of slope, per step
    rest = np.delete(d2, [lo - 1, hi - 1])                 # the second differences beside the bend,
    beside = float(np.abs(rest - rest.mean()).max())       # less f's curvature (alike along the probe)
    lo, hi = lo + first, hi + first                        # in steps from x
    sides = []
    # the 8 points ending before lo at the spacing h, and from after hi on at GOLDEN h (one point clear
    # of the bend: a kink a hair from a point may be paired to the wrong side of it). Two spacings:
    # a staircase whose every step moves f by near a multiple of its quantum drifts smoothly over 8
    # points at one spacing and reads far under its rounding (a review), but not at both
    for start, h in ((lo - N_POINTS, nz.h), (int(np.ceil((hi + 1) / GOLDEN)), GOLDEN * nz.h)):
        side = _along(f, x, p, h, start)
        evals += N_POINTS
        if not np.all(np.isfinite(side)) or _bend(side, ends=True) is not None:
            return Noise(level, nz.h, evals)
        sides.append((*ecnoise(side), (side[-1] - side[0]) / (N_POINTS - 1) * nz.h / h))   # slope per h
    (s1, i1, left), (s2, i2, right) = sides
    sigma = max(s1, s2)
    kink = (right - left) * turn > 0 and abs(right - left) >= abs(turn) / 2   # f's slope turned there and stayed
    if kink and i1 == i2 == 1 and sigma <= CONFIRM * min(s1, s2) and sigma < level and beside <= 8 * np.sqrt(6) * sigma:
        return Noise(sigma, nz.h, evals)
    return Noise(level, nz.h, evals)


def _read_closer(f: Callable[[np.ndarray], float], x: np.ndarray, p: np.ndarray, nz: Noise, h_min: float,
                 evals: int) -> Noise:
    """:func:`confirmed_noise` at a kink at x: read at spacings SHRINK times smaller."""
    h, steps = nz.h, 0
    while h * SHRINK >= h_min:
        h, steps = h * SHRINK, steps + 1
        vals, evals = _along(f, x, p, h), evals + N_POINTS
        if not np.all(np.isfinite(vals)):
            break
        if _kink_at_x(vals) and h * SHRINK >= h_min:   # still the bend's: read closer
            continue
        sigma, inform = ecnoise(vals)
        if inform == 1 and (SHRINK / 16) ** steps * nz.sigma <= sigma < nz.sigma:
            return Noise(sigma, nz.h, evals)
        break
    return Noise(nz.sigma, nz.h, evals)


def vector_noise(g: Callable[[np.ndarray], np.ndarray], x: np.ndarray, p: np.ndarray, h: float,
                 n_points: int = 2 * N_POINTS) -> np.ndarray:
    """Per-entry noise of a vector function ``g`` near x: max(sigma_3, sigma_4, sigma_5) of
    the module docstring's table, along ``p`` with spacing ``h`` (16 evaluations of g)."""
    ts = (np.arange(n_points) - n_points // 2) * h
    return _table_noise(np.stack([np.asarray(g(x + t * p), dtype=np.float64) for t in ts]))


SHRINK = 2.0**-6   # from one spacing to the next in shrinking_noise: order-3 smooth change falls 2^18-fold
CONFIRM = 8.0      # the factor, above or below, within which the next spacing's reading confirms one
GOLDEN = (1 + 5**0.5) / 2   # confirmed_noise's second side's spacing, in units of the first: far from any
                            # ratio of small ints


def shrinking_noise(g: Callable[[np.ndarray], np.ndarray], x: np.ndarray, p: np.ndarray, h: float,
                    ulp: np.ndarray, h_min: float, n_points: int = 2 * N_POINTS) -> np.ndarray:
    """Per-entry noise of ``g`` near x, read (as :func:`vector_noise`) at spacings h_l = h 2^-6l
    until a smaller one confirms it; 16 evaluations of g per spacing, two spacings at least
    where g moves.

    Noise does not depend on the spacing; a smooth change in g_i does, and one that varies on a
    finer scale than h passes the table for noise (sin at |x| ~ 1e4 in float32, layer norm of
    rows at 100 +- 1e-3). From one spacing to the next, smooth change of order 3 falls 2^18-fold.
    So entry i's reading stands, as the larger of it and the next, where the next spacing reads
    within a factor 8 of it (two readings of the same noise differ by more in 5e-6 of pairs of
    Gaussian draws, in none of 10^6 uniform; docs/checker.md) or where g_i does not move there
    at all (below its resolution: nothing contradicts it); otherwise the next reading waits for
    the spacing after.
    A table of exactly 0 where g_i moves is no reading and leaves the one before waiting. A
    reading of 0 where g_i never moved stands at once.

    An entry never confirmed takes the larger of its last reading, at h_min or below, where
    smooth change is least, and the largest reading below h that looks like noise by ECNoise's
    rule (orders 3-5 within a factor 4, Delta^3 changing sign; a resolved smooth change decays
    with the order): on the exact points below, an intermediate that moves by a near multiple of
    its ulp per step rounds with an error that drifts without a jump, and the table under-reads
    (sin(x W) in float32: 2.2e-5 at the last spacing, 2.4e-4 above it and in fact; a review).

    The steps are ``h_l p`` rounded to nonzero multiples of 2 ``ulp`` (each input's own): every
    input moves by 2 ulp at least, and each point is exact in the input's dtype (a rounded input
    reads as noise of g) while it stays in x_j's binade or below."""
    ks = np.arange(n_points) - n_points // 2
    h_l, waiting = h, None
    while True:
        d = _lattice_step(h_l * p, ulp)
        G = np.stack([np.asarray(g(x + k * d), dtype=np.float64) for k in ks])
        (s, noise_like), moved = _table(G), np.any(np.diff(G, axis=0) != 0, axis=0)
        if waiting is None:
            waiting, confirmed, below_h = s, (s == 0) & ~moved, np.zeros(s.shape)
        else:
            agrees = ~confirmed & (~moved | ((s >= waiting / CONFIRM) & (s <= waiting * CONFIRM)))
            waiting = np.where(agrees, np.fmax(waiting, s), waiting)
            confirmed |= agrees
            waiting = np.where(~confirmed & (s > 0), s, waiting)   # (NaN > 0 is False: it waits too)
            below_h = np.where(noise_like, np.fmax(below_h, s), below_h)
        if confirmed.all() or h_l <= h_min:
            return np.where(confirmed, waiting, np.fmax(waiting, below_h))
        h_l *= SHRINK


def _lattice_step(v: np.ndarray, ulp: np.ndarray) -> np.ndarray:
    """``v`` rounded entry by entry to a nonzero multiple of 2 ``ulp`` (0 stays 0). Where v spans
    2^50 such multiples or more (an input near 0, whose ulp is far below any step) v itself: its
    points round like any float64 sum, by 2^-53 of the step."""
    q = 2 * ulp
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        m = np.abs(v) / q
    coarse = ~(m < 2.0**50)
    n = np.maximum(np.rint(np.where(coarse, 0.0, m)), 1.0)
    return np.where(v == 0, 0.0, np.where(coarse, v, np.sign(v) * n * q))


def _table_noise(G: np.ndarray) -> np.ndarray:
    """max(sigma_3, sigma_4, sigma_5) of the difference table of G (points along axis 0)."""
    return _table(G)[0]


def _table(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max(sigma_3, sigma_4, sigma_5), whether they look like noise by ECNoise's rule: within a
    factor 4 of each other, and Delta^3 G changes sign) per entry, points along axis 0."""
    d, gamma, levels = G, 1.0, []
    for k in range(1, 6):
        d = np.diff(d, axis=0)
        gamma *= 0.5 * k / (2 * k - 1)
        if k >= 3:
            levels.append(np.sqrt(gamma) * _rms(d, axis=0))
        if k == 3:
            sign_change = (d.min(axis=0) < 0) & (d.max(axis=0) > 0)
    hi, lo = np.maximum.reduce(levels), np.minimum.reduce(levels)
    with np.errstate(invalid="ignore"):
        return hi, sign_change & (hi <= 4 * lo)


def _rms(d: np.ndarray, axis=None) -> np.ndarray:
    """sqrt(mean(d^2)) over ``axis``, scaled by max |d| first so that d^2 cannot overflow (f of
    size 1e160 has differences whose squares do)."""
    s = np.max(np.abs(d), axis=axis, keepdims=True)
    with np.errstate(invalid="ignore"):   # 0 / 0 where every d is 0: the rms is 0
        r = np.sqrt(np.mean(np.square(np.where(s > 0, d / s, 0.0)), axis=axis, keepdims=True)) * s
    return np.squeeze(r, axis=axis) if axis is not None else float(r.reshape(()))
