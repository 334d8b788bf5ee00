"""Check anyone's derivative of a NumPy function: gradients, VJPs, JVPs, Hessian-vector products.

    check_gradients(loss_fn, grad_fn, params)      grad_fn(params) has params' structure
    check_vjp(f, vjp_fn, *primals)                  vjp_fn(cotangent, *primals) -> one per primal
    check_jvp(f, jvp_fn, *primals)                  jvp_fn(tangents, *primals) -> output tangent
    check_hvp(loss_fn, hvp_fn, params)              hvp_fn(params, v) -> H v
    assert_gradients / assert_vjp / assert_jvp / assert_hvp: the same, raising AssertionError

``params`` and the primals are pytrees: an array of any rank (0-d included), a number, or
lists/tuples/dicts of them, nested. Integer and boolean leaves are held constant. Every
check is one scalar problem: a VJP with a random Gaussian cotangent c is the gradient of
<c, f(x)>, a JVP with tangent e_i is column i of that gradient, and H v is the gradient of
x -> <grad f(x), v>. Cotangents and vectors are Gaussian, directions Rademacher (never all
ones: a constant cotangent makes e.g. batch norm's mean term sum to zero and hides it).

Oracles: ``finite_diff`` (always), ``complex_step`` (where a probe shows f takes complex input
and propagates the imaginary part), and with ``jax_fn=`` (the same function in jax.numpy)
``jax_grad``/``jax_vjp``/``jax_hvp`` and ``jax_jvp``. Up to PER_COORDINATE_LIMIT inputs are
checked entry by entry; above it along ``n_directions`` random +-1 directions, and a failing
direction is bisected over blocks of coordinates until the wrong entries are named.

Tolerances for a black box (no ``loss_error=``/``kinks=`` given) are estimated, not assumed:

1. Noise. sigma = ECNoise(f) near x (:mod:`autodiff_check.noise`, Moré and Wild 2011),
   read again where f bends at one place alone, at smaller spacings or beside the bend (a kink
   near x reads as noise in proportion to the spacing: :func:`autodiff_check.noise.confirmed_noise`),
   evaluated in f's own dtypes (float32 stays float32); eps_f = max(3 sigma, u_f |f(x)|)
   bounds the error of one evaluation (u_f: unit roundoff of f's result). If ECNoise finds
   no level (f ~ 0: its 10 % spread rule cannot pass), eps_f = the spread max - min of f over
   its 8 points at the smallest spacing that moved f (an upper bound on the noise there); if f
   never moved, eps_f = 16 u max(1, |f|). The verdict says which. Per coordinate, where an
   entry's difference (step 3) does not settle against g_i (it disagrees, or reads as a kink
   or neither), f's noise is measured again where it steps, at x + h_i e_i
   (:func:`autodiff_check.blackbox.eps_at_step`: least squares near a consistent optimum, whose
   residual rounds by u |M| |q| wherever q is, so f(x +- h e_i) round by far more than f(x));
   where it clearly exceeds eps_f, f's error at x +- h e_i is taken as eps_f + s h, linear in
   the distance: a settled difference gains 2 s, one read as a kink or neither is taken again.
   Along random directions, eps_f. For float32 (or narrower) leaves, where f accepts float64
   inputs and agrees with itself there, 16x less noisy (:func:`_float64_context`), the
   differences are taken with f evaluated in float64 as well, and the sharper judges: entry by
   entry, a failing entry (kinks within float32's step) and every passing one
   (:func:`_second_opinion`; float32's differences resolve ~1e-4 of a slope); along each
   direction, the float64 difference where its tolerance is the smaller or float32's reads a
   kink, and where it got past kinks only if float32's settled and agrees, or settled with a
   wider tolerance and the value under test meets float64's; where both got past kinks and the
   value fails float32's but meets float64's, which puts float32's outside its own tolerance, the
   direction is a kink (``fd_dir`` in :func:`_check_core`; float32's over 10^4 relu inputs
   allowed 6-57 per direction). The value
   under test is then held to its own rounding: step 5's allowances. Leaves of several float dtypes:
   eps_f is also measured along each dtype's entries alone, and an entry's differences use its
   dtype's, at most eps_f (along every leaf, a float32 leaf's inputs round to its ulps at each
   point and ECNoise reads the jumps as noise: :func:`blackbox.measure`); u_f is the dtype of
   f's value (a Python float: float64) within the finest and coarsest leaf's, and an entry's u
   the coarser of u_f and its leaf's (:meth:`Flat.u_at`).
2. Step. h_i = max(1, |x_i|) cbrt(eps_f / |f(x)|) (clipped to [u^(1/3)/4, 16 u^(1/3)], u the
   coarsest leaf's; with several dtypes, eps_f of the entry's dtype),
   then from the curvature the two steps reveal: f''' ~ 2 |D(2h) - D(h)| / h^2, and
   h_opt = cbrt(3 eps_f / |f'''|) (minimising h^2 |f'''| / 6 + eps_f / h) is tried when it
   differs from h by more than 2x (within [h/64, 8h]); the smaller bound wins.
3. Bound. D(h) = (f(x + h e) - f(x - h e)) / (actual step). With Richardson's
   D(2h) - D(h) = h^2 f''' / 2 + O(h^4) and each f within eps_f,

       tol_fd = 3 |D(h) - D(2h)| + 2 eps_f / h            (autodiff_check.oracles, derived there)

   where, at each step, eps_f grows by the rounding of what the step added to f, per unit of
   k for the points x +- k h: 16 u of the odd part |f(x + kh) - f(x - kh)| / 2 (the central
   difference keeps it: a linear map of inputs ~1e-8 has f(x) ~ 1e-8 but f(x + h) ~ 1e-6),
   here and in step 4's floor; and, in the tolerances only, 2 u of the even part (curvature)
   and 16 u |f(x + kh) - f(x)| for one side alone (:func:`blackbox.level_eps`: in the floor
   they would accept the coarse steps whose rounding is largest). Negligible where f changes
   little over the step. One-sided derivatives divide by the steps actually taken (x + h rounds
   to x's dtype; a step that rounds to nothing gives none, and ends the search).
   For a VJP, tol_fd also allows g its own rounding: 8 rho_i per entry, 8 sqrt(sum_i (rho_i
   v_i)^2) along v (roundings of many entries are independent), rho_i the noise of g's entry
   i as the cotangent moves by a few ulp with x fixed (:func:`_linear_noise`; g is linear in
   it, so only rounding moves). A linear f at inputs ~1e-8 has differences exact to ~1e-16,
   finer than a bias row's sum of 16 cotangents ~1. Not sigma_g (step 5), whose probe of x
   crosses kinks and reads g's jumps there as noise; and none where a second call of vjp_fn
   at the same inputs differs from the first, or vjp_fn(2c) from 2 vjp_fn(c), by more than
   rounding (step 5 without sigma_g; rounding scales exactly with a power of 2, a mask drawn
   per call or seeded by c does not). rho_i is capped at 1 / sqrt(u) times the probe's median
   first difference (:func:`_linear_noise`). A second call of the derivative (gradient or VJP)
   that moves an entry by more than FIRST_CALL_RTOL of the larger of it and the derivative's
   largest is a failure of its own, ``first_call`` (a buffer never zeroed, a mask drawn per
   call; :func:`_first_call_tol`); less, the oracles judge the second call as they judge the
   first (their failures marked "second call").

4. Kinks, detected. From the same five points f(x), f(x +- h), f(x +- 2h):
   J(h) = [2 (f(x+h) - 2 f(x) + f(x-h)) - (f(x+2h) - 2 f(x) + f(x-2h)) / 2] / h equals
   -h^3 f''''/2 for a smooth f (the f'' terms cancel) and the jump of f' for a kink at x
   (independent of h); its noise is at most 8 eps_f / h. If |J| > 16 eps_f / h the step is
   divided by 8 (up to 12 levels); a kink at x is declared only when J stays within a factor 2
   (0.5 <= J / J_prev <= 2) over two successive levels: a step too large for f's absolute scale
   (h ~ u^(1/3) |x| at |x| ~ 1e6) changes J erratically, and the step keeps shrinking. A J that
   drops under the noise floor 16 eps_f / h (which grows as h shrinks) while staying within 4x of
   the level before is a kink too: the floor hid the jump (constant J). A smooth f's J decays by
   512x per 8x step, and one made of the rounding of f's curvature (h^2 at f(x +- h), J ~ h) by
   about 8x: neither is a kink (a first version said 64x, and called smooth functions at tiny
   inputs kinks, which hid their wrong entries). Where J is under
   the floor at the first step (no earlier level to compare with), a jump may still hide there:
   the central difference, the mean of the two sides, is then |J| / 2 from either side, so
   tol_fd gains |J| / 2 (nothing for a smooth f, whose J is O(h^3)). Along a direction with
   several nonzero entries the kinks of many entries can cancel in J, so a step accepted after
   a rough one is confirmed at h / 8 and its tolerance raised to cover the gap between the two
   (:func:`autodiff_check.blackbox.fd_dir`). At a
   kink the one-sided Richardson derivatives (2 F(h) - F(2h), tol 3 |F(h) - F(2h)| + 4 eps_f / h)
   are computed: a derivative under test matching either side, or between them (sign(0) = 0
   for |x|, a subgradient), is *not checkable here* (counted, listed, not a failure); outside
   both is a failure. A random direction may
   cross several kinks, whose conventions can sum to a value outside both one-sided
   derivatives (relu'(0) = 0 under weights of both signs): it is not checked as it stands, but
   halved until the entries whose own coordinate is a kink are named, and checked without them
   (:func:`_without_kinks`, :func:`_no_kinks_hidden`). At a domain edge (f finite
   on one side only) the one-sided Richardson derivative from the finite side is used once
   F(h) - F(2h) : F(2h) - F(4h) is 1 : 2 to 1 : 4 (the Taylor regime; accepted from 1 : 1.5 to 1 : 4.5,
   :func:`autodiff_check.blackbox.one_sided`).
5. Exact oracles (complex step, JAX) against the derivative under test g:
   tol_i = r |ref|_max(leaf) + 8 tiny + 8 sigma_g,i, with r = max(EXACT_RTOL, 64 u) in the
   leaf's dtype (:func:`_exact_r`: 32 roundings on each side), tiny = finfo(dtype).tiny (XLA
   flushes subnormals to zero, :func:`_ftz_floor`) and sigma_g,i the measured noise of g's
   entry i (:func:`autodiff_check.blackbox.entry_noise`: ECNoise's table of 16 evaluations of
   g along a probe of x, at spacings from sqrt(u) max|x| shrinking 64-fold until a smaller one
   agrees, which a smooth change finer than the spacing does not): both g and the oracle round
   their sums of the same terms, so each is within ~4 sigma of the exact value.
   For a VJP sigma_g,i is the larger of that and rho_i (step 3).
   Where the complex step (per coordinate) fails an entry, its own noise sigma_o is measured
   the same way and the entry's 8 sigma_g becomes 8 max(sigma_g, sigma_o): the oracle may sum
   the terms in a noisier order (a least-squares gradient at its optimum, where 10^2-sized
   residuals cancel to 10^-8: 14 false alarms in 3,000 seeds with 8 points and g's noise alone,
   none with both measured).
   Where the value under test fails an exact oracle in an entry of a leaf narrower than
   float64, the derivative is called again with every floating primal (and check_vjp's
   cotangent, check_jvp's tangents and cotangent) promoted to float64, check_jvp per
   coordinate only (:func:`_own_rounding`): if it returns float64 and that value meets float64's
   tolerance against the oracle (JAX's taken in float64 too), the entry's tolerance grows by
   |g - g64|, the rounding of the code under test itself, at most 32 u max(|c|_max, |g64|_max)
   of the leaf, or 8 s_i where g - g64 spreads wider (s_i) over exact points a few ulp from x,
   up to a quarter of how much g64 itself moves there (V_i) (:func:`_own_allowance`; for
   check_gradients c is a scalar loss's cotangent, 1). It covers cancellation g's noise cannot
   show: 1 - t^2 with t rounded to 1 carries t's absolute error u, not u |1 - t^2|, and does
   not vary as x moves (float32 tanh units at |x| 5-9 failed a correct VJP in 10 of 10 seeds).
   A wrong derivation fails in float64 as well; an error in float32 only passes below the
   allowance.
   Along a direction v the allowance is 8 sqrt(sum_i (A_i v_i)^2), A_i entry i's: v's signs
   are random, so the entries' roundings add as a square root (exceeded with probability below
   2 e^-32, Hoeffding), where their sum over |v| let one entry of 20,000 be 3 % off.
   Along a direction v the scale is the terms, not the result (+-1 directions can cancel
   <ref, v> to nothing): sum_i r_i |ref_i v_i| + 8 tiny |v|_1 + 16 sum sigma_g |v|, with ref
   JAX's reverse-mode gradient for jax_jvp (plus |jvp(v) - <vjp, v>|, JAX's own rounding along
   v) and the derivative under test for the complex step (no full oracle gradient there).

Verdict: PASS when no oracle disagrees and something was checked; an entry counts as checked
when some oracle's tolerance is below |reference| (else it is listed *not resolvable*: even a
sign flip would pass), an exact 0 reference when the tolerance is below the largest |reference|
of its input; a random direction by the same rule over the oracle's directions. Nothing checked
(a function flat at x included) reads NOT CHECKED, which is falsy. A NaN or inf value
under test is a failure wherever f is finite, checkable or not.

The network path (``check_network``) passes ``loss_error``/``grad_error`` from the analytic
rounding bound (:func:`autodiff_check.rounding_bound`) and ``kinks`` from the activation
pattern; those declared values replace steps 1, 4 and 5.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from manual_backprop import _checks

from . import blackbox
from . import noise as _noise
from .compare import compare
from .error_bounds import RoundingBound, rounding_bound, unit_roundoff
from .oracles import (  # noqa: I001
    complex_step_directional,
    complex_step_grad,
    directional_fd,
    float64_layers,
    numerical_grad_with_error,
)
from .pytree import Flat, by_key, copy_tree, flatten, format_index, format_path, same_structure, unflatten
from .verdict import JUDGED_ALONE, Mismatch, OracleResult, Verdict, _distinct, _factor

EXACT_RTOL = 1e-8
PER_COORDINATE_LIMIT = 2000  # above this many inputs, oracles go along random directions
MAX_NAMED = 5  # bisection stops after naming this many wrong entries
#: A float64 disagreement beyond this fraction of the largest entry is named the derivation's, not
#: float32's: a value kept in float32 is off by u = 6e-8 of itself, and 1e-3 leaves it a
#: conditioning of 1.6e4; wording only, no tolerance reads it
MANY_ULPS_OF_FLOAT32 = 1e-3
MAX_DIRECTIONS = 64  # beyond 2^-64 the miss probability is below anything floating point resolves
KINK_PROBES = 16  # times log2(n): probes the directions' search for entries at kinks may make, all told
MAX_KINK_ENTRIES = 16  # entries at kinks left out, at most: beyond, kinks are too many to leave out


def _scalar_array(v, what: str) -> np.ndarray:
    """``v`` as a 0-d array, or a ValueError naming ``what``: a tuple or list of arrays (a
    function returning ``(loss, grad)``, or a gradient passed where the loss goes) is named as
    such, not left to NumPy's "inhomogeneous shape" from deep inside."""
    hint = " (loss_fn and grad_fn swapped, or a function returning (loss, grad)?)" if what == "loss_fn" else ""
    try:
        a = np.asarray(v)
    except (ValueError, TypeError):   # entries of different shapes: (J, grads), or a list of gradients
        size = f" of {len(v)} entries" if hasattr(v, "__len__") else ""
        raise ValueError(f"{what} must return a scalar (Python float, NumPy scalar or 0-d array); "
                         f"got a {type(v).__name__}{size}{hint}") from None
    if a.size != 1:
        raise ValueError(f"{what} must return a scalar (Python float, NumPy scalar or 0-d array); got shape {a.shape}")
    return a.reshape(())


def _scalar_out(v, what: str) -> complex | float:
    a = _scalar_array(v, what)
    if np.iscomplexobj(a):
        return complex(a)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{what} must return a number; got dtype {a.dtype}")
    return float(a)


# ----------------------------------------------------------------------------------------------
# the core: one scalar function of a pytree, one derivative under test


@dataclass
class _Subject:
    """The derivative under test: ``g`` (flat, when known) and ``gdot(v)`` = <g, v>; ``sigma``
    its per-entry noise (flat) or None; ``rounding`` the part of it measured where g is linear
    (:func:`_linear_noise`), which holds no jump of g across a kink, or None."""

    g: np.ndarray | None
    gdot: Callable[[np.ndarray], float]
    sigma: np.ndarray | None = None
    rounding: np.ndarray | None = None
    wide: "Callable[[], np.ndarray | None] | None" = None   # g in float64 (step 5), None where it is not
    wide_scale: float = 0.0                                 # max |c|, the cotangent's largest entry
    wide_how: str = "primals and cotangent promoted"        # how the float64 call was made, for the notes
    entry_noise: "Callable[[np.ndarray], np.ndarray] | None" = None   # check_jvp: g_i's own noise, measured
    wide_spread: "Callable[[], np.ndarray | None] | None" = None   # min(8 s_i, V_i / 4) near x (:func:`_rounding_spread`)


EXACT_ULPS = 64  # float32 and narrower: r = 64 u (_exact_r)
FTZ_TINYS = 8  # flush-to-zero floor: 8 finfo(dtype).tiny per entry (_ftz_floor)


def _exact_r(flat: Flat, *, dtype_only: bool = False) -> np.ndarray:
    """Per entry: r = max(EXACT_RTOL, 64 u_dtype), the relative rounding allowed between two exact
    derivatives of an entry. The derivative under test and the oracle evaluate the same terms in
    the input's dtype; a chain of k roundings (products, quotients, well-conditioned sums) is off
    by at most about k u relatively, so 64 u allows 32 roundings on each side. The part of the
    rounding that varies with x is measured separately (sigma_g); r covers the part that does
    not. In float64 EXACT_RTOL (exact_atol: 200x the largest error measured) is the larger;
    ``dtype_only`` leaves it out (64 u alone)."""
    r = np.zeros(flat.n)
    for fl, s, d in zip(flat.float_, flat.slices, flat.dtypes):
        if fl:
            r[s] = _exact_r_of(d, dtype_only=dtype_only)
    return r


def _exact_r_of(dtype: np.dtype, *, dtype_only: bool = False) -> float:
    """:func:`_exact_r` for one float dtype."""
    return max(0.0 if dtype_only else EXACT_RTOL, EXACT_ULPS * float(np.finfo(dtype).eps) / 2)


def _ftz_floor(flat: Flat) -> np.ndarray:
    """Per entry: 8 finfo(dtype).tiny. XLA on CPU flushes subnormal results to zero, an absolute
    error below tiny in an intermediate; it reaches the entry multiplied by the factors after it
    (a Gaussian cotangent entry exceeds 8 with probability 1e-15), so two exact derivatives may
    differ by that much where either side is subnormal (softmax at logits ~1e3 in float32)."""
    t = np.zeros(flat.n)
    for fl, s, d in zip(flat.float_, flat.slices, flat.dtypes):
        if fl:
            t[s] = FTZ_TINYS * float(np.finfo(d).tiny)
    return t


def _complex_step_r(flat: Flat) -> float:
    """The r of the complex step where f's value is in a coarser float than every input: 64 u of
    that float (f returned float32 for float64 inputs, as jax.numpy does with x64 off, and
    computes Im f(x + ih) in complex64); else 0, leaving the inputs' r."""
    dt = flat.value_dtype
    u = unit_roundoff(dt) if dt is not None and dt.kind == "f" else 0.0
    return EXACT_ULPS * u if u > flat.u else 0.0


def _exact_tol(ref: np.ndarray, flat: Flat, sigma, grad_error, *, dtype_only: bool = False,
               r_floor: float = 0.0) -> np.ndarray:
    """Module docstring, step 5: r |ref|_max(leaf) + 8 tiny + 8 sigma_g (per entry); with
    ``grad_error`` (declared), :func:`exact_atol`. ``dtype_only``: r = 64 u alone, without
    EXACT_RTOL (float64's measured cover for two exact network gradients), for a derivative
    against itself. ``r_floor``: r at least this (:func:`_complex_step_r`)."""
    tol = np.zeros(flat.n)
    floats = [(L, s, d) for L, fl, s, d in zip(flat.leaves, flat.float_, flat.slices, flat.dtypes) if fl]
    if grad_error is not None:
        atol = exact_atol([ref[s].reshape(L.shape) for L, s, _ in floats], grad_error)
        for (L, s, _), t in zip(floats, atol):
            tol[s] = np.broadcast_to(np.asarray(t, np.float64), L.shape).ravel()
        return tol
    r = np.maximum(_exact_r(flat, dtype_only=dtype_only), r_floor)
    for L, s, d in floats:
        if L.size:
            a = np.abs(ref[s])[np.isfinite(ref[s])]  # a non-finite oracle entry fails by itself, not its leaf
            tol[s] = r[s] * float(a.max()) if a.size else 0.0
    tol = tol + _ftz_floor(flat)
    if sigma is not None:
        tol = tol + 8 * sigma
    return tol


def _per_coord_result(name: str, flat: Flat, g, ref, tol, notes: dict[int, str] | None = None,
                      not_checkable: dict[int, str] | None = None) -> OracleResult:
    notes, not_checkable = notes or {}, not_checkable or {}
    tol = np.array(tol, dtype=np.float64)
    for i in not_checkable:
        tol[i] = np.inf
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, counted as an infinite error below
        err = np.abs(g - ref)
    err = np.where(np.isnan(err), np.inf, err)
    checked = np.isfinite(tol)
    bad = (checked & ~(err <= tol)) | ~np.isfinite(g)  # a NaN/inf derivative of a finite f is wrong everywhere
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):   # err / tol beyond the range: inf, failing anyway
        excess = np.where(checked, np.where(err == 0, 0.0, err / tol), -1.0)
    excess = np.where(~np.isfinite(g), np.inf, excess)
    order = np.argsort(-excess[bad]) if bad.any() else np.zeros(0, int)
    bad_idx = np.flatnonzero(bad)[order]
    mism = [Mismatch(flat.where(int(i)), float(g[i]), float(ref[i]), float(tol[i]), name,
                     notes.get(int(i), "") if np.isfinite(g[i]) else "the value under test is not finite")
            for i in bad_idx[:200]]
    if checked.any():
        w = int(np.argmax(excess))
        max_err, t = float(err[w]), float(tol[w])
    else:
        max_err, t = float("nan"), float("nan")
    leaves_g, leaves_r, leaves_t, labels = [], [], [], []
    for L, fl, s, p in zip(flat.leaves, flat.float_, flat.slices, flat.paths):
        if fl and L.size:
            leaves_g.append(g[s].reshape(L.shape))
            leaves_r.append(np.nan_to_num(ref[s], nan=0.0, posinf=0.0, neginf=0.0).reshape(L.shape))
            leaves_t.append(tol[s].reshape(L.shape))
            labels.append(format_path(flat.root, p) + flat.sep)
    cmp = compare(leaves_g, leaves_r, rtol=0.0, atol=leaves_t, names=("under test", name), labels=labels) if leaves_g else None
    nc = [f"{flat.where(i)}: {why}" for i, why in sorted(not_checkable.items())]
    return OracleResult(name, not bad.any(), max_err, t, comparison=cmp, skipped=len(not_checkable),
                        mismatches=mism, not_checkable=nc, n_failed=int(bad.sum()),
                        values=np.asarray(g, np.float64), references=np.asarray(ref, np.float64), tolerances=tol)


#: the note of a jax_jvp whose tolerance could not use JAX's reverse mode
JVP_WITHOUT_REVERSE = ("jax_jvp's tolerance leaves out |jvp(v) - <vjp, v>|, JAX's own rounding: jax_fn's reverse-mode "
                       "derivative is not finite somewhere (a jnp.where over a branch not finite there)")


OWN_ROUNDING_ULPS = 32   # _own_allowance: |g - g64| at most 32 u max(|c|_max, |g64|_max(leaf))


def _narrow_u(flat: Flat) -> np.ndarray:
    """Per entry: the unit roundoff of its leaf where that is narrower than float64, else 0
    (the entries the float64 re-evaluations, :func:`_own_rounding` and :func:`_second_opinion`, are for)."""
    u = np.zeros(flat.n)
    for fl, sl, d in zip(flat.float_, flat.slices, flat.dtypes):
        if fl and d != np.float64:
            u[sl] = float(np.finfo(d).eps) / 2
    return u


def _own_allowance(flat: Flat, g64: np.ndarray, c_max: float,
                   spread: "Callable[[], np.ndarray | None] | None" = None,
                   need: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per entry: (u, A), u = :func:`_narrow_u` and A = 32 u max(|c|_max, |g64|_max(leaf)) the
    most that rounding in that dtype may move the value under test (step 5): 32 roundings of
    terms the size of the cotangent or of the leaf's largest derivative. Measured on correct
    VJPs: up to 11 u |c|_max (a float32 rnn near saturation); a review's float32-only errors of
    1e-5 max|g| (170 u) passed an allowance of 256 u, and one scaled by another leaf's derivative
    (2e4, float64) let 0.3 through.

    Where an intermediate is ill-conditioned for what follows, the code's rounding exceeds 32 u
    (float32 sin(x W) at |x W| ~ 1e3: ~1e3 u, docs/checker.md). So where an entry of ``need`` is
    beyond 32 u, ``spread()`` (:func:`_rounding_spread`) gives min(8 s_i, V_i / 4), s_i the spread
    of g - g64 over exact points a few ulp from x and V_i that of g64, and A_i = max(32 u scale,
    min(8 s_i, V_i / 4)): such rounding varies erratically between neighbouring points, where a
    float32-only error in the code moves with g, smoothly, and leaves s_i at the rounding's; and
    rounding beyond what moving the inputs by a few ulp does to g64 is the code's cancellation,
    not the function's conditioning."""
    u, scale = _narrow_u(flat), np.zeros(flat.n)
    for sl in flat.slices:
        if sl.stop > sl.start and u[sl.start]:
            a = np.abs(g64[sl])
            scale[sl] = max(c_max, float(a[np.isfinite(a)].max(initial=0.0)))
    allowance = OWN_ROUNDING_ULPS * u * scale
    if spread is not None and need is not None and np.any(need > allowance):
        sd = spread()
        if sd is not None:
            allowance = np.where(u > 0, np.fmax(allowance, sd), allowance)
    return u, allowance


SPREAD_SIGMAS = 8         # _rounding_spread: the code's own rounding within 8 times its measured spread,
SPREAD_OF_V = 0.25        # ... and within a quarter of the exact derivative's own change near x
SPREAD_POINTS = 16        # _rounding_spread: exact points near x
SPREAD_ULPS = 16          # ... each input moved by 2k of its ulps, k uniform in 1..16, random signs


def _rounding_spread(flat: Flat, g_at: Callable[[np.ndarray], np.ndarray],
                     g64_at: Callable[[np.ndarray], np.ndarray], seed: int) -> np.ndarray | None:
    """Per entry: min(8 s_i, V_i / 4) over SPREAD_POINTS points z = x + 2 k ulp (k a random
    integer of 1..SPREAD_ULPS and a random sign per input and point, rounded to each input's
    dtype, so every point is exact), s_i the standard deviation of g(z) - g64(z), the rounding
    of the code under test at those points, and V_i that of g64(z), the exact derivative's own
    change there.

    g64 takes g's smooth change away exactly, so no spacing need be small; independent points
    rather than a line, on which an intermediate moving by a near multiple of its ulp per step
    drifts (docs/checker.md). V_i bounds what is allowed: the points move the inputs by 2-32 ulp
    (19 rms), so V_i / 4 is g64's change for ~5 ulp, a backward error of ~10 u. Backward-stable
    code stays within it (correct float32 sin(x W) at |x W| 1e2-1e4: |g - g64| up to 0.105 V_i,
    s_i 0.012-0.017 V_i); cancellation the function does not have (a variance as mean(x^2) -
    mean(x)^2 at a mean of 1e3, 18-80 % off) and a product rounded to bfloat16 or float16 in the
    float32 code (up to 400 V_i) do not. None where a call raises or returns no float64 value;
    0 where not finite."""
    rng, ulp, diffs, exact = np.random.default_rng(seed + 1000003), flat.ulp(), [], []
    for _ in range(SPREAD_POINTS):
        z = flat.rnd(flat.x + 2 * ulp * rng.choice(np.array([-1.0, 1.0]), flat.n) * rng.integers(1, SPREAD_ULPS + 1, flat.n))
        try:
            with warnings.catch_warnings(action="ignore"):
                a, b = g_at(z), g64_at(z)
        except Exception:   # noqa: BLE001 - the derivative refuses these inputs: no allowance beyond 32 u
            return None
        if b is None:
            return None
        diffs.append(a - b)
        exact.append(b)
    with np.errstate(invalid="ignore", over="ignore"):
        sd = np.fmin(SPREAD_SIGMAS * np.std(np.stack(diffs), axis=0, ddof=1),
                     SPREAD_OF_V * np.std(np.stack(exact), axis=0, ddof=1))
    return np.where(np.isfinite(sd), sd, 0.0)


def _own_rounding(subject: _Subject, flat: Flat, g: np.ndarray, ref: np.ndarray, tol: np.ndarray, notes: list,
                  oracle: str, deriv: str, wide_ref: "Callable[[], np.ndarray | None] | None" = None) -> np.ndarray:
    """Module docstring, step 5: failing entries of leaves narrower than float64 whose value under
    test, evaluated again in float64 (``subject.wide``), meets float64's tolerance against the oracle
    (``wide_ref()`` for one that rounds in the leaf's dtype too, JAX) get |g - g64| (and
    |ref - ref64|) added to their tolerance: the rounding of the code under test, measured by the
    same code, where it is within :func:`_own_allowance`. Returns the new tolerance (``tol``
    where nothing applies); never turns a pass into a failure."""
    if subject.wide is None or not flat.n:
        return tol
    with np.errstate(invalid="ignore", over="ignore"):
        failing = np.flatnonzero((_narrow_u(flat) > 0) & np.isfinite(ref) & np.isfinite(g) & np.isfinite(tol) & ~(np.abs(g - ref) <= tol))
    if not failing.size:
        return tol
    g64 = subject.wide()
    dts = " and ".join(sorted({str(flat.dtypes[flat.leaf_of(int(i))]) for i in failing}))
    if g64 is None:
        note = (f"{deriv} could not be evaluated in float64 ({subject.wide_how}: it refused them, or returned "
                f"{dts} again: JAX without jax_enable_x64, or a constant kept in {dts}), so the failing entries of "
                f"{dts} leaves are held to {dts}'s tolerance without its rounding in the code under test")
        if note not in notes:
            notes.append(note)
        return tol
    ref64 = ref
    if wide_ref is not None:
        ref64 = wide_ref()
        if ref64 is None:
            return tol
    with np.errstate(invalid="ignore", over="ignore"):
        need = np.zeros(flat.n)
        need[failing] = np.abs(g - g64)[failing]
    u, allowance = _own_allowance(flat, g64, subject.wide_scale, subject.wide_spread, need)
    with np.errstate(invalid="ignore", over="ignore"):
        # the derivation in float64, held to float64's tolerance (not the narrow one: a derivative
        # 0.1 % off everywhere passed within float32's where its entries cancel, a review)
        agree = np.abs(g64 - ref64) <= _exact_tol(ref64, flat.promoted(), None, None)
        mine, own = np.abs(g - g64), np.abs(g - g64) + np.abs(ref - ref64)
        within = (mine <= allowance) & np.isfinite(own)
        ok = failing[agree[failing] & within[failing]]
    n_disagree, n_beyond = int((~agree[failing]).sum()), int((agree[failing] & ~within[failing]).sum())
    if n_disagree:
        head = (f"{deriv} evaluated in float64 ({subject.wide_how}) disagrees with {oracle} too on "
                f"{n_disagree} of the {_entries(failing.size)} of {dts} leaves that failed it")
        with np.errstate(invalid="ignore", over="ignore"):
            off = np.abs(g64 - ref64)[failing[~agree[failing]]]
            scale = float(np.max(np.abs(ref64), where=np.isfinite(ref64), initial=0.0))
        worst = float(np.max(off, initial=0.0)) / scale if scale > 0 else float("inf")
        if worst > MANY_ULPS_OF_FLOAT32:
            notes.append(f"{head}, by up to {worst:.2g} of the largest entry: the derivation, wrong in float64 too")
        else:
            notes.append(f"{head}: the derivation, a value computed in {dts} whatever the inputs (a forward output kept "
                         "from an earlier call), or a formula that cancels there in float64 too (1 - p at saturated p)")
    if n_beyond:
        notes.append(f"{deriv} evaluated in float64 agrees with {oracle} on {_entries(n_beyond)} of {dts} leaves that "
                     f"failed it, but its {dts} values differ from that by more than {OWN_ROUNDING_ULPS} u "
                     f"max(|c|_max, |g|_max): code that differs by dtype, or {dts} rounding amplified beyond that "
                     "allowance (terms far larger than the result, x^2 s (1 - s) at large x)")
    if not ok.size:
        return tol
    tol = tol.copy()
    tol[ok] += own[ok]
    c = max(subject.wide_scale, 1e-300)
    w = int(ok[np.argmax(mine[ok] / u[ok])])
    notes.append(f"{_entries(ok.size)} of {dts} leaves that failed {oracle} pass with the rounding of their dtype in "
                 f"their tolerance: {deriv} evaluated in float64 ({subject.wide_how}) agrees with {oracle} "
                 f"there{' (itself in float64)' if wide_ref is not None else ''}, and its {dts} values differ from "
                 f"that by up to {mine[w]:.2e} at {flat.where(w)} ({mine[w] / (u[w] * c):.2g} u |c|_max; allowed "
                 f"{allowance[w]:.2e} there: {OWN_ROUNDING_ULPS} u max(|c|_max, |g|_max), or where more {SPREAD_SIGMAS} "
                 f"times the rounding's spread measured near x, up to {SPREAD_OF_V:g} of g's own change there)"
                 + (f", {oracle}'s by up to {np.abs(ref - ref64)[ok].max():.2e}" if wide_ref is not None else "")
                 + ": rounding, most often cancellation (1 - t^2 where t rounds near 1); the derivation agrees in float64"
                 + (f"; {_entries(failing.size - ok.size)} still fail{'s' if failing.size - ok.size == 1 else ''}"
                    if ok.size < failing.size else ""))
    return tol


SECOND_OPINION_MAX = 64   # _second_opinion stops retaking failing entries when this many still fail


def _measured_noise(subject: _Subject, g: np.ndarray, ref: np.ndarray, tol: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """check_jvp (step 3): entries that fail an exact oracle get the noise of g_i itself,
    measured along x (``subject.entry_noise``, 16 calls of jvp_fn per entry, at most
    SECOND_OPINION_MAX entries, the nearest their tolerance first): 8 times its excess over
    sigma_i joins the tolerance. sigma_i, from each output's noise along one tangent, misses
    noise that tangent cancels or that sits where jvp_fn(e_i) is 0 at x itself (a review).
    Never turns a pass into a failure; ``tol`` itself where there is nothing to measure."""
    if subject.entry_noise is None or sigma is None or g is None:
        return tol
    with np.errstate(invalid="ignore", divide="ignore"):
        bad = np.flatnonzero(np.isfinite(ref) & np.isfinite(g) & ~(np.abs(g - ref) <= tol))
        if not bad.size:
            return tol
        excess = np.abs(g - ref)[bad] / tol[bad]
    bad = bad[np.argsort(excess, kind="stable")][:SECOND_OPINION_MAX]
    tol = tol.copy()
    tol[bad] += 8 * np.maximum(subject.entry_noise(bad) - sigma[bad], 0.0)
    return tol


def _coordinate_fd64(promoted: tuple[Flat, Callable], ctx64: blackbox.Context, x: np.ndarray, i: int) -> blackbox.FD | None:
    """The difference along coordinate i with f evaluated in float64 (``promoted``: the tree with
    float64 leaves, and f on it) at float64's step, ctx64.hrel max(1, |x_i|), a settled one per
    unit of the step actually taken (as ``fd_coord``); None where f refuses that point in float64."""
    flat64, F64 = promoted
    e = np.zeros(flat64.n)
    e[i] = 1.0
    try:
        fd = blackbox.fd_dir(F64, flat64, x, e, ctx64.f0, ctx64.eps_f, ctx64.hrel * max(1.0, abs(x[i])))
    except Exception:   # noqa: BLE001
        return None
    if fd.status == "ok":
        fd.value, fd.tol = fd.value / fd.taken[i], fd.tol / fd.taken[i]
    return fd


def _second_opinion(promoted: tuple[Flat, Callable], ctx: blackbox.Context, flat: Flat, g, ref, tol, own,
                    fail_notes: dict, kink_idx: dict, fd_only: dict, notes: list, what: str,
                    float64_context: Callable[[], blackbox.Context | None],
                    subject: "_Subject | None" = None) -> None:
    """Entries of leaves narrower than float64 whose finite difference fails g are taken again
    with f evaluated at the same point in float64 (``promoted``: the tree with float64 leaves,
    and f on it), where f's code lets NumPy promote: its noise is then float64's, its steps
    ~6e-6 rather than float32's ~5e-3, and the difference is compared with g within its own
    tolerance plus g's rounding (twice the exact oracles' r |ref|_max(leaf), :func:`_exact_tol`:
    g carries float32's rounding, the reference does not). Kinks within float32's step that
    cancel in the kink test (a relu MLP: 14 of 20 seeds failed a correct gradient) are then
    outside it, and errors below float32's resolution (~1e-4 of a slope) show. Used only where f
    at float64 agrees with f (within 4 eps_f) and is at least 16x less noisy. A failing entry
    takes the float64 difference where that difference's own error bound is below float32's
    (g's rounding, added whichever judges, does not decide), the nearest their tolerance first
    until SECOND_OPINION_MAX of them still fail; a passing entry, every one, where its whole
    tolerance is below the first. A failing entry may pass, or match a kink's side; a passing
    one may fail. A passing entry is held to the exact oracles' allowance for g's rounding,
    r |ref|_max(leaf) + 8 tiny (:func:`_exact_tol`), plus 8 times its measured noise
    (``subject.sigma``, else ``subject.rounding``), and where g fails that, |g - g64| joins when
    g64, g evaluated in float64 (``subject.wide``), agrees with the float64 difference and is
    within :func:`_own_allowance` (step 5). It is not retaken without a noise and a float64 g64, nor
    where the float64 difference got past a kink near x (``FD.rough``: float64 may put the kink
    beside x where float32 puts it on x) or disagrees with float32's beyond both tolerances.
    ``ref``, ``tol``, ``fail_notes`` and ``kink_idx`` are updated in place."""
    with np.errstate(invalid="ignore", divide="ignore"):   # tol 0 at kinks: inf, left out below
        excess = np.abs(g - ref) / (tol + own)
        narrow = (_narrow_u(flat) > 0) & np.isfinite(tol)
        failing = narrow & ~(np.abs(g - ref) <= tol + own)
    failing[list(fd_only)] = False
    failing[[i for i in kink_idx if i not in fail_notes]] = False
    # the nearest their tolerance first, until SECOND_OPINION_MAX of them still fail: a gradient wrong
    # in many entries fails anyway, and retaking every entry of one wrong in all 2,000 cost 40 % more
    # evaluations (a review), while a correct one whose float32 differences fail many entries has
    # them all retaken (layer norm at 100 +- 1e-3: 110 of 512, a review). No bound on how far:
    # float32's step read 10-100x off at inputs 1e-6 from relu kinks or of scale 1e-8
    candidates = list(np.flatnonzero(failing)[np.argsort(excess[failing], kind="stable")])
    # and every entry that passed, where f in float64 is sharper: float32's differences resolve
    # ~1e-4 of a slope, and a gradient missing an L1 term 1e-5 sum |w| passed (a review)
    with np.errstate(invalid="ignore"):
        passing = narrow & (np.abs(g - ref) <= tol + own)
    passing[list(fd_only)] = False
    passing[list(kink_idx)] = False
    n_failing = len(candidates)
    # g's measured noise per entry: sigma_g (for check_vjp already the larger of it and rho; a
    # review's attention entry with rho_i = 0 and sigma_i = 1.7e-6 failed on rho alone). Entry by
    # entry a jump of g across a kink in sigma_g only loosens that entry; along directions
    # (fd64_probe) rho comes first, as sigma_g's jumps summed over 10^5 relu entries hide all
    noise = None if subject is None else (subject.sigma if subject.sigma is not None else subject.rounding)
    cancellation = None
    if subject is not None and subject.wide is not None and subject.wide() is not None:
        cancellation = _own_cancellation(flat, subject)
        if noise is not None:
            candidates += [int(i) for i in np.flatnonzero(passing)]
            allow = _exact_tol(ref, flat, None, None)   # r |ref|_max(leaf) + 8 tiny, once (not per entry)
    if not candidates:
        return
    ctx64 = float64_context()   # None: f refuses float64, or casts back: float32's verdict stands
    if ctx64 is None:
        return
    x, redone, was_failing = flat.x, [], set(candidates[:n_failing])

    def retake(i: int) -> None:
        fd = _coordinate_fd64(promoted, ctx64, x, i)
        if fd is None:
            return
        if fd.status == "ok":   # only a sharper difference replaces the first (f in float64 may still
            r64 = fd.value   # carry float32's noise where f casts: a 1 % error then passed)
            if i in was_failing:
                # g's rounding: twice the exact oracles' allowance, 2 r |ref|_max(leaf) + 16 tiny,
                # without their 8 sigma_g: g's noise measured across the kinks this is for reads
                # their jumps (8.5e-5 against rounding ~1e-9 in a float32 relu MLP)
                t64 = fd.tol + 2 * _exact_tol(_with(ref, i, r64), flat, None, None)[i]
                # and, where g fails that, its own rounding measured (step 5), as a passing entry
                # gets: float32 sin(x W) at |x W| ~ 1e3 rounds g by 1e-4 of it, beyond 2 r (a review)
                if cancellation is not None and not abs(g[i] - r64) <= t64 + own[i]:
                    t64 += cancellation(i, r64, fd.tol)
                # sharper: the two differences' own bounds compared, like with like (tol[i] does not
                # carry g's rounding, which is the same whichever difference judges: sin at 1e3-1e4
                # in float32 kept an aliased difference claiming 1.45e-5 against float64's 5.7e-8
                # plus the allowance, 1.50e-5, and failed a correct derivative, a review)
                sharper = fd.tol < tol[i]
            else:
                if fd.rough:
                    # its difference got past a kink near x: f in float64 may put it elsewhere than
                    # f does (|X w - y| at a residual of 0 in float32, 1e-8 in float64: sign(0) = 0
                    # is right for f, and float64's side failed it, a review): float32's verdict stands
                    return
                # a passing entry: held to the exact oracles' allowance, r |ref|_max(leaf) + 8 tiny
                # (a correctly rounded w * s is up to u |w s| off whatever x is: no noise shows it;
                # normal equations kept in float32 put 6 u max|g| on every entry, a review), and 8
                # of its measured noise beyond own (8 rho_i, added below); then its cancellation,
                # where g64 agrees (step 5)
                t64 = fd.tol + allow[i] + max(8 * noise[i] - own[i], 0.0)
                if not abs(r64 - ref[i]) <= tol[i] + t64:   # the two differences disagree: f in
                    return                                    # float64 is another function here
                if not abs(g[i] - r64) <= t64 + own[i]:
                    t64 += cancellation(i, r64, fd.tol)
                sharper = t64 < tol[i]   # a tolerance that can fail it, where that is the tighter
            if sharper:
                ref[i], tol[i] = r64, t64
                fail_notes.pop(int(i), None)
                kink_idx.pop(int(i), None)
                redone.append(int(i))
        elif (fd.status == "kink" and i in was_failing   # sharper here too, for a failure: f's
                and max(fd.left_tol, fd.right_tol) < tol[i]):
            matches, desc = _kink_note(fd, g[i])   # noise in float64 read across 100 relu kinks made the
            if matches:                            # sides' tolerances 0.6, and an entry 1.3 off "matched"
                fail_notes.pop(int(i), None)
                kink_idx[int(i)] = desc
                redone.append(int(i))

    def fails(i: int) -> bool:   # as it stands now: outside its tolerance and not at a kink
        with np.errstate(invalid="ignore"):
            return int(i) not in kink_idx and not abs(g[i] - ref[i]) <= tol[i] + own[i]

    still_failing = 0
    for i in candidates[:n_failing]:
        if still_failing == SECOND_OPINION_MAX:
            break
        retake(i)
        still_failing += fails(i)
    for i in candidates[n_failing:]:
        retake(i)
    if redone:
        still = [i for i in redone if fails(i)]
        at_kinks = [i for i in redone if i in kink_idx]
        rescued = [i for i in redone if i in was_failing and i not in still and i not in at_kinks]
        newly = [i for i in still if i not in was_failing]
        dts = sorted({str(flat.dtypes[flat.leaf_of(i)]) for i in redone})
        dt = " and ".join(dts)
        named = (" (" + ", ".join(flat.where(i) for i in still[:MAX_NAMED]) + (", ..." if len(still) > MAX_NAMED else "")
                 + ")") if still else ""
        counts = [f"{k} {what_}" for k, what_ in [
            (len(rescued), f"that failed in {dt} pass"), (len(at_kinks), "match a side of a kink"),
            (len(still) - len(newly), "still fail"), (len(newly), f"that passed in {dt} fail")] if k]
        notes.append(f"finite differences of {_entries(len(redone))} of {dt} leaves taken with {what} evaluated in "
                     f"float64, where sharper (noise {ctx64.eps_f:.1e} against {ctx.eps_f:.1e}; the value under test "
                     f"keeps its rounding allowance)" + (": " + ", ".join(counts) if counts else "") + named)


def _own_cancellation(flat: Flat, subject: "_Subject") -> Callable[[int, float, float], float]:
    """(i, r64, tol64) -> |g_i - g64_i| where g evaluated in float64 (``subject.wide``, not None)
    meets the float64 difference ``r64`` within its tolerance ``tol64`` plus float64's exact
    one, and |g_i - g64_i| is within :func:`_own_allowance`; else 0 (the derivation disagrees
    in float64 too). The vectors it needs are made once."""
    g, g64 = subject.g, subject.wide()
    allowance = _own_allowance(flat, g64, subject.wide_scale)[1]
    exact64 = _exact_tol(g64, flat.promoted(), None, None)

    @functools.cache
    def wider() -> np.ndarray:   # with the measured spread, once, where 32 u is not enough
        with np.errstate(invalid="ignore", over="ignore"):
            return _own_allowance(flat, g64, subject.wide_scale, subject.wide_spread, np.abs(g - g64))[1]

    def of(i: int, r64: float, tol64: float) -> float:
        if not abs(float(g64[i]) - r64) <= tol64 + exact64[i]:
            return 0.0
        mine = abs(float(g[i]) - float(g64[i]))
        return mine if mine <= allowance[i] or mine <= wider()[i] else 0.0
    return of


def _float64_context(promoted: tuple[Flat, Callable], ctx: blackbox.Context, what: str, seed: int,
                     cache: dict) -> blackbox.Context | None:
    """f's value and noise with the leaves promoted to float64 (``promoted``), measured once per
    check (``cache``); None where f refuses float64 inputs, or where that evaluation does not
    agree with f (within 4 eps_f) or is not at least 16x less noisy (f casts back, or keeps a
    float32 constant): then float32's verdicts stand. ``cache["f64"]``: f's float64 value at x
    either way (None where f refuses float64 inputs)."""
    if "ctx64" not in cache:
        flat64, F64 = promoted
        try:
            ctx64 = blackbox.measure(flat64, F64, np.random.default_rng(seed + 2750159), None, what, per_dtype=False)
        except Exception:   # noqa: BLE001 - f refuses float64 inputs
            ctx64 = None
        cache["f64"] = None if ctx64 is None else ctx64.f0
        if ctx64 is not None and not (abs(ctx64.f0 - ctx.f0) <= 4 * ctx.eps_f and 16 * ctx64.eps_f <= ctx.eps_f):
            ctx64 = None
        cache["ctx64"] = ctx64
    return cache["ctx64"]


#: f's values at x in complex128 and in float64 may both differ from f(x) by this many times f's
#: error eps_f before f is taken for code that depends on the dtype (:func:`_same_function_in_complex128`)
WIDE_VALUE_EPS = 16


def _same_function_in_complex128(ctx: blackbox.Context, f64: float | None) -> tuple[bool, str]:
    """(True, "") unless f computes another function on wider inputs than its narrow leaves:
    the complex step differentiates f as f computes on complex128, and code that depends on the
    dtype (np.finfo(p.dtype).eps in log(p + eps), as sklearn's log_loss clips; a constant or a
    cast chosen by dtype) makes that another function. A review (2026-12-05): a right float32
    log loss failed by the complex step, 3332.0 against 3333.3. Its sign: f's values at x with
    the leaves promoted to complex128 and to float64 both differ from f(x) by more than
    WIDE_VALUE_EPS eps_f (there by 32). Either alone is no evidence: NumPy's complex log1p is
    log(1 + z), whose real part, unlike its imaginary one, loses what 1 + z rounds away (a
    review: log1p and softplus of float64 inputs, 28 to 2e5 eps_f off), and a float32 f's value
    differs from a wider one by its own rounding (the complex value from f(x) by at most 3.6 eps_f
    over the checker's tests, 993 probes in float32 and float64). ``f64``: f's float64 value
    (:func:`_float64_context`), None where f refuses float64 inputs."""
    if f64 is None:
        return True, ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wide = complex(ctx.F(ctx.flat.x + 0j)).real, f64
    except Exception:   # noqa: BLE001 - f refuses complex inputs here: nothing to compare
        return True, ""
    tol = WIDE_VALUE_EPS * ctx.eps_f
    if all(abs(w - ctx.f0) > tol for w in wide):
        return False, (blackbox.CS_SKIPPED + f"f has another value for wider inputs, {wide[0]:.9g} in complex128 "
                       f"and {wide[1]:.9g} in float64 against {ctx.f0:.9g}, beyond {WIDE_VALUE_EPS} times its error "
                       f"{ctx.eps_f:.1e} (code that depends on the dtype: np.finfo(x.dtype), a constant or a cast "
                       "chosen by dtype?)")
    return True, ""


def _probe_complex_in_float64(ctx64: blackbox.Context | None, what: str, seed: int,
                              refused: str = "") -> tuple[bool, str]:
    """The complex step's probe again with f evaluated in float64, for leaves narrower than it.
    float32's finite differences resolve about 1e-4 of a slope, so a non-analytic term smaller
    than that (an L1 penalty 1e-5 sum |w|: np.abs of a complex number drops its imaginary part)
    passed the probe, and the complex step, missing the term, failed the correct gradient and
    passed the one without it (a review: 7 and 10 of 10 seeds). In float64 the probe resolves
    it. A disagreement there, or a kink where f' jumps (:func:`blackbox.resolved_kink`), skips
    the complex step; a kink read only under the noise floor, an unsettled difference or an error
    on complex input says nothing float32's probe did not (a second review: at inputs ~1e-3,
    where float64's first steps are too large for f's scale, a smooth layer norm lost its complex
    step in 8 more seeds of 30, and bugs it had caught passed).

    Where float32's probe ``refused`` the complex step by its finite differences (f takes
    complex input), the float64 probe decides in full: float32's steps, up to 6 % of an input,
    alias sin at |x| ~ 1e3 and read smooth functions as kinks (a review: "not complex-analytic"
    for sin), and a non-analytic f (abs, a kink) is refused in float64 as well."""
    if ctx64 is None:
        return not refused, refused
    try:
        if refused:
            ok, _ = blackbox.probe_complex(ctx64, np.random.default_rng(seed + 3367900313))
            return ok, "" if ok else refused
        ok, why = blackbox.probe_complex(ctx64, np.random.default_rng(seed + 3367900313), only_disagreement=True)
    except Exception:   # noqa: BLE001 - f raising in float64 (and only there): float32's probe stands
        return not refused, refused
    return ok, why and f"{why} ({what} evaluated in float64; float32's differences cannot resolve it)"


def _entries(k: int) -> str:
    return f"{k} entr{'y' if k == 1 else 'ies'}"


def _with(a: np.ndarray, i: int, v: float) -> np.ndarray:
    out = a.copy()
    out[i] = v
    return out


def _kink_note(fd: blackbox.FD, g_i: float) -> tuple[bool, str]:
    """(not a failure, description) for an entry at a detected kink: the value under test
    matches a one-sided derivative (relu'(0) = 0 or 1), or lies between them (sign(0) = 0 for
    |x|: a subgradient, the mean of the sides); outside both is a failure."""
    left = abs(g_i - fd.left) <= fd.left_tol if np.isfinite(fd.left) else False
    right = abs(g_i - fd.right) <= fd.right_tol if np.isfinite(fd.right) else False
    sides = f"one-sided derivatives {fd.left:.6g} (left) / {fd.right:.6g} (right)"
    if not np.isfinite(fd.left):
        return True, "kink not resolved by any step"
    if left or right:   # both within tolerance (float32's can be wide): the nearer, relative to its own
        both = left and right
        if both:
            left = abs(g_i - fd.left) / max(fd.left_tol, 1e-300) <= abs(g_i - fd.right) / max(fd.right_tol, 1e-300)
        tol = fd.left_tol if left else fd.right_tol
        wide = "; a tolerance that wide does not tell them apart" if both or tol >= abs(fd.left - fd.right) else ""
        return True, (f"kink: {sides}, value under test {g_i:.6g} matches the {'left' if left else 'right'}, within "
                      f"{tol:.2g}{wide}")
    if np.isfinite(fd.right) and min(fd.left, fd.right) <= g_i <= max(fd.left, fd.right):
        return True, f"kink: {sides}, value under test {g_i:.6g} between them"
    return False, f"at a kink: outside the {sides}"


def _check_core(
    F: Callable, flat: Flat, subject: _Subject, *, name: str, what: str, oracles, analytic,
    kinks, loss_error, grad_error, per_coordinate, n_directions, seed, jax_full, jax_dir,
    names: dict[str, str], extra_notes: Sequence[str] = (), user_tree_fn: Callable | None = None,
    per_dtype: bool = True, promoted: tuple[Flat, Callable] | None = None,
    jax_wide: Callable[[], np.ndarray | None] | None = None,
    jax_dir_wide: Callable[[np.ndarray], float] | None = None,
) -> Verdict:
    rng = np.random.default_rng(seed)
    for option, value in (("analytic", analytic), ("per_coordinate", per_coordinate)):
        if value is not None and not isinstance(value, (bool, np.bool_)):   # 0, 1, "yes" read as None or True
            raise TypeError(f"{option} must be True, False or None; got {value!r}")
    analytic = None if analytic is None else bool(analytic)
    if oracles is not None:
        if isinstance(oracles, str) or not isinstance(oracles, Iterable):
            raise TypeError(f"oracles must be a list of names (fd, complex_step, jax_grad, jax_jvp); got {oracles!r}")
        oracles = [str(o) for o in oracles]   # a tuple, a set, an array of names
        if not oracles:
            raise ValueError("oracles is empty: name at least one of fd, complex_step, jax_grad, jax_jvp, or "
                             "leave it out for every one that applies")
    if kinks is not None and not callable(kinks):
        raise TypeError(f"kinks must be a function of params returning the sign pattern; got {type(kinks).__name__}")
    if not _is_int(n_directions) or not 1 <= n_directions <= MAX_DIRECTIONS:
        raise ValueError(f"n_directions must be an integer in [1, {MAX_DIRECTIONS}] (a miss probability of 2^-K "
                         f"below 2^-64 is not measurable); got {n_directions!r}")
    declared = kinks is not None or loss_error is not None
    if per_coordinate is None:
        per_coordinate = flat.n <= PER_COORDINATE_LIMIT
    # per dtype only where entries are checked one by one: along random directions, eps_f
    ctx = blackbox.measure(flat, F, rng, loss_error, what, per_dtype=per_dtype and bool(per_coordinate))
    notes = list(extra_notes)
    # the declared path (kinks=, loss_error=) in the leaves' own dtypes: without loss_error, f's
    # error is at least its measured noise (a float32 relu net with kinks= alone was held to
    # float64's 16 u |f|: every difference ran its step below float32's spacing and read 0)
    float_dtypes = [d for d, fl in zip(flat.dtypes, flat.float_) if fl]
    declared_f_error = loss_error
    if loss_error is None and any(d != np.float64 for d in float_dtypes):
        declared_f_error = max(ctx.eps_f, 16 * flat.u * max(1.0, abs(ctx.f0)))
    if not declared:
        notes.append(ctx.noise_note)
    # complex step: declared by the caller (analytic=True), refused (False), or probed (None)
    use_cs, why, wide64 = False, "", {}
    if analytic is not False and flat.n:
        ok, why = blackbox.probe_complex(ctx, rng, against_fd=analytic is None)
        if analytic is True and not ok:
            raise ValueError(f"analytic=True, but {why.removeprefix(blackbox.CS_SKIPPED)}")
        if (analytic is None and promoted is not None and (_narrow_u(flat) > 0).any()
                and (oracles is None or "complex_step" in oracles)
                and (ok or blackbox.probe_complex(ctx, np.random.default_rng(seed), against_fd=False)[0])):
            ok, why = _probe_complex_in_float64(_float64_context(promoted, ctx, what, seed, wide64), what, seed,
                                                refused="" if ok else why)
            if ok:
                ok, why = _same_function_in_complex128(ctx, wide64["f64"])
        use_cs = ok
    elif analytic is False:
        why = ""
    available = ["fd"] + (["complex_step"] if use_cs else []) + (["jax_grad", "jax_jvp"] if jax_full else [])
    wanted = list(available if oracles is None else oracles)
    for o in wanted:
        if o not in ("fd", "complex_step", "jax_grad", "jax_jvp"):
            raise ValueError(f"unknown oracle {o!r}; oracles are: fd, complex_step, jax_grad, jax_jvp")
        if o not in available:
            reason = (why if o == "complex_step" and why else "analytic=False leaves it out"
                      if o == "complex_step" and analytic is False else "pass jax_fn= (the same function in jax.numpy)")
            raise ValueError(f"oracle {o!r} is not available here ({reason}); available: {', '.join(available)}")
    if why and "complex_step" not in wanted and oracles is None:
        notes.append(why)
    g = subject.g
    g_finite = g is None or bool(np.isfinite(g).all())   # else the callers run this under _quiet_unless_finite
    if per_coordinate and g is None:
        raise ValueError("per-coordinate checking needs the full derivative")
    sigma, rounding = subject.sigma, subject.rounding
    x = flat.x
    results: list[OracleResult] = []
    kink_idx: dict[int, str] = {}

    def h_for(i):
        return ctx.hrel_at(i) * max(1.0, abs(x[i]))

    def fd_coord(i, eps_f=None) -> blackbox.FD:
        e = np.zeros(flat.n)
        e[i] = 1.0
        r = blackbox.fd_dir(F, flat, x, e, ctx.f0, ctx.eps_at(i) if eps_f is None else eps_f, h_for(i))
        if r.status == "ok":  # per unit of the step actually taken: compare with g_i directly
            scale = r.taken[i]
            r.value, r.tol = r.value / scale, r.tol / scale
        return r

    # ---------------- per coordinate
    if per_coordinate:
        if "fd" in wanted:
            if declared:
                leaves = [L.astype(np.float64) for L, fl in zip(flat.leaves, flat.float_) if fl]
                tree_of = _leaves_to_tree(flat)
                num = numerical_grad_with_error(
                    lambda P: F(np.concatenate([W.ravel() for W in P]) if P else np.zeros(0)), leaves,
                    kinks=None if kinks is None else (lambda P: kinks(tree_of(P))), f_error=declared_f_error,
                    dtypes=float_dtypes)
                ref = flat.flat(num.grad)
                tol = flat.flat(num.tol)
                nc = {int(i): "a kink inside every step down to 2^-20 h" for i in np.flatnonzero(~np.isfinite(tol) & np.isnan(ref))}
                fd_only = {int(i): "no step down to 4^-8 h in the Taylor regime (D(h), D(2h), D(4h) not in ratio)"
                           for i in np.flatnonzero(~np.isfinite(tol) & ~np.isnan(ref))}
                r = _per_coord_result("finite_diff", flat, g, np.nan_to_num(ref), tol, not_checkable={**nc, **fd_only})
                kink_idx.update(nc)
            else:
                ref, tol, fail_notes, fd_only = np.zeros(flat.n), np.zeros(flat.n), {}, {}
                widened: list[int] = []
                # g's own rounding (step 3), not sigma: its probe of x crosses kinks, and g's jumps
                # there would hide a wrong value at one
                own = np.zeros(flat.n) if rounding is None else 8 * rounding
                for i in range(flat.n):
                    fd = fd_coord(i)
                    if fd.status != "nonfinite" and not (fd.status == "ok" and abs(g[i] - fd.value) <= fd.tol + own[i]):
                        # unsettled (a kink too: near an optimum f's rounding reads as one, and a wrong
                        # entry between its sides was not checkable): f's noise where it steps (step 1)
                        eps_i = blackbox.eps_at_step(ctx, i, h_for(i))
                        if eps_i is not None:   # e0 + s h at x +- h e_i, growing linearly with the
                            s = (eps_i - ctx.eps_at(i)) / h_for(i)   # distance, as cancelling terms' rounding does
                            if fd.status == "ok":   # its step stands; 2 eps / h in its tolerance gains 2 s
                                fd.tol += 2 * s
                            else:   # read as a kink or neither: f's rounding near an optimum reads so
                                fd = fd_coord(i, lambda h, e0=ctx.eps_at(i), s=s: e0 + s * h)
                            widened.append(i)
                    if fd.status == "ok":
                        ref[i], tol[i] = fd.value, fd.tol
                        if fd.note:
                            fail_notes[i] = fd.note
                    elif fd.status == "nonfinite":  # the exact oracles still check it
                        fd_only[i] = ("f is not finite at x +- h for some of the steps tried, and no step settled (nor a "
                                     "one-sided difference)")
                    elif fd.status == "unresolved":
                        fd_only[i] = "finite differences settled neither as smooth nor as a kink for any step tried"
                    else:
                        matches, desc = _kink_note(fd, g[i])
                        if matches:
                            kink_idx[i] = desc
                        else:  # a failure at a kink: report against the nearer side
                            near_left = abs(g[i] - fd.left) / fd.left_tol <= abs(g[i] - fd.right) / fd.right_tol
                            ref[i], tol[i] = (fd.left, fd.left_tol) if near_left else (fd.right, fd.right_tol)
                            fail_notes[i] = desc
                if promoted is not None:
                    _second_opinion(promoted, ctx, flat, g, ref, tol, own, fail_notes, kink_idx, fd_only, notes,
                                    what, lambda: _float64_context(promoted, ctx, what, seed, wide64), subject)
                r = _per_coord_result("finite_diff", flat, g, ref, tol + own, fail_notes, {**kink_idx, **fd_only})
                if widened:
                    notes.append(f"noise of {what} at x + h e_i above its noise at x (terms that cancel away from x) for "
                                 f"{len(widened)} entr{'y' if len(widened) == 1 else 'ies'} ("
                                 + ", ".join(flat.where(i) for i in widened[:MAX_NAMED])
                                 + (", ..." if len(widened) > MAX_NAMED else "") + "): their differences allow it")
            results.append(r)
        if "complex_step" in wanted:
            if declared and grad_error is not None:
                leaves = [L.astype(np.float64) for L, fl in zip(flat.leaves, flat.float_) if fl]
                cs = flat.flat(complex_step_grad(lambda P: F(np.concatenate([W.ravel() for W in P])), leaves, h=blackbox.COMPLEX_H))
            else:
                cs = np.empty(flat.n)
                e = np.zeros(flat.n)
                for i in range(flat.n):
                    e[i] = 1.0
                    cs[i] = blackbox.cs_dir(ctx, e)
                    e[i] = 0.0
            tol = _exact_tol(cs, flat, sigma, grad_error, r_floor=_complex_step_r(flat))
            if sigma is not None and g is not None:
                failing = np.flatnonzero(~(np.abs(g - cs) <= tol) & np.isfinite(cs))
                if failing.size:  # step 5: the oracle's own noise, where it can decide the verdict
                    tol[failing] += 8 * np.maximum(blackbox.cs_noise(ctx, failing, rng) - sigma[failing], 0.0)
            tol = _measured_noise(subject, g, cs, tol, sigma)
            if not declared:
                tol = _own_rounding(subject, flat, g, cs, tol, notes, "complex_step", names.get("deriv", "vjp_fn"))
            results.append(_per_coord_result("complex_step", flat, g, cs, tol,
                                             not_checkable={i: w for i, w in kink_idx.items()}))

    if "jax_grad" in wanted and g is not None:  # a full gradient: entry by entry at any size
        ref = jax_full()
        tol = _exact_tol(ref, flat, sigma, grad_error)
        tol = _measured_noise(subject, g, ref, tol, sigma)
        if not declared and jax_wide is not None:
            tol = _own_rounding(subject, flat, g, ref, tol, notes, names.get("jax_grad", "jax_grad"),
                                names.get("deriv", "vjp_fn"), jax_wide)
        jname = names.get("jax_grad", "jax_grad")
        lost = {int(i): f"{jname} is {ref[i]} here (jax_fn's own derivative: a jnp.where over a branch that is not "
                        "finite there gives NaN in reverse mode)" for i in np.flatnonzero(~np.isfinite(ref))}
        results.append(_per_coord_result(jname, flat, g, ref, tol, not_checkable={**lost, **kink_idx}))

    # ---------------- along random directions
    need_dirs = (not per_coordinate and any(o in wanted for o in ("fd", "complex_step"))) or "jax_jvp" in wanted
    directions = [rng.choice(np.array([-1.0, 1.0]), size=flat.n) for _ in range(n_directions)] if need_dirs else []
    wmax = max(1.0, float(np.abs(x).max())) if flat.n else 1.0

    r_exact, ftz = _exact_r(flat), _ftz_floor(flat)
    ref_cache: list = []
    kink_budget = KINK_PROBES * max(1, int(np.ceil(np.log2(max(flat.n, 2)))))
    kinks_found = _Kinks(rng, kink_budget)
    fd_seen: dict[tuple, blackbox.FD] = {}   # a direction's result while the entries left out stay the same
    used_fd32: set = set()   # directions (their index; None for a bisection's blocks) whose finite
    used_fd64: set = set()   # difference was taken with f as it is, and with f in float64

    def jax_ref():  # the JAX reverse-mode gradient, computed once
        if not ref_cache:
            ref_cache.append(np.asarray(jax_full(), np.float64))
        return ref_cache[0]

    def exact_dir_tol(value, v, ref=None, r_exact=r_exact):
        """Module docstring, step 5, along v: r times the terms sum_i |ref_i v_i| (not |<ref, v>|,
        which +-1 directions can cancel to nothing), + 8 tiny |v|_1 + 16 sum sigma_g |v|. Where
        g holds a NaN or inf, over v's nonzero entries only (0 * NaN elsewhere made every block's
        tolerance NaN, and the bisection blamed another input's entries: a review), and its NaN
        or inf entries lend no tolerance: they fail by themselves."""
        on = (lambda a: a) if g_finite else (lambda a, nz=np.flatnonzero(v): a[nz])
        av = on(np.abs(v))
        gg = g if g_finite else np.nan_to_num(on(g), nan=0.0, posinf=0.0, neginf=0.0)
        if grad_error is not None and g is not None:  # the network path: exact_atol along v, of the
            # oracle's gradient where there is one; else of g, which cannot hide an error (below)
            ge = np.concatenate([np.broadcast_to(np.asarray(e, np.float64), L.shape).ravel() for L, e in zip(
                [L for L, fl in zip(flat.leaves, flat.float_) if fl], grad_error)] or [np.zeros(0)])
            return EXACT_RTOL * float(np.abs(gg if ref is None else on(ref)) @ av) + 4 * float(on(ge) @ av)
        if ref is not None:
            terms = float((on(r_exact) * np.abs(on(ref))) @ av)
        elif g is not None:  # no full oracle gradient (complex step along directions): the terms of <g, v>
            # |g| = |ref + e| <= |ref| + |e|: this adds at most r |e|_1 <= r sqrt(n) |e|_2 to the
            # tolerance, while <e, v> has size |e|_2: it cannot hide an error (r sqrt(n) << 1).
            terms = float((on(r_exact) * np.abs(gg)) @ av)
        else:
            terms = float(r_exact.max(initial=EXACT_RTOL)) * abs(value)
        s = 16 * float(np.abs(on(sigma)) @ av) if sigma is not None else 0.0
        return terms + float(on(ftz) @ av) + s

    own_dirs: dict[str, float] = {}
    wide_cache: list = []

    def wide_terms():
        """(g64, A, r64, ftz64) once: g in float64, :func:`_own_allowance`, and float64's r and
        tiny floor per entry (:func:`_exact_r`, :func:`_ftz_floor`); None where g64 is not there."""
        if not wide_cache:
            g64 = subject.wide()
            flat64 = flat.promoted()
            wide_cache.append(None if g64 is None or flat64 is None else
                              (g64, _own_allowance(flat, g64, subject.wide_scale)[1], _exact_r(flat64), _ftz_floor(flat64)))
        return wide_cache[0]

    def own_rounding_dir(oracle, val, tol, v, val_wide=None, tol_wide=0.0):
        """Step 5 along v, as :func:`_own_rounding` per entry: where <g, v> fails ``val`` and
        <g64, v> meets it within float64's tolerance along v (``val_wide(v)``, the oracle in
        float64, for JAX; ``tol_wide`` that oracle's own, for finite differences), the tolerance
        grows by |<g - g64, v>| + |val - val64| where |<g - g64, v>| <= 8 sqrt(sum_i (A_i v_i)^2),
        A_i the bound on entry i (:func:`_own_allowance`): along a v of random signs, sum_i e_i v_i
        with |e_i| <= A_i exceeds that with probability below 2 exp(-32) (Hoeffding), whatever
        the e_i. The sum over |v| that stood here let a float32-only error of 1e-2 max|g| in one
        of 20,000 entries pass the float64 differences, and one of 3e-2 the complex step (reviews)."""
        if declared or g is None or subject.wide is None or abs(float(g @ v) - val) <= tol:
            return tol
        terms = wide_terms()
        if terms is None:
            return tol
        g64, allowance, r64, ftz64 = terms
        try:
            val64 = val if val_wide is None else val_wide(v)
        except Exception:   # noqa: BLE001 - the oracle refuses float64: the verdict stands
            return tol
        av = np.abs(v)   # float64's exact_dir_tol without sigma: the derivation in float64
        if val64 is None or not (abs(float(g64 @ v) - val64)
                                 <= float((r64 * np.abs(g64)) @ av) + float(ftz64 @ av) + tol_wide):
            return tol
        d = abs(float((g - g64) @ v))
        if not d <= 8 * float(np.sqrt(np.square(allowance) @ np.square(av))):
            return tol
        own_dirs[oracle] = max(own_dirs.get(oracle, 0.0), d + abs(val - val64))
        return tol + d + abs(val - val64)

    def jax_jvp_dir(v):
        """jax.jvp along v. Its tolerance adds |jvp(v) - <vjp, v>|: JAX's forward and reverse
        modes are both exact derivatives, evaluated in different orders, so their difference
        measures JAX's own rounding along v (forward mode cancels where reverse mode does not,
        e.g. softmax's p (v - <p, v>) at saturated p, an error u |v| against entries ~1e-113).
        An error e in the derivative under test still shows once |<e, v>| exceeds the base
        tolerance plus twice that difference."""
        val = jax_dir(v)
        ref = jax_ref()
        if np.isfinite(ref).all():
            tol = exact_dir_tol(val, v, ref) + abs(val - float(ref @ v))
        else:   # a NaN of jax_fn's reverse mode (jnp.where over a branch not finite there) made every tol NaN
            tol = exact_dir_tol(val, v)
            if JVP_WITHOUT_REVERSE not in notes:
                notes.append(JVP_WITHOUT_REVERSE)
        return val, own_rounding_dir(names.get("jax_jvp", "jax_jvp"), val, tol, v, jax_dir_wide), v, "ok"

    fd64: list = []
    # r |g_i| + 8 tiny, per entry; a NaN or inf of g lends none (it fails by itself, and NaN
    # times the zeros of a block's direction made every float64 tolerance NaN: a review)
    exact_g = r_exact * np.nan_to_num(np.abs(g), nan=0.0, posinf=0.0) + ftz if g is not None else None

    def fd64_probe():
        """(probe, kinks, ctx64, noise) for finite differences along directions with f evaluated
        in float64, or None (module docstring, step 1): for leaves narrower than float64, where f
        accepts float64 and agrees with itself there (:func:`_float64_context`), the derivative
        under test has a float64 value to separate its rounding from a wrong derivation
        (``subject.wide``), and its rounding is measured (``rounding``, else sigma_g). float32's
        own differences along a +-1 direction over 10^5 inputs resolve only errors of 10^2-10^3
        in one entry."""
        if not fd64:
            noise = rounding if rounding is not None else sigma
            ctx64 = None
            if (promoted is not None and noise is not None and subject.wide is not None and g is not None
                    and (_narrow_u(flat) > 0).any() and (oracles is None or "fd" in oracles)):
                ctx64 = _float64_context(promoted, ctx, what, seed, wide64)
            if ctx64 is not None and subject.wide() is not None:
                flat64, F64 = promoted

                def probe(v, ctx64=ctx64) -> blackbox.FD:
                    try:
                        with warnings.catch_warnings(action="ignore"):   # the checker's own calls
                            return blackbox.fd_dir(F64, flat64, x, v, ctx64.f0, ctx64.eps_f,
                                                   ctx64.hrel * wmax / max(float(np.abs(v).max()), 1e-300))
                    except Exception:   # noqa: BLE001 - f refuses this point in float64: float32's differences
                        return blackbox.FD(float("nan"), float("inf"), "unresolved", None)
                fd64.append((probe, _Kinks(np.random.default_rng(seed + 4242), kink_budget), ctx64, noise))
            else:
                fd64.append(None)
        return fd64[0]

    def settled(tag: str, probe, kinks: _Kinks, v, k) -> blackbox.FD:
        """:func:`_without_kinks` along direction k, kept while the entries it leaves out stay
        the same (``tag``: f as it is, or in float64); a bisection's block (k None) is not kept."""
        key = (tag, k, len(kinks.entries), kinks.gave_up)
        r = fd_seen.get(key) if k is not None else None
        if r is None:
            r = _without_kinks(probe, v, kinks)
            if k is not None:
                fd_seen[key] = r
        return r

    def fd_dir(v) -> tuple[float, float, np.ndarray | None, str]:
        if declared:
            tree_of = _leaves_to_tree(flat)
            leaves = [L.astype(np.float64) for L, fl in zip(flat.leaves, flat.float_) if fl]
            vl = _split(flat, v)
            d = directional_fd(lambda P: F(np.concatenate([W.ravel() for W in P])), leaves, vl,
                               kinks=None if kinks is None else (lambda P: kinks(tree_of(P))), f_error=declared_f_error,
                               dtypes=float_dtypes)
            taken = np.concatenate([t.ravel() for t in d.direction])
            return d.value, d.tol, taken, "ok" if np.isfinite(d.tol) else "kink"
        k = next((k for k, d in enumerate(directions) if d is v), None)   # a bisection's block: not kept
        r = settled("float", fd_probe, kinks_found, v, k)
        tol = r.tol
        if r.status == "ok" and rounding is not None:
            # g's rounding along v, sum_i e_i v_i with independent e_i of size rho_i: 8 of its standard
            # deviations, as per entry (not step 5's sum over |v|: the rounding of thousands of
            # entries does not add up in one direction; that sum let a float32 dense layer's entry 1 %
            # off pass in 2 of 4 seeds at 4,610 inputs, this in none)
            tol += 8 * float(np.sqrt(np.square(rounding * r.taken).sum()))
        wide_fd = fd64_probe()
        if wide_fd is not None:   # f in float64: its difference replaces float32's where it is sharper
            probe64, kinks64, _, noise = wide_fd
            r64 = settled("float64", probe64, kinks64, v, k)
            if r64.status == "ok":
                # g's rounding along v: its measured noise (rho, else sigma_g, which holds g's jumps
                # across kinks) and the exact oracles' r |g_i| (step 5: a correctly rounded w * s is
                # up to u |w s| off whatever x is, which no noise shows), as independent terms that
                # add along a random v as a square root (their sum over |v| was 0.15 over 10^5 relu
                # inputs, float32's own tolerance 0.1-2; r |g|_max(leaf) in each term, as entry by
                # entry, would be 8 r max|g| sqrt(n), 3e-3 max|g| at 10^4 inputs, and let one entry
                # 1e-3 max|g| off pass); where <g, v> still fails, step 5's allowance for
                # cancellation, where g evaluated in float64 agrees
                tol64 = r64.tol + 8 * float(np.sqrt((np.square(noise) + np.square(exact_g)) @ np.square(r64.taken)))
                # where it got past kinks (rough), f in float64 may put one beside x where f puts it
                # on x (hinge points on the margin: float32 and float64 margins 1e-7 apart, a
                # review). Then it judges only where float32's difference settled and agrees with
                # it; or where float32's settled with a wider tolerance and <g, v> meets float64's
                # (float32's, rough itself, can be off by more than its tolerance: relu inputs
                # within 1e-6 of 0, inside every step float32 takes, cancel in J while their errors
                # add, and a correct VJP failed 17 of 20 directions). Not where <g, v> merely meets
                # a rough difference that float32 could not settle: its tolerance can be as wide as
                # the value (19 against |<g, v>| ~ 10 at relu inputs 1e-8..1e-6, and an entry 11x
                # off passed in a review of a first version). Nor where it fails one that the
                # derivative evaluated in float64 fails too: a derivative that decides its kinks in
                # float32 (a cast inside, a mask kept from the forward pass) stays on float32's
                # side in float64, and a right hinge subgradient failed (a second review)
                def meets64() -> bool:   # <g, v> within float64's; asked only where it decides
                    return abs(subject.gdot(r64.taken) - r64.value) <= tol64

                if (tol64 < tol or r.status != "ok") and (
                        not r64.rough
                        or (r.status == "ok" and abs(r64.value - r.value) <= tol + tol64)
                        or (r.status == "ok" and tol64 < tol and meets64())):
                    used_fd64.add(k)
                    return r64.value, own_rounding_dir("finite_diff_dir", r64.value, tol64, r64.taken,
                                                       lambda _: r64.value, r64.tol), r64.taken, r64.status
                if (r.status == "ok" and r.rough and r64.rough and abs(r64.value - r.value) > tol
                        and meets64() and not abs(subject.gdot(r.taken) - r.value) <= tol):
                    # both rough, float64's wider: where <g, v> fails float32's and meets float64's,
                    # which puts float32's outside its own tolerance, neither judges (ten relu inputs
                    # at 1e-8..1e-6: float32's off by 1.0 against 0.36, float64's on <g, v> within
                    # 2.1; a correct VJP failed 7 of 20 directions). A kink along v, as float32 reads
                    # one: the direction is listed, not passed
                    used_fd32.add(k)
                    return float("nan"), float("inf"), r.taken, "kink"
        used_fd32.add(k)
        return r.value, tol, r.taken, r.status

    def fd_probe(v) -> blackbox.FD:
        return blackbox.fd_dir(F, flat, x, v, ctx.f0, ctx.eps_f, ctx.hrel * wmax / max(float(np.abs(v).max()), 1e-300))

    def cs_dir(v) -> tuple[float, float, np.ndarray, str]:
        if declared and grad_error is not None:
            leaves = [L.astype(np.float64) for L, fl in zip(flat.leaves, flat.float_) if fl]
            val = complex_step_directional(lambda P: F(np.concatenate([W.ravel() for W in P])), leaves, _split(flat, v))
        else:
            val = blackbox.cs_dir(ctx, v)
        tol = exact_dir_tol(val, v, r_exact=np.maximum(r_exact, _complex_step_r(flat)))
        return val, own_rounding_dir("complex_step_dir", val, tol, v), v, "ok"

    taken_along: list[tuple[list[float], float]] = []   # of each direction passed: parts by input, tolerance
    inputs = flat.inputs()
    along_inputs = inputs if not per_coordinate and g is not None and len(inputs) > 1 else []   # (_unresolved_inputs)

    def passed_along(v: np.ndarray, tol: float) -> None:
        """Keep what :func:`_unresolved_inputs` reasons from, for a direction v that passed with
        ``tol``: its parts, not v itself (an array of every input's size per direction)."""
        if along_inputs:
            taken_along.append(([abs(float(g[s:s + n] @ v[s:s + n])) for _, _, s, n in along_inputs], tol))

    ctx64_alone: list = []   # f's float64 context for judge_alone, made once where needed

    def judge_alone(result: OracleResult, i: int) -> None:
        """Entry i, left out of every direction as a kink along its own coordinate, taken again
        alone (``fd_coord``). Where f' shows no jump along it (the difference is smooth, or a
        kink read only under the noise floor whose sides agree: :func:`blackbox.resolved_kink`)
        it is judged as per_coordinate judges an entry, by the difference or the sides
        (:func:`_kink_note`), g_i's own rounding (8 rho_i, not sigma_i, which holds g's jumps)
        added. A review found a float32 softplus with a learned beta read a kink at the smooth
        beta and pass a d/dbeta missing a term while the verdict said beta was not resolved.
        Where f' jumps the entry stays listed: several kinks within the step (relu(p + o_k),
        |o_k| ~ 1e-9) read as one whose sides are the group's outer slopes, and the right value,
        their conventions summed, lies outside both (a third review: 42 correct gradients
        failed when these were judged). A failure needs a smooth difference in float64 that no
        larger step found rough: for a leaf narrower than float64, with f evaluated in float64
        (a step ~1e3 times smaller), as per_coordinate's second opinion (:func:`_second_opinion`);
        without one, the entry stays listed."""
        e = np.eye(1, flat.n, i)[0]
        g_i = float(g[i]) if g is not None else float(subject.gdot(e))

        def listed(why: str) -> None:
            result.not_checkable.append(f"{flat.where(i)}: kink along its own coordinate (left out of the "
                                        f"finite-difference directions{why})")

        def judged(fd: blackbox.FD, own: float, strict: bool = False) -> tuple[bool, float, float, str] | str:
            """(ok, reference, tolerance, note) of g_i against ``fd``, or why it is not judged.
            ``strict``, for a failure: only a smooth difference that no larger step found rough
            (``FD.rough``) judges; kinks packed within the step otherwise read as smooth, or as a
            kink with agreeing sides, at the group's mean slope (five relu kinks 1e-7 apart in
            float32, with f in float64 as well: a fourth review)."""
            if fd.status == "ok" and not (strict and fd.rough):
                return abs(g_i - fd.value) <= fd.tol + own, fd.value, fd.tol + own, "smooth along it alone"
            if fd.status != "kink" or strict:
                return "; alone, not settled"
            if blackbox.resolved_kink(fd):
                return f"; alone, f' jumps: one-sided derivatives {fd.left:.6g} (left) / {fd.right:.6g} (right)"
            wide = replace(fd, left_tol=fd.left_tol + own, right_tol=fd.right_tol + own)
            ok, note = _kink_note(wide, g_i)
            near_left = abs(g_i - wide.left) / max(wide.left_tol, 1e-300) <= abs(g_i - wide.right) / max(wide.right_tol, 1e-300)
            return (ok, *((wide.left, wide.left_tol) if near_left else (wide.right, wide.right_tol)), note)

        if not np.isfinite(g_i):   # named once, as every non-finite entry, below
            return listed("")
        own = 8 * float(rounding[i]) if rounding is not None else 0.0
        fd_i = fd_coord(i)
        got = judged(fd_i, own)
        if not isinstance(got, str) and not got[0] and not _narrow_u(flat)[i] > 0:
            got = judged(fd_i, own, strict=True)   # a float64 leaf fails on a smooth difference alone
        elif not isinstance(got, str) and not got[0]:
            got = "; alone, float32's difference fails it and f has no float64 evaluation to confirm"
            if not ctx64_alone:
                ctx64_alone.append(None if promoted is None else _float64_context(promoted, ctx, what, seed, wide64))
            if ctx64_alone[0] is not None:
                with warnings.catch_warnings(action="ignore"):   # the checker's own calls
                    fd_i = _coordinate_fd64(promoted, ctx64_alone[0], x, i)
                if fd_i is None:   # f refuses this point in float64: not settled
                    fd_i = blackbox.FD(float("nan"), float("inf"), "unresolved", None)
                # g_i's float32 rounding, as _second_opinion allows it: twice the exact oracles'
                # r |g|_max(leaf) + 8 tiny (no sigma_g, which holds g's jumps across the kinks), and 8 rho_i
                leaf = g[flat.slices[flat.leaf_of(i)]] if g is not None else np.array([g_i])
                scale = float(np.max(np.abs(leaf), where=np.isfinite(leaf), initial=0.0))
                got = judged(fd_i, 2 * (r_exact[i] * scale + ftz[i]) + own, strict=True)
                if not isinstance(got, str):
                    got = (*got[:3], got[3] + ", f in float64")
                else:
                    got = got.replace("; alone,", "; alone, f in float64,")
        if isinstance(got, str):
            return listed(got)
        ok, ref, tol, note = got
        if not ok:
            result.mismatches.append(Mismatch(flat.where(i), g_i, ref, tol, "finite_diff", f"{JUDGED_ALONE}: {note}"))
            result.mismatches.sort(key=lambda m: -m.excess)
            result.passed = False
            return
        passed_along(e, tol)   # resolves its input (_unresolved_inputs) where |g_i| > 2 tol
        if fd_i.status == "kink":   # as per_coordinate lists an entry that passed at a kink
            listed(f"; alone, {note}")

    def directional_result(oracle: str, fn) -> OracleResult:
        pairs, skipped, nc = [], 0, []
        for k, v in enumerate(directions):
            # a direction that crosses kinks is not checked: the conventions at several kinks that
            # bend opposite ways (relu'(0) = 0 under weights of both signs) can sum to a value
            # outside both one-sided derivatives, so no side or interval judges it
            val, tol, taken, status = fn(v)
            if status != "ok":
                skipped += 1
                nc.append(f"direction {k}: {status} along it")
                pairs.append((subject.gdot(v), float("nan"), float("inf")))
                continue
            pairs.append((subject.gdot(taken), val, tol))
            if abs(pairs[-1][0] - val) <= tol:   # passed (so finite): what _unresolved_inputs reasons from
                passed_along(taken, tol)
        checked = [(a, b, t) for a, b, t in pairs if np.isfinite(t)]
        bad = [(a, b, t) for a, b, t in pairs if (np.isfinite(t) and not abs(a - b) <= t) or not np.isfinite(a)]
        worst = max(checked, key=lambda p: abs(p[0] - p[1]) / p[2] if p[2] > 0 else np.inf, default=None)
        return OracleResult(oracle, not bad, abs(worst[0] - worst[1]) if worst else float("nan"),   # none checked: NOT CHECKED
                            worst[2] if worst else float("nan"), directional=pairs, skipped=skipped,
                            not_checkable=nc, n_failed=len(bad))

    if not per_coordinate:
        if "fd" in wanted:
            searches = [kinks_found]
            if not declared:   # every direction leaves out every entry found at a kink: find them first
                for v in directions:
                    fd_dir(v)
                wide_fd = fd64_probe()
                if wide_fd is not None:
                    _no_kinks_hidden(wide_fd[0], flat.n, wide_fd[1])
                    searches.append(wide_fd[1])
                _no_kinks_hidden(fd_probe, flat.n, kinks_found)
            def fd_result() -> OracleResult:   # which differences judged: this pass's only
                used_fd32.clear()
                used_fd64.clear()
                return directional_result("finite_diff_dir", fd_dir)

            gave_up = [kf.gave_up for kf in searches]
            results.append(fd_result())
            if [kf.gave_up for kf in searches] != gave_up:   # gave up while checking: no direction leaves entries out
                results[-1] = fd_result()
            used = [used_fd32, used_fd64]
            left_out = set().union(*(kf.entries for kf, u in zip(searches, used) if u and not kf.gave_up))
            for i in sorted(left_out):
                judge_alone(results[-1], i)
            if used_fd64:
                ctx64 = fd64_probe()[2]
                n64 = sum(1 for k in used_fd64 if k is not None)
                notes.append(f"finite differences along {n64} of the {n_directions} directions with {what} evaluated in "
                             f"float64 (noise {ctx64.eps_f:.1e} against {ctx.eps_f:.1e}), the value under test held to "
                             f"them within its own rounding along each")
        if "complex_step" in wanted:
            results.append(directional_result("complex_step_dir", cs_dir))
    if "jax_jvp" in wanted:
        results.append(directional_result(names.get("jax_jvp", "jax_jvp"),
                                          jax_jvp_dir))

    for oracle, added in own_dirs.items():
        notes.append(f"directions that failed {oracle} pass with the rounding of the narrow leaves' dtype in their "
                     f"tolerance (at most {added:.2e} added): {names.get('deriv', 'vjp_fn')} evaluated in float64 "
                     f"({subject.wide_how}) agrees with {oracle} there (module docstring, step 5)")

    # ---------------- group testing: name the wrong entries behind failing directions
    failing = [r for r in results if r.directional and not r.passed and r.n_failed]   # not an entry judged alone
    untested = np.zeros(0, int)
    if failing and not any(r.values is not None and not r.passed for r in results):
        # bisect with an oracle whose directions failed, the complex step first: one that passed
        # them may be too wide to see the error in a block (float32's complex step over 131,072
        # inputs allowed 0.3 where finite differences, at 0.03, failed; a review)
        by_name = {"complex_step_dir": (cs_dir, "complex_step"), "finite_diff_dir": (fd_dir, "finite_diff"),
                   names.get("jax_jvp", "jax_jvp"): (jax_jvp_dir, names.get("jax_jvp", "jax_jvp"))}
        result = next((r for name in by_name for r in failing if r.oracle == name), failing[0])
        ref_fn, ref_name = by_name.get(result.oracle, (cs_dir, "complex_step") if use_cs else (fd_dir, "finite_diff"))
        named, untested = _bisect(flat, subject, ref_fn, rng, g)
        for i, (a, b, t, note) in named.items():
            result.mismatches.append(Mismatch(flat.where(i), a, b, t, ref_name, note))
        result.mismatches.sort(key=lambda m: -m.excess)
        if untested.size:
            notes.append(f"bisection stopped after naming {MAX_NAMED} wrong entries: {untested.size} entries were not "
                         f"searched, and more may be wrong among them (per_coordinate=True checks every entry, at "
                         f"{flat.n} calls)")
        if not named:
            notes.append("bisection over blocks of coordinates named no single entry: the error is spread "
                         "over many entries, each below its own tolerance, or is the direction's own (a "
                         "marginal excess: its size is above)")
    dir_results = [r for r in results if r.directional]
    if not g_finite and dir_results:
        # a NaN or inf of the derivative under test fails by itself, wherever the directions went:
        # one at a kink is left out of every direction taken, and passed (a review). Named once
        # (not where an oracle named it already), in an oracle that failed if one did; its
        # n_failed stays the directions that failed
        seen = {m.where for r in results for m in r.mismatches}
        todo = [int(i) for i in np.flatnonzero(~np.isfinite(g)) if flat.where(int(i)) not in seen][:MAX_NAMED]
        if todo:
            target = next((r for r in dir_results if not r.passed), dir_results[0])
            target.mismatches += [Mismatch(flat.where(i), float(g[i]), float("nan"), float("nan"),
                                           target.oracle.removesuffix("_dir"), "not finite") for i in todo]
            target.mismatches.sort(key=lambda m: -m.excess)
            target.passed = False
    if not per_coordinate:
        dir_tols = {r.oracle: max((t for _, _, t in r.directional if np.isfinite(t)), default=float("nan"))
                    for r in results if r.directional}
        notes.append(f"checked along {n_directions} random +-1 directions: an error with any entry above the "
                     f"tolerance escapes all of them with probability <= 2^-{n_directions}; the tolerance along a "
                     "direction (an entry's error must exceed it to show) was up to "
                     + ", ".join(f"{t:.1e} ({o})" if np.isfinite(t) else f"- ({o}: no direction checkable)"
                                 for o, t in dir_tols.items())
                     + f"; per_coordinate=True holds each entry to its own, at {flat.n} calls or more")
    v = Verdict(name, results, notes, inputs, flat.sep)
    v.unlocalised = {path for path, _, start, size in v.inputs if np.any((untested >= start) & (untested < start + size))}
    if along_inputs:
        v.unresolved = _unresolved_inputs(along_inputs, taken_along)
    return v


def _unresolved_inputs(inputs, taken_along: list) -> dict[str, tuple[float, float]]:
    """The inputs resolved by no direction checked: x ~ 1e3 beside w ~ 1e-3 in one float32 conv
    passed dx = 0, x's part of each direction 0.12 against a tolerance of 0.65 set by dW's terms
    (a review). An input is resolved by a direction (as taken: kinks left out) where its part,
    |<g, v>| over its own entries, exceeds twice the tolerance: the direction passed, so g's
    error along it is within the tolerance, and the exact part then exceeds it too. (g is the
    derivative under test: with one tolerance, a wrong dx twice the right one passed and read
    resolved, a second review.) For each unresolved input, (part, tolerance) where their ratio is
    largest; inputs without entries are none. ``taken_along``: per direction that passed, the
    parts of each input (in ``inputs``' order) and its tolerance."""
    out = {}
    for j, (path, _, start, size) in enumerate(inputs):
        if not size:
            continue
        parts = [(by_input[j], t) for by_input, t in taken_along]
        if parts and not any(p > 2 * t for p, t in parts):
            out[path] = max(parts, key=lambda pt: pt[0] / pt[1] if pt[1] > 0 else np.inf)
    return out


@dataclass
class _Kinks:
    """The entries at kinks that :func:`_without_kinks` found, shared by the directions of one
    check; what is left of its budget of probes (each a finite difference along a direction,
    about 13 evaluations of f); ``gave_up`` once a search stopped unfinished (the entries found
    are then not all, and no direction leaves them out)."""

    rng: np.random.Generator
    budget: int
    entries: set[int] = field(default_factory=set)
    gave_up: bool = False


def _without_kinks(fd: Callable[[np.ndarray], blackbox.FD], v: np.ndarray, kinks: _Kinks) -> blackbox.FD:
    """Finite differences along v without the entries at kinks (``fd(v)``: blackbox.fd_dir
    along v). Where v crosses a kink, its support (shuffled: kinks often sit together, as a
    bias row at 0) is halved, level by level, until every block is either smooth along its part
    of v or a single entry whose own coordinate is a kink (about 2 log2(n / k) probes for each
    of k such entries, kept in ``kinks`` for the next direction). Then v without those
    entries, or, where that is still a kink (kinks whose J stays put together though each part
    is smooth), the sum over the smooth blocks, their tolerances added. Relu over 10^5 float32
    inputs has a few entries nearer its kink than a float32 difference resolves, on every
    direction.

    The search stops, and v stays a kink, once the next levels would cost more than the budget
    left (KINK_PROBES log2(n) probes in all), more than MAX_KINK_ENTRIES entries are kinks
    (kinks everywhere: relu at |x| below what a difference resolves; a zero input row of a relu
    layer, whose every entry meets the kinks of the zero-bias units, which can cancel along one
    coordinate, so that leaving the others out failed the conventions there, a review found), or
    a part is neither smooth nor a kink; from then on no direction leaves entries out: with some
    kinks left in, two whose jumps cancel along v look smooth while the conventions at them need
    not (relu'(0) = 0 at two units of opposite sign, the case documented in docs/checker.md)."""
    if kinks.gave_up:
        return fd(v)

    def probe(w):   # fd, counted against the budget
        kinks.budget -= 1
        return fd(w)

    def without(w):
        w = w.copy()
        w[list(kinks.entries)] = 0.0
        return w

    r = probe(without(v))
    if r.status != "kink":
        return r
    n_before, support = len(kinks.entries), kinks.rng.permutation(np.flatnonzero(without(v)))

    def unfinished() -> blackbox.FD:   # v with no entry left out: r itself where none was
        kinks.gave_up = True
        return r if not n_before else fd(v)
    if not kinks.entries and support.size > 8:   # first search: kinks at 2 of 4 random entries are everywhere
        singles = [probe(np.where(np.arange(v.size) == i, v, 0.0)).status == "kink" for i in support[:4]]
        if sum(singles) >= 2:
            kinks.gave_up = True
            return r
    level, parts = [support[:support.size // 2], support[support.size // 2:]], []
    while level:
        depth_left = int(np.ceil(np.log2(max(S.size for S in level)))) + 1
        if len(level) * depth_left > kinks.budget:   # at least this many probes to finish
            return unfinished()
        below = []
        for S in level:
            if not S.size:
                continue
            w = np.zeros_like(v)
            w[S] = v[S]
            part = probe(w)
            if part.status == "ok":
                parts.append(part)
            elif part.status != "kink":   # not finite or unresolved along a part
                return unfinished()
            elif S.size == 1:
                kinks.entries.add(int(S[0]))
                if len(kinks.entries) > MAX_KINK_ENTRIES:
                    return unfinished()
            else:
                below += [S[:S.size // 2], S[S.size // 2:]]
        level = below
    if not parts:
        return r
    if len(kinks.entries) > n_before and len(parts) > 1:
        again = probe(without(v))
        if again.status == "ok":
            return again
    return blackbox.FD(sum(p.value for p in parts), sum(p.tol for p in parts), "ok",
                       sum(p.taken for p in parts), rough=any(p.rough for p in parts))


def _no_kinks_hidden(fd: Callable[[np.ndarray], blackbox.FD], n: int, kinks: _Kinks, rounds: int = 8) -> None:
    """After :func:`_without_kinks` found entries at kinks: the rest, split into two random
    halves with random signs ``rounds`` times, must be smooth along each half. Kinks can hide
    in a block the search took as smooth: along a +-1 direction relu kinks add their slope
    changes s_i whatever the signs, so two units with s_a = -s_b look smooth together (a
    zero-bias relu MLP, s = -0.0338 and +0.0338 to four digits) while the conventions at them
    sum to something else. A random split parts them with probability 1/2 (miss: 2^-rounds);
    a half that is a kink is searched like a direction."""
    if not kinks.entries or kinks.gave_up:
        return
    for _ in range(rounds):
        rest = kinks.rng.permutation(np.setdiff1d(np.arange(n), np.fromiter(kinks.entries, int)))
        for half in (rest[:rest.size // 2], rest[rest.size // 2:]):
            w = np.zeros(n)
            w[half] = kinks.rng.choice(np.array([-1.0, 1.0]), size=half.size)
            if half.size and _without_kinks(fd, w, kinks).status == "kink":
                kinks.gave_up = True   # kinks it cannot single out: no direction leaves entries out
            if kinks.gave_up:
                return


def _split(flat: Flat, v: np.ndarray) -> list[np.ndarray]:
    return [v[s].reshape(L.shape) for L, fl, s in zip(flat.leaves, flat.float_, flat.slices) if fl]


def _leaves_to_tree(flat: Flat):
    def tree_of(P):
        it = iter(P)
        return unflatten(flat.treedef, [next(it) if fl else L for L, fl in zip(flat.leaves, flat.float_)])
    return tree_of


def _bisect(flat: Flat, subject: _Subject, ref_fn, rng, g) -> tuple[dict[int, tuple[float, float, float, str]], np.ndarray]:
    """Group testing: a block S of coordinates holds an error when <g, v_S> and the oracle along
    v_S (v Rademacher on S, 0 elsewhere) disagree for one of 4 random v (a block holding an
    entry above tolerance passes one v with probability <= 1/2, all 4 with <= 1/16). Halve the
    failing blocks until single coordinates are named: about 2 k log2(n) block tests for k
    wrong entries of n. Stops after MAX_NAMED entries. Returns the named entries and the
    coordinates of the blocks left untested (the inputs they fall in are not localised)."""
    named: dict[int, tuple[float, float, float, str]] = {}
    stack = [np.arange(flat.n)]

    def holds_error(S) -> tuple[bool, tuple]:
        for _ in range(4 if len(S) > 1 else 1):
            v = np.zeros(flat.n)
            v[S] = rng.choice(np.array([-1.0, 1.0]), size=len(S)) if len(S) > 1 else 1.0
            val, tol, taken, status = ref_fn(v)
            if status != "ok":
                continue
            a = subject.gdot(taken)
            if not abs(a - val) <= tol:
                return True, (a, val, tol, taken)
        return False, ()

    first = True
    while stack and len(named) < MAX_NAMED:
        S = stack.pop()
        if not first or len(S) == 1:
            bad, vals = holds_error(S)
            if not bad:
                continue
            if len(S) == 1:
                i = int(S[0])
                a, val, tol, taken = vals
                scale = taken[i] if taken[i] else 1.0  # per unit of the step actually taken
                named[i] = (a / scale, val / scale, abs(tol / scale), "named by bisection")
                continue
        first = False
        half = len(S) // 2
        stack += [S[half:], S[:half]]
    return named, (np.concatenate(stack) if stack else np.zeros(0, int))


# ----------------------------------------------------------------------------------------------
# tolerance helpers kept for the network path


def _broadcasts(shape: tuple, to: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, to) == tuple(to)
    except ValueError:
        return False


def exact_atol(ref: Sequence[np.ndarray], grad_error: Sequence[np.ndarray] | None = None) -> list:
    """Per-layer absolute tolerance for comparing two exact float64 gradients: EXACT_RTOL of
    the layer's largest entry, plus, when ``grad_error`` (per-entry rounding bounds,
    :func:`autodiff_check.rounding_bound`) is given, 4 times it: each of the two gradients is
    within that bound of the exact one, and a factor 2 covers the terms of second order in u.
    The second part covers cancellation, e.g. a saturated tanh' = 1 - a^2 known only to an
    absolute ~u, or an output that is a small difference of large terms. Measured over 1080
    random networks the largest layer-wise error between two exact float64 gradients was 5e-11
    of the layer's largest entry; EXACT_RTOL = 1e-8 keeps a 200x margin. The largest entry is
    taken over the finite ones: a NaN or inf in ``ref`` fails by itself in :func:`compare`."""
    refs = [np.abs(r) for r in float64_layers(ref, "ref", finite=False)]
    atol = [EXACT_RTOL * float(a[np.isfinite(a)].max(initial=0.0)) for a in refs]
    if grad_error is None:
        return atol
    if isinstance(grad_error, RoundingBound):
        raise TypeError("grad_error must be the per-layer list rounding_bound(...).grad, not the RoundingBound")
    if isinstance(grad_error, np.ndarray) or not isinstance(grad_error, Sequence) or len(grad_error) != len(refs):
        raise ValueError(f"grad_error must be a list of {len(refs)} arrays, one per layer of ref")
    out = []
    for l, (t, e, a) in enumerate(zip(atol, grad_error, refs)):
        e = np.asarray(e)
        if not (e.dtype.kind in "iuf" and _broadcasts(e.shape, a.shape) and np.isfinite(e).all() and (e >= 0).all()):
            raise ValueError(f"grad_error[{l}] must be finite numbers >= 0 that broadcast to layer {l}'s shape "
                             f"{a.shape}; got {np.asarray(grad_error[l]).dtype} of shape {np.shape(grad_error[l])}")
        out.append(t + 4 * e.astype(np.float64))
    return out


# ----------------------------------------------------------------------------------------------
# public checks


def _jax(jax_fn: Callable) -> tuple[Any, Callable]:
    """JAX, with float64 turned on for the process (README and the package docstring say so: the
    oracles run ``jax_fn`` on float64 primals as float64), and ``jax_fn`` with JAX's error for
    NumPy code handed a traced array (np.tanh for jnp.tanh) said as the check's TypeError."""
    try:
        import jax
    except ImportError as e:  # pragma: no cover - exercised only without JAX
        raise ImportError(f"jax_fn= needs JAX ({e}); install it with: pip install 'manual-backprop[jax]'") from e
    jax.config.update("jax_enable_x64", True)
    if getattr(jax_fn, "_errors_named", False):   # wrapped already (check_hvp: once per vector)
        return jax, jax_fn

    @functools.wraps(jax_fn)
    def traced(*args):
        try:
            return jax_fn(*args)
        except jax.errors.TracerArrayConversionError as e:
            raise TypeError("jax_fn must be written in jax.numpy (jnp.tanh, not np.tanh): a NumPy function was "
                            f"handed one of JAX's traced arrays ({str(e).splitlines()[0]})") from e

    traced._errors_named = True
    return jax, traced


def _jax_takes(jax, tree, what: str) -> None:
    """A TypeError naming the container in ``tree`` that JAX would leave whole, a subclass of dict,
    list or tuple it has not registered as a pytree, or dict keys it cannot sort, before JAX's own
    error from inside its tracing ("... is not a valid JAX type"); the checks themselves take
    such containers. ``what``: "primals" (a tuple of them, named "primal i"), "params", "f's output"
    or "jax_fn's output"."""
    inputs = what in ("primals", "params")
    needs = (f"jax_fn= needs {what} that JAX can take apart" if inputs
             else f"with jax_fn=, {what} must be made of containers JAX can take apart")
    try:
        leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    except Exception as e:   # noqa: BLE001 - JAX's own error, named: it sorts dict keys, and mixed int and str do not sort
        raise TypeError(f"{needs}, and JAX could not ({e}): JAX sorts every dict's keys, so they must be of one "
                        "type") from None
    for path, leaf in leaves:
        if isinstance(leaf, (Mapping, list, tuple)):
            name = type(leaf).__name__
            where = (f"primal {path[0].idx}{jax.tree_util.keystr(path[1:])}" if what == "primals"
                     else what + jax.tree_util.keystr(path))
            raise TypeError(f"{needs}, and {where} is of type {name}, a container JAX does not know: "
                            + ("pass a dict, list or tuple (e.g. dict(p))" if inputs else "return a dict, list or tuple")
                            + f", or register {name} with jax.tree_util.register_pytree_node")


def _compiled(jax, fn: Callable) -> Callable:
    """``jax.jit(fn)``, compiled once for every direction of a check: eager ``jax.jvp`` compiles
    each call of a ``lax.scan`` anew (0.35 s per direction for an LSTM, 7 of check_vjp's 8 s).
    Where the user's function cannot be traced under jit (Python control flow on values, an
    integer leaf used as a shape or an index: a TypeError or IndexError from the tracer) ``fn``
    runs eagerly from the first call on."""
    state = {"fn": jax.jit(fn)}

    def call(*args):
        if state["fn"] is not fn:
            try:
                return state["fn"](*args)
            except (TypeError, IndexError):   # JAX's tracer errors, and "shapes must be concrete" ones
                state["fn"] = fn               # a real bug raises again, eagerly, just below
        return fn(*args)

    return call


def _pick_jax(jax_fn, jax_loss_fn):
    if jax_fn is not None and jax_loss_fn is not None and jax_fn is not jax_loss_fn:
        raise ValueError("pass the JAX function once: jax_fn= (jax_loss_fn= is its old name)")
    return jax_fn if jax_fn is not None else jax_loss_fn


def _grad_noise(flat: Flat, grad_flat: Callable[[np.ndarray], np.ndarray], rng) -> np.ndarray:
    return blackbox.entry_noise(lambda z: grad_flat(flat.rnd(z)), flat, rng)


FIRST_CALL_RTOL = 2.0**-10   # how much a second call may move an entry, relatively (_first_call_tol)


def _first_call_tol(flat: Flat, g: np.ndarray, again: np.ndarray, g_cmp: np.ndarray) -> np.ndarray:
    """Per entry, how far a second call of the derivative at the same inputs may move it:
    FIRST_CALL_RTOL of the larger of the entry (either call's) and the largest |g| of any leaf,
    + 8 tiny. What it is for is gross: a buffer never zeroed moves every entry by itself, a mask
    drawn per call by its size. Summing in another order (a thread pool's) moves entries by
    rounding, which near an exact optimum is all of an entry (least squares: |g| ~ 1e-15, each
    sum of terms ~1e-5), and small entries beside large ones by rounding of the large (softmax
    (z + s): d/ds ~1e-17 moves by 4e-16 beside entries ~0.3); finer faults are the oracles'.
    Not sigma_g (step 5): measured by calling the same derivative, it grows with a draw per call
    and covered it (a review)."""
    scale = np.abs(g[np.isfinite(g)]).max(initial=0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        big = np.maximum(np.abs(again), np.abs(g_cmp))
    return FIRST_CALL_RTOL * np.maximum(np.where(np.isfinite(big), big, 0.0), scale) + _ftz_floor(flat)


def _linear_noise(c0: np.ndarray, p: np.ndarray, u: float, g_of: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Per entry: the noise rho of g as the vector it is linear in moves (a VJP's cotangent c), x
    fixed: :func:`autodiff_check.noise.vector_noise` at c0 + k p, k = -8..7. g's sums over c
    round differently at every point while their exact values move along a line, so orders
    3-5 of the difference table hold the rounding alone; it shows where g does not depend on x
    at all (a bias row's sum_b c_b, whose noise over x is 0). ``p`` (:func:`_ulp_steps`) keeps
    every point exactly representable in c's dtype: a rounded c would read as noise of g.

    Capped at trend / sqrt(u), trend the median |first difference| of the 15 (each is J p up to
    two roundings, p of 16 ulp of each c_b in random signs: ~16 u |J_ib c_b|_2; the median,
    which jumps of g at fewer than half the points do not lift, and which rounding does not
    zero as the smallest did: 1 in 60 correct dense VJPs at 240 x 4 inputs ~1e-8 lost the
    allowance to it, a review): rounding g_i = sum_b J_ib c_b to within k u sqrt(n)
    |J_ib c_b|_2 is k sqrt(n) / 16 trends, and beyond 1 / sqrt(u) trends (4,096 in float32,
    6.7e7 in float64) g does not round but jumps: a mask drawn per call that the calls at c and
    2c happened to draw alike (a review: 3 of 20 such VJPs passed without the cap)."""
    seen: list[np.ndarray] = []

    def kept(c):
        seen.append(np.asarray(g_of(c), np.float64))
        return seen[-1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s = _noise.vector_noise(kept, c0, p, 1.0)
        trend = np.median(np.abs(np.diff(np.stack(seen), axis=0)), axis=0)
    s = np.minimum(s, trend / np.sqrt(u))
    return np.where(np.isfinite(s), s, 0.0)


def _ulp_steps(c: np.ndarray, rng) -> np.ndarray | None:
    """+-16 ulp of each entry of ``c`` in its own dtype, float64 (0 where c is 0): c + k p for
    |k| <= 8 is a multiple of 2 ulp near c, so exact in c's dtype also across a power of 2.
    None where an entry of c exceeds a quarter of the dtype's largest (2c must not overflow)."""
    if c.size and float(np.abs(c).max()) > float(np.finfo(c.dtype).max) / 4:
        return None
    step = 16 * np.spacing(np.abs(c)).astype(np.float64) * (c != 0)
    return np.where(rng.random(c.shape) < 0.5, -step, step).ravel()


def _quiet_unless_finite(g: np.ndarray | None):
    """NumPy's invalid-value and overflow warnings off where the derivative under test holds a
    NaN or inf: it fails by itself, named, and the sums of the tolerances around it (inf - inf,
    0 * inf) would warn from inside the checker (a review: hundreds per float32 check). Also
    where it is finite but within 64 n of float64's largest number (n entries): its products
    with the directions and the sums of its tolerances may overflow, to an inf that fails the
    same way (a review: 20-40 overflow warnings for a gradient of 1e308)."""
    if g is None or not g.size:
        return contextlib.nullcontext()
    if np.isfinite(g).all() and np.max(np.abs(g)) < _checks.MAX[np.dtype(np.float64)] / (64 * g.size):
        return contextlib.nullcontext()
    return np.errstate(invalid="ignore", over="ignore")


def _near(fl: Flat, x: np.ndarray, what: str, call: Callable[[], Any]):
    """``call()``; an exception from it is told where the checker evaluated ``what`` when that was
    not the point given (a note, Python's ``add_note``): the entry moved and by how much, and
    one that changed sign, or the complex step's point. Without it, a function undefined a step
    away (sqrt at 0, a log of a clipped input) reads as failing at the user's own inputs. (Its
    evaluations in float64 discard errors: the verdict in the inputs' dtype stands.)"""
    try:
        return call()
    except Exception as e:
        x = np.asarray(x)
        if np.iscomplexobj(x):
            e.add_note(f"autodiff_check: {what} raised this at complex inputs, x + i h v, for the complex step "
                       "(analytic=False leaves that oracle out)")
            raise
        d = x - fl.x
        moved = np.flatnonzero(d)
        if moved.size:
            i = int(moved[np.argmax(np.abs(d[moved]))])
            crossed = moved[np.sign(x[moved]) != np.sign(fl.x[moved])]   # 0 -> -h: a domain's edge, often
            e.add_note(f"autodiff_check: {what} raised this at a point near the inputs given"
                       + (f": {fl.where(i)} moved by {d[i]:+.3g}" if moved.size == 1 else
                          f": {moved.size} entries moved, by at most {abs(d[i]):.3g} ({fl.where(i)})")
                       + "".join(f"; {fl.where(j)} went from {fl.x[j]:.3g} to {x[j]:.3g}" for j in crossed[:1])
                       + (f" ({crossed.size - 1} more changed sign)" if crossed.size > 1 else "")
                       + ". Finite differences and the noise readings evaluate it a small step from the inputs, "
                       "so it must be defined there: an input on the edge of its domain (sqrt or log at 0) "
                       "cannot be checked by differences")
        raise


def _leaving_inputs(fn: Callable, deriv: str, args: Sequence[tuple[Any, str, tuple]]):
    """``fn(*trees)`` on deep copies of the ``(tree, root, path prefix)`` args; a ValueError naming
    the first entry ``fn`` wrote into. A backward pass that zeroes ``dy`` in place (``dy[x < 0] =
    0; return dy``) corrupts its caller's array; handed the checker's own cotangent, it would
    also change what every later call and oracle sees, so that a wrong VJP can pass."""
    copies = [copy_tree(tree) for tree, _, _ in args]
    out = fn(*copies)
    for (tree, root, prefix), mine in zip(args, copies):
        before, paths, td = flatten(tree, what=root)
        try:
            after, _, td_after = flatten(mine, what=root)
        except TypeError:   # something not an array was put in
            td_after = None
        where, first = format_path(root, prefix), ()
        if td_after != td:
            where += " (its structure: an entry added, removed or replaced)"
        else:
            for a, b, p in zip(before, after, paths):
                if a.shape != b.shape:
                    where = format_path(root, prefix + p) + f" (shape {a.shape} became {b.shape})"
                    break
                nan = bool(np.issubdtype(a.dtype, np.inexact))
                if not np.array_equal(a, b, equal_nan=nan):
                    changed = (a != b) & ~(np.isnan(a) & np.isnan(b)) if nan else a != b
                    first = tuple(int(i) for i in np.argwhere(changed)[0]) if a.ndim else ()
                    where = format_path(root, prefix + p)
                    break
            else:
                continue
        sep = " " if root in ("primal", "tangents") and first else ""
        fn_itself = deriv in ("f", "loss_fn")
        hint = "write x = x - m, not x -= m" if fn_itself else "copy first, dx = dy.copy()"
        if td_after != td:
            hint = "build a new container, not p['key'] = ... on the one given"
        raise ValueError(f"{deriv} wrote into its argument {where}{sep}{format_index(first)}: "
                         f"{'a function under test' if fn_itself else 'a derivative'} must leave its inputs as they "
                         f"are (its caller still holds them: {hint}); the check cannot judge a function "
                         "that changes what it is given")
    return out


def _twin_notes(f_leaves: list[np.ndarray], jax_out, treedef, paths, what: str) -> list[str]:
    """A note where ``jax_fn``'s output at the primals differs from f's by more than sqrt(u) of
    the leaf's largest entry: two codings of one function in one dtype agree to rounding far
    below that unless it loses half its digits, so the JAX oracles then check another function."""
    try:
        j_leaves = flatten(by_key(jax_out, treedef, root="output", what="jax_fn's output"), what="jax_fn's output")[0]
    except (TypeError, ValueError) as e:
        return [f"jax_fn's output does not match {what}'s structure ({e})"]
    notes = []
    for a, b, p in zip(f_leaves, j_leaves, paths):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or not np.issubdtype(a.dtype, np.inexact):
            continue
        scale = float(np.max(np.abs(a), initial=0.0))
        with np.errstate(invalid="ignore"):   # inf - inf
            gap = np.abs(a.astype(np.float64) - b.astype(np.float64))
        gap = np.where(np.isnan(gap), np.inf, gap)    # a NaN of jax_fn where f is finite differs too
        u = np.finfo(_narrower(a.dtype, b.dtype) if b.dtype.kind == "f" else a.dtype).eps   # JAX's float32 beside f's float64
        if np.any(gap > np.sqrt(u) * scale):
            i = np.unravel_index(int(np.argmax(gap)), a.shape)
            notes.append(f"jax_fn and {what} differ: at {format_path('output', p)}{format_index(i)} {what} gives "
                         f"{a[i]:.8g}, jax_fn {b[i]:.8g}; unless {what} cancels to rounding there, the JAX oracles "
                         "check another function, and their verdict says nothing about the derivative under test")
            break
    return notes


def _jax_scalar(out) -> float:
    """A scalar jax_fn's value at the params: a real floating 0-d value (jax.grad differentiates
    nothing else) and finite, as loss_fn's must be (its NaN failed a correct derivative: a review)."""
    a = None if isinstance(out, (Mapping, list, tuple)) else np.asarray(out)
    if a is None or a.shape != () or a.dtype.kind != "f":
        got = type(out).__name__ if a is None else f"dtype {a.dtype}, shape {a.shape}"
        raise TypeError(f"jax_fn must return a real floating scalar (jax.grad takes no other); got {got}")
    if not np.isfinite(a):
        raise ValueError(f"jax_fn is not finite at the given point ({float(a)}); the JAX oracles need a finite value")
    return float(a)


def _refuse_nonfinite_twin(f_leaves: list[np.ndarray], jax_out, treedef, paths) -> None:
    """A ValueError where jax_fn's output at the primals is NaN or inf and f's is finite: the JAX
    oracles would fail a correct derivative there (a review). Structures that do not match are
    left to :func:`_twin_notes`."""
    try:
        j_leaves = flatten(by_key(jax_out, treedef, root="output", what="jax_fn's output"), what="jax_fn's output")[0]
    except (TypeError, ValueError):
        return
    for a, b, p in zip(f_leaves, j_leaves, paths):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or b.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(b) & np.isfinite(a)
        if bad.any():
            i = np.unravel_index(int(np.argmax(bad)), a.shape)
            raise ValueError(f"jax_fn is not finite at {format_path('output', p)}{format_index(i)} ({b[i]}) where f "
                             f"is ({a[i]:.8g}); the JAX oracles need finite values")


#: the options check_vjp and check_hvp pass on to check_gradients
_GRADIENT_OPTIONS = ("analytic", "kinks", "oracles", "per_coordinate", "n_directions", "seed", "loss_error", "grad_error")


def _check_call_args(check: str, functions: dict[str, Any], options: dict, own: tuple[str, ...]) -> None:
    """Each of ``functions`` callable (None allowed for an optional one: name it with a trailing
    '?'), and ``options`` all among :data:`_GRADIENT_OPTIONS`: a TypeError naming ``check`` and
    every keyword it takes (``name``, its ``own``, the gradient options)."""
    for name, fn in functions.items():
        if fn is None and name.endswith("?"):
            continue
        if not callable(fn):
            raise TypeError(f"{check}: {name.rstrip('?')} must be a function; got {type(fn).__name__} {fn!r:.60}")
    unknown = [k for k in options if k not in _GRADIENT_OPTIONS]
    if unknown:
        raise TypeError(f"{check} got unexpected option(s): {', '.join(unknown)}; its options are: "
                        f"{', '.join(('name',) + own + _GRADIENT_OPTIONS)} (a keyword argument of the function "
                        "under test goes in functools.partial(f, key=value))")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_count(name: str, n) -> None:
    if not (_is_int(n) and n >= 1):
        raise ValueError(f"{name} must be an integer >= 1; got {n!r}")


def _check_finite_tree(leaves, paths, root: str) -> None:
    for L, p in zip(leaves, paths):
        a = np.asarray(L)
        if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
            i = np.unravel_index(int(np.flatnonzero(~np.isfinite(a))[0]), a.shape)
            raise ValueError(f"{format_path(root, p)}{format_index(i)} is not finite ({a[i]})")


def _check_grad_error(grad_error, flat) -> None:
    """One finite array >= 0 per floating-point leaf of ``flat``, shaped like it."""
    floats = [(L, p) for L, p, fl in zip(flat.leaves, flat.paths, flat.float_) if fl]
    if not isinstance(grad_error, (list, tuple)) or len(grad_error) != len(floats):
        raise ValueError(f"grad_error must be a list of {len(floats)} arrays, one per floating-point leaf of "
                         f"{flat.root}")
    for e, (L, p) in zip(grad_error, floats):
        e = np.asarray(e)
        fits = np.issubdtype(e.dtype, np.number) and not np.iscomplexobj(e) and e.ndim <= L.ndim and all(
            a in (1, b) for a, b in zip(e.shape[::-1], L.shape[::-1]))
        if not (fits and np.all(np.isfinite(e)) and np.all(e >= 0)):
            raise ValueError(f"grad_error for {format_path(flat.root, p)} must be finite numbers >= 0 of shape "
                             f"{L.shape} (or one that broadcasts to it); got {e.dtype} of shape {e.shape}")


def check_gradients(
    loss_fn: Callable[[Any], float],
    grad_fn: Callable[[Any], Any],
    params: Any,
    *,
    jax_fn: Callable | None = None,
    analytic: bool | None = None,
    kinks: Callable[[Any], np.ndarray] | None = None,
    jax_loss_fn: Callable | None = None,
    oracles: Sequence[str] | None = None,
    per_coordinate: bool | None = None,
    n_directions: int = 20,
    seed: int = 0,
    name: str = "grad",
    loss_error: float | None = None,
    grad_error: Sequence[np.ndarray] | None = None,
    _jax_fns: tuple[Callable, Callable] | None = None,
    _root: str = "params",
    _names: dict[str, str] | None = None,
    _notes: Sequence[str] = (),
    _deriv: str | None = None,
    _linear_in: tuple[np.ndarray, np.ndarray | None, float, Callable[[np.ndarray], Any]] | None = None,
    _out_dtype: np.dtype | None = None,
    _per_dtype: bool = True,
    _wide: tuple[Callable[[Any], Any], float, Callable[[Any], Any] | None, Callable[[Any, Any], float] | None] | None = None,
) -> Verdict:
    """Check ``grad_fn(params)`` (same structure as ``params``) against every applicable oracle.

    ``loss_fn(params)`` returns a scalar. ``params``: any pytree of arrays (module docstring).
    Options (none needed for a correct answer): ``jax_fn`` the same loss in ``jax.numpy``
    (adds ``jax_grad`` and ``jax_jvp``; ``jax_loss_fn`` is its old name); ``analytic``: None
    probes whether the complex step works, False skips it, True requires it; ``oracles``
    restricts to a subset of fd, complex_step, jax_grad, jax_jvp; ``per_coordinate`` (default:
    up to PER_COORDINATE_LIMIT inputs); ``n_directions`` (1..64) random +-1 directions, which
    miss an error with any entry above tolerance with probability <= 2^-n_directions;
    ``seed``; ``name`` for the report. Declared bounds (the network path): ``kinks(params)``
    returns the sign pattern at every kink, ``loss_error`` the loss's absolute rounding error,
    ``grad_error`` per-entry bounds on the gradient's."""
    if _root == "params" and not _deriv:   # a user's call (check_vjp and check_hvp check their own)
        _check_call_args("check_gradients", {"loss_fn": loss_fn, "grad_fn": grad_fn, "jax_fn?": jax_fn,
                                             "jax_loss_fn?": jax_loss_fn}, {}, ())
    seed = _checks.check_seed(seed)
    flat = Flat(params, _root, what="params" if _root == "params" else "primals")
    if _out_dtype is not None:   # check_vjp: its loss <c, f(x)> is a float64 sum of f's outputs
        flat.set_output(_out_dtype)
    if grad_error is not None:
        _check_grad_error(grad_error, flat)
    what = "loss_fn" if _root == "params" else "f"
    deriv = _deriv or ("grad_fn" if _root == "params" else "vjp_fn")
    if _names and "jax_grad" in _names and _names["jax_grad"] == "jax_hvp":
        what = "s(x) = <grad f(x), v>"

    def F_on(fl: Flat) -> Callable[[np.ndarray], float]:   # f of the flat vector, leaves in fl's dtypes
        def F(x, guarded=False):   # guarded: on copies, refusing a loss_fn that writes into them
            tree = fl.build(x)
            raw = _near(fl, x, what, (lambda: _leaving_inputs(loss_fn, "loss_fn", [(tree, "params", ())])) if guarded
                        else (lambda: loss_fn(tree)))
            if not fl.output_known:   # the dtype of f's value, once, at x (blackbox.measure calls F first)
                fl.set_output(_scalar_array(raw, what).dtype)
            v = _scalar_out(raw, what)
            if isinstance(v, complex) and not np.iscomplexobj(x):   # a complex dtype at real inputs: its real
                if v.imag != 0:                                     # value, as check_hvp reads it, or refused
                    raise ValueError(f"{what} returned a complex number ({v}) at real inputs; the checks here are "
                                     "of real-valued functions")
                return v.real
            return v
        return F

    F, flat64 = F_on(flat), flat.promoted()
    if _root == "params" and not _deriv:   # a user's loss (check_vjp and check_jvp look at f's outputs)
        _same_again("loss_fn", [np.float64(F(flat.x, guarded=True))], [np.float64(F(flat.x))], [()], "loss", flat.u)

    def leaves_at(x) -> list[np.ndarray]:
        tree = flat.build(x)
        out = _near(flat, x, deriv, (lambda: grad_fn(tree)) if _root != "params" or _deriv
                    else (lambda: _leaving_inputs(grad_fn, "grad_fn", [(tree, "params", ())])))
        return same_structure(out, flat.treedef, flat.leaves, flat.paths, root=_root, what=deriv)

    def grad_flat(x) -> np.ndarray:
        return flat.flat(leaves_at(x))

    rng = np.random.default_rng(seed + 7919)
    first = leaves_at(flat.x)
    g = flat.flat(first)
    again = grad_flat(flat.x) if flat.n else g   # at once: a buffer never zeroed reads 2 g, not 18 g
    _notes = list(_notes) + [   # a narrower float than the input's: say why its entries fail
        f"{deriv} returned {L.dtype} for {format_path(_root, p)}, a {d} input: its values carry {L.dtype} "
        f"rounding, which {d} tolerances do not allow" for L, p, d, fl in zip(first, flat.paths, flat.dtypes, flat.float_)
        if fl and np.issubdtype(L.dtype, np.floating) and L.dtype.itemsize < d.itemsize] + [
        f"{format_path(_root, p)} ({d}) is held constant: {deriv}'s entry for it is not checked"
        for p, d, fl in zip(flat.paths, flat.dtypes, flat.float_) if not fl]
    if _root == "params" and not _deriv:   # a user's loss (check_vjp says it of f)
        _notes += _coarser_output_note(flat.value_dtype, flat, "loss_fn", "params")
    sigma = _grad_noise(flat, grad_flat, rng) if grad_error is None and loss_error is None and flat.n else None
    same = (again == g) | (np.isnan(again) & np.isnan(g))   # an inf or NaN repeated is no difference
    g_second = again
    again, g_cmp = np.where(same, 0.0, again), np.where(same, 0.0, g)
    repeats = bool(same.all())
    rounding = None
    c0, steps, u_c, grad_at = _linear_in or (np.zeros(0), None, 0.0, None)
    linear = bool(c0.size) and steps is not None
    if sigma is not None and linear:   # check_vjp: g's rounding as the cotangent moves (module docstring, step 3)

        def g_of(c):   # the derivative at another cotangent
            return flat.flat(same_structure(grad_at(c), flat.treedef, flat.leaves, flat.paths, root=_root, what=deriv))

        # rounding of g against itself: 64 u of its leaf's largest (not float64's EXACT_RTOL, which
        # let noise of 1e-9 drawn per call buy an allowance; torch's float32 index sums differ by less)
        tol_first = _exact_tol(g, flat, None, grad_error, dtype_only=True)

        def near(a, b, k):   # within k times rounding, entry by entry
            with np.errstate(invalid="ignore", over="ignore"):
                return bool(np.all(np.abs(a - b) <= k * tol_first))

        # only where a second call repeats the first and 2c gives 2 g, within rounding (a mask drawn
        # per call, or seeded by c, moves entries by their size; sums in another order, torch's, by rounding)
        with np.errstate(over="ignore"):   # 2 g of a g near float64's largest: inf, not near, no allowance
            linear = near(again, g_cmp, 1) and near(g_of(2 * c0), 2 * g, 2)
        if linear:
            rounding = _linear_noise(c0, steps, u_c, g_of)
            sigma = np.maximum(sigma, rounding)
    jf = _pick_jax(jax_fn, jax_loss_fn)
    jax_full = jax_dir = None
    if _jax_fns is not None:
        jax_full = lambda: flat.flat(flatten(_jax_tree(_jax_fns[0](_split_tree(flat)), flat))[0])  # noqa: E731
        jax_dir = lambda v: float(_jax_fns[1](_split_tree(flat), _split(flat, v)))  # noqa: E731
    elif jf is not None:
        jax, jf = _jax(jf)
        tree = flat.build(flat.x)
        _jax_takes(jax, tree, "params")
        a, b = _scalar_out(loss_fn(tree), what), _jax_scalar(jf(tree))
        if abs(a - b) > np.sqrt(2 * flat.u) * abs(a):   # as _twin_notes
            _notes = list(_notes) + [f"jax_fn and loss_fn differ: loss_fn gives {a:.8g}, jax_fn {b:.8g}; unless "
                                     "loss_fn cancels to rounding there, the JAX oracles check another function, "
                                     "and their verdict says nothing about grad_fn"]
        grad = jax.grad(jf, allow_int=True)
        jvp = _compiled(jax, lambda t, vt: jax.jvp(jf, (t,), (vt,))[1])

        def jax_full():
            return flat.flat(flatten(_jax_tree(grad(tree), flat))[0])

        def jax_dir(v):
            vt = flat.build(v)
            vt = _zero_consts(flat, vt, jax)
            return float(np.real(jvp(tree, vt)))

    if _wide is None and _root == "params" and not _deriv:
        # a user's loss (step 5): grad_fn, and JAX's gradient, again at the params in float64. The
        # allowance's scale is a scalar's cotangent, 1 (check_vjp of the loss would draw |c| ~ 1):
        # a float32 softmax cross-entropy's p - 1, a tanh unit's 1 - t^2 and jax.grad's alike carry
        # absolute errors ~u that no noise shows (a review: 6-10 of 10 seeds failed correct ones)
        jax_tree_wide = jax_jvp_wide = None
        if jf is not None:
            jax_tree_wide = grad                 # JAX's gradient takes the float64 tree as it is

            def jax_jvp_wide(tree64, vt):
                return float(np.real(jvp(tree64, _zero_consts(flat, vt, jax))))

        _wide = (grad_fn, 1.0, jax_tree_wide, jax_jvp_wide)
    wide = jax_wide = jax_dir_wide = wide_spread = None
    if _wide is not None and flat64 is not None and flat.n:   # g in float64 (step 5)
        grad_wide, wide_scale, jax_tree_wide, jax_jvp_wide = _wide
        tree64 = flat64.build(flat.x)
        # the checker's own extra calls: their warnings are not the user's, nor do they decide

        def g64_at(z):
            """g in float64 at the float64 point z (None where it computes in the narrow dtype
            whatever it is given: no float64 value to compare)."""
            out = same_structure(grad_wide(flat64.build(z)), flat.treedef, flat.leaves, flat.paths, root=_root, what=deriv)
            return flat.flat(out) if all(not fl or np.asarray(L).dtype == np.float64
                                         for L, fl in zip(out, flat.float_)) else None

        @functools.cache
        def wide():
            try:
                with warnings.catch_warnings(action="ignore"):
                    return g64_at(flat.x)
            except Exception:   # noqa: BLE001 - vjp_fn refuses float64: the leaf's verdict stands
                return None

        if repeats:   # a derivative that moves between calls has no rounding to measure

            @functools.cache
            def wide_spread():
                return None if wide() is None else _rounding_spread(flat, grad_flat, g64_at, seed)

        if jax_jvp_wide is not None:
            def jax_dir_wide(v):
                with warnings.catch_warnings(action="ignore"):
                    return jax_jvp_wide(tree64, flat64.build(v))

        if jax_tree_wide is not None:
            def jax_wide():
                try:
                    with warnings.catch_warnings(action="ignore"):
                        return flat.flat(flatten(_jax_tree(jax_tree_wide(tree64), flat64))[0])
                except Exception:   # noqa: BLE001 - jax_fn refuses float64: the leaf's verdict stands
                    return None
    def judged(g: np.ndarray, extra_notes: Sequence[str]) -> Verdict:
        """The oracles' verdict on ``g``, one call's derivative (flat)."""
        g_finite = bool(np.isfinite(g).all())

        def gdot(v) -> float:
            """<g, v>. Where g holds a NaN or inf, over v's nonzero entries only: 0 * NaN is NaN,
            and the bisection blamed entries of x for a NaN in another input (a review). (Called
            only inside _check_core, under _quiet_unless_finite.)"""
            if g_finite:
                return float(g @ v)
            nz = np.flatnonzero(v)
            return float(g[nz] @ v[nz])

        with _quiet_unless_finite(g):
            return _check_core(
                F, flat, _Subject(g, gdot, sigma, rounding, wide, _wide[1] if _wide is not None else 0.0,
                                  "params promoted" if _root == "params" else "primals and cotangent promoted",
                                  wide_spread=wide_spread),
                name=name, what=what,
                oracles=oracles, analytic=analytic, kinks=kinks, loss_error=loss_error, grad_error=grad_error,
                per_coordinate=per_coordinate, n_directions=n_directions, seed=seed,
                jax_full=jax_full, jax_dir=jax_dir, names=dict(_names or {}, deriv=deriv), extra_notes=extra_notes,
                per_dtype=_per_dtype, promoted=None if flat64 is None or not _per_dtype else (flat64, F_on(flat64)),
                jax_wide=jax_wide, jax_dir_wide=jax_dir_wide)

    v = judged(g, _notes)
    if not repeats:   # a derivative is a function: a second call that moves it grossly is a fault
        r = _per_coord_result("first_call", flat, again, g_cmp, _first_call_tol(flat, g, again, g_cmp))
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.abs(again - g_cmp)
        moved = float(np.where(np.isnan(d), np.inf, d).max(initial=0.0))
        # within the gross allowance, the oracles judge the second call as they judged the first:
        # FIRST_CALL_RTOL of the largest |g| let a small leaf flip its sign from the second call on
        second = [] if not r.passed else [s for s in judged(g_second, ()).results if not s.passed]
        for s in second:
            s.oracle += " (second call)"
        v.notes.append(f"{deriv} called twice at the same inputs returned other values the second time (by up to "
                       f"{moved:.2e}): " + ("more than a sum in another order moves them; first_call lists the second "
                                            "call's entries against the first's (the oracles judge the first)"
                                            if not r.passed else
                                            "the oracles, which judge the first call, fail the second (their results "
                                            "marked 'second call')" if second else
                                            "the oracles pass both calls") +
                       ("; no allowance for its rounding was made" if linear and rounding is None else ""))
        v.results += [r] if not r.passed else second
    return v


def _jax_tree(tree, flat: Flat):
    """A JAX derivative in the key order of ``flat``'s tree (JAX sorts dict keys). All leaves
    are kept, float0 ones included: ``flat.flat`` keeps the floating ones."""
    return by_key(tree, flat.treedef, root=flat.root, what="jax_fn's derivative")


def _split_tree(flat: Flat):
    return _split(flat, flat.x)


def _zero_consts(flat: Flat, tree, jax):
    """Tangents for integer leaves must be float0 zeros in JAX (kept as arrays: a 0-d float0
    read back as a NumPy scalar is a numpy.void, which JAX refuses)."""
    leaves, _, td = flatten(tree)
    out = []
    for L, fl in zip(leaves, flat.float_):
        out.append(L if fl else np.zeros(np.shape(L), dtype=jax.dtypes.float0))
    return unflatten(td, out, scalars=False)


def _as_tuple(out, n: int, what: str, primals: tuple = ()) -> tuple:
    """``out`` as one entry per primal; else a ValueError, saying which primals want None (an
    integer or boolean one: a VJP written for x alone, ``return dx``, beside integer labels)."""
    if n == 1 and not (isinstance(out, (tuple, list)) and len(out) == 1):
        return (out,)
    if not isinstance(out, (tuple, list)) or len(out) != n:
        got = f"a {type(out).__name__} of length {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
        fixed = [i for i, p in enumerate(primals)   # a leaf, not a tree (np.asarray of a ragged list raises)
                 if isinstance(p, (np.ndarray, np.generic, bool, int)) and np.asarray(p).dtype.kind in "biu"]
        kind = "an integer or boolean input" if len(fixed) == 1 else "integer or boolean inputs"
        hint = f" (None for {', '.join(f'primal {i}' for i in fixed)}: {kind}, held fixed)" if fixed else ""
        raise ValueError(f"{what} must return a tuple with one entry per primal ({n}){hint}; got {got}")
    return tuple(out)


def _fill_none(out: tuple, primals: tuple) -> tuple:
    """None for a constant (integer/boolean) array primal is read as zeros of its shape; a None
    for a floating-point primal is left for ``same_structure`` to refuse by name."""
    return tuple(np.zeros(np.shape(p)) if o is None and _is_constant(p) else o for o, p in zip(out, primals))


def _is_constant(p) -> bool:
    return isinstance(p, (np.ndarray, np.generic, bool, int)) and not np.issubdtype(np.asarray(p).dtype, np.inexact)


def _out_info(f, primals, u_in: float, deriv: str):
    """f's output leaves, their paths and structure, f called on copies of the primals: a
    forward pass that writes into x (x -= x.max()) is refused, as a derivative that does is (it
    changed the caller's x, and the derivative was then checked at the changed point). A
    TypeError of that first call gets a note: ``deriv`` (vjp_fn, jvp_fn) passed as f takes one
    argument more than the primals."""
    args = [(p, "primal", (i,)) for i, p in enumerate(primals)]
    try:
        out = _leaving_inputs(f, "f", args)
    except TypeError as e:
        e.add_note(f"autodiff_check: f(*primals) raised this, called with the {len(primals)} primal{'s' * (len(primals) != 1)} given; "
                   f"the call is check_{deriv[:3]}(f, {deriv}, *primals), and {deriv} takes one argument more "
                   f"than f: are f and {deriv} swapped?")
        raise
    leaves, paths, td = flatten(out, what="f's output")
    leaves = [np.asarray(L) for L in leaves]
    for a, p in zip(leaves, paths):
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):   # a mask beside the value: as an int
            raise ValueError(f"f returned dtype {a.dtype} at {format_path('output', p)}; expected numbers")
        if np.iscomplexobj(a):   # (a cotangent of a complex output would need a convention; f(x).real is the real function)
            raise ValueError(f"f returned complex dtype {a.dtype} at {format_path('output', p)} for real "
                             "inputs; the checks here are of real-valued functions (return its real part)")
        bad = ~np.isfinite(a)   # named here: <c, f(x)> would only say that the sum is not finite
        if bad.any():
            i = np.unravel_index(int(np.argmax(bad)), bad.shape)
            raise ValueError(f"f is not finite at {format_path('output', p)}{format_index(i)} ({a[i]}); "
                             "derivatives need a finite value")
    _same_again("f", leaves, flatten(_leaving_inputs(f, "f", args), what="f's output")[0], paths, "output", u_in)
    return leaves, paths, td


def _same_again(what: str, first: Sequence, again: Sequence, paths: Sequence, root: str, u_in: float) -> None:
    """A ValueError where a second call of the function under test, at the same input, differs
    from the first beyond sqrt(u) of the leaf's largest |value|, u the coarser of the leaf's and
    ``u_in``, the inputs' (a float32 sum returned as a Python float). The oracles compare f at
    nearby inputs; a random draw inside f (a dropout mask) makes those differences noise that
    hides any error (such a check passed). Entries far below the leaf's largest may still vary
    unseen (a dropout on them under an entry 1e5 larger, in float32). Summation in another
    order (a threaded BLAS, MKL by alignment) moves an entry by at most gamma_n sum|terms|
    (Higham 3.1): beyond sqrt(u) max|f| it needs a cancellation of 1/sqrt(u) within one entry,
    where the differences resolve nothing anyway."""
    for a, b, p in zip(first, again, paths):
        a, b = np.asarray(a), np.asarray(b)
        where = format_path(root, p)
        if a.shape != b.shape:
            raise ValueError(f"{what} returned shape {b.shape} at {where} on a second call at the same input, "
                             f"{a.shape} on the first: the checks need the same function on every call")
        if a.dtype.kind in "fc":
            ok_a = np.isfinite(a)
            tol = np.sqrt(max(float(np.finfo(a.dtype).eps) / 2, u_in)) * float(np.abs(a[ok_a]).max(initial=0.0))
            with np.errstate(invalid="ignore", over="ignore"):
                off = np.where(ok_a & np.isfinite(b), np.abs(a - b) > tol, (a != b) & ~(np.isnan(a) & np.isnan(b)))
        elif a.dtype.kind in "biu":
            off, tol = a != b, 0.0
        else:                                  # not a number NumPy knows (refused later, by name)
            continue
        if np.any(off):
            i = tuple(int(k) for k in np.argwhere(off)[0]) if a.ndim else ()
            raise ValueError(f"{what} gave different values at the same input ({where}{format_index(i)}: {a[i].item()!r}, "
                             f"then {b[i].item()!r}, beyond the {tol:.2g} allowed for a sum taken in another "
                             "order). A random draw inside it (a dropout mask?) makes every difference the checks "
                             "take noise: draw it outside and pass it in, or seed it inside")


def _coarser_output_note(dt: np.dtype | None, flat: Flat, what: str = "f", inputs: str = "inputs") -> list[str]:
    """A note where ``what``'s value, of dtype ``dt``, is in a coarser float than every floating
    input (float32 from float64: jax.numpy with x64 off computes so): its oracles then tell no
    finer than that."""
    if dt is None or dt.kind != "f" or unit_roundoff(dt) <= flat.u:
        return []
    ins = " and ".join(sorted({str(d) for d, fl in zip(flat.dtypes, flat.float_) if fl}))
    return [f"{what} returned {dt} for {ins} {inputs}: it computes in {dt} (jax.numpy does with jax_enable_x64 "
            f"off), so finite differences and the complex step through it carry {dt} rounding and the check "
            "tells no finer than that"]


def _coarsest_float(leaves) -> np.dtype | None:
    """The floating dtype of ``leaves`` with the largest unit roundoff (f's outputs: the
    precision of <c, f(x)>, which sums them in float64); None without one."""
    fl = [L.dtype for L in leaves if np.issubdtype(L.dtype, np.floating)]
    return max(fl, key=lambda d: np.finfo(d).eps) if fl else None


def _jax_output(jax, jax_fn: Callable, primals) -> Any:
    """jax_fn's output at the primals as ``jax.vjp`` computes it, whose dtypes its pullback
    insists on: called on NumPy arrays, a jax_fn that starts with NumPy's operators (``s * z``,
    s an int64 array, z float32) computes in NumPy's promotion (float64) where traced it stays
    float32 (a review: a masked mean crashed in JAX's pullback). Eagerly where JAX cannot trace
    it (an integer primal used as a shape)."""
    try:
        return jax.vjp(lambda *p: jax_fn(*p), *primals)[0]
    except Exception:   # noqa: BLE001 - the eager call below raises the user's own error, if any
        return jax_fn(*primals)


def _exact_in_both(c_leaves: list, jax_dtypes: list) -> list:
    """Each cotangent leaf rounded through the narrower of its dtype and jax_fn's output dtype
    there (where they differ), so that it is the same vector in both."""
    with np.errstate(over="ignore", under="ignore"):   # a given 1e40 becomes inf: not exact, refused by the caller
        return [c.astype(_narrower(c.dtype, j)).astype(c.dtype) if j is not None and c.dtype.kind == "f" else c
                for c, j in zip(c_leaves, jax_dtypes)]


def _narrower(a: np.dtype, b: np.dtype) -> np.dtype:
    """The float dtype of ``a`` and ``b`` with the larger unit roundoff."""
    return max(np.dtype(a), np.dtype(b), key=lambda d: np.finfo(d).eps)


def _jax_out_dtypes(f_leaves, jax_out, treedef, paths) -> tuple[list, list[str]]:
    """Per output leaf of f: jax_fn's float dtype there where it differs from f's (both floating),
    else None; and a note naming the first such leaf. JAX's pullback takes a cotangent only in
    its output's dtype: a float64 cotangent for float32 outputs raised JAX's ValueError (f = x **
    np.int64(3) of float32 x, which NumPy 2 promotes to float64, with jax_fn = x ** 3)."""
    try:
        j_leaves = flatten(by_key(jax_out, treedef, root="output", what="jax_fn's output"), what="jax_fn's output")[0]
    except (TypeError, ValueError) as e:   # jax.vjp's pullback would refuse the cotangent deep inside JAX
        raise ValueError(f"jax_fn's output does not have f's structure ({e}): jax_fn must compute the same "
                         "function, returning what f returns") from None
    import jax

    _jax_takes(jax, unflatten(treedef, list(f_leaves)), "f's output")
    mine, theirs = jax.tree_util.tree_structure(unflatten(treedef, list(f_leaves))), jax.tree_util.tree_structure(jax_out)
    if mine != theirs:   # (y,) against y, say: jax.vjp's pullback takes the cotangent in its own structure only
        raise ValueError(f"jax_fn's output has the structure {theirs} where f's has {mine}: jax_fn must compute "
                         "the same function, returning what f returns")
    dts, notes = [], []
    for a, b, p in zip(f_leaves, j_leaves, paths):
        if np.shape(a) != np.shape(b):   # JAX's pullback would refuse the cotangent with its own error
            raise ValueError(f"jax_fn's output at {format_path('output', p)} has shape {np.shape(b)} where f's has "
                             f"{np.shape(a)}: jax_fn must compute the same function")
        da, db = np.asarray(a).dtype, np.dtype(getattr(b, "dtype", np.asarray(b).dtype))
        differ = da.kind == "f" and db.kind == "f" and da != db
        dts.append(db if differ else None)
        if differ and not notes:
            notes.append(f"f returns {da} at {format_path('output', p)} where jax_fn returns {db} (NumPy 2 promotes, "
                         f"e.g. float32 ** np.int64(3) to float64; JAX does not): the cotangent there is exact in "
                         f"{_narrower(da, db)} (drawn so, or checked where given) and handed to jax.vjp in {db}")
    return dts, notes


def _random_cotangent(leaves, rng):
    """Gaussian, in each output leaf's own float dtype (float32 stays float32); zeros (float64)
    for an integer or boolean output, piecewise constant in the inputs (JAX's float0: its
    cotangent is 0, and <c, f> ignores it rather than jump where an argmax or a mask changes)."""
    out = []
    for L in leaves:
        c = rng.standard_normal(L.shape)                 # drawn for every leaf: later leaves' cotangents unchanged
        out.append(np.zeros(L.shape) if L.dtype.kind in "biu" else c.astype(L.dtype))
    return out


def _contract(c_leaves, out, td_shape_leaves, what="f") -> complex | float:
    leaves, _, _ = flatten(out, what="f's output")

    def differs(got, want) -> ValueError:   # f against itself at the primals; a tangent against f's output
        if what == "f":
            return ValueError(f"f returned {got} at a perturbed input; {want} at the primals")
        return ValueError(f"{what} returned {got}; f's output at the primals: {want} ({what}'s output is the tangent "
                          "of f's, in its structure and shapes)")

    if len(leaves) != len(c_leaves):
        raise differs(f"{len(leaves)} output array(s)", f"{len(c_leaves)} output array(s)")
    total = 0.0
    for c, y in zip(c_leaves, leaves):
        y = np.asarray(y)
        if y.dtype.kind == "V":    # JAX's float0: the tangent of an integer output, 0 by definition
            continue
        if y.shape != c.shape:
            raise differs(f"output shape {y.shape}", c.shape)
        # c inf summed over mixed signs: NaN; a jvp near float64's largest number: an overflow to inf.
        # Either fails against the finite differences, judged by the caller (a review: overflow warnings)
        with np.errstate(invalid="ignore", over="ignore"):
            total = total + np.sum(c.astype(np.float64) * (y if np.iscomplexobj(y) else y.astype(np.float64)))
    return complex(total) if np.iscomplexobj(total) else float(total)


def check_vjp(f: Callable, vjp_fn: Callable, *primals, jax_fn: Callable | None = None, n_cotangents: int = 1,
              cotangent: Any = None, **options) -> Verdict:
    """Check a layer's backward pass: ``vjp_fn(cotangent, *primals)`` returns one cotangent per
    primal (each with that primal's structure; None for an integer primal), ``f(*primals)`` an
    array or a pytree of arrays. The cotangent is Gaussian in the output's dtype (or yours,
    ``cotangent=``); the check is ``check_gradients`` of x -> <c, f(x)> with gradient
    ``vjp_fn(c, x)``. ``jax_fn`` (f in jax.numpy) adds ``jax.vjp`` and ``jax.jvp``. Other
    options as :func:`check_gradients`. Paths read ``primal 0 [2, 1, 4]``."""
    if not primals:
        raise ValueError("check_vjp needs at least one primal: check_vjp(f, vjp_fn, x, W, b)")
    name = options.pop("name", "vjp")
    _check_call_args("check_vjp", {"f": f, "vjp_fn": vjp_fn, "jax_fn?": jax_fn}, options,
                     ("jax_fn", "n_cotangents", "cotangent"))
    seed = options.get("seed", 0)
    seed = _checks.check_seed(seed)
    _check_count("n_cotangents", n_cotangents)
    flat = Flat(tuple(primals), "primal", what="primals")   # the inputs are checked before f sees them
    rng = np.random.default_rng(seed + 104729)
    out_leaves, out_paths, out_td = _out_info(f, primals, flat.u, "vjp_fn")
    twin, jax_dtypes = [], [None] * len(out_leaves)
    if jax_fn is not None:
        jax, jax_fn = _jax(jax_fn)
        _jax_takes(jax, primals, "primals")
        jvp = _compiled(jax, lambda p, t: jax.jvp(jax_fn, p, t)[1])
        jax_out = _jax_output(jax, jax_fn, primals)
        _jax_takes(jax, jax_out, "jax_fn's output")
        _refuse_nonfinite_twin(out_leaves, jax_out, out_td, out_paths)
        twin = _twin_notes(out_leaves, jax_out, out_td, out_paths, "f")
        jax_dtypes, differ = _jax_out_dtypes(out_leaves, jax_out, out_td, out_paths)
        twin += differ
    twin += _coarser_output_note(_coarsest_float(out_leaves), flat)
    v_all = None
    for k in range(n_cotangents):
        if cotangent is not None:
            c_leaves = same_structure(cotangent, out_td, out_leaves, out_paths, root="output", what="cotangent")
            _check_finite_tree(c_leaves, out_paths, "cotangent")
            c_leaves = [c.astype(L.dtype) if L.dtype.kind == "f" else c for c, L in zip(c_leaves, out_leaves)]
        else:
            c_leaves = _random_cotangent(out_leaves, rng)
        # where f's output and jax_fn's differ in float dtype (NumPy 2 promotes x ** np.int64(3) of
        # float32 x to float64, JAX does not), the cotangent takes values exact in both, and JAX's
        # pullback gets it in its own output's dtype (it refuses any other)
        exact = _exact_in_both(c_leaves, jax_dtypes)
        if cotangent is not None:   # the user's: used as given, so it must be exact in both dtypes
            for c, e, j, p in zip(c_leaves, exact, jax_dtypes, out_paths):
                if j is not None and not np.array_equal(c, e):
                    raise ValueError(f"f returns {c.dtype} at {format_path('output', p)} where jax_fn returns {j}: the "
                                     f"cotangent given there must be exact in {_narrower(c.dtype, j)} (round it, or "
                                     f"make f and jax_fn return the same dtype)")
        c_leaves = exact
        c_tree = unflatten(out_td, c_leaves)   # in the output's shape (a scalar for (1,)) and float dtype, as JAX wants
        c_tree_jax = unflatten(out_td, [c.astype(j) if j is not None and c.dtype.kind == "f" else c
                                        for c, j in zip(c_leaves, jax_dtypes)])

        def loss(prims, c_leaves=c_leaves):
            return _contract(c_leaves, f(*prims), None)

        def grad(prims, c_tree=c_tree):
            args = [(c_tree, "cotangent", ())] + [(p, "primal", (i,)) for i, p in enumerate(prims)]
            return _fill_none(_as_tuple(_leaving_inputs(vjp_fn, "vjp_fn", args), len(primals), "vjp_fn", primals), prims)

        def grad_at(cvec, prims=tuple(flat.build(flat.x)), c_leaves=c_leaves):   # vjp_fn at another cotangent
            leaves, at = [], 0
            for c, L in zip(c_leaves, out_leaves):
                if L.dtype.kind == "f":
                    c, at = cvec[at:at + c.size].reshape(c.shape).astype(c.dtype), at + c.size
                leaves.append(c)
            return grad(prims, unflatten(out_td, leaves))

        moving = [c for c, L in zip(c_leaves, out_leaves) if L.dtype.kind == "f"]
        c_rng = np.random.default_rng(seed + 15485867 + k)   # its own: the checks' draws stay the seed's
        steps = [_ulp_steps(c, c_rng) for c in moving]
        linear_in = (np.concatenate([c.ravel().astype(np.float64) for c in moving] or [np.zeros(0)]),
                     None if any(p is None for p in steps) else np.concatenate(steps or [np.zeros(0)]),
                     max((float(np.finfo(c.dtype).eps) / 2 for c in moving), default=0.0), grad_at)

        jfns = None
        if jax_fn is not None:

            def jgrad(_P, c_tree=c_tree_jax, flat=flat):
                _, pull = jax.vjp(jax_fn, *primals)
                return _fill_none(tuple(pull(c_tree)), primals)

            def jdir(_P, vl, c_leaves=c_leaves, flat=flat):
                vt = _zero_consts(flat, flat.build(np.concatenate([w.ravel() for w in vl]) if vl else np.zeros(0)), jax)
                t = jvp(tuple(primals), tuple(vt))
                return _contract(c_leaves, by_key(t, out_td, root="output", what="jax_fn's output"), None)

            jfns = (jgrad, jdir)  # check_gradients flattens and keeps the floating leaves (once)

        # vjp_fn (and jax.vjp) with the primals and the cotangent in float64 (module docstring, step 5)
        c_tree64 = unflatten(out_td, [c.astype(np.float64) if c.dtype.kind == "f" else c for c in c_leaves])
        c_max = max((float(np.abs(c).max(initial=0.0)) for c, L in zip(c_leaves, out_leaves) if L.dtype.kind == "f"),
                    default=0.0)

        def grad_wide(prims64, c_tree64=c_tree64):
            return grad(tuple(prims64), c_tree64)

        jax_tree_wide = jax_jvp_wide = None
        if jax_fn is not None:   # called with check_gradients' float64 primals

            def jax_tree_wide(prims64, c_tree64=c_tree64):
                _, pull = jax.vjp(jax_fn, *prims64)
                return _fill_none(tuple(pull(c_tree64)), tuple(prims64))

            def jax_jvp_wide(prims64, vt, c64=[np.asarray(c, np.float64) if c.dtype.kind == "f" else c
                                               for c in c_leaves]):
                t = jvp(tuple(prims64), tuple(_zero_consts(flat, vt, jax)))
                return _contract(c64, by_key(t, out_td, root="output", what="jax_fn's output"), None)

        v = check_gradients(loss, grad, tuple(primals), name=name, _jax_fns=jfns, _root="primal",
                            _names={"jax_grad": "jax_vjp"}, _notes=twin, _linear_in=linear_in,
                            _out_dtype=_coarsest_float(out_leaves), _wide=(grad_wide, c_max, jax_tree_wide, jax_jvp_wide),
                            **options)
        v_all = v if v_all is None else v_all
        if k:
            for r in v.results:
                r.oracle += f" (cotangent {k + 1})"
            v_all.results += v.results
    v_all.labels = _primal_labels(f, flat)
    return v_all


def check_jvp(f: Callable, jvp_fn: Callable, *primals, jax_fn: Callable | None = None, **options) -> Verdict:
    """Check a user's forward-mode derivative: ``jvp_fn(tangents, *primals)`` returns the output
    tangent (f's output structure) for ``tangents``, a tuple with one tangent per primal.

    With a Gaussian cotangent c, entry i of x -> <c, jvp_fn(e_i, x)> is the gradient of
    <c, f(x)>, checked entry by entry (up to PER_COORDINATE_LIMIT inputs; above it, <c, jvp_fn(v)>
    along random directions, bisected when wrong). ``jax_fn`` adds ``jax.jvp``."""
    if not primals:
        raise ValueError("check_jvp needs at least one primal")
    name = options.pop("name", "jvp")
    _check_call_args("check_jvp", {"f": f, "jvp_fn": jvp_fn, "jax_fn?": jax_fn}, options, ("jax_fn",))
    seed = options.get("seed", 0)
    seed = _checks.check_seed(seed)
    flat = Flat(tuple(primals), "primal", what="primals")   # the inputs are checked before f sees them
    rng = np.random.default_rng(seed + 15485863)
    out_leaves, out_paths, out_td = _out_info(f, primals, flat.u, "jvp_fn")
    if _coarsest_float(out_leaves) is not None:
        flat.set_output(_coarsest_float(out_leaves))
    c_leaves = _random_cotangent(out_leaves, rng)
    jax_out, jax_dtypes, differ = None, [None] * len(out_leaves), []
    if jax_fn is not None:   # as check_vjp: c exact in f's and jax_fn's output dtypes, handed to JAX in its own
        jax, jax_fn = _jax(jax_fn)
        _jax_takes(jax, primals, "primals")
        jax_out = _jax_output(jax, jax_fn, primals)
        _jax_takes(jax, jax_out, "jax_fn's output")
        _refuse_nonfinite_twin(out_leaves, jax_out, out_td, out_paths)
        jax_dtypes, differ = _jax_out_dtypes(out_leaves, jax_out, out_td, out_paths)
        c_leaves = _exact_in_both(c_leaves, jax_dtypes)
    c_jax = unflatten(out_td, [c.astype(j) if j is not None and c.dtype.kind == "f" else c
                               for c, j in zip(c_leaves, jax_dtypes)])

    def tangents_of(v, fl=flat):   # zeros on integer and boolean leaves, leaf by leaf
        leaves = flatten(fl.build(v))[0]
        return unflatten(flat.treedef, [L if is_float else np.zeros(np.shape(L))
                                        for L, is_float in zip(leaves, flat.float_)])

    def jvp_at(t, prims):
        return _leaving_inputs(jvp_fn, "jvp_fn", [(t, "tangents", ())] + [(p, "primal", (i,)) for i, p in enumerate(prims)])

    def tangent_out(v, prims=primals, fl=flat):   # jvp_fn's output tangent along v at prims, real
        out = by_key(jvp_at(tangents_of(v, fl), prims), out_td, root="output", what="jvp_fn")
        leaves, where, td = flatten(out, what="jvp_fn's output")
        if len(leaves) != len(out_leaves) or any(np.shape(L) != O.shape for L, O in zip(leaves, out_leaves)):
            _contract(c_leaves, out, None, "jvp_fn")   # names the shape against f's (before a product breaks on it)
        for L, p in zip(leaves, where):
            if np.asarray(L).dtype.kind not in "biufc":   # strings, objects: named, not NumPy's float() error
                raise ValueError(f"jvp_fn returned dtype {np.asarray(L).dtype} at {format_path('output', p)}; "
                                 "expected numbers")
            if np.iscomplexobj(L) and np.any(np.imag(L) != 0):
                raise ValueError(f"jvp_fn returned complex values at {format_path('output', p)}; the derivative of a "
                                 "real function at real inputs is real")
        return unflatten(td, [np.real(L) for L in leaves])

    def gdot(v):
        return _contract(c_leaves, tangent_out(v), None, "jvp_fn")

    # Noise of the user's JVP (step 3): s_o, the noise of output o's tangent along a tangent t of
    # random signs and sizes in [1, 2) (each input's term at full size; +-1 alone cancelled exactly
    # in outputs such as t_i - t_j, s_o = 0), weighted by |c_o|. Entry i of g sums only the
    # outputs its tangent reaches, so sigma_i = sum |c_o| s_o over the outputs jvp_fn(e_i) does
    # not leave 0; along directions the noise of <c, jvp_fn(v)> is sum_o |c_o| s_o, spread evenly
    # over the entries. One number for every entry, that whole sum, let a tanh output's JVP 1 %
    # off pass beside outputs a^3 ~ 1e6 and grew with the input's size (a review: 8 of 10 missed at
    # 2,000 inputs, 2e-4 off). An entry that fails an exact oracle then gets its own noise,
    # measured (:func:`_measured_noise`).
    t = rng.choice(np.array([-1.0, 1.0]), size=flat.n) * (1 + rng.random(flat.n))

    def tangent_near(z):   # along t, at a point near the primals
        return _near(flat, flat.rnd(z), "jvp_fn", lambda: tangent_out(t, flat.build(flat.rnd(z))))

    out_noise = _noise_of_output(flat, tangent_near, rng)
    weight = [np.abs(c).astype(np.float64).ravel() * s.ravel() for c, s in zip(c_leaves, out_noise)]
    nonlinear = _homogeneity(tangent_out, t, out_noise, out_paths, flat.n)
    per_coordinate = options.pop("per_coordinate", None)
    if per_coordinate is None:
        per_coordinate = flat.n <= PER_COORDINATE_LIMIT
    g = None
    if per_coordinate:
        g, sigma = np.empty(flat.n), np.zeros(flat.n)
        e = np.zeros(flat.n)
        for i in range(flat.n):
            e[i] = 1.0
            out = tangent_out(e)
            g[i] = _contract(c_leaves, out, None, "jvp_fn")
            sigma[i] = sum(float(w @ (np.asarray(L).ravel() != 0)) for w, L in zip(weight, flatten(out)[0])
                           if w.size and np.asarray(L).dtype.kind != "V")   # JAX's float0: no tangent
            e[i] = 0.0
    else:
        sigma = np.full(flat.n, sum(float(w.sum()) for w in weight) / max(flat.n, 1))

    def F_on(fl: Flat) -> Callable[[np.ndarray], float]:
        return lambda x: _scalar_out(_contract(c_leaves, _near(fl, x, "f", lambda: f(*fl.build(x))), None), "f")

    F, flat64 = F_on(flat), flat.promoted()
    noise_rng, measured = np.random.default_rng(seed + 7907), {}   # its own: the checks' draws stay the seed's

    def entry_noise(idx: np.ndarray) -> np.ndarray:   # noise of g_i along x, each entry once
        todo = [int(i) for i in idx if int(i) not in measured]
        if todo:
            E = np.zeros((len(todo), flat.n))
            E[np.arange(len(todo)), todo] = 1.0

            def g_at(z):
                prims = flat.build(flat.rnd(z))
                return np.array([_contract(c_leaves, _near(flat, flat.rnd(z), "jvp_fn", lambda: tangent_out(e, prims)),
                                           None, "jvp_fn") for e in E])

            with warnings.catch_warnings(action="ignore"):
                measured.update(zip(todo, blackbox.entry_noise(g_at, flat, noise_rng)))
        return np.array([measured[int(i)] for i in idx])

    # jvp_fn (and JAX) with the primals, tangents and cotangent in float64 (module docstring,
    # step 5), entry by entry as g was: per coordinate only
    wide = jax_wide = jax_dir_wide = None
    c64 = [c.astype(np.float64) if c.dtype.kind == "f" else c for c in c_leaves]
    c_max = max((float(np.abs(c).max(initial=0.0)) for c, L in zip(c_leaves, out_leaves) if L.dtype.kind == "f"),
                default=0.0)
    prims64 = None if flat64 is None else tuple(flat64.build(flat.x))
    if per_coordinate and prims64 is not None and flat.n:

        @functools.cache
        def wide():
            g64, e = np.empty(flat.n), np.zeros(flat.n)
            try:
                with warnings.catch_warnings(action="ignore"):
                    for i in range(flat.n):
                        e[i] = 1.0
                        out = tangent_out(e, prims64, flat64)
                        e[i] = 0.0
                        if any(np.asarray(L).dtype.kind == "f" and np.asarray(L).dtype != np.float64
                               for L in flatten(out)[0]):
                            return None   # computes in the narrow dtype whatever it is given
                        g64[i] = _contract(c64, out, None, "jvp_fn")
            except Exception:   # noqa: BLE001 - jvp_fn refuses float64: the verdict stands
                return None
            return g64

    jax_full = jax_dir = None
    if jax_fn is not None:
        jvp = _compiled(jax, lambda p, t: jax.jvp(jax_fn, p, t)[1])

        def jax_dir(v):
            vt = _zero_consts(flat, flat.build(v), jax)
            t = by_key(jvp(tuple(primals), tuple(vt)), out_td, root="output", what="jax_fn's output")
            return float(np.real(_contract(c_leaves, t, None)))

        def jax_full():
            _, pull = jax.vjp(lambda *p: jax_fn(*p), *primals)
            return flat.flat(flatten(_jax_tree(tuple(pull(c_jax)), flat))[0])

        if wide is not None:

            def jax_wide():
                try:
                    with warnings.catch_warnings(action="ignore"):
                        _, pull = jax.vjp(lambda *p: jax_fn(*p), *prims64)
                        return flat.flat(flatten(_jax_tree(tuple(pull(unflatten(out_td, c64))), flat64))[0])
                except Exception:   # noqa: BLE001 - jax_fn refuses float64: the verdict stands
                    return None

            def jax_dir_wide(v):
                with warnings.catch_warnings(action="ignore"):
                    vt = _zero_consts(flat, flat64.build(v), jax)
                    t = by_key(jvp(prims64, tuple(vt)), out_td, root="output", what="jax_fn's output")
                    return float(np.real(_contract(c64, t, None)))

    kw = options   # per_coordinate popped above; the rest checked by _check_call_args
    if kw.get("grad_error") is not None:
        _check_grad_error(kw["grad_error"], flat)
    twin = _twin_notes(out_leaves, jax_out, out_td, out_paths, "f") + differ if jax_fn is not None else []
    twin += _coarser_output_note(_coarsest_float(out_leaves), flat)
    with _quiet_unless_finite(g):
        v = _check_core(F, flat, _Subject(g, gdot, sigma, None, wide, c_max, "primals, tangents and cotangent promoted",
                                          entry_noise if per_coordinate else None),
                        name=name, what="f", per_coordinate=per_coordinate, extra_notes=twin,
                        jax_full=jax_full, jax_dir=jax_dir, names={"jax_grad": "jax_vjp", "deriv": "jvp_fn"},
                        promoted=None if flat64 is None else (flat64, F_on(flat64)),
                        jax_wide=jax_wide, jax_dir_wide=jax_dir_wide,
                        **{"oracles": None, "analytic": None, "kinks": None, "loss_error": None, "grad_error": None,
                           "n_directions": 20, "seed": 0, **kw})
    v.labels = _primal_labels(f, flat)
    if nonlinear is not None:
        v.results.append(nonlinear[0])
        v.notes.append(nonlinear[1])
    if any(not np.isfinite(m.value) for r in v.results for m in r.mismatches):
        v.notes += _not_finite_at_zero_tangent(tangent_out, flat.n, out_paths)
    if any(not r.passed and r.values is not None for r in v.results):
        v.notes.append("the values named at input entry i are <c, jvp_fn(e_i)>: jvp_fn's output for a tangent "
                       "of 1 at entry i, contracted with a random cotangent c (seed), one number per "
                       "column of the Jacobian; a wrong one is a wrong column, whichever output entries it is in")
    return v


def _homogeneity(tangent_out: Callable, t: np.ndarray, out_noise: list[np.ndarray], out_paths: list,
                 n: int) -> tuple[OracleResult, str] | None:
    """A failing ``linearity`` result and its note where jvp_fn(-2 t) is not -2 jvp_fn(t), else None.

    A JVP is linear in its tangent. A fixed sequence of floating-point operations that is linear
    in t commutes exactly with scaling t by a power of 2 (every rounding does), except for
    results in the subnormal range. Output o of leaf k is held to step 5's allowance for two
    evaluations of the same terms, |jvp(-2 t)_o + 2 jvp(t)_o| <= r_k m_k + 24 tiny + 24 s_o:
    r_k = max(EXACT_RTOL, 64 u) of the leaf's dtype times m_k = max_o(|jvp(-2 t)_o| + 2
    |jvp(t)_o|) over the leaf (a JVP whose operations depend on t's size: an adaptive ODE solver,
    an internal dtype narrower than its output's), 8 tiny and 8 s_o per evaluation, s_o the output's
    measured noise along t (twice along -2 t). Entry by entry this cannot show: a tangent with
    one nonzero entry hides a product of two tangents (``(X + dX)(W + dW) - XW`` keeps dX dW), and
    e_i hides |t|, sign(t) or a clip of t; each passed (a review, 2026-12-04). Those err by the
    size of the JVP itself. t spans every input, random signs and sizes in [1, 2)."""
    if not n:
        return None
    with warnings.catch_warnings(action="ignore"):   # an overflow at -2 t is judged below
        one = [np.array(L, np.float64) if np.asarray(L).dtype.kind != "V" else None   # a copy: jvp_fn may reuse
               for L in flatten(tangent_out(t))[0]]                                   # its output buffer
        two = flatten(tangent_out(-2.0 * t))[0]
    worst = None
    for a64, L2, noise, path in zip(one, two, out_noise, out_paths):
        if a64 is None or a64.size == 0:   # JAX's float0: no tangent
            continue
        dt = np.asarray(L2).dtype
        b64 = np.asarray(L2, np.float64)
        tiny, r = (float(np.finfo(dt).tiny), _exact_r_of(dt)) if dt.kind == "f" else (0.0, EXACT_RTOL)
        with np.errstate(over="ignore", invalid="ignore"):
            err = np.abs(b64 + 2 * a64)
            both = np.isfinite(a64) & np.isfinite(b64) & np.isfinite(err)   # an overflow at -2 t: not judged
            if not both.any():
                continue
            size = float(np.max(np.where(both, np.abs(b64) + 2 * np.abs(a64), 0.0)))
            tol = np.broadcast_to(r * size + 3 * FTZ_TINYS * tiny + 24 * np.asarray(noise, np.float64), err.shape)
            ratio = np.where(both & (err > tol), err / np.maximum(tol, np.finfo(np.float64).tiny), 0.0).ravel()
        i = int(np.argmax(ratio))
        if ratio[i] > 0 and (worst is None or ratio[i] > worst[0]):
            worst = (ratio[i], path, np.unravel_index(i, a64.shape), float(b64.ravel()[i]),
                     float(-2 * a64.ravel()[i]), float(tol.ravel()[i]))
    if worst is None:
        return None
    _, path, index, at_2, twice, tol = worst
    where = format_path("output", path) + (format_index(index) if len(index) else "")
    got, want = _distinct(at_2, twice)
    note = (f"jvp_fn is not linear in its tangents: at {where}, jvp_fn(-2 t) = {got} but -2 jvp_fn(t) = {want} "
            f"(|diff| {abs(at_2 - twice):.2e} > tol {tol:.2e}; t: every input at once, random signs and sizes in "
            "[1, 2)). A product of two tangents ((X + dX)(W + dW) - XW keeps dX dW), |t|, sign(t), a clip or a "
            "constant term? Or an approximate JVP (differences of f, a solver's tolerance) coarser than rounding")
    m = Mismatch(f"{where}, jvp_fn(-2 t) against -2 jvp_fn(t)", at_2, twice, tol, "linearity check")
    return OracleResult("linearity", False, abs(at_2 - twice), tol, mismatches=[m], n_failed=1), note


def _not_finite_at_zero_tangent(tangent_out: Callable, n: int, out_paths: list) -> list[str]:
    """The note, where jvp_fn's output for a zero tangent holds NaN or inf, naming those output
    entries. A JVP is linear in its tangent, so that output is 0; a NaN or inf there comes from
    jvp_fn's own factors (0 * NaN is NaN) and reaches every tangent's output, and the input
    entries that bisection names along the directions are only the first it tried (relu's JVP
    with a NaN mask at three inputs named entries 0-4)."""
    with warnings.catch_warnings(action="ignore"):   # the checker's own call
        out = flatten(tangent_out(np.zeros(n)))[0]
    where = []
    for L, path in zip(out, out_paths):
        a = np.asarray(L)
        if a.dtype.kind in "fc":
            where += [format_path("output", path) + format_index(tuple(int(j) for j in i))
                      for i in np.argwhere(~np.isfinite(a))[:MAX_NAMED - len(where)]]
    if not where:
        return []
    return [f"jvp_fn returns NaN or inf for a zero tangent at {', '.join(where)}"
            + (", ..." if len(where) >= MAX_NAMED else "") + " (a linear map gives 0 there): a NaN or inf "
            "among its own factors, times the tangent's 0 (0 * NaN is NaN), reaches every tangent's output: every "
            "column of the derivative reads NaN, whichever input entries the verdict names"]


def _primal_labels(f: Callable, flat: Flat) -> dict[str, str]:
    """What the report calls each primal beside its path: f's parameter at that position
    (``primal 0 = x``, ``primal 1['W'] = params['W']``), where f's signature names one."""
    import inspect

    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):   # a builtin or C function without a readable signature
        return {}
    names = [p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return {format_path("primal", p): format_path(names[p[0]], p[1:]) for p in flat.paths
            if p and isinstance(p[0], int) and p[0] < len(names)}


def _noise_of_output(flat: Flat, fn, rng) -> list[np.ndarray]:
    """Per-entry noise of each output leaf of ``fn(x)`` (:func:`blackbox.entry_noise`)."""
    if not flat.n:
        return []
    first = [np.asarray(L) for L in flatten(fn(flat.x))[0]]
    sizes = [L.size for L in first]

    def vec(z):
        return np.concatenate([np.real(np.asarray(L)).astype(np.float64).ravel() for L in flatten(fn(z))[0]])

    s = blackbox.entry_noise(vec, flat, rng)
    return [a.reshape(L.shape) for a, L in zip(np.split(s, np.cumsum(sizes)[:-1]), first)]


def check_hvp(loss_fn: Callable, hvp_fn: Callable, params: Any, *, grad_fn: Callable | None = None,
              jax_fn: Callable | None = None, n_vectors: int = 1, vector: Any = None, **options) -> Verdict:
    """Check a Hessian-vector product (or double backward): ``hvp_fn(params, v)`` returns H v
    in the structure of ``params``, for a Gaussian ``v`` (or yours, ``vector=``).

    H v is the gradient of s(x) = <grad f(x), v>, so this is ``check_gradients(s, hvp_fn(., v))``
    with s computed by the best available oracle: your ``grad_fn`` (pass it: then the check is
    that hvp_fn is the derivative of grad_fn, and loss_fn is not called: check grad_fn itself
    with ``check_gradients(loss_fn, grad_fn, params)``), else the
    complex step Im f(x + i h v) / h where f takes complex input, else central differences of f
    along v (noisier; the noise is measured). ``jax_fn`` adds ``jax.jvp(jax.grad(f))``."""
    name = options.pop("name", "hvp")
    _check_call_args("check_hvp", {"loss_fn": loss_fn, "hvp_fn": hvp_fn, "grad_fn?": grad_fn, "jax_fn?": jax_fn}, options,
                     ("grad_fn", "jax_fn", "n_vectors", "vector"))
    flat = Flat(params, "params", what="params")
    seed = options.get("seed", 0)
    seed = _checks.check_seed(seed)
    _check_count("n_vectors", n_vectors)
    rng = np.random.default_rng(seed + 32452843)
    verdict = None
    for k in range(n_vectors):
        if vector is not None:
            vl = same_structure(vector, flat.treedef, flat.leaves, flat.paths, root="params", what="vector")
            _check_finite_tree(vl, flat.paths, "vector")
            vflat = flat.flat(vl)
        else:
            vflat = rng.standard_normal(flat.n)
            vflat = flat.rnd(vflat) if flat.n else vflat
        v_tree = flat.build(vflat)
        v_tree = unflatten(flat.treedef, [L if fl else np.zeros_like(L)  # v is 0 on constant (integer) leaves
                                          for L, fl in zip(flatten(v_tree)[0], flat.float_)])
        notes, s_exact = [], True
        if grad_fn is not None:
            def s(P, v_tree=v_tree):   # complex at complex params (the complex step), where grad_fn is analytic
                wide = any(np.iscomplexobj(L) for L in flatten(P)[0])
                like = [L.astype(np.complex128) for L in flat.leaves] if wide else flat.leaves
                gl = same_structure(_leaving_inputs(grad_fn, "grad_fn", [(P, "params", ())]), flat.treedef,
                                    like, flat.paths, root="params", what="grad_fn")
                vl2 = flatten(v_tree)[0]
                dt = np.complex128 if wide else np.float64
                total = sum(np.sum(np.asarray(a, dt) * np.asarray(b, np.float64)) for a, b in zip(gl, vl2))
                return complex(total) if wide else float(total)
            notes.append("s(x) = <grad_fn(x), v>: hvp_fn checked against the derivative of your grad_fn, which "
                         "is not itself checked here (check_gradients(loss_fn, grad_fn, params) does)")
            if options.get("analytic") is None:
                # No probe tells a grad_fn that is not complex-analytic from one that is here: an L1
                # penalty's sign(w) gives a complex step of garbage, and s, piecewise constant, gives
                # the probe's finite differences only its jumps, which read as noise wide enough to
                # accept it (a correct hvp of 0 then failed)
                options = {**options, "analytic": False}
                notes.append("complex step not used on s: whether grad_fn is complex-analytic cannot be probed "
                             "(sign(w), abs(w) are not); analytic=True uses it for a grad_fn you know to be")
        else:
            sub = Flat(params, "params", what="params")
            F = lambda x: _scalar_out(_near(sub, x, "loss_fn", lambda: loss_fn(sub.build(x))), "loss_fn")  # noqa: E731
            try:
                ctx = blackbox.measure(sub, F, np.random.default_rng(seed), None, "loss_fn")
            except TypeError as e:   # hvp_fn passed as loss_fn takes one argument more
                e.add_note("autodiff_check: loss_fn(params) raised this; the call is check_hvp(loss_fn, hvp_fn, "
                           "params), and hvp_fn(params, v) takes one argument more: are loss_fn and hvp_fn swapped?")
                raise
            ok, why = blackbox.probe_complex(ctx, np.random.default_rng(seed)) if sub.n else (False, "")
            if ok:
                def s(P, vflat=vflat):
                    x = Flat(P, "params", what="params").x
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        return F(x + 1j * blackbox.COMPLEX_H * vflat).imag / blackbox.COMPLEX_H
                notes.append("s(x) = Im f(x + ihv)/h (complex step); no second complex step on top of it")
                options = {**options, "analytic": False}
            else:
                hs = np.cbrt(ctx.eps_f / max(abs(ctx.f0), 1e-300)) * max(1.0, float(np.abs(sub.x).max()))
                hs = float(np.clip(hs, np.cbrt(sub.u) / 4, 16 * np.cbrt(sub.u)))
                # x moves by hs v. A vector whose largest entry is of order 1 (N(0, 1) draws, unit vectors)
                # keeps the step the noise measurement chose for it; any other is scaled so that its
                # largest entry moves as such a one would (1e3 N(0, 1) failed a right hvp, 1e-12 read NOT
                # CHECKED). Scaling every vector by its largest entry, or by its rms, moved a float32 leaf
                # less or a unit vector's entry more than before, and failed right hvps that had passed.
                vmax = float(np.abs(vflat).max()) if vflat.size else 0.0
                if vmax > 0 and not 0.25 <= vmax <= 4:
                    hs /= vmax

                def s(P, vflat=vflat, hs=hs):
                    x = Flat(P, "params", what="params").x
                    return (F(x + hs * vflat) - F(x - hs * vflat)) / (2 * hs)
                notes.append(f"s(x) = central difference of f along v (step {hs:.1e}); {why or 'no complex step'}")
                s_exact = False
                if options.get("analytic") is None:   # f took no complex step, so s cannot: said once, above
                    options = {**options, "analytic": False}
        jfns = None
        if jax_fn is not None:
            jax, jax_fn = _jax(jax_fn)
            tree = flat.build(flat.x)
            _jax_takes(jax, tree, "params")
            _jax_scalar(jax_fn(tree))

            vj = _zero_consts(flat, v_tree, jax)  # float0 tangents on integer leaves
            second = _compiled(jax, lambda t, v, w: jax.jvp(lambda p: jax.jvp(jax_fn, (p,), (v,))[1], (t,), (w,))[1])

            def jhvp(_P, vj=vj):
                return jax.jvp(jax.grad(jax_fn, allow_int=True), (tree,), (vj,))[1]

            def jdir(_P, wl, vj=vj, second=second):
                w = _zero_consts(flat, flat.build(np.concatenate([a.ravel() for a in wl]) if wl else np.zeros(0)), jax)
                return float(second(tree, vj, w))
            jfns = (jhvp, jdir)

        def hv(P, v_tree=v_tree):
            return _leaving_inputs(hvp_fn, "hvp_fn", [(P, "params", ()), (v_tree, "vector", ())])

        # a central difference s is no more exact than the coarsest leaf (its truncation error is
        # not noise): one eps_f for all its entries, as along a direction (with the float64
        # leaf's own, a correct hvp beside a float32 leaf failed 20 of 20 seeds)
        vv = check_gradients(s, hv, params, name=name, _jax_fns=jfns,
                             _names={"jax_grad": "jax_hvp"}, _notes=notes, _deriv="hvp_fn",
                             _per_dtype=s_exact, _out_dtype=None if s_exact else _coarsest_float(flat.leaves), **options)
        if verdict is None:
            verdict = vv
        else:
            for r in vv.results:
                r.oracle += f" (vector {k + 1})"
            verdict.results += vv.results
    return verdict


def _assert(v: Verdict) -> Verdict:
    if not v.passed:
        raise AssertionError("\n" + v.report(full=True))
    return v


def assert_gradients(loss_fn, grad_fn, params, **options) -> Verdict:
    """:func:`check_gradients`, raising ``AssertionError`` with the full report when it fails."""
    return _assert(check_gradients(loss_fn, grad_fn, params, **options))


def assert_vjp(f, vjp_fn, *primals, **options) -> Verdict:
    """:func:`check_vjp`, raising ``AssertionError`` with the full report when it fails."""
    return _assert(check_vjp(f, vjp_fn, *primals, **options))


def assert_jvp(f, jvp_fn, *primals, **options) -> Verdict:
    """:func:`check_jvp`, raising ``AssertionError`` with the full report when it fails."""
    return _assert(check_jvp(f, jvp_fn, *primals, **options))


def assert_hvp(loss_fn, hvp_fn, params, **options) -> Verdict:
    """:func:`check_hvp`, raising ``AssertionError`` with the full report when it fails."""
    return _assert(check_hvp(loss_fn, hvp_fn, params, **options))


# ----------------------------------------------------------------------------------------------
# the network of manual_backprop


def activation_pattern(params: Sequence[np.ndarray], x: np.ndarray, activation: str) -> np.ndarray:
    """Which side of the kink every hidden pre-activation lies on (relu: z > 0, leaky_relu:
    z >= 0), concatenated over layers: the ``kinks`` function for finite differences.
    ``params`` and ``x`` are checked as ``manual_backprop.loss_and_grad`` checks them."""
    from manual_backprop.activations import get_activation

    g = get_activation(activation)
    return _pattern(params, _checks.check_inputs(params, x, _checks.check_params(params)), g, activation)


def _pattern(params, x: np.ndarray, g, activation: str) -> np.ndarray:
    """:func:`activation_pattern` of inputs already checked (finite differences call it for
    every step they take)."""
    a, pattern = np.asarray(x, np.float64), []
    for W in params[:-1]:
        z = a @ W[1:] + W[0]
        pattern.append((z > 0 if activation == "relu" else z >= 0).ravel())
        a = g.fn(z)
    return np.concatenate(pattern) if pattern else np.zeros(0, bool)


def check_network(
    params: Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    activation: str = "sigmoid",
    loss: str = "binary_cross_entropy",
    backward: str | Callable = "manual",
    use_jax: bool = True,
    oracles: Sequence[str] | None = None,
    per_coordinate: bool | None = None,
    n_directions: int = 20,
    seed: int = 0,
) -> Verdict:
    """Check a backward pass of the network on one batch, in float64, against every oracle.

    ``backward`` is ``"manual"`` (manual_backprop.loss_and_grad), ``"as_published"`` (the
    post's, wrong) or any function with loss_and_grad's signature, ``fn(params, x, y,
    activation=..., loss=...) -> (J, grads)`` (a plain ``fn(params, x, y)`` for the defaults);
    its J is judged against the network's loss too (a ``loss_value`` result). ``use_jax=False`` checks
    with finite differences and the complex step only (no JAX needed). Tolerances come from
    the analytic rounding bound (:func:`autodiff_check.rounding_bound`), kinks from the
    activation pattern."""
    import manual_backprop as mb
    from manual_backprop import as_published
    from manual_backprop.activations import get_activation
    from manual_backprop.losses import get_loss

    backends = {"manual": mb.loss_and_grad, "as_published": as_published.loss_and_grad}
    if not (isinstance(backward, str) or callable(backward)):
        raise TypeError(f"check_network: backward must be 'manual', 'as_published' or a function with "
                        f"loss_and_grad's signature; got {backward!r}")
    if not isinstance(use_jax, (bool, np.bool_)):
        raise TypeError(f"check_network: use_jax must be True or False; got {use_jax!r}")
    if isinstance(params, (dict, np.ndarray, str)) or not isinstance(params, Sequence):
        raise TypeError(f"check_network: params must be a list of weight arrays W_l (n_(l-1) + 1, n_l); "
                        f"got {type(params).__name__}")
    if isinstance(backward, str):
        if backward not in backends:
            raise ValueError(f"unknown backward {backward!r}; supported: {', '.join(backends)} or a function")
        name, backward_fn = backward, backends[backward]
    else:
        name, backward_fn = getattr(backward, "__name__", "backward"), backward
    kw = dict(activation=activation, loss=loss)
    if not isinstance(backward, str):
        backward_fn = _returning_a_pair(_with_network_options(backward_fn, name, kw), name)
    def real64(what: str, a) -> np.ndarray:
        try:
            a = np.asarray(a)
            if not np.iscomplexobj(a):   # a cast would drop the imaginary part (a ComplexWarning)
                return a.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"check_network checks in float64: params, x and y must be arrays of real numbers "
                             f"({e})") from None
        raise ValueError(f"check_network: {what} is complex; the network's inputs are real (the complex step is "
                         "the checker's own)")

    params = [real64(f"params[{i}]", W) for i, W in enumerate(params)]
    x, y = real64("x", x), real64("y", y)
    J_ref = mb.loss_and_grad(params, x, y, **kw)[0]   # names a bad shape, NaN or overflow before the bounds
    g_act = get_activation(activation)
    analytic = g_act.analytic and get_loss(loss).analytic
    jax_fns = None
    if use_jax:  # the jitted functions of .model, compiled once per shape and reused
        from . import model

        jax_fns = (
            lambda P: model.loss_and_grad(P, x, y, **kw)[1],
            lambda P, v: model.directional_derivative(P, x, y, v, **kw),
        )

    kinks = None if analytic else (lambda P: _pattern(P, x, g_act, activation))   # inputs checked just above
    bound = rounding_bound(params, x, y, activation, loss)
    verdict = check_gradients(
        lambda P: mb.loss(P, x, y, **kw),
        lambda P: backward_fn(P, x, y, **kw)[1],
        params,
        analytic=analytic,
        kinks=kinks,
        oracles=oracles,
        per_coordinate=per_coordinate,
        n_directions=n_directions,
        seed=seed,
        name=name,
        loss_error=bound.loss,
        grad_error=bound.grad,
        _jax_fns=jax_fns,
    )
    _judge_returned_loss(verdict, backward_fn(params, x, y, **kw)[0], J_ref, 2 * bound.loss)
    verdict.labels = {f"params[{l - 1}]": f"W_{l}" for l in range(1, len(params) + 1)}
    verdict.row_names = {0: "the bias row"}
    B = x.shape[0]
    if B > 2:   # at B = 2 a factor 2 has commoner causes (a 1/2 of a squared error, say) than the batch size
        verdict.scale_names = {float(B): f"B = {B}: a 1/B left out?", 1 / B: f"1/B, B = {B}: a 1/B taken twice?"}
    return verdict


def _returning_a_pair(fn: Callable, name: str) -> Callable:
    """``fn``, refusing by name a result that is not ``(J, grads)`` as loss_and_grad returns it."""
    def pair(*args, **kw):
        out = fn(*args, **kw)
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[1], (tuple, list))):
            got = f"a {type(out).__name__}" + (f" of {len(out)}" if isinstance(out, (tuple, list)) else "")
            if isinstance(out, (tuple, list)) and len(out) == 2:
                swapped = isinstance(out[0], (tuple, list)) and np.ndim(out[1]) == 0
                got += f" whose second item is {type(out[1]).__name__}" + (" (grads first?)" if swapped else "")
            raise ValueError(f"check_network: backward {name} must return (J, grads) as loss_and_grad does, "
                             f"grads one array per weight matrix; got {got}")
        return out
    return pair


def _with_network_options(fn: Callable, name: str, kw: dict) -> Callable:
    """``fn`` called as loss_and_grad is, ``fn(params, x, y, activation=..., loss=...)``; a
    plain ``fn(params, x, y)`` is taken for the defaults (the post's network), and refused by
    name for another activation or loss, which it could not be told."""
    import inspect

    try:
        sig = inspect.signature(fn)
        takes = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()) or {"activation", "loss"} <= set(sig.parameters)
    except (TypeError, ValueError):   # no signature to read (a builtin, a C extension): called as loss_and_grad
        takes = True
    if takes:
        return fn
    if kw != dict(activation="sigmoid", loss="binary_cross_entropy"):
        raise TypeError(f"check_network: backward {name} takes no activation= and loss= keywords, so it cannot be "
                        f"checked with activation={kw['activation']!r}, loss={kw['loss']!r}; add them (or **kw)")
    return lambda params, x, y, **_: fn(params, x, y)


def _judge_returned_loss(verdict: Verdict, J, J_ref: float, tol: float) -> None:
    """The loss a backward returns beside its gradient is part of what it claims: a value off the
    network's loss by more than twice the rounding bound (each within one bound of the exact J)
    is a failing ``loss_value`` result (a missing 1/B, say), named with both values, and with
    the dtype where it came narrower than float64 (as a gradient's is: its rounding, not a
    float64 bound, then sets how far off it is)."""
    try:   # NumPy's or JAX's (a jnp.float32 scalar); None for a Python float or a dtype NumPy cannot read
        dtype = np.dtype(J.dtype)
    except (AttributeError, TypeError):
        dtype = None
    try:
        J = float(J)
    except (TypeError, ValueError):
        raise TypeError(f"check_network: {verdict.name} returned {type(J).__name__} as the loss; expected a number "
                        "(the function returns (J, grads), as loss_and_grad)") from None
    err = abs(J - J_ref)
    if err <= tol:
        return
    c = J / J_ref if J_ref != 0 and np.isfinite(J) else None
    ratio = "" if c is None else f"; {_factor(c)} times it"
    narrow = (f"; it returned {dtype}, whose rounding the float64 bound does not allow"
              if dtype is not None and dtype.kind == "f" and dtype.itemsize < 8 else "")
    m = Mismatch("the loss J it returned", J, J_ref, tol, "network loss")
    verdict.results.append(OracleResult("loss_value", False, err, tol, mismatches=[m], n_failed=1))
    got, ref = _distinct(J, J_ref)
    verdict.notes.insert(0, f"the loss it returned, {got}, is not the network's {ref} (|diff| {err:.2e} > "
                            f"tol {tol:.2e}{ratio}{narrow}): its gradient is checked against the network's loss")
