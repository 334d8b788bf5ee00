"""``check_gradients``: run every applicable oracle against a gradient and say who disagrees.

Two ways in:

* ``check_gradients(loss_fn, grad_fn, params)``: any NumPy loss ``loss_fn(params) -> scalar``
  and its hand-written gradient ``grad_fn(params) -> list of arrays``. Oracles: finite
  differences and, when ``analytic`` (and ``loss_fn`` accepts complex arrays), the complex
  step. Pass ``jax_loss_fn`` (the same loss in ``jax.numpy``) to add JAX's reverse and
  forward mode.
* ``check_network(params, x, y, activation=..., loss=..., backward="manual")``: the network
  of ``manual_backprop`` with every oracle wired in.

Tolerances. Two exact derivatives in float64 (hand-derived vs JAX reverse mode, vs the
per-coordinate complex step) differ only by rounding. Measured over 1080 random networks
(every activation x loss, inputs up to 1e3) the largest layer-wise error was 5e-11 of the
layer's largest entry (tanh on saturated inputs, where a layer's gradient is a small
difference of large terms), typically 1e-15; ``EXACT_RTOL = 1e-8`` keeps a 200x margin and
is still 1e7 times smaller than the errors of the post's derivation (0.25 and up).
Directional checks (jvp, complex step along v) compare <g, v> with a tolerance of
``EXACT_RTOL * sum |g_i v_i|``, the scale of the terms being summed. Finite differences carry
their own error bound (``autodiff_check.oracles``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .compare import Comparison, compare
from .error_bounds import rounding_bound
from .oracles import (  # noqa: I001
    complex_step_directional,
    complex_step_grad,
    directional_fd,
    dot,
    numerical_grad_with_error,
    random_direction,
)

EXACT_RTOL = 1e-8
PER_COORDINATE_LIMIT = 2000  # above this many parameters, oracles go along random directions


@dataclass
class OracleResult:
    """One oracle against the gradient under test.

    ``comparison`` is set for per-coordinate oracles (it localises the worst entry);
    directional oracles fill ``directional`` with (<g, v>, oracle value, tolerance) per
    direction. ``skipped`` counts entries or directions an oracle could not check (kinks)."""

    oracle: str
    passed: bool
    max_error: float
    tolerance: float
    comparison: Comparison | None = None
    directional: list[tuple[float, float, float]] = field(default_factory=list)
    skipped: int = 0

    def summary(self) -> str:
        s = f"{self.oracle:<16} {'ok' if self.passed else 'DISAGREES':<9} max err {self.max_error:9.2e}  tol {self.tolerance:9.2e}"
        if self.skipped:
            s += f"  ({self.skipped} not checkable: kink inside the stencil)"
        return s


@dataclass
class Verdict:
    """All oracles' results; ``passed`` iff every oracle agrees with the gradient."""

    name: str
    results: list[OracleResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def __bool__(self) -> bool:
        return self.passed

    def disagreements(self) -> list[str]:
        """One line per disagreeing oracle, naming it and, where it can, the worst entry."""
        out = []
        for r in self.results:
            if r.passed:
                continue
            line = f"{self.name} disagrees with {r.oracle}"
            if r.comparison is not None:
                bad = [str(e.layer) for e in r.comparison.layers if not e.passed]
                line += f" in layer(s) {', '.join(bad)}; worst {r.comparison.worst}"
            else:
                bad = [i for i, (g, o, t) in enumerate(r.directional) if not abs(g - o) <= t]
                line += f" along {len(bad)} of {len(r.directional)} random directions"
            out.append(line)
        return out

    def __str__(self) -> str:
        head = f"{self.name}: {'PASS' if self.passed else 'FAIL'}"
        lines = [head] + ["  " + r.summary() for r in self.results]
        for r in self.results:
            if r.comparison is not None:
                lines += [f"  per layer, vs {r.oracle}:"] + ["    " + s for s in str(r.comparison).splitlines()[1:]]
        lines += ["  " + s for s in self.disagreements()]
        return "\n".join(lines)


def _per_coordinate_result(name: str, g, ref, atol) -> OracleResult:
    cmp = compare(g, ref, rtol=0.0, atol=atol, names=("grad", name))
    tols = [np.asarray(t, dtype=np.float64) for t in atol]
    largest_finite = max((float(t[np.isfinite(t)].max()) for t in tols if np.isfinite(t).any()), default=0.0)
    return OracleResult(name, cmp.passed, max(e.max_abs for e in cmp.layers), largest_finite, comparison=cmp)


def exact_atol(ref: Sequence[np.ndarray], grad_error: Sequence[np.ndarray] | None = None) -> list:
    """Per-layer absolute tolerance for comparing two exact float64 gradients (module docstring):
    EXACT_RTOL of the layer's largest entry, plus, when ``grad_error`` (per-entry rounding
    bounds, :func:`autodiff_check.rounding_bound`) is given, 4 times it: each of the two
    gradients is within that bound of the exact one, and a factor 2 covers the terms of second
    order in u. The second part covers cancellation, e.g. a saturated tanh' = 1 - a^2 known
    only to an absolute ~u, or an output that is a small difference of large terms."""
    atol = [EXACT_RTOL * float(np.abs(r).max()) for r in ref]
    if grad_error is not None:
        atol = [t + 4 * np.asarray(e, np.float64) for t, e in zip(atol, grad_error)]
    return atol


def _directional_result(name: str, pairs: list[tuple[float, float, float]], skipped: int = 0) -> OracleResult:
    checked = [(g, o, t) for g, o, t in pairs if np.isfinite(t)]
    errors = [abs(g - o) for g, o, _ in checked]
    passed = all(abs(g - o) <= t for g, o, t in checked) and len(checked) > 0
    return OracleResult(
        name, passed, max(errors, default=float("nan")),
        max((t for _, _, t in checked), default=float("nan")), directional=pairs, skipped=skipped,
    )


def check_gradients(
    loss_fn: Callable[[list[np.ndarray]], float],
    grad_fn: Callable[[list[np.ndarray]], Sequence[np.ndarray]],
    params: Sequence[np.ndarray],
    *,
    analytic: bool = True,
    kinks: Callable[[list[np.ndarray]], np.ndarray] | None = None,
    jax_loss_fn: Callable | None = None,
    oracles: Sequence[str] | None = None,
    per_coordinate: bool | None = None,
    n_directions: int = 20,
    seed: int = 0,
    name: str = "grad",
    loss_error: float | None = None,
    grad_error: Sequence[np.ndarray] | None = None,
    _jax_fns: tuple[Callable, Callable] | None = None,
) -> Verdict:
    """Check ``grad_fn(params)`` against every applicable oracle and return a :class:`Verdict`.

    Oracles: ``"fd"`` (central differences), ``"complex_step"`` (if ``analytic``), and with
    ``jax_loss_fn``: ``"jax_grad"`` (reverse mode) and ``"jax_jvp"`` (forward mode along
    random directions). ``oracles`` restricts the set. Networks with at most
    PER_COORDINATE_LIMIT parameters are checked per coordinate (each entry localised);
    larger ones along ``n_directions`` random +-1 directions, which miss an error having any
    entry above the tolerance with probability at most ``2**-n_directions``.
    ``kinks(params)`` returns the activation pattern at non-differentiable points (see
    ``autodiff_check.oracles``), so finite differences never straddle a kink.
    ``loss_error`` bounds the rounding error of ``loss_fn`` (finite differences; default
    16 u max(1, |loss|)) and ``grad_error`` that of each gradient entry (exact oracles; see
    :func:`exact_atol`); :func:`autodiff_check.rounding_bound` gives both for the network.
    """
    P = [np.asarray(W, dtype=np.float64) for W in params]
    g = [np.asarray(G, dtype=np.float64) for G in grad_fn([W.copy() for W in P])]
    if _jax_fns is None and jax_loss_fn is not None:
        import jax

        _jax_fns = (jax.jit(jax.grad(jax_loss_fn)), jax.jit(lambda P, v: jax.jvp(jax_loss_fn, (P,), (v,))[1]))
    available = ["fd"] + (["complex_step"] if analytic else []) + (["jax_grad", "jax_jvp"] if _jax_fns else [])
    wanted = list(available if oracles is None else oracles)
    for o in wanted:
        if o not in available:
            raise ValueError(f"oracle {o!r} is not available here; available: {', '.join(available)}")
    n_params = sum(W.size for W in P)
    if per_coordinate is None:
        per_coordinate = n_params <= PER_COORDINATE_LIMIT
    rng = np.random.default_rng(seed)
    directions = [random_direction(P, rng) for _ in range(n_directions)] if not per_coordinate or "jax_jvp" in wanted else []

    def directional_tol(v) -> float:
        return EXACT_RTOL * float(sum(np.sum(np.abs(G * D)) for G, D in zip(g, v)))

    results = []
    for o in wanted:
        if o == "fd":
            if per_coordinate:
                num = numerical_grad_with_error(loss_fn, P, kinks=kinks, f_error=loss_error)
                r = _per_coordinate_result("finite_diff", g, [np.nan_to_num(n) for n in num.grad], num.tol)
                r.skipped = num.n_kinks
            else:
                pairs, skipped = [], 0
                for v in directions:
                    d = directional_fd(loss_fn, P, v, kinks=kinks, f_error=loss_error)
                    skipped += not np.isfinite(d.tol)
                    pairs.append((dot(g, d.direction), d.value, d.tol))
                r = _directional_result("finite_diff_dir", pairs, skipped)
        elif o == "complex_step":
            if per_coordinate:
                cs = complex_step_grad(loss_fn, P)
                r = _per_coordinate_result("complex_step", g, cs, exact_atol(cs, grad_error))
            else:
                pairs = [(dot(g, v), complex_step_directional(loss_fn, P, v), directional_tol(v)) for v in directions]
                r = _directional_result("complex_step_dir", pairs)
        elif o == "jax_grad":
            ref = [np.asarray(G, np.float64) for G in _jax_fns[0](P)]
            r = _per_coordinate_result("jax_grad", g, ref, exact_atol(ref, grad_error))
        else:  # jax_jvp
            pairs = [(dot(g, v), float(_jax_fns[1](P, v)), directional_tol(v)) for v in directions]
            r = _directional_result("jax_jvp", pairs)
        results.append(r)
    return Verdict(name, results)


def activation_pattern(params: Sequence[np.ndarray], x: np.ndarray, activation: str) -> np.ndarray:
    """Which side of the kink every hidden pre-activation lies on (relu: z > 0, leaky_relu:
    z >= 0), concatenated over layers: the ``kinks`` function for finite differences."""
    from manual_backprop.activations import get_activation

    g = get_activation(activation)
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
    post's, wrong) or any function with loss_and_grad's signature. ``use_jax=False`` checks
    with finite differences and the complex step only (no JAX needed)."""
    import manual_backprop as mb
    from manual_backprop import as_published
    from manual_backprop.activations import get_activation
    from manual_backprop.losses import get_loss

    backends = {"manual": mb.loss_and_grad, "as_published": as_published.loss_and_grad}
    if isinstance(backward, str):
        if backward not in backends:
            raise ValueError(f"unknown backward {backward!r}; supported: {', '.join(backends)} or a function")
        name, backward_fn = backward, backends[backward]
    else:
        name, backward_fn = getattr(backward, "__name__", "backward"), backward
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    kw = dict(activation=activation, loss=loss)
    analytic = get_activation(activation).analytic and get_loss(loss).analytic
    jax_fns = None
    if use_jax:  # the jitted functions of .model, compiled once per shape and reused
        from . import model

        jax_fns = (
            lambda P: model.loss_and_grad(P, x, y, **kw)[1],
            lambda P, v: model.directional_derivative(P, x, y, v, **kw),
        )

    kinks = None if analytic else (lambda P: activation_pattern(P, x, activation))
    bound = rounding_bound(params, x, y, activation, loss)
    return check_gradients(
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
