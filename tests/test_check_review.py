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
