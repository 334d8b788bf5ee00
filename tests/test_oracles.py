"""The oracles themselves: kinks, user-supplied functions without JAX, compare, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import autodiff_check as ac
import manual_backprop as mb


def _kinked_problem():
    """A relu net whose hidden pre-activation z[0, 0] sits 1e-7 from the kink: inside the
    default finite-difference step (~6e-6) for the weights that feed it."""
    params = [np.array([[1e-7, 0.3], [1.0, -0.5]]), np.array([[0.1], [2.0], [-1.0]])]
    x = np.array([[0.0], [0.7]])
    y = np.array([[0.2], [-0.4]])
    return params, x, y


def test_a_step_straddling_a_kink_is_detected_not_tolerated():
    params, x, y = _kinked_problem()
    f = lambda P: mb.loss(P, x, y, activation="relu", loss="mean_squared_error")  # noqa: E731
    _, g = mb.loss_and_grad(params, x, y, activation="relu", loss="mean_squared_error")
    # Plain central differences measure the secant across the corner: a false failure.
    naive = ac.numerical_grad(f, params)
    assert abs(naive[0][0, 0] - g[0][0, 0]) > 1e-3
    # With the activation pattern, the step is halved until the stencil stays on one side.
    num = ac.numerical_grad_with_error(f, params, kinks=lambda P: ac.activation_pattern(P, x, "relu"))
    assert num.n_kinks == 0
    cmp = ac.compare(g, num.grad, rtol=0, atol=num.tol)
    assert cmp.passed, str(cmp)
    assert num.tol[0][0, 0] < 1e-6  # the tolerance was not loosened to get there


def test_an_entry_exactly_at_the_kink_is_reported_not_compared():
    params, x, y = _kinked_problem()
    params[0][0, 0] = 0.0  # z[0, 0] == 0 exactly: no step keeps the stencil on one side
    verdict = ac.check_network(params, x, y, activation="relu", loss="mean_squared_error", use_jax=False)
    fd = verdict.results[0]
    assert fd.oracle == "finite_diff" and fd.skipped >= 1 and fd.passed


def test_user_functions_are_checked_without_jax():
    code = (
        "import sys; sys.modules['jax'] = None\n"
        "import numpy as np, autodiff_check as ac\n"
        "A = np.array([[2.0, 0.5], [0.5, 1.0]])\n"
        "loss = lambda P: 0.5 * P[0].ravel() @ A @ P[0].ravel() + np.sum(np.sin(P[0]))\n"
        "good = lambda P: [(A @ P[0].ravel()).reshape(1, 2) + np.cos(P[0])]\n"
        "bad = lambda P: [(A @ P[0].ravel()).reshape(1, 2) - np.cos(P[0])]\n"
        "w = [np.array([[0.3, -1.2]])]\n"
        "v = ac.check_gradients(loss, good, w); assert v.passed, str(v)\n"
        "assert [r.oracle for r in v.results] == ['finite_diff', 'complex_step']\n"
        "v = ac.check_gradients(loss, bad, w); assert not v.passed\n"
        "assert 'grad disagrees with finite_diff in 2 of 2 entries; worst params[0][0, 0]' in '\\n'.join(v.disagreements())\n"
        "try:\n    ac.loss_and_grad\nexcept ImportError as e:\n    assert 'needs JAX' in str(e)\n"
        "else:\n    raise AssertionError('expected ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_compare_names_the_worst_entry():
    a = [np.zeros((3, 2)), np.ones((2, 1))]
    b = [np.zeros((3, 2)), np.ones((2, 1))]
    a[0][2, 1] = 1e-3
    a[1][0, 0] = 1 + 1e-12
    cmp = ac.compare(a, b, rtol=1e-9, atol=1e-9, names=("mine", "ref"))
    assert not cmp.passed
    assert [e.passed for e in cmp.layers] == [False, True]
    assert (cmp.worst.layer, cmp.worst.part, cmp.worst.row, cmp.worst.col) == (0, "weight", 2, 1)
    assert "mine vs ref: DISAGREE" in str(cmp) and "layer 0 W[2, 1]" in str(cmp)
    a[0][2, 1] = 0
    a[0][0, 1] = 5.0
    assert str(ac.compare(a, b, rtol=0, atol=0).worst).startswith("layer 0 bias[1]")


def test_compare_refuses_mismatched_shapes_and_nan():
    with pytest.raises(ValueError, match=r"layer 0: a has shape \(2, 2\), b has shape \(3, 2\)"):
        ac.compare([np.zeros((2, 2))], [np.zeros((3, 2))], rtol=0, atol=0)
    with pytest.raises(ValueError, match="a has 1 layers, b has 2"):
        ac.compare([np.zeros((2, 2))], [np.zeros((2, 2))] * 2, rtol=0, atol=0)
    assert not ac.compare([np.full((2, 2), np.nan)], [np.zeros((2, 2))], rtol=1, atol=1).passed


def test_rademacher_directions_bound_the_miss_probability():
    """An error confined to one entry changes <e, v> by exactly that entry for every +-1 v."""
    rng = np.random.default_rng(0)
    P = [np.zeros((3, 4)), np.zeros((5, 2))]
    e = [np.zeros((3, 4)), np.zeros((5, 2))]
    e[1][4, 1] = 1e-3
    from autodiff_check.oracles import dot
    assert all(abs(dot(e, ac.random_direction(P, rng))) == pytest.approx(1e-3) for _ in range(20))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "autodiff_check", *args], capture_output=True, text=True)


def test_cli_passes_the_hand_derived_backward():
    r = _cli("--skip-post", "--architectures", "1", "--activations", "sigmoid", "relu",
             "--losses", "binary_cross_entropy", "softmax_cross_entropy")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 of 4 checks passed" in r.stdout


def test_cli_fails_the_post_backward_and_localises_it():
    r = _cli("--backward", "as_published", "--directions", "4", "--batch", "2",
             "--activations", "sigmoid", "--losses", "binary_cross_entropy", "--no-jax")
    assert r.returncode == 1
    assert "FAIL  post network" in r.stdout
    # along random directions, bisection names entries with both values and the tolerance
    assert "named by bisection" in r.stdout and "> tol" in r.stdout
    assert len(r.stdout.splitlines()) < 30, r.stdout  # a summary that fits on one screen


def test_cli_rejects_bad_numbers_without_a_traceback():
    for args, msg in ((("--seed", "-1"), "--seed must be between 0 and 2^32 - 1"),
                      (("--directions", "65"), "--directions must be between 1 and 64")):
        r = _cli(*args)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_cli_rejects_unknown_names_in_one_line():
    r = _cli("--activations", "swish")
    assert r.returncode == 2
    assert "unknown activation 'swish'" in r.stderr and "Traceback" not in r.stderr


def test_finite_differences_divide_by_the_step_actually_taken():
    """fl(w + h) - fl(w - h) is not 2h: for f = c (w - w0), exact up to one rounding, dividing
    by 2h was off by ~u |w| |c| / h, 30x the bound (found in review). Per coordinate and along
    a direction, the estimate is exact here up to the rounding of f."""
    w0, c = 1.4053008865771970, 8569.477
    f = lambda P: c * (P[0][0, 0] - w0)  # noqa: E731
    P = [np.array([[w0]])]
    num = ac.numerical_grad_with_error(f, P)
    assert abs(num.grad[0][0, 0] - c) <= num.tol[0][0, 0]
    d = ac.directional_fd(f, P, [np.array([[1.0]])])
    assert abs(ac.oracles.dot([np.array([[c]])], d.direction) - d.value) <= d.tol


def test_cli_plot_draws_the_error_of_every_weight_matrix(tmp_path):
    """--plot writes a PNG of log10 |g - ref| / tol per weight matrix (one panel per matrix), and
    the run still fails the wrong backward."""
    pytest.importorskip("matplotlib")
    png = tmp_path / "errors.png"
    run = subprocess.run([sys.executable, "-m", "autodiff_check", "--backward", "as_published", "--skip-post",
                          "--architectures", "1", "--activations", "sigmoid", "--losses", "binary_cross_entropy",
                          "--plot", str(png)], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 1, run.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot: {png}" in run.stdout


def test_cli_plot_path_is_checked_before_the_run(tmp_path):
    """A directory, a FIFO, a missing directory or an empty name is refused at once (exit 2, one
    line), not after the checks; nothing is written beside it (matplotlib used to add '.png'
    to a directory's name and write there)."""
    pytest.importorskip("matplotlib")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for bad, msg in ((tmp_path, "is a directory"), (fifo, "is a FIFO"), (tmp_path / "no" / "x.png", "does not exist"),
                     ("", "plot path is empty")):
        r = _cli("--skip-post", "--architectures", "1", "--plot", str(bad))
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert "checks passed" not in r.stdout   # refused before any check ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]
    r = _cli("--skip-post", "--batch", str(10**12))
    assert r.returncode == 2 and "--batch in 1..100000" in r.stderr
