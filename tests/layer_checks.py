"""A small VJP check with derived tolerances, used by the layer tests until
``autodiff_check.check_vjp`` / ``assert_vjp`` lands; the call has its shape:

    failures = check_layer(layer, layer_vjp, *primals, jax_fn=twin, kinks=None, **options)

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
  the table then passes ``magnitude(dy, *primals, **options)``, a bound on sum|terms| derived
  from the layer's backward equations (tests/test_layers.py), and tol = 2 n_ops u magnitude.
* Finite differences: ``directional_fd``'s own bound 3 |D(h) - D(2h)| + 2 eps_f / h, with
  eps_f, the rounding error of phi, = 4 (sum |dy| |y_hand - y_jax| + (n_ops + y.size) u sum |dy y|):
  the measured disagreement of two independent forwards (it catches the forward's own
  cancellation) plus the first-order bound of the dot product <dy, y> and of y's terms; the
  factor 4 covers both forwards erring and second-order terms. The left side <g, v> is itself
  a dot product of m terms: m u sum|g v| more.
* float32 vs float64: the same bound with u = 2^-24 against the float64 hand VJP evaluated at
  the float32-rounded primals (so only arithmetic rounding differs).
"""

from __future__ import annotations

import numpy as np

from autodiff_check.layers import vjp_of
from autodiff_check.oracles import directional_fd

U64 = 2.0**-53
U32 = 2.0**-24
CANCELLATION = 8


def _is_float(a) -> bool:
    return np.asarray(a).dtype.kind == "f"


def n_ops(primals, y) -> int:
    return int(sum(np.size(p) for p in primals) + np.size(y))


def cotangent(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    """Random signs and magnitudes spread over [0.25, 2] (non-uniform: a uniform dy hides
    bugs that permute or average entries)."""
    return (rng.choice([-1.0, 1.0], shape) * rng.uniform(0.25, 2.0, shape)).astype(dtype)


def exact_tol(ref: np.ndarray, n: int, u: float, magnitude: float | None = None) -> float:
    """2 n u S, with S the bound on sum|terms|: the layer's ``magnitude`` where the table gives
    one (layers whose result cancels by design), else CANCELLATION max|ref| (module doc)."""
    S = CANCELLATION * float(np.abs(ref).max(initial=0.0)) if magnitude is None else magnitude
    return 2 * n * u * S + np.finfo(np.float64).tiny


def _compare(name: str, got, ref, tol: float, failures: list[str]) -> None:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        failures.append(f"{name}: shape {got.shape}, reference {ref.shape}")
        return
    err = np.abs(got - ref)
    if not np.all(err <= tol):
        i = np.unravel_index(np.nanargmax(np.where(np.isnan(err), np.inf, err)), err.shape)
        failures.append(f"{name}: max |error| {err[i]:.3g} at {i} (got {got[i]:.6g}, ref {ref[i]:.6g}) > tol {tol:.3g}")


def _slots(name: str, grads, primals, failures: list[str]) -> bool:
    if len(grads) != len(primals):
        failures.append(f"{name}: {len(grads)} gradients for {len(primals)} primals")
        return False
    for i, (g, p) in enumerate(zip(grads, primals)):
        if (g is None) == _is_float(p):
            failures.append(f"{name}: slot {i} is {'None' if g is None else 'an array'} for a {np.asarray(p).dtype} primal")
            return False
    return True


def _magnitudes(magnitude, dy, primals, options):
    return [None] * len(primals) if magnitude is None else magnitude(dy, *primals, **options)


def check_layer(f, vjp_fn, *primals, jax_fn, kinks=None, magnitude=None, seed: int = 0, **options) -> list[str]:
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
    for i, (a, b, mag) in enumerate(zip(g, ref, _magnitudes(magnitude, dy, primals, options))):
        if a is not None:
            _compare(f"jax_vjp[{i}]", a, b, exact_tol(b, n, U64, mag), failures)

    which = [i for i, p in enumerate(primals) if _is_float(p)]

    def full(P):
        args = list(primals)
        for i, p in zip(which, P):
            args[i] = p
        return args

    def phi(P):
        return float(np.sum(dy * f(*full(P), **options)))

    y_jax = np.asarray(_jax_forward(jax_fn, primals, options))
    eps_f = 4 * (float(np.sum(np.abs(dy) * np.abs(y - y_jax))) + (n + y.size) * U64 * float(np.sum(np.abs(dy * y))))
    V = [cotangent(rng, primals[i].shape) for i in which]
    kink_fn = None if kinks is None else (lambda P: kinks(*full(P), **options))
    d = directional_fd(phi, [primals[i] for i in which], V, kinks=kink_fn, f_error=eps_f)
    if np.isfinite(d.tol):
        terms = [g[i] * D for i, D in zip(which, d.direction)]
        lhs = float(sum(np.sum(t) for t in terms))
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


def check_layer_float32(f, vjp_fn, *primals, magnitude=None, seed: int = 0, **options) -> list[str]:
    """The float32 VJP against the float64 one at the same (float32-rounded) primals (module doc)."""
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
    _compare("forward_float32", y32, y64, exact_tol(y64, n, U32), failures)
    g32 = vjp_fn(dy32, *p32, **options)
    g64 = vjp_fn(dy32.astype(np.float64), *p64, **options)
    if not _slots("vjp_float32", g32, p32, failures):
        return failures
    mags = _magnitudes(magnitude, dy32.astype(np.float64), p64, options)
    for i, (a, b, mag) in enumerate(zip(g32, g64, mags)):
        if a is not None:
            if a.dtype != np.float32:
                failures.append(f"vjp_float32[{i}]: dtype {a.dtype}, expected float32")
            _compare(f"vjp_float32[{i}]", a, b, exact_tol(b, n, U32, mag), failures)
    return failures
