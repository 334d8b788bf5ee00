"""The benchmark runs, checks every backend against the reference, and writes what it promises;
it asserts no timing (CI machines are noisy)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import manual_backprop as mb
from manual_backprop import as_published

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/ is run from the repository root (python -m benchmarks), not installed
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import SCHEMA, gradients, report, timing  # noqa: E402

SMOKE_BACKENDS = ["fast", "plain", "per_example", "jax_jit"]


@pytest.fixture(autouse=True)
def _torch_threads_kept(monkeypatch):
    """The benchmark's main() sets the torch thread count module-wide for its run; called here in
    process, it would carry over to later tests in the same worker (a review, 2026-12-03)."""
    monkeypatch.setattr(gradients, "TORCH_THREADS", gradients.TORCH_THREADS)


def test_quick_run_writes_valid_json(tmp_path):
    """``python -m benchmarks --quick`` in a subprocess (batches 1 and 8, one short round, to
    keep it to seconds): exit 0, the table and the environment on stdout, and a JSON file with
    every cell, every backend agreeing with the reference, the environment and the goals."""
    pytest.importorskip("jax")
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out), "--batches", "1,8",
         "--rounds", "1", "--round-time", "0.002", "--backends", ",".join(SMOKE_BACKENDS), "--train-examples", "128", "--test-examples", "500"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for words in ("plain/jit", "fast/jit", "plain/best", "best JAX", "GEMM/fast", "load average (1, 5, 15 min)",
                  "threads: NumPy BLAS"):
        assert words in proc.stdout, words
    data = json.loads(out.read_text())
    assert data["schema"] == SCHEMA and data["quick"] is True
    assert data["settings"]["warmup_s"] == 0.0 and [t["warmup_s"] for t in data["training"]] == [0.0, 0.0]
    if importlib.util.find_spec("matplotlib") is not None:
        assert data["plot"] == str(out.with_suffix(".png")) and out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    for key in ("environment", "settings", "gradients", "training", "goals", "backends"):
        assert key in data
    e = data["environment"]
    assert e["numpy"] == np.__version__
    assert len(e["load_average_start"]) == len(e["load_average_end"]) == 3
    assert e["threads"]["numpy_blas"] >= 1
    assert data["backends"] == SMOKE_BACKENDS
    cells = {(c["network"], c["batch"], c["dtype"]) for c in data["gradients"]}
    assert cells == {("post", b, d) for b in (1, 8) for d in ("float32", "float64")}
    for c in data["gradients"]:
        assert c["flops"] == gradients.flops(c["layer_sizes"], c["batch"])
        assert c["gemm"]["median_s"] > 0
        for name in data["backends"]:
            b = c["backends"][name]
            assert b["agrees"] is True and b["error_to_bound"] <= 1, (name, c["batch"], c["dtype"], b)
            for k in ("median_s", "p25_s", "p75_s", "min_s", "first_call_s", "compile_s", "gflops",
                      "gemm_fraction", "ratio_to_baseline", "cpu_per_wall", "max_rel_error",
                      "faults_per_call", "kernel_per_wall"):
                assert isinstance(b[k], float) and np.isfinite(b[k]), (name, k, b.get(k))
            assert b["p25_s"] <= b["median_s"] <= b["p75_s"]
        assert c["backends"]["jax_jit"]["ratio_to_baseline"] == pytest.approx(1.0)
        assert "ratio_interval_90" not in c["backends"]["jax_jit"]
        for name in ("plain", "fast"):
            lo, hi = c["backends"][name]["ratio_interval_90"]
            assert 0 < lo <= hi   # the run's own ratio usually lies inside; a bootstrap does not promise it
        assert c["backends"]["plain"]["max_rel_error"] == 0.0  # the reference against itself
    assert [t["batch_size"] for t in data["training"]] == [1, 64]
    for t in data["training"]:
        assert set(t["backends"]) == {"sgd_step", "fast_grad", "jax_jit", "jax_fori"}
        assert set(t["ratio_to_jax_jit"]) == set(t["ratio_to_fastest_jax"]) == {"sgd_step", "fast_grad"}
        assert t["backends"][t["fastest_jax"]]["seconds"] == min(t["backends"][n]["seconds"] for n in ("jax_jit", "jax_fori"))
        for name in ("sgd_step", "fast_grad"):
            seconds = t["backends"][name]["seconds"]
            assert t["ratio_to_jax_jit"][name] == seconds / t["backends"]["jax_jit"]["seconds"]
            assert t["ratio_to_fastest_jax"][name] == seconds / t["backends"][t["fastest_jax"]]["seconds"]
            assert len(t["fastest_jax_per_chunk_quartiles"][name]) == 3
        # the same SGD from the same start on the same batches (128 steps at batch 1 in float64, 2
        # at batch 64 in float32): the parameters differ only by each step's rounding, a few u of
        # the update lr g (|lr g| <= |W| here), so at most ~10 u of |W| per step: 128 * 10 u =
        # 1.4e-13 in float64, 2 * 10 u = 1.2e-6 in float32, held to 1e-12 and 1e-4 (7x and 80x
        # that); a wrong rate or gradient in one loop moves them apart by ~lr |g| / |W| ~ 1e-3
        assert t["max_param_diff_rel"] < (1e-12 if t["dtype"] == "float64" else 1e-4)
        assert t["max_param_diff_rel_jax_fori"] < (1e-12 if t["dtype"] == "float64" else 1e-4)  # the same argument
    assert {g["goal"] for g in data["goals"]} >= {"plain <= jax_jit", "fast <= jax_jit"}
    assert [g["goal"] for g in data["goals"] if "epoch" in g["goal"]] == [
        f"sgd_step epoch <= {t['fastest_jax']} epoch" for t in data["training"]]


def test_flops_of_the_post_network():
    """2 B (3 sum n_in n_out - n_0 n_1): forward, a^T delta, and delta W^T except layer 1."""
    per = 784 * 500 + 500 * 500 + 500 * 10
    assert gradients.flops([784, 500, 500, 10], 1) == 2 * (3 * per - 784 * 500)


@pytest.mark.parametrize("dtype,activation,loss", [
    (np.float64, "sigmoid", "binary_cross_entropy"), (np.float64, "tanh", "softmax_cross_entropy"),
    (np.float64, "relu", "mean_squared_error"), (np.float32, "sigmoid", "binary_cross_entropy"),
])
def test_every_installed_backend_agrees_with_the_reference(dtype, activation, loss):
    """The agreement check of the benchmark, on a small net, for every backend whose library is
    installed: each of the JAX baseline's three loss forms in float64 (where the bound is
    tight), and the benchmarked network's form in float32 (dtype kept end to end). The checker's
    twin (jax_jit_twin, jax_jit_api) is held to the reference by the checker's own tests."""
    problem = gradients.make_problem("small", [5, 4, 3], 3, dtype, seed=1, activation=activation, loss=loss)
    J, ref = mb.loss_and_grad(problem.params, problem.x, problem.y, activation=activation, loss=loss)
    for name, make in gradients.BACKENDS.items():
        if name in ("jax_jit_twin", "jax_jit_api"):
            continue
        try:
            runner = make(problem)
        except gradients.Unavailable:
            continue
        Jb, g = runner.result()
        verdict = gradients.agreement(problem, Jb, g, J, ref)
        assert verdict["agrees"], (name, verdict)
        assert all(a.dtype == dtype and a.shape == W.shape for a, W in zip(g, problem.params)), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_agreement_check_catches_the_published_backward(dtype):
    """Negative control: the post's published backward pass disagrees in both dtypes."""
    problem = gradients.make_problem("small", [6, 5, 5, 3], 4, dtype, seed=3)
    J, ref = mb.loss_and_grad(problem.params, problem.x, problem.y)
    assert gradients.agreement(problem, J, ref, J, ref)["agrees"]
    J_pub, wrong = as_published.loss_and_grad(problem.params, problem.x, problem.y)
    assert not gradients.agreement(problem, J_pub, wrong, J, ref)["agrees"]


def test_the_agreement_check_catches_one_entry_off_by_one_part_in_a_million():
    """In float64 the rounding bound of this net is ~1e-12 of the largest entry, so one entry
    (the largest of layer 2) off by 1e-6 of itself, or the loss off by 1e-6, disagrees."""
    problem = gradients.make_problem("small", [6, 5, 5, 3], 4, np.float64, seed=3)
    J, ref = mb.loss_and_grad(problem.params, problem.x, problem.y)
    nudged = [g.copy() for g in ref]
    i = np.unravel_index(np.argmax(np.abs(nudged[1])), nudged[1].shape)
    nudged[1][i] *= 1 + 1e-6
    assert not gradients.agreement(problem, J, nudged, J, ref)["agrees"]
    assert not gradients.agreement(problem, J * (1 + 1e-6), ref, J, ref)["agrees"]


@pytest.mark.parametrize("where", ["one entry", "a layer", "every layer", "the loss"])
def test_a_nan_gradient_or_loss_disagrees(where, tmp_path):
    """A backend whose gradient or loss is NaN read as agreeing exactly (error 0): Python's max
    keeps 0.0 against a NaN (a review). It disagrees, with an infinite error ratio, which the
    run's JSON holds as "inf" (strict JSON has no inf: the write raised and lost the run, a
    review of the first fix)."""
    problem = gradients.make_problem("small", [6, 5, 5, 3], 4, np.float64, seed=3)
    J, ref = mb.loss_and_grad(problem.params, problem.x, problem.y)
    bad = [g.copy() for g in ref]
    if where == "one entry":
        bad[1][0, 0] = np.nan
    elif where == "a layer":
        bad[0][:] = np.nan
    elif where == "every layer":
        bad = [np.full_like(g, np.nan) for g in ref]
    out = gradients.agreement(problem, np.nan if where == "the loss" else J, bad, J, ref)
    assert not out["agrees"]
    assert (out["loss_error_to_bound"] if where == "the loss" else out["error_to_bound"]) == np.inf
    assert where == "the loss" or gradients.max_rel_error(bad, ref) == np.inf
    assert gradients.largest([0.0, np.nan, 1.0]) == gradients.largest([np.nan]) == np.inf
    report.write_json(tmp_path / "run.json", {"cells": [{"backends": {"nan": out}}]})
    back = json.loads((tmp_path / "run.json").read_text())["cells"][0]["backends"]["nan"]
    assert back["agrees"] is False
    np.testing.assert_equal({k: float(v) for k, v in back.items() if k != "agrees"},   # NaN equal to NaN
                            {k: v for k, v in out.items() if k != "agrees"})


def test_jax_baseline_loss_is_the_twins_loss():
    """``jax_loss`` (a @ W[1:] + W[0], softplus(z) - y z) and the checker's twin (add_bias(a) @ W,
    log_sigmoid) are the same function: equal in float64 to a few u of the loss."""
    pytest.importorskip("jax")
    from autodiff_check import model

    problem = gradients.make_problem("small", [7, 6, 4], 5, np.float64, seed=4)
    args = (problem.params, problem.x, problem.y, "sigmoid", "binary_cross_entropy")
    a, b = float(gradients.jax_loss(*args)), float(model.loss_fn(*args))
    # both sum 5 x 4 terms of size ~1 and differ only in rounding: 64 u |J| is ample and 1e6x below any real difference
    assert abs(a - b) <= 64 * np.finfo(np.float64).eps * abs(b)


def test_torch_threads_follow_numpy_blas(monkeypatch):
    """The torch backend runs on as many threads as __main__ hands it (NumPy's BLAS count)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    monkeypatch.setattr(gradients, "TORCH_THREADS", 1)
    try:
        runner = gradients.BACKENDS["torch"](gradients.make_problem("small", [3, 2], 1, np.float64))
        assert runner.notes["torch_threads"] == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_numpy_blas_threads_and_load_are_reported():
    assert report.numpy_blas_threads() >= 1
    env = report.environment(load_start=report.load_average())
    lines = "\n".join(report.environment_lines(env))
    assert f"threads: NumPy BLAS {env['threads']['numpy_blas']}" in lines and "at start" in lines and "at end" in lines
    busy = dict(env, cpu_count=2, load_average_start=[3.0, 1, 1], load_average_end=[0.2, 1, 1])
    assert sum("WARNING: load average" in line for line in report.environment_lines(busy)) == 1
    # at the end, the load counts the run's own threads: 1.85 with 1.8 of them its own is quiet,
    # 2.9 with the same 1.8 its own means another process held a core
    for load_end, warnings in ((1.85, 0), (2.9, 1)):
        end = dict(env, cpu_count=2, load_average_start=[0.5, 1, 1], load_average_end=[load_end, 1, 1],
                   own_busy_threads=1.8)
        lines = report.environment_lines(end)
        assert sum("WARNING: load average" in line for line in lines) == warnings
        assert "kept 1.8 threads busy" in lines[1]


def test_a_run_records_the_code_it_started_on():
    """The commit is read when the run starts (a commit made while it ran was recorded before)."""
    state = report.source_state()
    assert set(state) == {"git_commit", "git_dirty"}
    assert state["git_commit"] is None or re.fullmatch(r"[0-9a-f]{7,40}", state["git_commit"])
    assert state["git_dirty"] in (None, True, False)
    started = {"git_commit": "0123abc", "git_dirty": True}
    env = report.environment(load_start=report.load_average(), source=started)
    assert (env["git_commit"], env["git_dirty"]) == ("0123abc", True)


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


def test_interleaved_timing_adds_rounds_for_a_minimum_of_samples():
    """Two calls per round (max_calls=2) and one round would give 2 samples; min_samples=7
    asks for ceil(7 / 2) = 4 rounds (3 would give 6 < 7), and every callable takes part in each."""
    stats = timing.interleaved({"a": lambda: None, "b": lambda: None}, rounds=1, round_time=1.0,
                               max_calls=2, min_samples=7)
    assert [s.n for s in stats.values()] == [8, 8]



@pytest.mark.skipif(timing.resource is None, reason="no getrusage on this platform")
def test_interleaved_timing_counts_the_page_faults_of_each_callable():
    """A callable that maps 64 fresh pages and writes one byte into each takes at least 64
    minor page faults per call (one per first touch); one that touches nothing takes far
    fewer; each is charged to its own callable although they alternate."""
    import mmap

    page = mmap.PAGESIZE

    def touch_fresh_pages():
        m = mmap.mmap(-1, 64 * page)
        for i in range(64):
            m[i * page] = 1
        m.close()

    stats = timing.interleaved({"fresh": touch_fresh_pages, "none": lambda: None},
                               rounds=3, round_time=0.001, max_calls=20)
    assert stats["fresh"].faults_per_call >= 64
    assert stats["none"].faults_per_call < 8
    assert all(0 <= s.kernel_per_wall for s in stats.values())


# ---- the layer benchmark (python -m benchmarks layers) ----------------------------------------


def test_layer_benchmark_checks_agreement_then_times():
    """Two cells of the quick run at batch 4 (the second conv of mnist_cnn, whose dx needs the
    kernel flip, and its max pooling) through every installed peer: each agrees with NumPy within
    the derived tolerance before it is timed, and the row holds medians, ratios and the GEMM floor."""
    pytest.importorskip("jax")
    from benchmarks import layers as LB

    cs = [c for c in LB.cells(np.float32, 4, quick=True) if c.label.startswith(("conv2d 8->16", "max_pool2d 2x2 on 16x8x8"))]
    assert [c.name for c in cs] == ["conv2d", "max_pool2d"]
    peers = ["jax"] + (["torch"] if importlib.util.find_spec("torch") else [])
    rows = LB.run_cells(cs, rounds=1, round_time=0.001, torch_threads=1, backends=peers, log=lambda m: None)
    for row in rows:
        for name in peers:
            b = row["backends"][name]
            assert b["agrees"] is True and b["error_to_tolerance"] <= 1, (row["cell"], name, b)
            assert np.isfinite(row[f"numpy_to_{name}"]) and row[f"numpy_to_{name}"] > 0
        assert row["backends"]["numpy"]["median_s"] > 0
    assert 0 < rows[0]["gemm_fraction"] and "gemm_fraction" not in rows[1]


def test_layer_benchmark_agreement_catches_an_unflipped_kernel():
    """Negative control: dx computed with the kernel NOT rotated by 180 degrees (the classic
    slip) disagrees in float32, while the true float32 VJP agrees with the float64 one."""
    from benchmarks import layers as LB
    import manual_backprop.layers as L

    cell = next(c for c in LB.cells(np.float32, 4, quick=True) if c.label.startswith("conv2d 8->16"))
    x, W, b = cell.primals
    dy = LB._cotangent(cell)
    y, (dx, dW, db) = L.conv2d(x, W, b), L.conv2d_vjp(dy, x, W, b)
    ref = [L.conv2d(*(p.astype(np.float64) for p in cell.primals)),
           *L.conv2d_vjp(dy.astype(np.float64), *(p.astype(np.float64) for p in cell.primals))]
    assert LB.agreement(cell, [y, dx, dW, db], ref)["agrees"]
    nan = LB.agreement(cell, [y, dx, np.full_like(dW, np.nan), db], ref)   # not read as 0 (a review)
    assert not nan["agrees"] and nan["error_to_tolerance"] == np.inf
    wrong_dx = L.conv2d_vjp(dy, x, np.ascontiguousarray(W[:, :, ::-1, ::-1]), b)[0]
    verdict = LB.agreement(cell, [y, wrong_dx, dW, db], ref)
    assert not verdict["agrees"] and verdict["error_to_tolerance"] > 10


def test_layer_benchmark_quick_run_writes_json(tmp_path):
    """``python -m benchmarks layers --quick`` (batch 8, one short round, 2 CNN steps, JAX only:
    torch is checked in process above): exit 0,
    the environment and the table on stdout, a JSON file with every cell agreeing, and the CNN
    run's first step agreeing and both backends training alike."""
    pytest.importorskip("jax")
    out = tmp_path / "layers.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "layers", "--quick", "--batch", "8", "--rounds", "1",
         "--round-time", "0.001", "--warmup", "0.001", "--cnn-steps", "2", "--cnn-chunks", "1", "--backends", "jax",
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for words in ("np/jax", "gemm%", "load average (1, 5, 15 min)", "threads: NumPy BLAS", "SGD steps"):
        assert words in proc.stdout, words
    data = json.loads(out.read_text())
    assert data["quick"] is True and data["settings"]["batch"] == 8 and data["settings"]["warmup_s"] == 0.001
    assert len(data["environment"]["load_average_start"]) == 3
    assert {c["layer"] for c in data["cells"]} == {"conv2d", "max_pool2d", "avg_pool2d", "dense", "softmax"}
    for c in data["cells"]:
        assert all(b.get("agrees", True) for b in c["backends"].values()), c
        assert c["numpy_to_jax"] > 0 and ("gemm" in c["backends"]) == (c["layer"] in ("conv2d", "dense"))
    cnn = data["cnn"]
    assert cnn["first_step_agrees"] is True and cnn["steps"] == 2
    # two SGD steps from the same start on the same batches: the parameters differ by rounding
    # only, a few float32 u (6e-8) of the update per step; a wrong gradient, or a warm-up step
    # that reached one backend's training parameters, moves them by ~lr |g|/|W| ~ 1e-3
    assert cnn["max_param_diff_rel"] < 1e-4


def test_corpus_sweep_counts_every_check_and_says_which_verdict_is_wrong(capsys, monkeypatch):
    from benchmarks import corpus_sweep
    from benchmarks.checker_corpus import CASES

    assert corpus_sweep.main(["--first", "0", "--seeds", "1", "--sizes", "0"]) == 0
    n = sum(len(c.dtypes) for c in CASES)
    assert f"{n} checks, 0 wrong verdicts" in capsys.readouterr().out
    # a verdict that passes a bug is counted wrong, and the exit status says so
    monkeypatch.setattr(corpus_sweep, "verdict_is_right", lambda case, verdict: case.bug is None)
    assert corpus_sweep.main(["--first", "0", "--seeds", "1", "--sizes", "0"]) == 1
    assert "WRONG" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        corpus_sweep.main(["--seeds", "0"])


def test_a_goal_met_against_a_faulting_baseline_is_marked():
    """A jax_jit cell that spent most of its time in the kernel (page faults: 86 % at batch 1
    float64 in one run) makes any ratio look good; the goal lines say so instead of counting
    it silently."""
    def cell(batch, kernel, ratio=0.2):
        return {"network": "post", "batch": batch, "dtype": "float64",
                "backends": {"plain": {"ratio_to_baseline": ratio}, "jax_jit": {"kernel_per_wall": kernel}}}

    gs = report.goals([cell(1, 0.86), cell(32, 0.02), cell(100, 0.9, ratio=1.5)], [])
    assert [g["met"] for g in gs] == [True, True, False]
    lines = report.goal_lines(gs)
    assert "2 of 3 met; 1 of them (marked *)" in lines[1]   # the miss is not counted among them
    assert lines[2].endswith("0.20 *") and lines[3].endswith("0.20")


def test_goals_are_judged_against_the_fastest_jitted_jax_formulation():
    """Above batch 1 the bias-column twin or separate biases can beat jax_jit (XLA copies the
    slices of W every call; a review): a cell names its fastest jitted JAX formulation, the goals
    take their ratio and interval against it, and the table shows both ratios and its name."""
    cell = {"network": "post", "batch": 32, "dtype": "float32", "layer_sizes": [4, 3, 2], "fastest_jax": "jax_jit_wb",
            "gemm": {"median_s": 1e-3, "gflops": 1.0, "cpu_per_wall": 1.0},
            "backends": {"plain": {"median_s": 1.3e-3, "ratio_to_baseline": 0.93, "ratio_to_fastest_jax": 1.04,
                                   "fastest_jax_interval_90": (1.01, 1.07), "ratio_interval_90": (0.9, 0.96)},
                         "jax_jit": {"median_s": 1.4e-3, "ratio_to_baseline": 1.0, "ratio_to_fastest_jax": 1.12},
                         "jax_jit_wb": {"median_s": 1.25e-3, "ratio_to_fastest_jax": 1.0, "kernel_per_wall": 0.01}}}
    (g,) = report.goals([cell], [])
    assert g["goal"] == "plain <= jax_jit_wb" and not g["met"] and g["value"] == 1.04 and g["interval_90"] == (1.01, 1.07)
    table = "\n".join(report.gradient_table([cell], ["plain", "jax_jit", "jax_jit_wb"]))
    assert "plain/best" in table and "best JAX" in table and " 1.04 " in table and "jax_jit_wb" in table
    old = {k: v for k, v in cell.items() if k != "fastest_jax"}           # a run file of before: jax_jit's
    assert report.goals([old], [])[0]["goal"] == "plain <= jax_jit" and report.goals([old], [])[0]["met"]


def test_the_epoch_goal_is_judged_against_the_faster_jax_loop():
    """A jitted step dispatched per Python iteration (jax_jit) or one jitted lax.fori_loop over
    the chunk's steps (jax_fori): sgd_step's epoch is held to the faster, and the training table
    prints its ratios to both; a run file of before (no fastest_jax) is judged against jax_jit."""
    run = {"batch_size": 64, "dtype": "float32", "examples": 128, "test_examples": 10, "data": "synthetic",
           "backends": {}, "fastest_jax": "jax_fori",
           "ratio_to_jax_jit": {"sgd_step": 0.8}, "ratio_per_chunk_quartiles": {"sgd_step": [0.7, 0.8, 0.9]},
           "ratio_to_fastest_jax": {"sgd_step": 1.2}, "fastest_jax_per_chunk_quartiles": {"sgd_step": [1.1, 1.2, 1.3]}}
    (g,) = report.goals([], [run])
    assert g["goal"] == "sgd_step epoch <= jax_fori epoch" and g["value"] == 1.2 and not g["met"]
    table = "\n".join(report.training_table([run]))
    assert "sgd_step/jax_jit = 0.80" in table and "sgd_step/jax_fori = 1.20" in table
    old = {k: v for k, v in run.items() if k not in ("fastest_jax", "ratio_to_fastest_jax")}
    (g,) = report.goals([], [old])
    assert g["goal"] == "sgd_step epoch <= jax_jit epoch" and g["value"] == 0.8 and g["met"]
    jit_fastest = {**run, "fastest_jax": "jax_jit", "ratio_to_fastest_jax": {"sgd_step": 0.8},
                   "fastest_jax_per_chunk_quartiles": {"sgd_step": [0.7, 0.8, 0.9]}}
    assert "\n".join(report.training_table([jit_fastest])).count("sgd_step/jax_jit") == 1   # printed once


def test_a_run_whose_json_cannot_be_written_prints_its_table_and_says_so(monkeypatch, tmp_path, capsys):
    """A disk that filled during the run lost every measurement with a traceback and exit 1 (which
    means a backend disagreed; a review): the table comes first, then one error line, exit 3."""
    from benchmarks import __main__ as bench

    def full(path, result):
        raise OSError(28, f"could not write {path}: No space left on device")

    monkeypatch.setattr(report, "write_json", full)
    rc = bench.main(["--quick", "--out", str(tmp_path / "x.json"), "--batches", "1", "--rounds", "1",
                     "--round-time", "0.002", "--backends", "plain,fast", "--no-training"])
    out, err = capsys.readouterr()
    assert rc == 3 and "plain/jit" in out and "GEMM/fast" in out
    assert "No space left on device; the table above is this run's only record" in err and "Traceback" not in err


def _stats(by_round) -> timing.Stats:
    a = np.asarray(by_round, dtype=float)
    m = float(np.median(a))
    return timing.Stats(median_s=m, p25_s=m, p75_s=m, min_s=float(a.min()), n=a.size, first_call_s=m,
                        cpu_per_wall=1.0, by_round=a)


def test_ratio_interval_resamples_whole_rounds_for_both_callables():
    """The machine slows every other round fivefold; the numerator takes twice the denominator's
    time in every round. Drawing the same rounds for both keeps the ratio at 2 in every resample
    (interval 2-2); drawing them apart would spread it from 0.4 to 10."""
    den = [[1.0], [5.0]] * 5
    num = [[2 * t for t in r] for r in den]
    assert timing.ratio_interval(_stats(num), _stats(den)) == (2.0, 2.0)


def test_ratio_interval_is_the_spread_of_medians():
    """One round of seven disturbed tenfold moves a median only when a resample draws it four
    times or more (probability 0.006 < 5 %): the 90 % interval stays at 1. Rounds that
    disagree (ratios 0.8 to 1.2) give an interval inside that range that holds their median."""
    den = [[1.0]] * 7
    assert timing.ratio_interval(_stats([[1.0]] * 6 + [[10.0]]), _stats(den)) == (1.0, 1.0)
    num = [[0.8], [0.9], [1.0], [1.0], [1.05], [1.1], [1.2]]
    lo, hi = timing.ratio_interval(_stats(num), _stats(den))
    assert 0.8 <= lo < 1.0 < hi <= 1.2
    with pytest.raises(ValueError, match="at least 2 rounds"):
        timing.ratio_interval(_stats(num), _stats(den[:6]))


class _SteppingClock:
    """Stands in for the ``time`` module of a benchmark module: every read of the wall clock
    is an event and moves it on by 10 ms, so that a warm-up ends after a known number of calls
    and a timed interval shows how many clock reads (and so warm-up calls) fell inside it."""

    def __init__(self, events):
        self.events, self.now = events, 0.0

    def perf_counter(self):
        self.events.append("wall")
        self.now += 0.01
        return self.now

    def process_time(self):
        self.events.append("cpu")
        return time.process_time()


def test_interleaved_timing_warms_each_turn_up_with_its_own_untimed_calls(monkeypatch):
    """warmup: before each callable's turn, calls of that callable only, for at least
    ``warmup`` seconds, and only while no clock of a turn runs (a turn: from its CPU clock
    read to the next); every round has one turn per callable."""
    events = []
    monkeypatch.setattr(timing, "time", _SteppingClock(events))
    fns = {k: (lambda k=k: events.append(k)) for k in ("a", "b")}
    timing.interleaved(fns, rounds=3, round_time=1.0, max_calls=2, warmup=0.055)
    calls = [e for e in events if e in ("a", "b")]
    assert calls[:4] == ["a", "b", "a", "b"]                  # first calls, then estimates
    in_turn, turns, warm = False, [], []
    after_estimates = [i for i, e in enumerate(events) if e in ("a", "b")][3] + 1
    for e in events[after_estimates:]:
        if e == "cpu":
            in_turn = not in_turn
            if in_turn:
                turns.append([])
                assert warm and set(warm) <= {"a", "b"} and len(set(warm)) == 1, warm
            else:
                assert set(turns[-1]) == set(warm) and len(turns[-1]) == 2   # the warmed one, timed
                warm = []
        elif e in ("a", "b"):
            (turns[-1] if in_turn else warm).append(e)
    assert not in_turn and len(turns) == 3 * 2
    assert all({turns[i][0], turns[i + 1][0]} == {"a", "b"} for i in range(0, 6, 2))
    # warm_up reads the clock before its first call and after each: 0.055 s of 10 ms ticks is 6 calls
    assert calls.count("a") == calls.count("b") == 1 + 1 + 3 * (6 + 2)


def test_no_warmup_means_no_extra_calls():
    """warmup=0 (the quick runs): the first call, the estimate, the timed calls, nothing else."""
    n = []
    timing.interleaved({"a": lambda: n.append(1)}, rounds=2, round_time=1.0, max_calls=2)
    assert len(n) == 1 + 1 + 2 * 2


@pytest.mark.parametrize("argv, warmup", [
    ([], timing.WARMUP_S), (["--quick"], 0.0), (["--quick", "--warmup", "0.1"], 0.1), (["--warmup", "0"], 0.0),
])
def test_warmup_defaults_to_the_full_runs_value_and_none_for_quick_ones(argv, warmup):
    from benchmarks import layers
    from benchmarks.__main__ import parse_args

    assert parse_args(argv).warmup == warmup and layers.parse_args(argv).warmup == warmup


def test_take_turns_warms_each_slice_up_with_its_own_backend_outside_the_clock(monkeypatch):
    """take_turns: every slice of every backend, the first of a turn rotating, right after that
    backend's own warm-up and never inside the slice's clock (each slice's seconds are the one
    10 ms tick between its two reads of the stepping clock)."""
    events = []
    monkeypatch.setattr(timing, "time", _SteppingClock(events))
    turns = {k: (lambda lo, hi, k=k: events.append(("run", k, lo, hi)) or (lo, hi),
                 lambda k=k: events.append(("warm", k))) for k in ("a", "b", "c")}
    seconds, results = timing.take_turns(turns, [0, 2, 5], warmup=0.055)
    runs = [e for e in events if e[0] == "run"]
    assert runs == [("run", "a", 0, 2), ("run", "b", 0, 2), ("run", "c", 0, 2),
                    ("run", "b", 2, 5), ("run", "c", 2, 5), ("run", "a", 2, 5)]
    for r in runs:
        i = events.index(r)
        # warm_up: a clock read, then its own backend's warm calls, each followed by a read (6 in
        # 0.055 s of 10 ms ticks); then the slice's clock starts, the run, the clock stops
        assert events[i - 14:i] == ["wall"] + [("warm", r[1]), "wall"] * 6 + ["wall"] and events[i + 1] == "wall"
    assert all(s == pytest.approx([0.01, 0.01]) for s in seconds.values())
    assert results == {k: [(0, 2), (2, 5)] for k in turns}


def test_training_chunks_each_follow_a_warm_up_the_training_never_sees(monkeypatch):
    """epoch.run takes its turns by take_turns with each backend's step on a copy of the
    parameters as its warm-up: invisible to the training (the same losses as without), outside
    the chunks' clock (no chunk lasts the warm-up's 0.5 s of the stepping clock)."""
    from benchmarks import epoch

    rng = np.random.default_rng(0)
    data = epoch.Data(rng.uniform(size=(12, 784)), rng.integers(0, 10, 12), rng.uniform(size=(4, 784)),
                      rng.integers(0, 10, 4), "synthetic (test)")
    backends = ("sgd_step", "fast_grad") + (("jax_jit", "jax_fori") if importlib.util.find_spec("jax") else ())
    kw = dict(batch_size=2, dtype="float64", lr=0.5, n_examples=12, data=data, backends=backends, chunks=3)
    cold = epoch.run(**kw)
    warmed, real_warm_up = [], timing.warm_up

    def warm_up(fn, seconds):
        warmed.append(seconds)
        real_warm_up(fn, seconds)

    clock = _SteppingClock([])
    monkeypatch.setattr(timing, "time", clock)
    monkeypatch.setattr(epoch, "time", clock)
    monkeypatch.setattr(timing, "warm_up", warm_up)
    out = epoch.run(**kw, warmup=0.5)
    assert warmed == [0.5] * (3 * len(backends)) and out["warmup_s"] == 0.5
    for name, b in out["backends"].items():
        assert max(b["chunk_seconds"]) < 0.5
        assert b["mean_train_loss"] == cold["backends"][name]["mean_train_loss"]


def test_the_command_lines_hand_warmup_to_every_timed_loop(monkeypatch, tmp_path):
    """--warmup reaches interleaved (gradients, layer cells), epoch.run and layers.cnn."""
    pytest.importorskip("jax")
    from benchmarks import epoch, layers
    from benchmarks.__main__ import main

    seen = []
    for module, name in ((timing, "interleaved"), (epoch, "run"), (layers, "cnn")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, real=real, name=name, **kw: (seen.append((name, kw["warmup"])),
                                                                              real(*a, **kw))[1])
    common = ["--rounds", "1", "--round-time", "0.001", "--warmup", "0.001"]
    assert main(["--networks", "post", "--dtypes", "float32", "--batches", "1", "--min-samples", "1", *common,
                 "--backends", "plain,fast", "--train-batches", "1", "--train-examples", "2", "--test-examples", "2",
                 "--out", str(tmp_path / "g.json"), "--no-plot"]) == 0
    assert main(["layers", "--quick", "--batch", "2", "--backends", "jax", "--cnn-steps", "1", "--cnn-chunks", "1",
                 *common, "--out", str(tmp_path / "l.json")]) == 0
    assert {n for n, _ in seen} == {"interleaved", "run", "cnn"} and {w for _, w in seen} == {0.001}


def test_interleaved_timing_keeps_the_calls_of_each_round():
    stats = timing.interleaved({"a": lambda: None, "b": lambda: None}, rounds=3, round_time=1.0, max_calls=2)
    for s in stats.values():
        assert s.by_round.shape == (3, 2) and np.median(s.by_round) == s.median_s
        assert "by_round" not in s.as_dict()   # medians, quartiles and minimum go to JSON, not every call


def test_a_goal_whose_interval_holds_one_is_marked_a_tie():
    def cell(ratio, interval):
        return {"network": "post", "batch": 1000, "dtype": "float64",
                "backends": {"plain": {"ratio_to_baseline": ratio, "ratio_interval_90": interval},
                             "jax_jit": {"kernel_per_wall": 0.01}}}

    gs = report.goals([cell(1.03, (0.98, 1.08)), cell(1.2, (1.1, 1.3)), cell(0.97, (0.94, 1.0)),
                       cell(0.8, (0.7, 0.9))], [])
    lines = report.goal_lines(gs)
    assert "2 of 4 met" in lines[1] and "1 met and 1 missed are ties" in lines[2]
    assert lines[3].endswith("1.03 (0.98-1.08) ~") and lines[4].endswith("1.20 (1.10-1.30)")
    assert lines[5].endswith("0.97 (0.94-1.00) ~") and lines[6].endswith("0.80 (0.70-0.90)")


def test_a_goal_value_that_would_print_as_its_threshold_gets_more_decimals():
    """0.796 of the GEMM peak printed "0.80" beside MISS, and a ratio of 1.004 "1.00" beside
    MISS: where two decimals show the threshold itself, the line shows as many more as it takes."""
    cells = [{"network": "post", "batch": 1000, "dtype": "float32",
              "backends": {"fast": {"ratio_to_baseline": r, "gemm_fraction": f}, "jax_jit": {}}}
             for r, f in ((1.004, 0.796), (0.996, 0.804), (1.0, 0.8), (0.97, 0.85))]
    epochs = [{"batch_size": 64, "dtype": "float32", "fastest_jax": "jax_fori", "ratio_to_fastest_jax": {"sgd_step": r}}
              for r in (1.004, 1.0004)]
    lines = report.goal_lines(report.goals(cells, epochs))
    values = [line.rsplit(": ", 1)[1] for line in lines[2:]]
    assert values == ["1.004", "0.796", "0.996", "0.804", "1.00", "0.80", "0.97", "0.85", "1.004", "1.0004"]
    assert [line.split()[0] for line in lines[2:]] == ["MISS", "MISS"] + ["met"] * 6 + ["MISS", "MISS"]
    assert len({line.index(" post ") for line in lines[2:]}) == 1   # one column, the longest goal's width


def test_a_run_of_one_round_reports_no_interval(tmp_path):
    """With one round there is nothing to resample: the ratio is reported without an interval
    (ratio_interval raised, so --rounds 1 --min-samples 1 ended in a traceback)."""
    pytest.importorskip("jax")
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out), "--batches", "1", "--dtypes", "float32",
         "--rounds", "1", "--min-samples", "1", "--round-time", "0.002", "--backends", "plain,fast,jax_jit",
         "--no-training", "--no-plot"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (cell,) = json.loads(out.read_text())["gradients"]
    assert cell["backends"]["fast"]["ratio_to_baseline"] > 0 and "ratio_interval_90" not in cell["backends"]["fast"]


# ------------------------------------------------------------------ the command lines refuse bad input up front
# Each case failed before: a traceback in the middle of a run (no JSON), or exit 0 with a useless result.

FAST = ["--networks", "post", "--dtypes", "float32", "--batches", "1", "--rounds", "1", "--min-samples", "1",
        "--round-time", "0.001", "--warmup", "0", "--no-training", "--backends", "plain,fast"]


@pytest.mark.parametrize("args, message", [
    (["--batches", "0"], "argument --batches: must be between 1 and 100000; got 0"),
    (["--batches", "1e12"], "argument --batches: expected an integer; got '1e12'"),
    (["--batches="], "argument --batches: expected a comma-separated list of at least one value; got ''"),
    (["--dtypes", "float16"], "argument --dtypes: unknown float16; choose from float32, float64"),
    (["--networks", ","], "argument --networks: expected a comma-separated list of at least one value; got ','"),
    (["--backends", "plain,jaxx"], "argument --backends: unknown jaxx; choose from fast, plain,"),
    (["--seed", "-1"], "argument --seed: must be between 0 and 4294967295; got -1"),
    (["--round-time", "nan"], "argument --round-time: must be a number of seconds in (0, 60]; got nan"),
    (["--round-time", "0"], "argument --round-time: must be a number of seconds in (0, 60]; got 0"),
    (["--warmup", "-0.1"], "argument --warmup: must be a number of seconds in [0, 10]; got -0.1"),
    (["--warmup", "inf"], "argument --warmup: must be a number of seconds in [0, 10]; got inf"),
    (["--rounds", "0"], "argument --rounds: must be between 1 and 1000; got 0"),
    (["--min-samples", "-1"], "argument --min-samples: must be between 1 and 100000; got -1"),
    (["--threads", "0"], "argument --threads: must be between 1 and 4096; got 0"),
    (["--train-batches", "0"], "argument --train-batches: must be between 1 and 60000; got 0"),
    (["--test-examples", "-1"], "argument --test-examples: must be between 1 and 10000; got -1"),
    (["--out", ""], "argument --out: the path is empty"),      # "PosixPath('.') has an empty name" (a review)
    (["--plot", ""], "argument --plot: the path is empty"),    # "path . is a directory"
    (["--no-plot", "--plot", "p.png"], "--plot with --no-plot: no plot is drawn"),   # silently none (a review)
])
def test_the_benchmark_refuses_bad_options_before_any_timing(args, message, capsys, tmp_path):
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--quick", *FAST, "--out", str(tmp_path / "x.json"), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], "argument --batch: must be between 1 and 4096; got 0"),
    (["--cnn-steps", "-1"], "argument --cnn-steps: must be between 0 and 60000; got -1"),
    (["--cnn-chunks", "0"], "argument --cnn-chunks: must be between 1 and 1000; got 0"),
    (["--round-time", "inf"], "argument --round-time: must be a number of seconds in (0, 60]; got inf"),
    (["--warmup", "11"], "argument --warmup: must be a number of seconds in [0, 10]; got 11"),
    (["--backends", "jax,bogus"], "argument --backends: unknown bogus; choose from jax, torch"),
    (["--backends", "jax", "--cnn-steps", "100", "--batch", "1000"], "--cnn-steps 100 x --batch 1000 is more than MNIST's 60000"),
    (["--out", ""], "argument --out: the path is empty"),
])
def test_the_layer_benchmark_refuses_bad_options_before_any_timing(args, message, capsys, tmp_path):
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["layers", "--quick", "--out", str(tmp_path / "x.json"), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_training_examples_must_hold_a_batch(capsys):
    from benchmarks.__main__ import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args(["--train-batches", "64", "--train-examples", "10"])
    assert exit_.value.code == 2 and "--train-examples 10 holds no batch of 64 (--train-batches)" in capsys.readouterr().err


def test_duplicates_count_once_and_an_empty_train_batches_means_no_training():
    from benchmarks.__main__ import parse_args

    args = parse_args(["--batches", "1,8,1", "--dtypes", "float32,float32", "--train-batches="])
    assert args.batches == [1, 8] and args.dtypes == ["float32"] and args.train_batches == []


@pytest.mark.parametrize("kind", ["a directory", "a FIFO", "a missing directory", "a data file", "another run's file"])
@pytest.mark.parametrize("option", ["--out", "--plot"])
def test_outputs_that_cannot_be_written_or_must_not_be_replaced_are_refused_before_the_run(kind, option, tmp_path,
                                                                                          capsys, monkeypatch):
    from benchmarks.__main__ import main
    from manual_backprop.app import data

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "labels.gz").write_bytes(b"data")    # stands for the shipped MNIST, which a bug would overwrite
    (tmp_path / "earlier.json").write_text("{}")      # another run's results
    monkeypatch.setattr(data, "data_files", lambda: [tmp_path / "labels.gz"])
    path, message = {"a directory": (tmp_path, "is a directory"), "a FIFO": (tmp_path / "fifo", "is a FIFO"),
                     "a missing directory": (tmp_path / "missing" / "x.json", "directory"),
                     "a data file": (tmp_path / "labels.gz", "is the data file"),
                     "another run's file": (tmp_path / "earlier.json", "exists; refusing to replace")}[kind]
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    other = ["--plot", str(tmp_path / "p.png")] if option == "--out" else ["--out", str(tmp_path / "o.json")]
    assert main([*FAST, option, str(path), *other]) == 2
    err = capsys.readouterr().err
    assert f"error: {option} " in err and message in err and "load average" not in err   # nothing ran
    assert sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir()) == before
    assert (tmp_path / "labels.gz").read_bytes() == b"data"


@pytest.mark.parametrize("layers", [False, True], ids=["gradients", "layers"])
def test_an_output_is_locked_for_the_run_and_checked_again_under_the_lock(layers, tmp_path, monkeypatch, capsys):
    """--out was checked at the start only, and a run that wrote it meanwhile had its file
    replaced (the README promises the check again under the run's locks). Refused at once where
    another run holds the lock, and a file made before this run took it is seen (exit 2, before
    any timing)."""
    from benchmarks.__main__ import main
    from manual_backprop.app import paths

    out = tmp_path / "o.json"
    argv = (["layers", "--quick"] if layers else [*FAST, "--no-plot"]) + ["--out", str(out)]
    with paths.OutputLock(out, "--out"):
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "load average" not in err
    locking = paths.lock_outputs

    def another_run_writes_first(**outputs):
        out.write_text("{}")
        return locking(**outputs)

    monkeypatch.setattr(paths, "lock_outputs", another_run_writes_first)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "load average" not in err and out.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.json"]


@pytest.mark.parametrize("args", [["--out", "{d}/same.json", "--plot", "{d}/same.json"], ["--out", "{d}/x.png"],
                                  ["--out", "{d}/x.json", "--plot", "{d}/x.json.lock"]])
def test_out_and_plot_may_not_overwrite_each_other(args, tmp_path, capsys):
    from benchmarks.__main__ import main

    assert main([*FAST, *(a.format(d=tmp_path) for a in args)]) == 2
    assert "would overwrite each other" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_the_layer_benchmark_checks_out_before_the_run(tmp_path, capsys):
    from benchmarks.__main__ import main

    assert main(["layers", "--quick", "--backends=", "--out", str(tmp_path)]) == 2
    assert f"--out path {tmp_path} is a directory" in capsys.readouterr().err


def test_a_run_without_jax_jit_writes_its_json_and_says_why_there_is_no_plot(tmp_path, capsys):
    """The plot shows times relative to jax_jit: without it matplotlib was asked for a legend of
    0 columns and the run crashed after timing, writing nothing."""
    pytest.importorskip("matplotlib")
    from benchmarks.__main__ import main

    assert main([*FAST, "--out", str(tmp_path / "r.json")]) == 0
    assert "no plot: it shows times relative to jax_jit, which did not run" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["plot"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_peers_needs_at_least_one_seed(capsys):
    from benchmarks import peers

    with pytest.raises(SystemExit) as exit_:
        peers.main(["--seeds", "0"])
    assert exit_.value.code == 2 and "argument --seeds: must be between 1 and 10000; got 0" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--batch", "10000000000"], "argument --batch: must be between 1 and 100000; got 10000000000"),
    (["--calls", "0"], "argument --calls: must be between 1 and 100000; got 0"),
    (["--warmup", "-1"], "argument --warmup: must be between 0 and 100000; got -1"),
])
def test_faults_refuses_a_batch_or_count_out_of_range_in_one_line(argv, message, capsys):
    """A review (2026-12-05): --batch had no upper bound, and 10^10 allocated until NumPy's
    _ArrayMemoryError traceback (57 TiB); the gradient benchmarks' bound holds here too."""
    from benchmarks import faults

    with pytest.raises(SystemExit) as exit_:
        faults.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_training_options_beside_no_training_are_refused(capsys):
    from benchmarks.__main__ import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args(["--no-training", "--train-examples", "100"])
    assert exit_.value.code == 2 and "--train-examples with --no-training: no training runs" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
def test_more_threads_than_cpus_is_said(tmp_path):
    n = len(os.sched_getaffinity(0)) + 1
    code = subprocess.run([sys.executable, "-m", "benchmarks", *FAST, "--threads", str(n), "--no-plot",
                           "--out", str(tmp_path / "t.json")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert code.returncode == 0 and f"WARNING: --threads {n} is more than the {n - 1} CPUs" in code.stderr


def test_a_report_that_cannot_be_written_keeps_the_measurements(tmp_path):
    """``python -m benchmarks ... | true`` (a reader gone) and ``> /dev/full``: the table's print
    raised before the JSON was written, a traceback and no JSON, the run's only record lost (a
    review, 2026-12-05). The JSON is now written: exit 0 for a reader that stopped reading
    (``| head`` is the user's choice), 3 for a full disk, which stderr names. Progress lines on
    a broken stderr (``2>&1 | head -1``) do not stop the run either."""
    cmd = [sys.executable, "-m", "benchmarks", *FAST, "--no-plot", "--out"]
    gone = subprocess.Popen(cmd + [str(tmp_path / "a.json")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    gone.stdout.close()
    gone.stderr.close()
    assert gone.wait(timeout=120) == 0
    assert json.loads((tmp_path / "a.json").read_text())["gradients"]
    if Path("/dev/full").exists():
        with open("/dev/full", "w") as full:
            run = subprocess.run(cmd + [str(tmp_path / "b.json")], cwd=ROOT, stdout=full, stderr=subprocess.PIPE,
                                 text=True, timeout=120)
        assert run.returncode == 3 and "error: cannot write the table to standard output" in run.stderr, run.stderr
        assert json.loads((tmp_path / "b.json").read_text())["gradients"]


def test_default_output_names_are_reserved_so_no_run_replaces_anothers(tmp_path, monkeypatch):
    """The default ``runs/<kind>-<time>.json`` has a one-second resolution: two runs of the same
    second both took it, and the later to finish replaced the other's file (os.replace). The
    name (and the plot's) is now created empty with O_EXCL: the next run takes -2, then -3 (a
    plot's name taken counts too); a reservation left empty is removed at exit."""
    import datetime

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 12, 1, 19, 0, 0)

    monkeypatch.setattr(report._dt, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    dropped = []
    monkeypatch.setattr(report.atexit, "register", lambda fn, *a: dropped.append((fn, a)))   # called below
    first = report.default_out(plot=True)
    assert first == (Path("runs/benchmark-20261201-190000.json"),
                     (Path("runs/benchmark-20261201-190000.json"), Path("runs/benchmark-20261201-190000.png")))
    assert all(p.exists() and p.stat().st_size == 0 for p in first[1])
    assert report.default_out()[0] == Path("runs/benchmark-20261201-190000-2.json")
    (tmp_path / "runs/benchmark-20261201-190000-3.png").touch()      # another run's plot
    assert report.default_out(plot=True)[0] == Path("runs/benchmark-20261201-190000-4.json")
    assert not (tmp_path / "runs/benchmark-20261201-190000-3.json").exists()   # its half-reservation undone
    assert report.default_out("layers")[0] == Path("runs/layers-20261201-190000.json")
    first[0].write_text("{}")                                         # the run wrote its JSON
    for fn, a in dropped:
        fn(*a)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "benchmark-20261201-190000-3.png", "benchmark-20261201-190000.json"]


@pytest.mark.signals
def test_a_terminated_run_leaves_no_empty_reservation(tmp_path):
    """atexit does not run under SIGTERM's or SIGHUP's default action: a killed run (timeout, a
    closed terminal) left its empty runs/*.json and .png for good. The command lines exit on them
    through SystemExit, and the reservations go."""
    script = ("import time, sys; sys.path.insert(0, sys.argv[1]); from benchmarks import report; "
              "report.exit_on_termination(); report.default_out(plot=True); print('ready', flush=True); time.sleep(30)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with subprocess.Popen([sys.executable, "-c", script, str(ROOT)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout.readline() == "ready\n" and len(list((tmp_path / "runs").iterdir())) == 2
            proc.send_signal(sig)
            assert proc.wait(timeout=30) == 128 + sig
        assert list((tmp_path / "runs").iterdir()) == []


def test_faults_counts_the_page_faults_of_fresh_allocations():
    """``python -m benchmarks.faults`` in a fresh process: with glibc made to mmap every array of
    64 KiB or more (MALLOC_MMAP_THRESHOLD_ fixes the threshold), the reference's fresh arrays
    fault on every call (at batch 100 float64 its z and a are 400 KB each: hundreds of pages),
    the fast path's reused buffers do not; the setting is printed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MALLOC_MMAP_THRESHOLD_": "65536"}
    per_call = {}
    for backend in ("plain", "fast"):
        out = subprocess.run([sys.executable, "-m", "benchmarks.faults", "--backend", backend, "--batch", "100",
                              "--calls", "20", "--warmup", "3"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=120, check=True).stdout
        assert f"{backend} float64 batch 100: " in out and "'MALLOC_MMAP_THRESHOLD_': '65536'" in out
        per_call[backend] = float(out.split(": ")[1].split(" minor")[0].replace(",", ""))
    # plain: at least z_1, a_1, z_2, a_2 and a delta, each 100 x 500 float64 = 98 pages; fast: a
    # few small temporaries (10 faults a call measured), not its buffers
    assert per_call["plain"] >= 5 * 98 and per_call["fast"] < per_call["plain"] / 20


def test_a_default_output_folder_that_cannot_be_made_is_one_line_before_any_timing(tmp_path, monkeypatch, capsys):
    """runs/ a regular file: the reservation's mkdir raised a traceback outside the checks."""
    from benchmarks.__main__ import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").touch()
    assert main(["--quick", "--backends", "plain", "--batches", "1", "--no-training"]) == 2
    assert main(["layers", "--quick", "--backends="]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": error: ")[1] for line in err] == ["[Errno 17] cannot make the default output folder runs/: "
                                                            "File exists"] * 2


def test_kink_sweep_prints_a_count_per_case(capsys):
    """One seed per kinked layer and scale, no relu sizes: each case is one line with its
    verdicts; no correct derivative fails (the MLP at its kinks is not checked) and the doubled
    max-pool gradient fails."""
    from benchmarks import kink_sweep

    assert kink_sweep.main(["--seeds", "1", "--relu-seeds", "0", "--near-seeds", "0"]) == 0
    out = capsys.readouterr().out
    for scale in ("0.001", "1", "100"):
        assert re.search(rf"^max_pool2d doubled \(bug\) float32 scale {scale} +FAIL 1$", out, re.M), out
        for case in ("max_pool2d", "abs", "leaky relu"):   # correct: PASS, or NOT CHECKED where kinks abound
            assert re.search(rf"^{case} float32 scale {scale} +(PASS 1|NOT CHECKED 1)$", out, re.M), out
    assert re.search(r"^relu MLP, zero biases and a zero row +NOT CHECKED 1$", out, re.M), out   # kinks too many
    assert re.search(r"^relu MLP +PASS 1$", out, re.M), out
    with pytest.raises(SystemExit):
        kink_sweep.main(["--seeds", "-1"])


def test_noise_readings_reproduces_the_reading_before_and_after_it_shrank():
    """benchmarks.noise_readings, which docs/checker.md quotes: readings of known noise are ordered
    quantiles near sigma (the median of 16 draws' table reading is 0.95-1.0 sigma), two readings
    of one noise rarely differ by CONFIRM (5e-6 in 10^6 pairs: 0.1 expected in 2 x 10^4), and
    seed 0 of layer norm with one entry 10 % off passes with the noise read at one spacing and
    fails with it read at shrinking spacings."""
    pytest.importorskip("jax")
    from benchmarks import noise_readings as NR
    for r in NR.readings(20_000).values():
        assert r["q1e-6"] < r["q1e-3"] < r["median"] < r["q1-1e-3"] < r["q1-1e-6"]
        assert 0.8 < r["median"] < 1.2 and r["P(ratio > CONFIRM)"] < 1e-3
    named = ["layer norm + jax, dx[0, 7] 10 % off", "sin, correct", "layer norm + jax, correct"]
    rows = {name: (one, shrinking) for name, one, shrinking, *_ in NR.verdicts(1, only=named)}
    assert rows == dict(zip(named, [("P", "F"), ("P", "P"), ("P", "P")]))
