"""Regression tests for the review of the general checker (findings F1-F8, F11): each test
fails on the checker before its fix. Warnings are errors here (pytest filterwarnings=error)."""

from __future__ import annotations

import numpy as np
import pytest

import autodiff_check as ac
from autodiff_check.check import OracleResult, Verdict


# ---------------------------------------------------------------- F8: warnings escape


def test_noise_estimate_silences_warnings_near_a_domain_edge():
    """f = sum x log x at x = 1e-13 is finite at x and NaN a step to the left: ECNoise samples
    there and used to let 'invalid value in log' escape (an error under -W error)."""
    x = np.full(4, 1e-13)
    ac.check_gradients(lambda x: float(np.sum(x * np.log(x))), lambda x: np.log(x) + 1, x, analytic=False)


def test_report_formats_non_finite_and_zero_tolerances_without_warnings():
    r = OracleResult("o", False, np.inf, 0.0, values=np.array([1.0, 0.0, np.inf]),
                     references=np.array([0.0, 0.0, np.inf]), tolerances=np.array([0.5, 0.0, 0.0]), n_failed=2)
    v = Verdict("g", [r], inputs=[("params", (3,), 0, 3)])
    text = v.report(full=True)
    assert "FAIL" in text and "params" in text


# ---------------------------------------------------------------- F4: integer leaves with jax_fn


def test_vjp_with_an_integer_primal_first_and_its_jax_twin():
    import autodiff_check.layers as J
    import manual_backprop.layers as L
    ids, E = np.array([[0, 2, 2], [1, 0, 0]]), np.random.default_rng(0).standard_normal((4, 3))
    v = ac.check_vjp(L.embedding, L.embedding_vjp, ids, E, jax_fn=J.FORWARD["embedding"])
    assert v.passed and {r.oracle for r in v.results} >= {"jax_vjp", "jax_jvp"}, v.report(full=True)
    bad = ac.check_vjp(L.embedding, lambda c, i, E: (None, 2 * L.embedding_vjp(c, i, E)[1]), ids, E,
                       jax_fn=J.FORWARD["embedding"])
    assert not bad.passed and all(not r.passed for r in bad.results)


def _jnp():
    return pytest.importorskip("jax.numpy")


@pytest.mark.parametrize("k", [3, np.array([1, 2, 3, 1, 2])], ids=["python int", "int array"])
def test_integer_leaves_with_jax_fn_in_every_check(k):
    jnp = _jnp()
    w = np.random.default_rng(0).standard_normal(5)
    v = ac.check_vjp(lambda k, w: w * k, lambda c, k, w: (None, c * k), k, w, jax_fn=lambda k, w: w * k)
    assert v.passed, v.report(full=True)
    v = ac.check_jvp(lambda k, w: w * k, lambda t, k, w: t[1] * k, k, w, jax_fn=lambda k, w: w * k)
    assert v.passed, v.report(full=True)
    P = {"k": k, "w": w}
    loss = lambda P: np.sum(P["w"] ** 4 * P["k"])  # noqa: E731
    jloss = lambda P: jnp.sum(P["w"] ** 4 * P["k"])  # noqa: E731
    # None for the integer leaf is accepted by check_gradients as by check_vjp
    v = ac.check_gradients(loss, lambda P: {"k": None, "w": 4 * P["w"] ** 3 * P["k"]}, P, jax_fn=jloss)
    assert v.passed and "jax_grad" in [r.oracle for r in v.results], v.report(full=True)
    hvp = lambda P, v: {"k": None, "w": 12 * P["w"] ** 2 * v["w"] * P["k"]}  # noqa: E731
    v = ac.check_hvp(loss, hvp, P, jax_fn=jloss)
    assert v.passed and "jax_hvp" in [r.oracle for r in v.results], v.report(full=True)
    wrong = lambda P, v: {"k": None, "w": 11 * P["w"] ** 2 * v["w"] * P["k"]}  # noqa: E731
    assert not ac.check_hvp(loss, wrong, P, jax_fn=jloss).passed


def test_none_for_a_floating_leaf_is_refused_by_name():
    with pytest.raises(ValueError, match=r"grad_fn returned None for params\['w'\]; expected an array of shape \(3,\)"):
        ac.check_gradients(lambda P: np.sum(P["w"] ** 2), lambda P: {"w": None}, {"w": np.ones(3)})


# ---------------------------------------------------------------- F1-F3: exact-oracle tolerances


@pytest.mark.parametrize("n", [50, 3000], ids=["per coordinate + jax_jvp", "directional"])
def test_float32_directional_exact_oracles_allow_float32_rounding(n):
    """A float32 gradient w*s is correctly rounded (|err| <= u32 |w s|, constant in x: sigma_g = 0);
    the directional tolerances used EXACT_RTOL = 1e-8 whatever the dtype (F1)."""
    jnp = _jnp()
    rng = np.random.default_rng(0)
    w, s, x = rng.standard_normal(n).astype(np.float32), np.float32(0.3), rng.standard_normal(n).astype(np.float32)
    v = ac.check_gradients(lambda x: np.sum(x * w * s), lambda x: w * s, x, jax_fn=lambda x: jnp.sum(x * w * s))
    assert v.passed, v.report(full=True)
    assert any(r.directional for r in v.results)

    def wrong(x):  # one entry off by 0.1 of the largest, ~0.08: the directional tolerance is
        g = w * s  # 64 u32 sum|g_i| = 3.8e-6 * 0.24 n, 2.8e-3 at n = 3000 (the per-entry one 4.5e-6)
        g[n // 2] += np.float32(0.1) * np.abs(g).max()
        return g

    bad = ac.check_gradients(lambda x: np.sum(x * w * s), wrong, x, jax_fn=lambda x: jnp.sum(x * w * s))
    assert not bad.passed and all(not r.passed for r in bad.results if r.directional), bad.report(full=True)


def test_float64_softmax_at_huge_logits_with_its_jax_twin():
    """<c, J v> cancels to ~1e-115 at saturated softmax while JAX's forward mode is exact only to
    u |v| there: jax_jvp's tolerance r |<c, J v>| was 1e-127 (F2)."""
    _jnp()
    import autodiff_check.layers as J
    import manual_backprop.layers as L
    x = np.random.default_rng(0).standard_normal((3, 5)) * 1e3
    v = ac.check_vjp(L.softmax, L.softmax_vjp, x, jax_fn=J.FORWARD["softmax"])
    assert v.passed, v.report(full=True)
    bad = ac.check_vjp(L.softmax, lambda c, x: (-L.softmax_vjp(c, x)[0],), x, jax_fn=J.FORWARD["softmax"])
    assert not bad.passed


def test_float32_softmax_at_huge_logits_flushed_subnormals():
    """The hand VJP gives -1.9e-39 (subnormal), XLA flushes it to -0: tolerance 5e-40 had no
    floor for flush-to-zero (F3)."""
    _jnp()
    import autodiff_check.layers as J
    import manual_backprop.layers as L
    x = (np.random.default_rng(0).standard_normal((3, 5)) * 1e3).astype(np.float32)
    x[1, 2] = x[1, 1] - np.float32(88.5)  # p = exp(-88.5) = 3.6e-39: subnormal in float32
    v = ac.check_vjp(L.softmax, L.softmax_vjp, x, jax_fn=J.FORWARD["softmax"])
    assert v.passed, v.report(full=True)


@pytest.mark.parametrize("layer,opts", [("max_pool2d", dict(size=3, stride=1)), ("avg_pool2d", dict(size=(2, 3), stride=1))])
def test_float32_pooling_layers_with_their_jax_twins(layer, opts):
    _jnp()
    import autodiff_check.layers as J
    import manual_backprop.layers as L
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 6)).astype(np.float32)
    f = lambda x: getattr(L, layer)(x, **opts)  # noqa: E731
    vjp = lambda c, x: getattr(L, layer + "_vjp")(c, x, **opts)  # noqa: E731
    v = ac.check_vjp(f, vjp, x, jax_fn=lambda x: J.FORWARD[layer](x, **opts))
    assert v.passed, v.report(full=True)
