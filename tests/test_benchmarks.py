"""The benchmark runs and writes what it promises; it asserts no timing (CI machines are noisy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import manual_backprop as mb
from manual_backprop.network import Workspace

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/ is run from the repository root (python -m benchmarks), not installed
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import SCHEMA, gradients, timing  # noqa: E402


def test_quick_run_writes_valid_json(tmp_path):
    """``python -m benchmarks --quick`` in a subprocess: exit 0, a table on stdout, and a JSON
    file with every cell, every backend that ran, the environment and the goals."""
    pytest.importorskip("jax")
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--no-plot", "--out", str(out),
         "--backends", "manual,manual_default,per_example,jax_jit", "--train-examples", "64"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "manual/jax_jit" in proc.stdout and "GEMM fraction" in proc.stdout
    data = json.loads(out.read_text())
    assert data["schema"] == SCHEMA and data["quick"] is True
    for key in ("environment", "settings", "gradients", "training", "goals", "backends"):
        assert key in data
    assert data["environment"]["numpy"] == np.__version__
    cells = {(c["network"], c["batch"], c["dtype"]) for c in data["gradients"]}
    assert cells == {("post", b, d) for b in (1, 100) for d in ("float32", "float64")}
    for c in data["gradients"]:
        assert c["flops"] == gradients.flops(c["layer_sizes"], c["batch"])
        assert c["gemm"]["median_s"] > 0
        for name in data["backends"]:
            b = c["backends"][name]
            assert b["agrees"] is True, (name, c["batch"], c["dtype"], b)
            for k in ("median_s", "p25_s", "p75_s", "min_s", "first_call_s", "compile_s", "gflops",
                      "gemm_fraction", "ratio_to_baseline", "cpu_per_wall", "max_rel_error"):
                assert isinstance(b[k], float) and np.isfinite(b[k]), (name, k, b.get(k))
            assert b["p25_s"] <= b["median_s"] <= b["p75_s"]
        assert c["backends"]["jax_jit"]["ratio_to_baseline"] == pytest.approx(1.0)
    assert [t["batch_size"] for t in data["training"]] == [1, 64]
    for t in data["training"]:
        assert set(t["backends"]) == {"manual", "manual_grad", "jax_jit"}
        assert t["max_param_diff_rel"] < (1e-10 if t["dtype"] == "float64" else 1e-4)
    assert {g["goal"] for g in data["goals"]} >= {"manual <= jax_jit", "manual epoch <= jax_jit epoch"}


def test_flops_of_the_post_network():
    """2 B (3 sum n_in n_out - n_0 n_1): forward, a^T delta, and delta W^T except layer 1."""
    per = 784 * 500 + 500 * 500 + 500 * 10
    assert gradients.flops([784, 500, 500, 10], 1) == 2 * (3 * per - 784 * 500)


def test_every_installed_backend_agrees_with_manual_on_a_small_net():
    problem = gradients.make_problem("small", [5, 4, 3], 3, np.float64, seed=1)
    J, ref = mb.loss_and_grad(problem.params, problem.x, problem.y)
    for name, make in gradients.BACKENDS.items():
        try:
            runner = make(problem)
        except gradients.Unavailable:
            continue
        Jb, g = runner.result()
        assert gradients.max_rel_error(g, ref) < 1e-10, name
        assert Jb == pytest.approx(J, rel=1e-12), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", sorted(mb.ACTIVATIONS))
def test_reused_out_and_workspace_give_the_plain_result(dtype, activation):
    """The ``manual`` backend's form of the call (out=, workspace=, reused across calls and
    batch sizes) returns exactly what the plain call returns."""
    params = mb.init_params([6, 5, 4, 3], seed=2, dtype=dtype)
    out, ws = [np.full_like(W, np.nan) for W in params], Workspace()
    rng = np.random.default_rng(3)
    for batch in (1, 4, 1, 7):
        x = rng.normal(size=(batch, 6)).astype(dtype)
        y = mb.one_hot(rng.integers(0, 3, batch), 3, dtype=dtype)
        J, g = mb.loss_and_grad(params, x, y, activation=activation)
        J2, g2 = mb.loss_and_grad(params, x, y, activation=activation, out=out, workspace=ws, check_finite=False)
        assert J2 == J and all(a is b for a, b in zip(g2, out))
        for a, b in zip(g2, g):
            assert a.dtype == dtype
            np.testing.assert_array_equal(a, b)


def test_out_is_refused_when_it_cannot_hold_the_gradient():
    params = mb.init_params([3, 2], seed=0)
    x, y = np.ones((1, 3)), mb.one_hot([1], 2)
    with pytest.raises(TypeError, match="out"):
        mb.loss_and_grad(params, x, y, out=params[0])
    with pytest.raises(ValueError, match="shape"):
        mb.loss_and_grad(params, x, y, out=[np.empty((2, 2))])
    with pytest.raises(ValueError, match="float64"):
        mb.loss_and_grad(params, x, y, out=[np.empty((4, 2), np.float32)])
    with pytest.raises(ValueError, match="overlaps"):
        mb.loss_and_grad(params, x, y, out=[params[0]])
    with pytest.raises(ValueError, match="contiguous"):
        mb.loss_and_grad(params, x, y, out=[np.empty((2, 4)).T])


def test_interleaved_timing_statistics():
    calls = {"a": 0, "b": 0}

    def a():
        calls["a"] += 1

    def b():
        calls["b"] += 1

    stats = timing.interleaved({"a": a, "b": b}, rounds=3, round_time=0.001, max_calls=5)
    assert set(stats) == {"a", "b"}
    for s in stats.values():
        assert s.n == 15 and s.min_s <= s.p25_s <= s.median_s <= s.p75_s
    assert calls["a"] == 1 + 1 + 15  # first call, estimate, rounds
