"""The layer tests' VJP check, with tolerances derived per layer from its equations; the call has
the shape of ``autodiff_check.check_vjp``:

    failures = check_layer(layer, layer_vjp, *primals, jax_fn=twin, kinks=None, bound=None, **options)

returns a list of human-readable disagreements (empty = passed). Two oracles:

1. JAX reverse mode: ``jax.vjp`` of ``jax_fn`` (the independent twin in autodiff_check.layers),
   compared entry by entry.
2. Central finite differences of phi(t) = <dy, f(p + t v)> along one random direction v per
   call (``autodiff_check.oracles.directional_fd``, Richardson error bound), compared with
   <vjp(dy), v>.

Only floating primals are differentiated; the VJP must return None exactly for the others.

Tolerances (the derivations; none depends on the VJP being judged):

* Exact vs exact (float64 hand VJP vs float64 jax.vjp). Each entry of a VJP is a sum of
  products built from the primals; to first order (Higham ch. 3) a computed sum of n terms
  errs by at most n u sum|terms|. We bound n by ``n_ops`` = the total number of entries of the
  primals and of the output (every reduction in these layers, and every chain of them through
  time, runs over at most that many terms) and sum|terms| normwise by ``CANCELLATION``
  times the array's largest entry: the strategies draw O(1) inputs with normalisation
  variances bounded away from 0. (Measured during development on one draw per layer: the
  largest |hand - jax| / max|ref| was 1.4e-15, about 13 u (rnn), where n_ops was 100 and
  more; a sanity check of the bound's scale, not where it comes from.) Both computations
  err, hence the factor 2:
      tol = 2 * CANCELLATION * n_ops * u * max|ref|      per array.
  Where a gradient cancels by design (normalisation: dx = s (dxhat - mean dxhat - xhat
  mean(dxhat xhat)) is ~0 for two samples per feature) max|ref| says nothing about the terms;
  the table then passes ``bound=Magnitude(fn)``, fn(dy, *primals, **options) a bound on
  sum|terms| derived from the layer's backward equations (tests/test_layers.py), and
  tol = 2 n_ops u magnitude.
  Where the error is not relative to anything the result shows (an activation's derivative
  from its output, 1 - tanh^2 or s (1 - s), near saturation: the absolute error of t, not a
  multiple of |1 - t^2|), the table passes ``bound=Running(fn)``: fn evaluates the layer's
  equations with tests/running_error.py and returns per entry the coefficient C of a
  first-order bound C u; two computations with unit roundoffs u1 and u2 differ by at most
  (u1 + u2) C.
* The float64 forward against the twin's: the forward tolerance below with u = 2^-53.
* Finite differences: ``directional_fd``'s own bound 3 |D(h) - D(2h)| + 2 eps_f / h, with
  eps_f, the rounding error of phi, = 4 (sum |dy| t_y + (n_ops + y.size) u sum |dy y_jax|):
  t_y, the forward tolerance (a bound on |y - y_jax| for two computations, so on each one's
  error; the forward is held to it first), plus the first-order bound of the dot product
  <dy, y>; the factor 4 covers second-order terms. Nothing in eps_f is measured from the layer
  under test: a forward 1 % off once widened its own tolerance to pass (an independent review,
  2026-12-01). The left side <g, v> is itself a dot product of m terms: m u sum|g v| more.
* float32 vs float64: the same bound with u = 2^-24 against the float64 hand VJP evaluated at
  the float32-rounded primals (so only arithmetic rounding differs), the scales (max|ref|, the
  default S) taken from the twin's VJP and forward at those primals, never from the code judged.
  The forward's tolerance is
  2 n_ops u S with S = CANCELLATION max|y|, or the table's ``Magnitude.forward`` where the
  output can cancel (attention: a weighted average of values of either sign can be far below
  its terms; the thorough profile drew y = -0.0026 from values up to 2.1, 2026-12-01; dense and
  conv2d, sums of products of either sign, the same day: their sum|terms| per entry is the
  layer on absolute values, |x| |W[1:]| + |W[0]|, computed apart from the code under test),
  or ``Running.forward``, the running-error coefficients of y (rnn and lstm, whose
  pre-activations can cancel: an independent review found such draws within the strategies;
  the norms' beta against gamma xhat likewise, bounded as in their backward's magnitude).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from autodiff_check.layers import vjp_of
from autodiff_check.oracles import directional_fd

U64 = 2.0**-53
U32 = 2.0**-24
CANCELLATION = 8


@dataclass(frozen=True)
class Magnitude:
    """fn(dy, *primals, **options) -> per primal, a bound S on sum|terms| (None, or fn None:
    the default); forward(*primals, **options) -> the same for the layer's output y, a number
    or one per entry of y, where y can cancel (None: the default, CANCELLATION max|y|)."""
    fn: Callable | None = None
    forward: Callable | None = None


@dataclass(frozen=True)
class Running:
    """fn(dy, *primals, **options) -> per primal, the running-error coefficient array C (or None);
    forward(*primals, **options) -> the same for the layer's output y (None: the forward's
    default tolerance)."""
    fn: Callable
    forward: Callable | None = None


def _is_float(a) -> bool:
    return np.asarray(a).dtype.kind == "f"


def n_ops(primals, y) -> int:
    return int(sum(np.size(p) for p in primals) + np.size(y))


def cotangent(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    """Random signs and magnitudes spread over [0.25, 2] (non-uniform: a uniform dy hides
    bugs that permute or average entries)."""
    return (rng.choice([-1.0, 1.0], shape) * rng.uniform(0.25, 2.0, shape)).astype(dtype)


def exact_tol(ref: np.ndarray, n: int, u: float, magnitude: float | np.ndarray | None = None) -> float | np.ndarray:
    """2 n u S, with S the bound on sum|terms|: the layer's ``magnitude`` where the table gives
    one (layers whose result cancels by design), else CANCELLATION max|ref| (module doc)."""
    S = CANCELLATION * float(np.abs(ref).max(initial=0.0)) if magnitude is None else np.asarray(magnitude)
    return 2 * n * u * S + np.finfo(np.float64).tiny


def _compare(name: str, got, ref, tol: float, failures: list[str]) -> None:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        failures.append(f"{name}: shape {got.shape}, reference {ref.shape}")
        return
    err = np.abs(got - ref)
    tol = np.broadcast_to(tol, err.shape)
    if not np.all(err <= tol):
        excess = np.where(np.isnan(err), np.inf, err / tol)
        i = np.unravel_index(np.argmax(excess), err.shape)
        failures.append(f"{name}: |error| {err[i]:.3g} at {i} (got {got[i]:.6g}, ref {ref[i]:.6g}) > tol {tol[i]:.3g}")


def _slots(name: str, grads, primals, failures: list[str]) -> bool:
    if len(grads) != len(primals):
        failures.append(f"{name}: {len(grads)} gradients for {len(primals)} primals")
        return False
    for i, (g, p) in enumerate(zip(grads, primals)):
        if (g is None) == _is_float(p):
            failures.append(f"{name}: slot {i} is {'None' if g is None else 'an array'} for a {np.asarray(p).dtype} primal")
            return False
    return True


def _forward_tol(bound, y_ref, primals, options, n, u_got, u_ref):
    """The tolerance for |y_got - y_ref| (module doc): the table's running-error coefficients or
    forward magnitude where it gives them, else 2 n u CANCELLATION max|y_ref|."""
    if isinstance(bound, Running) and bound.forward:
        return (u_got + u_ref) * bound.forward(*primals, **options) + np.finfo(np.float64).tiny
    forward = bound.forward(*primals, **options) if isinstance(bound, Magnitude) and bound.forward else None
    return exact_tol(y_ref, n, max(u_got, u_ref), forward)


def _tolerances(bound, refs, dy, primals, options, n, u_got, u_ref):
    """Per primal, the tolerance for |got - ref| (module doc): running-error bounds where the
    table gives them, else 2 n u S with u the larger unit roundoff."""
    if isinstance(bound, Running):
        return [None if C is None else (u_got + u_ref) * C + np.finfo(np.float64).tiny
                for C in bound.fn(dy, *primals, **options)]
    mags = [None] * len(primals) if bound is None or bound.fn is None else bound.fn(dy, *primals, **options)
    return [None if r is None else exact_tol(r, n, max(u_got, u_ref), m) for r, m in zip(refs, mags)]


def check_layer(f, vjp_fn, *primals, jax_fn, kinks=None, bound=None, seed: int = 0, **options) -> list[str]:
    """float64 check of ``vjp_fn`` against jax.vjp(jax_fn) and finite differences (module doc)."""
    rng = np.random.default_rng(seed)
    primals = tuple(np.asarray(p) for p in primals)
    y = f(*primals, **options)
    dy = cotangent(rng, y.shape)
    n = n_ops(primals, y)
    failures: list[str] = []

    g = vjp_fn(dy, *primals, **options)
    ref = vjp_of(jax_fn)(dy, *primals, **options)
    if not _slots("vjp", g, primals, failures):
        return failures
    for i, (a, b, tol) in enumerate(zip(g, ref, _tolerances(bound, ref, dy, primals, options, n, U64, U64))):
        if a is not None:
            _compare(f"jax_vjp[{i}]", a, b, tol, failures)

    which = [i for i, p in enumerate(primals) if _is_float(p)]

    def full(P):
        args = list(primals)
        for i, p in zip(which, P):
            args[i] = p
        return args

    def phi(P):
        return float(np.sum(dy * f(*full(P), **options)))

    y_jax = np.asarray(_jax_forward(jax_fn, primals, options))
    t_y = np.broadcast_to(_forward_tol(bound, y_jax, primals, options, n, U64, U64), y_jax.shape)
    _compare("forward", y, y_jax, t_y, failures)
    eps_f = 4 * (float(np.sum(np.abs(dy) * t_y)) + (n + y.size) * U64 * float(np.sum(np.abs(dy * y_jax))))
    V = [cotangent(rng, primals[i].shape) for i in which]
    kink_fn = None if kinks is None else (lambda P: kinks(*full(P), **options))
    d = directional_fd(phi, [primals[i] for i in which], V, kinks=kink_fn, f_error=eps_f)
    if np.isfinite(d.tol):
        lhs = float(sum(np.sum(g[i] * D) for i, D in zip(which, d.direction)))
        # the rounding of that sum of m products, m u sum|terms|, sized by JAX's VJP (the terms of
        # the exact <vjp, v>), not by the VJP judged: a wrong one would widen its own tolerance
        terms = [np.asarray(ref[i]) * D for i, D in zip(which, d.direction)]
        m = sum(t.size for t in terms)
        tol = d.tol + m * U64 * float(sum(np.sum(np.abs(t)) for t in terms))
        if not abs(lhs - d.value) <= tol:
            failures.append(f"finite_diff: <vjp, v> = {lhs:.12g}, central difference {d.value:.12g}, |diff| {abs(lhs - d.value):.3g} > tol {tol:.3g}")
    else:
        failures.append("finite_diff: every step straddled a kink; draw inputs away from kinks")
    return failures


def _jax_forward(jax_fn, primals, options):
    import jax.numpy as jnp

    return jax_fn(*(jnp.asarray(p) for p in primals), **options)


def check_layer_float32(f, vjp_fn, *primals, jax_fn, bound=None, seed: int = 0, **options) -> list[str]:
    """The float32 VJP against the float64 one at the same (float32-rounded) primals, with the
    tolerances' scales from the twin ``jax_fn`` there (module doc)."""
    rng = np.random.default_rng(seed)
    p32 = tuple(np.asarray(p).astype(np.float32) if _is_float(p) else np.asarray(p) for p in primals)
    p64 = tuple(p.astype(np.float64) if _is_float(p) else p for p in p32)
    y32 = f(*p32, **options)
    failures: list[str] = []
    if y32.dtype != np.float32:
        return [f"forward returned {y32.dtype} for float32 inputs"]
    dy32 = cotangent(rng, y32.shape, np.float32)
    y64 = f(*p64, **options)
    n = n_ops(p64, y64)
    y_jax = np.asarray(_jax_forward(jax_fn, p64, options))
    _compare("forward_float32", y32, y64, _forward_tol(bound, y_jax, p64, options, n, U32, U64), failures)
    dy64 = dy32.astype(np.float64)
    g32 = vjp_fn(dy32, *p32, **options)
    g64 = vjp_fn(dy64, *p64, **options)
    if not _slots("vjp_float32", g32, p32, failures):
        return failures
    tols = _tolerances(bound, vjp_of(jax_fn)(dy64, *p64, **options), dy64, p64, options, n, U32, U64)
    for i, (a, b, tol) in enumerate(zip(g32, g64, tols)):
        if a is not None:
            if a.dtype != np.float32:
                failures.append(f"vjp_float32[{i}]: dtype {a.dtype}, expected float32")
            _compare(f"vjp_float32[{i}]", a, b, tol, failures)
    return failures
