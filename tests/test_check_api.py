"""check_gradients / check_vjp / check_jvp / check_hvp called the plain way on the inputs users
have: every pytree shape, float(...) losses, kinks, float32, large inputs; and their errors."""

from __future__ import annotations

import collections
import functools
import re
import subprocess
import sys

import numpy as np
import pytest

import autodiff_check as ac
from autodiff_check.noise import CONFIRM, confirmed_noise, ecnoise, estimate_noise, shrinking_noise, vector_noise

RNG = np.random.default_rng(0)   # drawn from at import only: the parametrized params below


@pytest.fixture
def rng():
    """A generator of each test's own: drawn from the shared RNG, a test's data depended on
    which tests its worker ran before it (a review, 2026-12-03)."""
    return np.random.default_rng(0)


def _quad(params_like):
    """loss = sum_i c_i . leaf_i^2 / 2 + sum sin(leaf), gradient c * leaf + cos(leaf), any pytree."""
    leaves = ac.check.flatten(params_like)[0]
    cs = [np.linspace(0.5, 2.0, L.size).reshape(L.shape) for L in leaves]
    td = ac.check.flatten(params_like)[2]

    def loss(p):
        return sum(np.sum(c * L**2 / 2 + np.sin(L)) for c, L in zip(cs, ac.check.flatten(p)[0]))

    def grad(p):
        return ac.check.unflatten(td, [c * L + np.cos(L) for c, L in zip(cs, ac.check.flatten(p)[0])])

    return loss, grad


@pytest.mark.parametrize("params", [
    np.array(0.7), np.array([0.3, -1.2, 2.0]), RNG.normal(size=(2, 3, 4)), [RNG.normal(size=3), RNG.normal(size=(2, 2))],
    (np.array(1.5), RNG.normal(size=2)), {"W1": RNG.normal(size=(3, 2)), "b": {"inner": [RNG.normal(size=2), 0.5]}},
    collections.defaultdict(list, W=RNG.normal(size=(2, 2)), b=RNG.normal(size=2)),
    collections.OrderedDict(W=RNG.normal(size=3), b=np.array(0.2)),
], ids=["0-d", "1-d", "3-d", "list", "tuple", "nested dict", "defaultdict", "OrderedDict"])
def test_any_pytree_of_params(params):
    loss, grad = _quad(params)
    v = ac.check_gradients(loss, grad, params)
    assert v.passed, v.report(full=True)
    assert [r.oracle for r in v.results] == ["finite_diff", "complex_step"]
    wrong = lambda p: ac.check.unflatten(ac.check.flatten(p)[2], [  # noqa: E731
        G + (i == len(ac.check.flatten(p)[0]) - 1) * 1e-3 for i, G in enumerate(ac.check.flatten(grad(p))[0])])
    bad = ac.check_gradients(loss, wrong, params)
    assert not bad.passed
    last = ac.check.format_path("params", ac.check.flatten(params)[1][-1])
    assert all(m.where.startswith(last) for m in bad.mismatches), bad.report(full=True)


def test_dict_params_are_named_by_key_and_full_index(rng):
    p = {"W1": rng.normal(size=(4, 8)), "b1": rng.normal(size=8)}
    loss = lambda p: np.sum(np.tanh(p["W1"]) ** 2) + np.sum(p["b1"] ** 3)  # noqa: E731
    grad = lambda p: {"W1": 2 * np.tanh(p["W1"]) * (1 - np.tanh(p["W1"]) ** 2), "b1": 3 * p["b1"] ** 2}  # noqa: E731
    def wrong(p):
        g = grad(p)
        g["W1"][3, 7] *= -1
        return g
    v = ac.check_gradients(loss, wrong, p)
    assert [m.where for m in v.mismatches] == ["params['W1'][3, 7]"] * 2  # finite_diff and complex_step
    assert "FAIL  params['W1'] (4, 8): 1 of 32 entries wrong; worst params['W1'][3, 7]" in str(v)
    assert "ok    params['b1'] (8,)" in str(v)


def test_a_float_loss_skips_the_complex_step_and_says_why():
    x = np.array([0.3, -0.7, 1.1])
    v = ac.check_gradients(lambda x: float(np.sum(x**3)), lambda x: 3 * x**2, x)  # no ComplexWarning (warnings are errors)
    assert v.passed and [r.oracle for r in v.results] == ["finite_diff"]
    assert any("complex step skipped (an oracle less, not a fault of the derivative): f raised ComplexWarning" in n
               for n in v.notes), v.notes
    with pytest.raises(ValueError, match="analytic=True, but f raised ComplexWarning"):
        ac.check_gradients(lambda x: float(np.sum(x**3)), lambda x: 3 * x**2, x, analytic=True)


def test_a_non_analytic_loss_skips_the_complex_step():
    x = np.array([0.3, -0.7, 1.1])
    v = ac.check_gradients(lambda x: np.sum(np.abs(x) ** 3), lambda x: 3 * x * np.abs(x), x)
    assert v.passed, str(v)
    assert [r.oracle for r in v.results] == ["finite_diff"] and any("f returned a real number for complex input" in n for n in v.notes)


def test_kinks_are_detected_and_listed_not_failed():
    x = np.array([0.0, 1.0, -2.0, 0.0])
    relu_loss = lambda x: np.sum(np.maximum(x, 0) * np.array([1.0, 2.0, 3.0, 4.0]))  # noqa: E731
    good = lambda x: (x > 0) * np.array([1.0, 2.0, 3.0, 4.0])  # relu'(0) = 0, the left side  # noqa: E731
    v = ac.check_gradients(relu_loss, good, x)
    assert v.passed, v.report(full=True)
    assert v.results[0].skipped == 2 and len(v.not_checkable) == 2
    assert v.not_checkable[0].startswith("params[0]: kink: one-sided derivatives 0 (left) / 1 (right)")
    wrong = lambda x: good(x) + np.array([0, 0, 0, 5.0])  # outside both sides (0, 4) at x[3]  # noqa: E731
    bad = ac.check_gradients(relu_loss, wrong, x)
    assert [m.where for m in bad.results[0].mismatches] == ["params[3]"]
    assert "at a kink: outside the one-sided derivatives" in bad.results[0].mismatches[0].note
    between = lambda x: good(x) + np.array([0, 0, 0, 2.0])  # relu'(0) = 1/2: a subgradient, not a failure  # noqa: E731
    assert ac.check_gradients(relu_loss, between, x).passed


def test_float32_is_checked_in_float32_with_its_own_noise():
    rng = np.random.default_rng(3)
    X, W = rng.normal(size=(8, 5)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    loss = lambda W: np.sum(np.tanh(X @ W) ** 2)  # noqa: E731
    grad = lambda W: X.T @ (2 * np.tanh(X @ W) * (1 - np.tanh(X @ W) ** 2))  # noqa: E731
    v = ac.check_gradients(loss, grad, W)
    assert v.passed, v.report(full=True)
    sigma = float(re.search(r"sigma ([0-9.e+-]+)", v.notes[0]).group(1))
    assert 1e-8 < sigma / abs(loss(W)) < 1e-5  # float32's noise, not float64's
    bad = ac.check_gradients(loss, lambda W: X.T @ (2 * np.tanh(X @ W) * (1 - np.tanh(X @ W))), W)
    assert not bad.passed


def test_ecnoise_recovers_a_known_noise_level():
    sigma = 1e-9
    def f(x):  # a smooth function plus deterministic pseudo-random noise of std sigma (uniform)
        z = np.sin(1e7 * float(np.sum(x * np.arange(1, x.size + 1)))) * 43758.5453
        return float(np.sum(np.cos(x))) + sigma * np.sqrt(12) * (z - np.floor(z) - 0.5)
    x = np.array([0.3, 0.5, -0.2])
    nz = estimate_noise(f, x, np.array([1.0, -0.5, 0.25]), 1e-6)
    assert nz.sigma is not None and sigma / 3 < nz.sigma < 3 * sigma
    assert ecnoise(np.full(8, 2.0)) == (0.0, 2)  # no differences at all: h too small


@pytest.mark.parametrize("offset", [0.0, 0.37, -1.6, -2.6])
@pytest.mark.parametrize("seed", range(3))
def test_a_kink_the_noise_probe_crosses_is_not_read_as_noise(seed, offset):
    """f = sum cos(x) + |x_0|, plus noise of sigma 1e-12 drawn from a hash of x's bits
    (independent at any spacing), with the kink where the probe is at ``offset`` spacings from x:
    at x, between x and the next point, between two points on the other side, and between the
    first two (where one more point tells it from a jump of f). At the first
    spacing the kink's jump in slope reads ~1e-9; read again beside it, the level is the noise's.
    Bounds: ECNoise's reading of 8 points of uniform noise is within a factor 3 of sigma but in a
    small fraction of draws, and a reading at smaller spacings may be the larger of two
    (CONFIRM). Without the kink the reading is noise's and stays as it was."""
    import hashlib
    sigma = 1e-12

    def uniform(x):   # blake2b, not CRC32: CRC is linear in x's bits, and read 15x under sigma on a side
        return int.from_bytes(hashlib.blake2b(np.asarray(x, np.float64).tobytes(), digest_size=8).digest(), "big") / 2**64

    def f(x):
        return float(np.sum(np.cos(x)) + abs(x[0])) + sigma * np.sqrt(12) * (uniform(x) - 0.5)

    rng = np.random.default_rng(seed)
    x = np.concatenate([[0.0], rng.uniform(-1, 1, 5)])
    p = rng.standard_normal(6)
    p /= np.abs(p).max()
    h = np.sqrt(2.0**-53) * max(1.0, np.abs(x).max())
    x[0] = -offset * h * p[0]                           # |x_0 + t p_0| bends at t = offset h
    first = estimate_noise(f, x, p, h)
    assert first.h == h and first.sigma > 100 * sigma   # the kink, read as noise at the first spacing
    nz = confirmed_noise(f, x, p, first, 4 * np.sqrt(2.0**-53) * h)
    assert sigma / 3 < nz.sigma < 3 * CONFIRM * sigma, nz
    smooth = lambda x: float(np.sum(np.cos(x))) + sigma * np.sqrt(12) * (uniform(x) - 0.5)  # noqa: E731
    calm = estimate_noise(smooth, x, p, h)
    assert confirmed_noise(smooth, x, p, calm, 4 * np.sqrt(2.0**-53) * h).sigma == calm.sigma   # noise: left as read


@pytest.mark.parametrize("seed", range(3))
def test_noise_read_at_shrinking_spacings_is_the_rounding_not_a_fast_smooth_change(seed):
    """g_i = cos(1e7 x_i) rounded to float32: a smooth change on a scale of 1e-7, and noise known
    to the bit: uniform rounding of the float64 argument (ulp(1e7 x) |sin| wide) and of the value
    (ulp32(g) wide), sigma_i = |both| / sqrt(12). One spacing of sqrt(u) |x| (1.5e-8 steps) reads
    the change as noise; shrinking 64-fold until a smaller spacing agrees reads the noise. Bounds
    from 10^6 draws of the table's reading of uniform noise (docs/checker.md): 0.175 to 2.42
    sigma at the 1e-6 and 1 - 1e-6 quantiles, median 0.98; a confirmed reading may be up to
    CONFIRM times the one confirming it."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.0, 50)
    p = rng.standard_normal(50)
    p /= np.abs(p).max()
    g = lambda z: np.cos(1e7 * z).astype(np.float32).astype(np.float64)  # noqa: E731
    sigma = np.hypot(np.spacing(np.abs(g(x)).astype(np.float32)), np.spacing(1e7 * x) * np.sin(1e7 * x)) / np.sqrt(12)
    h = np.sqrt(2.0**-53) * x.max()
    read = shrinking_noise(g, x, p, h, np.spacing(x), 4 * np.sqrt(2.0**-53) * h)
    assert np.all(read >= 0.175 * sigma) and np.all(read <= CONFIRM * 2.42 * sigma), read / sigma
    assert np.median(read / sigma) < 2.42, read / sigma
    assert np.median(vector_noise(g, x, p, h) / sigma) > 10 * 2.42   # the one spacing: smooth change


def test_large_inputs_are_bisected_to_the_wrong_entries_in_k_log_n():
    n = 3000
    rng = np.random.default_rng(5)
    c = rng.normal(size=n)
    calls = [0]
    def loss(w):
        calls[0] += 1
        return np.sum(c * np.sin(w))
    def wrong(w):
        g = c * np.cos(w)
        g[[17, 2400]] += 1e-4
        return g
    w = rng.normal(size=n)
    v = ac.check_gradients(loss, wrong, w, n_directions=8)
    assert not v.passed
    assert {m.where for m in v.mismatches} == {"params[17]", "params[2400]"}, v.report(full=True)
    # k = 2 wrong of n = 3000: about 2 k log2 n = 46 block tests of <= 4 directions, 1 complex-step call each
    assert calls[0] < 8 * 2 * 2 * int(np.log2(n) + 1) + 200, calls[0]


def test_vjp_of_a_layer_with_jax_twin_and_named_primals(rng):
    jnp = pytest.importorskip("jax.numpy")
    x, W, b = rng.normal(size=(2, 3, 2)), rng.normal(size=(6, 6)), rng.normal(size=6)
    f = lambda x, W, b: np.tanh(x.reshape(2, -1) @ W + b)  # noqa: E731
    fj = lambda x, W, b: jnp.tanh(x.reshape(2, -1) @ W + b)  # noqa: E731
    def vjp(dy, x, W, b):
        dz = dy * (1 - f(x, W, b) ** 2)
        return (dz @ W.T).reshape(x.shape), x.reshape(2, -1).T @ dz, dz.sum(0)
    v = ac.assert_vjp(f, vjp, x, W, b, jax_fn=fj)
    assert {r.oracle for r in v.results} == {"finite_diff", "complex_step", "jax_vjp", "jax_jvp"}
    def bad(dy, x, W, b):
        dx, dW, db = vjp(dy, x, W, b)
        dx[1, 2, 0] = 0.0
        return dx, dW, db
    with pytest.raises(AssertionError, match=r"primal 0 \[1, 2, 0\]"):
        ac.assert_vjp(f, bad, x, W, b, jax_fn=fj)


def _traced_twins(jnp):
    """tanh(x W) and its VJP, and two JAX twins: one counting how often JAX calls it, one whose
    Python ``if`` on a value cannot be traced under jax.jit (eager jax.jvp runs it)."""
    calls = []
    f = lambda x, W: np.tanh(x @ W)  # noqa: E731

    def vjp(dy, x, W):
        dz = dy * (1 - np.tanh(x @ W) ** 2)
        return dz @ W.T, x.T @ dz

    def counted(x, W):
        calls.append(1)
        return jnp.tanh(x @ W)

    def branching(x, W):
        return jnp.tanh(x @ W) if x[0, 0] > -1e9 else jnp.tanh(x @ W) + 1

    return f, vjp, counted, branching, calls


@pytest.mark.parametrize("check", ["vjp", "jvp", "gradients"])
def test_the_jax_twin_is_compiled_once_for_all_directions(check, rng):
    """Eager jax.jvp traces (and for a lax.scan compiles) the twin at every direction: 20
    directions, 20 traces, 7 of an LSTM check's 8 s. Under one jax.jit: a few traces in all."""
    jnp = pytest.importorskip("jax.numpy")
    f, vjp, counted, _, calls = _traced_twins(jnp)
    x, W = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    if check == "vjp":
        v = ac.check_vjp(f, vjp, x, W, jax_fn=counted, n_directions=20)
    elif check == "jvp":
        v = ac.check_jvp(f, lambda t, x, W: (t[0] @ W + x @ t[1]) * (1 - np.tanh(x @ W) ** 2), x, W,
                         jax_fn=counted, n_directions=20)
    else:
        loss = lambda P: float(np.sum(f(*P)))  # noqa: E731
        v = ac.check_gradients(loss, lambda P: vjp(np.ones((3, 2)), *P), (x, W), oracles=["jax_jvp"],
                               jax_fn=lambda P: jnp.sum(counted(*P)), per_coordinate=False, n_directions=20)
    assert v.passed and "jax_jvp" in {r.oracle for r in v.results}
    assert len(calls) <= 4, f"the JAX twin was traced {len(calls)} times for 20 directions"


def test_a_jax_twin_that_jit_cannot_trace_runs_eagerly(rng):
    jnp = pytest.importorskip("jax.numpy")
    f, vjp, _, branching, _ = _traced_twins(jnp)
    x, W = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    assert {r.oracle for r in ac.assert_vjp(f, vjp, x, W, jax_fn=branching).results} >= {"jax_vjp", "jax_jvp"}

    def bad(dy, x, W):
        dx, dW = vjp(dy, x, W)
        return dx, 2 * dW
    v = ac.check_vjp(f, bad, x, W, jax_fn=branching, oracles=["jax_jvp"])
    assert not v.passed and [r.oracle for r in v.results if not r.passed] == ["jax_jvp"]


@pytest.mark.parametrize("twin", ["reshape", "slice"])
def test_a_jax_twin_using_an_integer_primal_as_a_shape_or_index_runs_eagerly(twin):
    """Under jit these raise a plain TypeError ("shapes must be concrete") or IndexError, not
    JAX's tracer errors: the first fallback let them through (a review of the jit change)."""
    jnp = pytest.importorskip("jax.numpy")
    x = np.linspace(0.1, 1.0, 6)
    jax_fn = {"reshape": lambda x, n: (2 * x).reshape(n), "slice": lambda x, n: 2 * x[:n]}[twin]
    v = ac.check_vjp(lambda x, n: 2 * x, lambda c, x, n: (2 * c, None), x, 6, jax_fn=jax_fn)
    assert v.passed and {"jax_vjp", "jax_jvp"} <= {r.oracle for r in v.results}
    assert ac.compare([jnp.ones((2, 2))], [np.ones((2, 2))], rtol=0, atol=0).passed   # JAX arrays as layers


def test_jvp_and_hvp():
    A = np.array([[2.0, 1.0], [0.5, -1.0], [1.0, 1.0]])
    f = lambda x: np.sin(A @ x)  # noqa: E731
    x = np.array([0.4, -0.3])
    assert ac.check_jvp(f, lambda t, x: np.cos(A @ x) * (A @ t[0]), x).passed
    bad = ac.check_jvp(f, lambda t, x: np.cos(A @ x) * (A[:, :1] @ t[0][:1]), x)
    assert not bad.passed and {m.where for m in bad.mismatches} == {"primal 0 [1]"}
    loss = lambda x: np.sum(np.sin(A @ x))  # noqa: E731
    hvp = lambda x, v: A.T @ (-np.sin(A @ x) * (A @ v))  # noqa: E731
    assert ac.check_hvp(loss, hvp, x).passed
    assert ac.check_hvp(loss, hvp, x, grad_fn=lambda x: A.T @ np.cos(A @ x)).passed
    assert not ac.check_hvp(loss, lambda x, v: A.T @ (np.sin(A @ x) * (A @ v)), x).passed
    assert not ac.check_hvp(lambda x: float(loss(x)), lambda x, v: A.T @ (np.sin(A @ x) * (A @ v)), x).passed


def test_a_dict_subclass_reaches_the_loss_as_itself():
    """loss_fn and grad_fn get the tree's own dict type back, each point a new object built by
    its constructor: a defaultdict with its factory (reading a missing key inserts it: refused as
    a change of the params' structure), an OrderedDict, a Counter (given a dict). Nothing of the
    user's object is shared (a copy of it carried a cached property into every point, and failed
    a right gradient; a review). A subclass whose constructor takes neither the pairs nor a dict
    of them, or has other arguments (rebuilt, they would take their defaults), is named."""
    seen = []

    def loss(p):
        seen.append((type(p), p.default_factory))
        return float(np.sum(p["w"] ** 2))

    params = collections.defaultdict(list, w=np.array([0.5, -1.0]))
    assert ac.check_gradients(loss, lambda p: {"w": 2 * p["w"]}, params, analytic=False).passed
    assert set(seen) == {(collections.defaultdict, list)}
    with pytest.raises(ValueError, match=r"loss_fn wrote into its argument params \(its structure"):
        ac.check_gradients(lambda p: loss(p) + len(p["absent"]), lambda p: {"w": 2 * p["w"]}, params)

    class Cached(dict):
        @functools.cached_property
        def l2(self):
            return float(np.sum(self["w"] ** 2))

    cached = Cached(w=np.array([0.5, -1.0, 2.0]))
    cached.l2                                                   # computed once on the user's object
    verdict = ac.check_gradients(lambda p: p.l2, lambda p: {"w": 2 * p["w"]}, cached, analytic=False)
    assert verdict.passed, verdict.report(full=True)

    def typed_loss(p):
        seen.append(type(p))
        return float(np.sum(p["w"] ** 2))

    seen.clear()
    counter = collections.Counter(w=np.array([0.5, -1.0]))
    assert ac.check_gradients(typed_loss, lambda p: {"w": 2 * p["w"]}, counter, analytic=False).passed
    assert set(seen) == {collections.Counter}

    class AttrDict(dict):   # its keys as attributes: copy.deepcopy, bypassing __init__, lost them
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            self.__dict__ = self

    attrs = AttrDict(w=np.array([0.5, -1.0]))
    assert ac.check_gradients(lambda p: float(np.sum(p.w ** 2)), lambda p: {"w": 2 * p.w}, attrs).passed
    assert not ac.check_gradients(lambda p: float(np.sum(p.w ** 2)), lambda p: {"w": 3 * p.w}, attrs).passed
    assert ac.check_vjp(lambda x, p: x * p.w, lambda dy, x, p: (dy * p.w, {"w": dy * x}), np.array([1.0, 2.0]), attrs).passed

    class Cfg(dict):   # rebuilt by Cfg(**pairs) it would take lr = 0.1, not the user's 0.01 (a review)
        def __init__(self, lr=0.1, **kw):
            super().__init__(**kw)
            self.lr = lr

    with pytest.raises(TypeError, match=r"cannot rebuild a Cfg from key-value pairs"):
        ac.check_gradients(lambda p: p.lr * float(np.sum(p["w"] ** 2)), lambda p: {"w": 2 * p.lr * p["w"]},
                           Cfg(lr=0.01, w=np.array([0.5])))

    class Config(dict):
        def __init__(self, lr, **kw):
            super().__init__(**kw)
            self.lr = lr

    with pytest.raises(TypeError, match=r"cannot rebuild a Config from key-value pairs"):
        ac.check_gradients(lambda p: float(np.sum(p["w"] ** 2)), lambda p: {"w": 2 * p["w"]},
                           Config(0.1, w=np.array([0.5])))


def test_a_container_jax_cannot_take_apart_is_named_before_jax_fn_runs():
    """A dict subclass JAX has not registered reached jax.vjp and came back as JAX's own "not a
    valid JAX type" from inside its tracing; every check with jax_fn= names it first, with its
    place in the inputs. A registered one (OrderedDict) and the checks without jax_fn= are fine."""
    pytest.importorskip("jax")
    import jax.numpy as jnp

    class Cfg(dict):
        pass

    x, p = np.arange(3.0), Cfg(w=np.array([1.0, -2.0, 0.5]), b=np.ones(3))
    f = lambda x, p: x * p["w"] + p["b"]                                    # noqa: E731
    vjp = lambda dy, x, p: (dy * p["w"], {"w": dy * x, "b": dy})           # noqa: E731
    jvp = lambda t, x, p: t[0] * p["w"] + x * t[1]["w"] + t[1]["b"]        # noqa: E731
    message = r"^jax_fn= needs primals that JAX can take apart, and primal 1 is of type Cfg, a container JAX does not know"
    with pytest.raises(TypeError, match=message):
        ac.check_vjp(f, vjp, x, p, jax_fn=f)
    with pytest.raises(TypeError, match=message):
        ac.check_jvp(f, jvp, x, p, jax_fn=f)
    loss, grad = (lambda p: float(np.sum(p["w"] ** 2))), (lambda p: {"w": 2 * p["w"], "b": 0 * p["b"]})
    for check in (lambda j: ac.check_gradients(loss, grad, p, jax_fn=j),
                  lambda j: ac.check_hvp(loss, lambda p, v: {"w": 2 * v["w"], "b": 0 * v["b"]}, p, jax_fn=j)):
        with pytest.raises(TypeError, match=r"^jax_fn= needs params that JAX can take apart, and params is of type Cfg"):
            check(lambda p: jnp.sum(p["w"] ** 2))
    nested = {"layers": [Cfg(w=p["w"])]}
    with pytest.raises(TypeError, match=r"and primal 1\['layers'\]\[0\] is of type Cfg"):
        ac.check_vjp(lambda x, q: 2 * x, lambda dy, x, q: (2 * dy, {"layers": [{"w": 0 * dy}]}), x, nested,
                     jax_fn=lambda x, q: 2 * x)
    with pytest.raises(TypeError, match=r"JAX sorts every dict's keys, so they must be of one type"):
        ac.check_vjp(lambda x, q: 2 * x, lambda dy, x, q: (2 * dy, {1: 0 * dy, "a": 0 * dy}), x,
                     {1: np.ones(3), "a": np.ones(3)}, jax_fn=lambda x, q: 2 * x)
    for out, jax_out, who in ((lambda x: {"y": 2 * x}, lambda x: Cfg(y=2 * x), "jax_fn's output"),
                              (lambda x: Cfg(y=2 * x), lambda x: {"y": 2 * x}, "f's output")):
        with pytest.raises(TypeError, match=rf"^with jax_fn=, {who} must be made of containers JAX can take apart, "
                                            rf"and {who} is of type Cfg"):
            ac.check_vjp(out, lambda dy, x: (2 * dy["y"],), x, jax_fn=jax_out)
    assert ac.check_vjp(f, vjp, x, p).passed and ac.check_jvp(f, jvp, x, p).passed
    assert ac.check_vjp(f, vjp, x, collections.OrderedDict(p), jax_fn=f).passed


def _nonnegative_cube(x):
    if np.any(x < 0):
        raise ValueError("x must be >= 0")
    return x ** 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_function_raising_a_step_from_the_inputs_is_told_where(dtype):
    """f defined for x >= 0 at x = [0, 1, 2]: the differences evaluate it at x[0] = -h. The
    user's exception comes through, with a note that the checker moved the inputs, by how much,
    and which entry changed sign; at the inputs themselves no note is added."""
    x = np.array([0.0, 1.0, 2.0], dtype)
    for call, what, name in [
        (lambda: ac.check_vjp(_nonnegative_cube, lambda dy, x: dy * 3 * x**2, x), "f", "primal 0 [0]"),
        (lambda: ac.check_jvp(_nonnegative_cube, lambda t, x: 3 * x**2 * t[0], x), "f", "primal 0 [0]"),
        (lambda: ac.check_gradients(lambda p: float(np.sum(_nonnegative_cube(p))), lambda p: 3 * p**2, x),
         "loss_fn", "params[0]"),
        (lambda: ac.check_hvp(lambda p: float(np.sum(_nonnegative_cube(p))), lambda p, v: 6 * p * v, x),
         "loss_fn", "params[0]"),   # by differences of f: the noise reading raises first
    ]:
        with pytest.raises(ValueError, match="x must be >= 0") as raised:
            call()
        note = "\n".join(getattr(raised.value, "__notes__", []))
        assert f"autodiff_check: {what} raised this at a point near the inputs given" in note, note
        assert re.search(re.escape(name) + r" went from 0 to -\d", note), note
    with pytest.raises(ValueError, match="x must be >= 0") as raised:
        ac.check_vjp(_nonnegative_cube, lambda dy, x: dy, -x - 1)
    assert not getattr(raised.value, "__notes__", None)


@pytest.mark.parametrize("check, f, deriv, name", [
    (ac.check_vjp, lambda x, W: x @ W, lambda dy, x, W: (dy @ W.T, x.T @ dy), "vjp_fn"),
    (ac.check_jvp, lambda x, W: x @ W, lambda t, x, W: t[0] @ W + x @ t[1], "jvp_fn"),
])
def test_f_and_its_derivative_swapped_is_named(check, f, deriv, name):
    x, W = np.ones((2, 3)), np.ones((3, 4))
    with pytest.raises(TypeError, match="missing 1 required positional argument") as raised:
        check(deriv, f, x, W)
    assert raised.value.__notes__ == [
        f"autodiff_check: f(*primals) raised this, called with the 2 primals given; the call is "
        f"check_{name[:3]}(f, {name}, *primals), and {name} takes one argument more than f: are f and {name} swapped?"]
    assert check(f, deriv, x, W).passed


def test_loss_fn_and_hvp_fn_swapped_is_named():
    x = np.arange(3.0)
    with pytest.raises(TypeError, match="missing 1 required positional argument") as raised:
        ac.check_hvp(lambda p, v: 2 * v, lambda p: float(np.sum(p ** 2)), x)
    assert "are loss_fn and hvp_fn swapped?" in raised.value.__notes__[-1]


def test_bad_input_is_named():
    x = np.zeros(3)
    with pytest.raises(ValueError, match=r"grad_fn returned shape \(4,\) for params; expected \(3,\)"):
        ac.check_gradients(lambda x: np.sum(x), lambda x: np.zeros(4), x)
    with pytest.raises(ValueError, match="must return a scalar"):
        ac.check_gradients(lambda x: x, lambda x: x, x)
    # (J, grads) where J goes, and a gradient of two leaves: named, not NumPy's "inhomogeneous shape"
    swapped = r"got a {} of 2 entries \(loss_fn and grad_fn swapped, or a function returning \(loss, grad\)\?\)"
    with pytest.raises(ValueError, match=swapped.format("tuple")):
        ac.check_gradients(lambda x: (np.sum(x), x), lambda x: np.ones(3), x)
    with pytest.raises(ValueError, match=swapped.format("list")):
        ac.check_gradients(lambda p: [2 * p[0], 2 * p[1]], lambda p: float(np.sum(p[0] ** 2) + np.sum(p[1] ** 2)),
                           [x, np.zeros((2, 2))])
    with pytest.raises(ValueError, match=r"n_directions must be an integer in \[1, 64\]"):
        ac.check_gradients(lambda x: np.sum(x), lambda x: np.ones(3), x, n_directions=0)
    with pytest.raises(TypeError, match="params\\['a'\\]: expected an array"):
        ac.check_gradients(lambda p: 0.0, lambda p: p, {"a": "text"})
    with pytest.raises(ValueError, match=r"vjp_fn must return a tuple with one entry per primal \(2\); got ndarray"):
        ac.check_vjp(lambda a, b: a * b, lambda d, a, b: d * b, x, x)
    # a VJP written for x alone beside integer labels: the message says which primal wants None
    with pytest.raises(ValueError, match=r"one entry per primal \(2\) \(None for primal 1: an integer or boolean "
                                         r"input, held fixed\); got ndarray"):
        ac.check_vjp(lambda a, k: a[k], lambda d, a, k: np.where(np.arange(3) == k, d, 0.0), x, np.int64(1))


def test_strategies_draw_layer_inputs():
    from hypothesis import given, settings

    from autodiff_check.strategies import affine_inputs

    @settings(max_examples=5)
    @given(affine_inputs())
    def check(args):
        x, W, b = args
        ac.assert_vjp(lambda x, W, b: x.reshape(len(x), -1) @ W + b,
                      lambda d, x, W, b: ((d @ W.T).reshape(x.shape), x.reshape(len(x), -1).T @ d, d.sum(0)), x, W, b)
    check()
    assert "hypothesis" not in subprocess.run(
        [sys.executable, "-c", "import sys, autodiff_check; print(sorted(m for m in sys.modules if m.startswith('hypo')))"],
        capture_output=True, text=True).stdout.replace("[]", "")


def _student_net():
    import manual_backprop as mb

    params = mb.init_params([3, 4, 2], seed=1)
    x, y = np.random.default_rng(0).normal(size=(5, 3)), mb.one_hot([0, 1, 1, 0, 1], 2)
    return mb, params, x, y


def test_check_network_judges_the_loss_a_backward_returns():
    """A backward returning (B J, its right gradient) passed: the returned loss was never looked
    at (a student's review). It is a failing loss_value result now, its note naming both values
    and their ratio; the right one passes."""
    mb, params, x, y = _student_net()

    def summed(params, x, y, **kw):                      # the 1/B forgotten in the loss only
        J, g = mb.loss_and_grad(params, x, y, **kw)
        return J * len(x), g

    v = ac.check_network(params, x, y, backward=summed, use_jax=False)
    assert v.status == "FAIL" and [r.oracle for r in v.results if not r.passed] == ["loss_value"]
    J = mb.loss(params, x, y)
    assert re.search(rf"the loss it returned, {5 * J:.8g}, is not the network's {J:.8g} .*; 5 times it\)", v.notes[0])
    assert v.disagreements() == [f"summed disagrees with the network loss; worst {v.results[-1].mismatches[0]}"]
    assert "loss_value         DISAGREES     1 of 1      values" in v.report(full=True)
    assert ac.check_network(params, x, y, backward=mb.loss_and_grad, use_jax=False).status == "PASS"


def test_a_loss_whose_dtype_numpy_cannot_read_is_judged_by_its_value():
    """A 0-d tensor of another library (torch's) has a .dtype NumPy cannot interpret; reading it
    to name a narrow loss raised TypeError before the value was looked at (a review). It is
    judged by float(J), as before."""
    mb, params, x, y = _student_net()

    class Tensor:                                      # torch.tensor(J) as far as the check sees it
        dtype = "torch.float64"

        def __init__(self, v):
            self.v = v

        def __float__(self):
            return self.v

    def wrapped(params, x, y, **kw):
        J, g = mb.loss_and_grad(params, x, y, **kw)
        return Tensor(J), g

    assert ac.check_network(params, x, y, backward=wrapped, use_jax=False).status == "PASS"


@pytest.mark.parametrize("kind", ["numpy", "jax"])
def test_a_loss_returned_in_float32_is_named_with_the_digits_that_differ(kind):
    """check_network checks in float64; a backward that returns its loss as np.float32 fails
    loss_value (float32's rounding of J is beyond the float64 bound), and the note says it was
    float32, prints the two values to the digits that tell them apart and their ratio as
    1 -+ r (it printed 2.564523 against 2.564523, "1 times it")."""
    mb, params, x, y = _student_net()

    to32 = np.float32 if kind == "numpy" else pytest.importorskip("jax.numpy").float32   # jnp's: a JAX array

    def narrowed(params, x, y, **kw):
        J, g = mb.loss_and_grad(params, x, y, **kw)
        return to32(J), g

    v = ac.check_network(params, x, y, backward=narrowed, use_jax=False)
    assert [r.oracle for r in v.results if not r.passed] == ["loss_value"], v.report(full=True)
    J, J32 = mb.loss(params, x, y), float(np.float32(mb.loss(params, x, y)))
    got, ref = re.search(r"the loss it returned, (\S+), is not the network's (\S+) ", v.notes[0]).groups()
    digits = len(got.replace(".", "").lstrip("-0"))     # both to as many significant digits
    assert got != ref and (got, ref) == (f"{J32:.{digits}g}", f"{J:.{digits}g}")
    assert re.search(rf"; 1 [-+] {abs(J32 / J - 1):.2g} times it; it returned float32, whose rounding", v.notes[0])


def test_check_network_takes_a_backward_without_keywords_for_the_posts_network():
    """def mine(params, x, y) crashed inside the checker (an unexpected keyword 'activation');
    it is called plainly for the post's network, and refused by name for another activation."""
    mb, params, x, y = _student_net()

    def mine(params, x, y):
        return mb.loss_and_grad(params, x, y)

    assert ac.check_network(params, x, y, backward=mine, use_jax=False).passed
    with pytest.raises(TypeError, match=r"^check_network: backward mine takes no activation= and loss= keywords, so "
                                        r"it cannot be checked with activation='tanh'"):
        ac.check_network(params, x, y, backward=mine, activation="tanh", use_jax=False)


@pytest.mark.parametrize("slip, hint", [(lambda g: g[1:], "(one row short: a bias row 0 left out?)"),
                                        (lambda g: g.T, "(transposed?)"),
                                        (lambda g: np.vstack([g[:1], g]), "(a bias row 0 too many?)")])
def test_a_wrong_gradient_shape_names_the_likely_slip(slip, hint):
    mb, params, x, y = _student_net()
    with pytest.raises(ValueError, match=r"returned shape \(\d+, \d+\) for params\[1\]; expected \(5, 2\) " + re.escape(hint)):
        ac.check_gradients(lambda p: mb.loss(p, x, y), lambda p: [p[0] * 0, slip(mb.loss_and_grad(p, x, y)[1][1])], params)


def test_a_failing_input_says_where_its_errors_lie_and_how_they_relate_to_the_oracle():
    """A student's slip reads off the report (a student's review asked for it): each W_l named,
    a bias row left at 0, a layer B times too large (the 1/B left out), a column with its sign
    flipped; an error spread over every entry at random gets no such description."""
    mb, params, x, y = _student_net()                   # B = 5, params (4, 4) and (5, 2)

    def mine(params, x, y):
        J, g = mb.loss_and_grad(params, x, y)
        g[0][0] = 0                                      # the bias row of W_1 forgotten
        g[1][:, 1] *= -1                                 # one output unit's sign flipped
        return J, g

    report = str(ac.check_network(params, x, y, backward=mine, use_jax=False))
    assert re.search(r"FAIL  params\[0\] = W_1 \(4, 4\): 4 of 16 entries wrong, all in row 0 \(the bias row\), "
                     r"each 0 there \(a term missing\?\); worst params\[0\]\[0, \d\]", report), report
    assert re.search(r"FAIL  params\[1\] = W_2 \(5, 2\): 5 of 10 entries wrong, all in column 1, each -1 times "
                     r"\w+'s there \(the sign flipped\); worst", report), report

    def times_B(params, x, y):
        J, g = mb.loss_and_grad(params, x, y)
        return J, [g[0], 5 * g[1]]

    report = str(ac.check_network(params, x, y, backward=times_B, use_jax=False))
    assert re.search(r"FAIL  params\[1\] = W_2 \(5, 2\): 10 of 10 entries wrong, each 5 times \w+'s "
                     r"\(B = 5: a 1/B left out\?\); worst", report), report
    assert "ok    params[0] = W_1 (4, 4): worst" in report

    rng = np.random.default_rng(1)

    def noisy(params, x, y):
        J, g = mb.loss_and_grad(params, x, y)
        return J, [g[0], g[1] * (1 + rng.uniform(0.5, 1.5, g[1].shape) * rng.choice([-1, 1], g[1].shape))]

    line = next(s for s in str(ac.check_network(params, x, y, backward=noisy, use_jax=False)).splitlines() if "W_2" in s)
    assert re.search(r"FAIL  params\[1\] = W_2 \(5, 2\): 10 of 10 entries wrong; worst", line), line


def test_check_vjp_names_each_primal_by_its_parameter(rng):
    """``primal 0 = x``: the names of f's positional parameters, also through functools.partial;
    a function without named positions (``*args``) leaves the paths alone."""
    import functools

    x, W = rng.normal(size=(3, 2)), rng.normal(size=(2, 2))

    def layer(x, W, *, scale=1.0):
        return scale * np.tanh(x @ W)

    def layer_vjp(dy, x, W, *, scale=1.0):
        dz = scale * dy * (1 - np.tanh(x @ W) ** 2)
        return dz @ W.T, x.T @ dz

    def half_dW(dy, x, W, *, scale=1.0):
        dx, dW = layer_vjp(dy, x, W, scale=scale)
        return dx, dW / 2

    f, good, bad = (functools.partial(fn, scale=2.0) for fn in (layer, layer_vjp, half_dW))
    report = str(ac.check_vjp(f, good, x, W))
    assert "ok    primal 0 = x (3, 2): worst primal 0 [" in report and "ok    primal 1 = W (2, 2)" in report, report
    report = str(ac.check_vjp(f, bad, x, W))
    assert re.search(r"FAIL  primal 1 = W \(2, 2\): 4 of 4 entries wrong, each 0\.5 times \w+'s; worst", report), report
    report = str(ac.check_vjp(lambda *a: f(*a), good, x, W))
    assert "ok    primal 0 (3, 2): worst" in report, report


def test_errors_in_one_channel_of_a_3d_input_are_located_on_their_axis(rng):
    """Beyond two axes the place is an index of an axis: a gradient missing on channel 1 of
    an (N, C, W) input, and one doubled on channels 0 and 2."""
    x = rng.normal(size=(2, 3, 4))

    def missing(dy, x):
        dx = 3 * x**2 * dy
        dx[:, 1] = 0
        return (dx,)

    def doubled(dy, x):
        dx = 3 * x**2 * dy
        dx[:, [0, 2]] *= 2
        return (dx,)

    report = str(ac.check_vjp(lambda x: x**3, missing, x))
    assert "FAIL  primal 0 = x (2, 3, 4): 8 of 24 entries wrong, all in index 1 of axis 1, each 0 there (a term missing?)" in report, report
    report = str(ac.check_vjp(lambda x: x**3, doubled, x))
    assert re.search(r"16 of 24 entries wrong, all in indices 0 and 2 of axis 1, each 2 times \w+'s there;", report), report


def test_the_posts_backward_is_wrong_in_all_but_the_bias_row_of_its_last_layer():
    """The post's backward multiplies delta_L by z_{L-1} where a_{L-1} belongs: the bias row of
    W_L, which has no a_{L-1} in it, is the one part it gets right, and the report says so."""
    mb, _, _, _ = _student_net()
    params = mb.init_params([6, 5, 5, 3], seed=0)
    x, y = np.random.default_rng(0).uniform(size=(4, 6)), mb.one_hot([0, 1, 2, 0], 3)
    report = str(ac.check_network(params, x, y, backward="as_published", use_jax=False))
    assert "FAIL  params[2] = W_3 (6, 3): 15 of 18 entries wrong, all but row 0 (the bias row); worst" in report, report


@pytest.mark.parametrize("case", ["a NaN", "two NaNs in a row", "a tolerance and a half off", "noise near the tolerance",
                                  "references below the tolerance"])
def test_no_scale_is_claimed_where_none_explains_the_errors(case, rng):
    """Review findings: c = <g, ref> / <ref, ref> fitted without the non-finite entries came out
    near 1 and "explained" them; a c near 1 fitted errors of one or two tolerances; a large c
    fitted references near 0 to anything. Each failing entry's error must now be mostly c ref's."""
    x, b = rng.normal(size=(4, 4)), np.array([1.0, 2.0, 3.0, 4.0])
    f = lambda x, b: np.sum(np.sin(x)) + 1e-12 * np.sum(b * b)   # noqa: E731  d/db = 2e-12 b: below fd's tolerance
    rng = np.random.default_rng(2)
    right = lambda dy, x, b: (dy * np.cos(x), dy * 2e-12 * b)     # noqa: E731
    tol = ac.check_vjp(f, right, x, b, oracles=["fd"], cotangent=1.0).results[0].tolerances[:16].reshape(4, 4)

    def vjp(dy, x, b):
        dx, db = right(dy, x, b)
        t = 1.5 * tol                                              # a tolerance and a half of each entry of dx
        if case == "a NaN":
            dx[0, 0] = np.nan
        elif case == "two NaNs in a row":
            dx[0, :2] = np.nan
        elif case == "a tolerance and a half off":
            dx[0, 0] += t[0, 0] * dy
        elif case == "noise near the tolerance":
            dx += rng.uniform(1.2, 1.8, dx.shape) * rng.choice([-1, 1], dx.shape) * tol * dy
        else:
            db = dy * np.array([3e-6, -1e-6, 2e-6, 1e-6])
        return dx, db

    v = ac.check_vjp(f, vjp, x, b, oracles=["fd"], cotangent=1.0)
    failing = [line for line in str(v).splitlines() if line.startswith("  FAIL")]
    assert failing and not any("times" in line or "each" in line for line in failing), str(v)
    if case == "two NaNs in a row":
        assert "2 of 16 entries wrong, all in row 0; worst" in failing[0], failing


def test_a_derivative_near_the_top_of_the_range_fails_without_a_warning():
    """|g - ref| / tol overflowed (a RuntimeWarning, an error in this suite) for g ~ 1e300 ref
    (review finding); the entry fails, 1e300 times the oracle's."""
    x = np.array([0.5, -1.5, 2.0])
    v = ac.check_gradients(lambda x: np.sum(x**2), lambda x: 2e300 * x, x)
    assert not v.passed
    assert re.search(r"FAIL  params \(3,\): 3 of 3 entries wrong, each 1e\+300 times \w+'s; worst", str(v)), str(v)


@pytest.mark.parametrize("slip", ["squeezed", "an axis added"])
def test_a_derivative_with_an_axis_of_length_1_dropped_or_added_is_refused(slip, rng):
    """ds of shape (7,) for s of shape (7, 1) was reshaped and passed (an engineer's review):
    the same numbers, but s - lr * ds is (7, 7) by broadcasting. Refused by name now."""
    s, h = rng.normal(size=(7, 1)), rng.normal(size=(7, 3))

    def vjp(dy, s, h):
        ds = (1 - np.tanh(s) ** 2) * (dy * h).sum(1, keepdims=True)
        return (ds[:, 0] if slip == "squeezed" else ds[None]), np.tanh(s) * dy

    expected = r"\(7,\)" if slip == "squeezed" else r"\(1, 7, 1\)"
    with pytest.raises(ValueError, match=rf"^vjp_fn returned shape {expected} for primal 0; expected \(7, 1\) "
                                         r"\(an axis of length 1 dropped or added"):
        ac.check_vjp(lambda s, h: np.tanh(s) * h, vjp, s, h)


@pytest.mark.parametrize("x_shape, axes, lead", [((4, 3), "0", "the leading axis"),
                                                  ((2, 4, 3), r"\(0, 1\)", "the 2 leading axes")])
def test_a_bias_gradient_left_per_example_asks_for_the_sum(x_shape, axes, lead, rng):
    """db = dy for y = x + b, the most classic slip (an engineer's review): the shape is named with
    the sum it lacks."""
    x, b = rng.normal(size=x_shape), rng.normal(size=3)
    shape = re.escape(str(x_shape))
    with pytest.raises(ValueError, match=rf"^vjp_fn returned shape {shape} for primal 1; expected \(3,\) "
                                         rf"\(not summed over {lead} it is broadcast along: \.sum\(axis={axes}\)\?\)$"):
        ac.check_vjp(lambda x, b: x + b, lambda dy, x, b: (dy, dy), x, b)
    assert ac.check_vjp(lambda x, b: x + b, lambda dy, x, b: (dy, dy.reshape(-1, 3).sum(0)), x, b).passed


def test_a_gradient_that_broadcasts_to_its_parameter_unchanged_is_taken():
    """What W - lr g keeps W's shape with is taken, reshaped (a review of the refusal above):
    a scalar for a (1,) bias, (1,) for a (1, 1) weight; not (1,) for a 0-d parameter."""
    b, w = np.array([0.3]), np.array([[0.7]])
    loss = lambda p: float(np.sum(np.sin(p["b"])) + np.sum(p["w"] ** 3))   # noqa: E731
    assert ac.check_gradients(loss, lambda p: {"b": float(np.cos(p["b"][0])), "w": 3 * p["w"][0] ** 2}, {"b": b, "w": w})
    with pytest.raises(ValueError, match=r"returned shape \(1,\) for params\['c'\]; expected \(\)"):
        ac.check_gradients(lambda p: float(np.sin(p["c"])), lambda p: {"c": np.cos(p["c"]).reshape(1)}, {"c": np.array(0.3)})


def test_a_bisection_that_stops_early_says_the_other_inputs_are_not_localised():
    """Along random directions (2,280 inputs) a relu layer whose backward forgets the mask is
    wrong almost everywhere; the bisection names 5 entries of x and stops. W and b read
    'checked along random directions' as if clear (an engineer's review): now 'not localised',
    and a note says more may be wrong. One wrong entry is bisected to the end: then the other
    inputs were searched, and read as before."""
    rng = np.random.default_rng(0)
    x, W, b = rng.normal(size=(16, 40)), rng.normal(size=(40, 40)) / 6, rng.normal(size=40)
    f = lambda x, W, b: np.maximum(x @ W + b, 0)   # noqa: E731

    def right(dy, x, W, b):
        dz = dy * (x @ W + b > 0)
        return dz @ W.T, x.T @ dz, dz.sum(0)

    def no_mask(dy, x, W, b):
        return dy @ W.T, x.T @ dy, dy.sum(0)

    def one_entry(dy, x, W, b):
        dx, dW, db = right(dy, x, W, b)
        dx[3, 5] += 1.0
        return dx, dW, db

    report = str(ac.check_vjp(f, no_mask, x, W, b))
    assert "FAIL  primal 0 = x (16, 40): 5 entries named; worst" in report, report
    assert "-     primal 1 = W (40, 40): not localised: the bisection stopped before it (note)" in report, report
    assert re.search(r"note: bisection stopped after naming 5 wrong entries: \d+ entries were not searched, and "
                     r"more may be wrong among them", report), report
    def db_doubled(dy, x, W, b):                   # x and W searched and cleared, then b's entries named
        dx, dW, db = right(dy, x, W, b)
        return dx, dW, 2 * db

    report = str(ac.check_vjp(f, db_doubled, x, W, b))
    assert "-     primal 0 = x (16, 40): checked along random directions" in report, report
    assert "FAIL  primal 2 = b (40,): 5 entries named" in report and "bisection stopped" in report, report
    report = str(ac.check_vjp(f, one_entry, x, W, b))
    assert "FAIL  primal 0 = x (16, 40): 1 entry named; worst primal 0 [3, 5]" in report, report
    assert "-     primal 1 = W (40, 40): checked along random directions" in report and "bisection stopped" not in report, report


def test_a_run_of_columns_and_a_reciprocal_factor_are_named():
    """A gate's block of 5 columns left at 0 had no place named (three at most); a 1/N read
    '0.1667 times' (an engineer's review): now 'columns 10 to 14' and '1/6 times'."""
    rng = np.random.default_rng(0)
    x, W = rng.normal(size=(6, 4)), rng.normal(size=(4, 20))

    def vjp(dy, x, W):
        dz = dy * (1 - np.tanh(x @ W) ** 2)
        dW = x.T @ dz
        dW[:, 10:15] = 0
        return dz @ W.T / 6, dW

    report = str(ac.check_vjp(lambda x, W: np.tanh(x @ W), vjp, x, W))
    assert re.search(r"FAIL  primal 0 = x \(6, 4\): 24 of 24 entries wrong, each 1/6 times \w+'s; worst", report), report
    assert "FAIL  primal 1 = W (4, 20): 20 of 80 entries wrong, all in columns 10 to 14, each 0 there" in report, report


def test_a_run_of_rows_from_the_bias_row_names_it_among_them():
    """'rows 0 (the bias row) to 4' read badly (a review): 'rows 0 to 4 (the bias row among them)'."""
    mb, _, _, _ = _student_net()
    p = mb.init_params([10, 4, 2], seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(5, 10)), mb.one_hot([0, 1, 0, 1, 1], 2)

    def mine(params, x, y):
        J, g = mb.loss_and_grad(params, x, y)
        g[0][0:5] = 0
        return J, g

    report = str(ac.check_network(p, x, y, backward=mine, use_jax=False))
    assert "W_1 (11, 4): 20 of 44 entries wrong, all in rows 0 to 4 (the bias row among them), each 0 there" in report, report


X3 = np.array([0.3, -1.2, 0.7])


def _sin_sum(p):
    return float(np.sum(np.sin(p)))


def _minus_sin_times(p, v):
    return -np.sin(p) * v


def _cos_times(dy, x):
    return (dy * np.cos(x),)


def _cos_tangent(t, x):
    return t[0] * np.cos(x)


def test_a_jax_fn_that_is_nan_at_the_point_is_refused_not_charged_to_the_derivative():
    """A NaN jax_fn failed correct derivatives in all four checks ("jax_jvp DISAGREES ... 0.955
    vs nan"; check_gradients's note that jax_fn differs from loss_fn was not given, NaN being no
    larger than anything); it is now refused as a NaN loss_fn is. A jax_fn that is no real
    floating scalar is refused by name, not by JAX's own TypeError (a review)."""
    jnp = pytest.importorskip("jax.numpy")
    nan = ValueError, r"^jax_fn is not finite at (the given point|output\[0\]) \(nan\)"
    for call, (error, message) in (
        (lambda: ac.check_gradients(_sin_sum, np.cos, X3, jax_fn=lambda p: jnp.sum(jnp.sin(p)) * jnp.nan), nan),
        (lambda: ac.check_hvp(_sin_sum, _minus_sin_times, X3, jax_fn=lambda p: jnp.sum(jnp.sin(p)) * jnp.nan), nan),
        (lambda: ac.check_vjp(np.sin, _cos_times, X3, jax_fn=lambda x: jnp.sin(x) * jnp.nan), nan),
        (lambda: ac.check_jvp(np.sin, _cos_tangent, X3, jax_fn=lambda x: jnp.sin(x).at[1].set(jnp.inf)),
         (ValueError, r"^jax_fn is not finite at output\[1\] \(inf\) where f is \(-0.93203909\)")),
        (lambda: ac.check_gradients(_sin_sum, np.cos, X3, jax_fn=lambda p: [jnp.sum(jnp.sin(p))]),
         (TypeError, r"^jax_fn must return a real floating scalar .*; got list$")),
        (lambda: ac.check_gradients(_sin_sum, np.cos, X3, jax_fn=lambda p: jnp.sum(jnp.sin(p)) + 0j),
         (TypeError, r"got dtype complex128, shape \(\)$")),
        (lambda: ac.check_hvp(_sin_sum, _minus_sin_times, X3, jax_fn=jnp.sin),
         (TypeError, r"got dtype float64, shape \(3,\)$")),
    ):
        with pytest.raises(error, match=message):
            call()
    assert ac.check_gradients(_sin_sum, np.cos, X3, jax_fn=lambda p: jnp.sum(jnp.sin(p))).passed
    assert ac.check_vjp(np.sin, _cos_times, X3, jax_fn=jnp.sin).passed


def test_a_derivative_near_float64s_largest_number_fails_without_warnings():
    """The checker's own arithmetic on such a derivative (g @ v, 2 g, <c, jvp>, the excess over
    the tolerance) overflowed with 20-40 RuntimeWarnings, errors in this suite; the verdict was
    and is FAIL (a review)."""
    def huge_vjp(dy, x):
        with np.errstate(over="ignore"):   # the user's own overflow is theirs to report
            return (1e308 * dy,)

    def huge_jvp(t, x):
        with np.errstate(over="ignore"):
            return 1e308 * t[0]

    x2 = np.array([0.5, 1.0])
    for per_coordinate in (True, False):
        assert ac.check_gradients(lambda p: float(np.sum(p)), lambda p: np.array([1e308, 1e308, 1.0]),
                                  np.array([0.5, 1.0, 2.0]), per_coordinate=per_coordinate).status == "FAIL"
        assert ac.check_vjp(lambda x: 2 * x, huge_vjp, x2, per_coordinate=per_coordinate).status == "FAIL"
        assert ac.check_jvp(lambda x: 2 * x, huge_jvp, x2, per_coordinate=per_coordinate).status == "FAIL"


def test_a_float16_input_a_step_from_its_largest_number_is_checked_without_warnings():
    """A step past float16's 65504 rounded to inf with an overflow warning from the checker's
    cast (a review); f then sees inf, as float16 would give it."""
    x = np.array([65000.0, 1.0], np.float16)
    assert ac.check_gradients(lambda p: np.sum(p), lambda p: np.ones(2, np.float16), x).status == "PASS"
    assert ac.check_gradients(lambda p: np.sum(p), lambda p: np.ones(2, np.float16), x, analytic=False).status in (
        "PASS", "NOT CHECKED")


@pytest.mark.parametrize("where", ["params", "grad", "primal", "cotangent", "output"])
def test_a_masked_array_is_refused_wherever_the_checker_meets_it(where):
    """np.asarray dropped the mask and the checks used the values under it: a masked loss and
    gradient passed while neither ever saw a mask (a review). manual_backprop refuses them too."""
    masked = np.ma.masked_array(X3, mask=[False, True, False])
    call = {
        "params": lambda: ac.check_gradients(lambda p: float(np.ma.sum(p["w"] ** 2)),
                                             lambda p: {"w": np.ma.filled(2 * p["w"], 0.0)}, {"w": masked}),
        "grad": lambda: ac.check_gradients(lambda p: float(np.sum(p ** 2)),
                                           lambda p: np.ma.masked_array(2 * p, mask=[0, 1, 0]), X3),
        "primal": lambda: ac.check_vjp(np.sin, _cos_times, masked),
        "cotangent": lambda: ac.check_vjp(np.sin, _cos_times, X3, cotangent=masked),
        "output": lambda: ac.check_vjp(lambda x: np.ma.masked_array(np.sin(x), mask=[0, 1, 0]), _cos_times, X3),
    }[where]
    name = {"params": r"params\['w'\]", "grad": "grad_fn", "primal": r"primals\[0\]", "cotangent": "cotangent",
            "output": "f's output"}[where]
    with pytest.raises(TypeError, match=rf"^{name}: a masked array, whose mask the checks would ignore"):
        call()


def test_the_pytree_walks_leave_no_cycle_that_holds_arrays_until_the_collector_runs():
    """flatten, unflatten and copy_tree walked trees with recursive closures, each a cycle
    through its own cell that kept every leaf (and copy) alive until Python's cyclic collector
    ran, which large arrays do not prompt: check_vjp of 10^6 inputs held ~200 copies of them
    (1.7 GB; a review, 2026-12-05). With the collector off, nothing may outlive its last name."""
    import gc
    import weakref

    from autodiff_check.pytree import copy_tree, flatten, unflatten

    gc.collect()
    gc.disable()
    try:
        a = np.zeros(10)
        tree = {"w": [a, (np.ones(3), 2.0)], "b": a[:2]}
        leaves, _, treedef = flatten(tree)
        rebuilt, copied = unflatten(treedef, leaves), copy_tree(tree)
        refs = [weakref.ref(x) for x in (a, leaves[1], rebuilt["w"][0], copied["w"][0], copied["w"][1][0])]
        del a, tree, leaves, treedef, rebuilt, copied
        assert [r() is None for r in refs] == [True] * len(refs)
    finally:
        gc.enable()


def test_a_namedtuples_leaves_are_named_by_their_fields():
    """A NamedTuple of parameters was reported as params[0], params[1] (a review, 2026-12-05)."""
    P = collections.namedtuple("P", "w b")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 3)), rng.normal(size=8)
    p = P(rng.normal(size=3), np.array(0.5))
    loss = lambda p: 0.5 * np.sum((X @ p.w + p.b - y) ** 2)   # noqa: E731
    wrong_b = lambda p: P(X.T @ (X @ p.w + p.b - y), 2 * np.sum(X @ p.w + p.b - y))   # noqa: E731
    text = str(ac.check_gradients(loss, wrong_b, p))
    assert "ok    params.w (3,)" in text and "FAIL  params.b ()" in text, text
    text = str(ac.check_vjp(lambda q: q.w * q.b, lambda dy, q: (P(dy * q.b, 3 * np.sum(dy * q.w)),), p))
    assert "ok    primal 0.w" in text and "FAIL  primal 0.b" in text, text
    # a structure that does not match is named so too, and paths copy and pickle with their names
    q = P(np.ones(3), {"k": np.ones(3)})
    with pytest.raises(ValueError, match=r"^grad_fn returned keys \['j'\] for params\.b; expected \['k'\]$"):
        ac.check_gradients(lambda p: np.sum(p.b["k"] ** 2), lambda p: P(0 * p.w, {"j": 2 * p.b["k"]}), q)
    import copy
    import pickle

    from autodiff_check.pytree import flatten, format_path
    paths = flatten(q)[1]
    for again in (copy.deepcopy(paths), pickle.loads(pickle.dumps(paths))):
        assert again == paths and [format_path("params", p) for p in again] == ["params.w", "params.b['k']"]
