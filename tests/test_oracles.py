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
    r = _cli("--skip-post", "--architectures", "1", "--activations", "sigmoid", "relu", "sigmoid",
             "--losses", "binary_cross_entropy", "softmax_cross_entropy")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 of 4 checks passed" in r.stdout    # a name given twice is checked once (a review)


def test_cli_whose_reader_stops_or_whose_disk_is_full_exits_without_a_traceback():
    """``python -m autodiff_check | head -1`` and ``> /dev/full`` printed a BrokenPipeError or
    OSError traceback (a review, 2026-12-05): now exit 1 silently for a reader that stopped, and
    2 with one line naming standard output for a full disk."""
    cmd = [sys.executable, "-m", "autodiff_check", "--no-jax", "--skip-post", "--architectures", "1",
           "--activations", "sigmoid", "--losses", "mean_squared_error"]
    gone = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    gone.stdout.close()
    assert gone.wait(timeout=120) == 1 and gone.stderr.read() == b""
    gone.stderr.close()
    if Path("/dev/full").exists():
        with open("/dev/full", "w") as full:
            r = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr == ("python -m autodiff_check: error: cannot write to standard output "
                                                  "([Errno 28] No space left on device)\n"), r.stderr


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
                      (("--directions", "65"), "--directions must be between 1 and 64"),
                      (("--batch", "0"), "--batch must be in 1..100000; got 0"),   # named neither, a review
                      (("--architectures", "0"), "--architectures must be positive; got 0")):
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
    """A directory, a FIFO, a missing directory or an empty name is refused at once (exit 2, as
    a bad option: exit 1 means a check failed), in one line without argparse's usage, not after
    the checks; nothing is written beside it (matplotlib used to add '.png' to a directory's
    name and write there)."""
    pytest.importorskip("matplotlib")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for bad, msg in ((tmp_path, "is a directory"), (fifo, "is a FIFO"), (tmp_path / "no" / "x.png", "does not exist"),
                     ("", "plot path is empty")):
        r = _cli("--skip-post", "--architectures", "1", "--plot", str(bad))
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("python -m autodiff_check: error: ")
        assert "checks passed" not in r.stdout   # refused before any check ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]
    r = _cli("--skip-post", "--batch", str(10**12))
    assert r.returncode == 2 and "--batch must be in 1..100000; got 1000000000000" in r.stderr


def test_cli_refuses_a_batch_this_machine_cannot_hold(monkeypatch, capsys):
    """--batch 100000 took the post network's check to about 6 GiB (measured peak RSS grows
    56 KB an example) and a small machine's OOM killer to it; refused first, the estimate and
    what is available named."""
    from autodiff_check import __main__ as cli

    monkeypatch.setattr(cli, "memory_available", lambda: 1 << 30)
    with pytest.raises(SystemExit) as info:
        cli.main(["--batch", "100000", "--no-jax"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--batch 100000 needs about 6.7 GiB for the post network's check; " \
        "1.0 GiB is available (a smaller --batch, or --skip-post)" in err, err


def test_cli_plot_is_locked_for_the_run_and_checked_again_under_the_lock(tmp_path, monkeypatch, capsys):
    """The plot path was checked at the start only: a second run on the same --plot wrote it
    meanwhile and the first then replaced it without --overwrite (a review, helper-103). Now a
    run holds the path's lock from its check to its end, refusing a second run at once, and
    checks the path again under it (exit 2, one line, before any check)."""
    pytest.importorskip("matplotlib")
    from autodiff_check.__main__ import main
    from manual_backprop.app import paths

    png, run = tmp_path / "race.png", ["--skip-post", "--architectures", "1", "--no-jax"]
    with paths.OutputLock(png, "plot"):   # another run holds it
        assert main([*run, "--plot", str(png)]) == 2
    out, err = capsys.readouterr()
    assert "checks passed" not in out and str(png) in err and err.count("\n") == 1

    locking = paths.lock_outputs

    def another_run_writes_first(**outputs):   # between this run's first check and its lock
        png.write_bytes(b"the other run's plot")
        return locking(**outputs)

    monkeypatch.setattr(paths, "lock_outputs", another_run_writes_first)
    assert main([*run, "--plot", str(png)]) == 2
    out, err = capsys.readouterr()
    assert "checks passed" not in out and "exists" in err and png.read_bytes() == b"the other run's plot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.png"]


# ------------------------------------------------------------------ the helper API on hostile input
# A sweep of compare, exact_atol, rounding_bound, activation_pattern and the oracles (subagent)
# found each case below silently wrong, warning, or failing deep inside NumPy.

def _one(v):
    return [np.array([[v]])]


@pytest.mark.parametrize("a, b, kw", [
    (np.nan, np.inf, dict(rtol=1e-8, atol=0)),    # the bound rtol |b| was inf, and inf <= inf
    (1.0, np.inf, dict(rtol=1e-8, atol=0)),
    (-np.inf, np.inf, dict(rtol=1e-8, atol=0)),
    (np.inf, np.inf, dict(rtol=1e-8, atol=0)),
    (np.nan, 1.0, dict(rtol=0, atol=np.inf)),     # not checkable there, but a NaN under test fails anywhere
    (1.7e308, -1.7e308, dict(rtol=1e-8, atol=0)),  # warned: overflow in a - b
])
def test_compare_never_passes_a_nan_or_inf(a, b, kw):
    assert not ac.compare(_one(a), _one(b), **kw).passed


def test_compare_skips_entries_not_checkable_and_pairs_dicts_by_key():
    assert ac.compare(_one(1.0), _one(np.nan), rtol=0, atol=np.inf).passed   # a kink: FD gives NaN, tol inf
    g1, g2 = np.ones((2, 2)), np.zeros((2, 2))
    assert not ac.compare({"W1": g1, "W2": g2}, {"W2": g1, "W1": g2}, rtol=1e-8, atol=0).passed
    assert ac.compare({"W1": g1, "W2": g2}, {"W2": g2, "W1": g1}, rtol=0, atol=0).passed


@pytest.mark.parametrize("call, exc, message", [
    (lambda: ac.compare([np.ones((1, 3))], [np.ones((1, 3))], rtol=1e-8, atol=[np.full((4, 1), 2.0)]),
     ValueError, r"atol\[0\] has shape \(4, 1\); a per-entry tolerance must have the layer's shape \(1, 3\)"),
    (lambda: ac.compare([np.ones((1, 3))] * 2, [np.ones((1, 3))] * 2, rtol=1e-8, atol=np.array([0.1, 0.2])),
     TypeError, r"atol must be one number, or a list .*per-layer tolerances pass a list"),
    (lambda: ac.compare(_one(1.0), _one(1.0), rtol=1e-8, atol=-1), ValueError, r"atol must be >= 0"),
    (lambda: ac.compare(_one(1.0), _one(1.0), rtol=1e-8, atol=np.nan), ValueError, r"atol must be >= 0 .*got NaN"),
    (lambda: ac.compare(_one(1.0), _one(1.0), rtol=None, atol=0), ValueError, r"rtol must be a finite number >= 0"),
    (lambda: ac.compare({"W1": np.ones(2)}, [np.ones((1, 2))], rtol=0, atol=0), ValueError, r"different structures"),
    (lambda: ac.compare([[np.ones((2, 2))]], [np.ones((2, 2))], rtol=0, atol=0), ValueError, r"different structures"),
    (lambda: ac.compare({"W1": np.ones(2)}, {"W2": np.ones(2)}, rtol=0, atol=0), ValueError, r"keys \['W2'\]"),
    (lambda: ac.compare(_one(1.0), [np.array([[1 + 5j]])], rtol=0, atol=0), TypeError, r"b layer 0 must be a real"),
    (lambda: ac.compare([], [], rtol=0, atol=0), ValueError, r"no entries: nothing to compare"),
    (lambda: ac.compare(_one(1.0), _one(1.0), rtol=0, atol=0, labels="x"), ValueError, r"labels must be a list of 1"),
    (lambda: ac.exact_atol([np.ones((2, 2))], [np.ones(3)]), ValueError, r"grad_error\[0\] must be finite numbers >= 0"),
    (lambda: ac.exact_atol([np.ones((2, 2))], [-np.ones((2, 2))]), ValueError, r"grad_error\[0\] must be finite"),
    (lambda: ac.exact_atol([np.ones((2, 2))], []), ValueError, r"grad_error must be a list of 1 arrays"),
    (lambda: ac.numerical_grad(lambda P: np.sum(P[0] ** 2), np.ones((2, 2))), TypeError, r"params must be a list of arrays"),
    (lambda: ac.numerical_grad(lambda P: np.sum(P[0]), [np.ones(2)], eps=0), ValueError, r"eps must be a finite number > 0; got 0"),
    (lambda: ac.numerical_grad(lambda P: np.sum(P[0]), [np.ones(2)], eps=1e-310), ValueError, r"below the spacing"),
    (lambda: ac.numerical_grad(lambda P: P[0], [np.ones(2)]), ValueError, r"f must return a scalar number; got an array"),
    (lambda: ac.numerical_grad(lambda P: np.nan, [np.ones(2)]), ValueError, r"f\(params\) is nan"),
    (lambda: ac.numerical_grad(lambda P: 0.0, [np.array([1.0, np.inf])]), ValueError, r"params\[0\] contains NaN or inf"),
    (lambda: ac.numerical_grad_with_error(lambda P: 0.0, [np.ones(2)], eps=-1e-6), ValueError, r"eps must be"),
    (lambda: ac.numerical_grad_with_error(lambda P: 0.0, [np.ones(2)], f_error="1e-16"), ValueError, r"f_error must be"),
    (lambda: ac.directional_fd(lambda P: 0.0, [np.ones(2), np.ones(2)], [np.ones(2)]), ValueError, r"v has 1 arrays for 2"),
    (lambda: ac.directional_fd(lambda P: 0.0, [np.ones((2, 2))], [np.ones((1, 2))]), ValueError, r"v\[0\] has shape \(1, 2\)"),
    (lambda: ac.directional_fd(lambda P: 0.0, [np.ones(2)], [np.zeros(2)]), ValueError, r"v is zero"),
    (lambda: ac.complex_step_grad(lambda P: np.abs(np.sum(P[0])), [np.ones(2)]), ValueError, r"drops the imaginary part"),
    (lambda: ac.complex_step_grad(lambda P: np.nan, [np.ones(2)]), ValueError, r"drops the imaginary part"),
    (lambda: ac.complex_step_directional(lambda P: np.sum(P[0]), [np.ones(2)], [np.ones(2)], h=0), ValueError, r"h must be"),
    (lambda: ac.random_direction([np.ones(2)], 0), TypeError, r"rng must be a numpy.random.Generator"),
    # a hostile-input sweep (2026-12-05): these were raw errors or a warning
    (lambda: ac.numerical_grad(3, [np.ones(2)]), TypeError, r"^f must be a function of params returning a scalar; got int"),
    (lambda: ac.complex_step_grad(None, [np.ones(2)]), TypeError, r"^f must be a function"),
    (lambda: ac.numerical_grad_with_error(lambda P: 0.0, [np.ones(2)], kinks=3), TypeError, r"^kinks must be a function"),
    (lambda: ac.directional_fd(lambda P: 0.0, [np.ones(2)], [np.ones(2)], kinks=[1]), TypeError, r"^kinks must be a function"),
    (lambda: ac.numerical_grad_with_error(lambda P: 0.0, [np.ones(2)], dtypes="float64"), TypeError,
     r"^dtypes must be a sequence of one float dtype per array of params; got the single dtype 'float64'"),
    (lambda: ac.check_jvp(np.sin, lambda t, x: np.array(["a", "b"]), np.ones(2)), ValueError,
     r"^jvp_fn returned dtype <U1 at output; expected numbers"),
    (lambda: ac.check_jvp(np.sin, lambda t, x: np.array([1.0, None]), np.ones(2)), ValueError,
     r"^jvp_fn returned dtype object at output; expected numbers"),
    (lambda: ac.unit_roundoff("a"), TypeError, r"^unit_roundoff needs a floating-point dtype; got 'a'"),
    (lambda: ac.unit_roundoff(None), TypeError, r"^unit_roundoff needs a floating-point dtype; got None"),
    (lambda: ac.check_gradients(lambda p: float(np.sum(np.sin(p))), np.cos, np.ones(2), oracles=["complex_step"],
                                analytic=False), ValueError, r"'complex_step' is not available here \(analytic=False leaves it out\)"),
])
def test_the_helper_api_names_bad_input(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_exact_atol_is_finite_beside_a_nan_and_does_not_overflow_small_integers():
    atol = ac.exact_atol([np.array([[np.nan, 2.0]]), np.array([-128], np.int8)])
    assert atol == [2.0 * ac.EXACT_RTOL, 128.0 * ac.EXACT_RTOL]
    assert not ac.compare([np.array([[np.nan, 2.0]])], [np.array([[np.nan, 2.0]])], rtol=0, atol=atol[:1]).passed


def test_rounding_bound_and_activation_pattern_check_their_inputs():
    params = mb.init_params([3, 4, 2], seed=0)
    x, y = np.ones((5, 3)), mb.one_hot([0, 1, 0, 1, 1], 2)
    for bad_x in (np.full((5, 3), np.nan), np.ones((5, 4))):
        with pytest.raises(ValueError, match=r"^x "):
            ac.rounding_bound(params, bad_x, y, "sigmoid", "binary_cross_entropy")
        with pytest.raises(ValueError, match=r"^x "):
            ac.activation_pattern(params, bad_x, "relu")
    with pytest.raises(ValueError, match=r"y must have shape \(batch, n_out\) = \(5, 2\); got shape \(1, 2\)"):
        ac.rounding_bound(params, x, y[:1], "sigmoid", "binary_cross_entropy")   # broadcast before
    with pytest.raises(ValueError, match=r"params do not chain"):
        ac.rounding_bound(params[::-1], x, y, "sigmoid", "binary_cross_entropy")
    with pytest.raises(ValueError, match=r"rounding bound overflows float64 .* no tolerance can be derived"):
        ac.rounding_bound(params, np.full((5, 3), 1e300), y, "sigmoid", "binary_cross_entropy")   # was inf: anything passed
    with pytest.raises(TypeError, match=r"grad_error must be the per-layer list rounding_bound\(...\)\.grad"):
        ac.exact_atol(params, ac.rounding_bound(params, x, y, "sigmoid", "binary_cross_entropy"))


def test_compare_names_the_worst_entry_and_leaves_unchecked_entries_out_of_its_numbers():
    """A review of the sweep's fixes: every failing entry was given excess inf, so the worst
    entry was the first failing one (bias[0], off by 0.1) instead of W[1, 1] (off by 96); and an
    unchecked NaN reference made a passing layer report max abs error inf."""
    c = ac.compare([np.array([[1.0, 2.0], [3.0, 100.0]])], [np.array([[1.1, 2.0], [3.0, 4.0]])], rtol=0, atol=0.01)
    assert (c.worst.row, c.worst.col) == (1, 1) and (c.layers[0].worst.row, c.layers[0].worst.col) == (1, 1)
    tol = [np.array([[np.inf, 1e-8], [1e-8, 1e-8]])]
    c = ac.compare([np.array([[5.0, 1.0], [1.0, 1.0]])], [np.array([[np.nan, 1.0], [1.0, 1.0]])], rtol=0, atol=tol)
    assert c.passed and c.layers[0].max_abs == 0 and c.layers[0].max_rel == 0 and c.atol == 1e-8
    assert (c.worst.row, c.worst.col) != (0, 0)   # the unchecked entry is nobody's worst
    c = ac.compare({"a": np.ones(0), "b": np.ones(2)}, {"a": np.ones(0), "b": np.full(2, 1.5)}, rtol=0, atol=0)
    assert not c.passed and c.worst.label == "params['b']"


def test_exact_atol_takes_a_grad_error_that_broadcasts_as_check_gradients_does():
    atol = ac.exact_atol([np.ones((4, 3))], [np.full((1, 3), 1e-12)])
    assert atol[0].shape == (1, 3) and np.allclose(atol[0], ac.EXACT_RTOL + 4e-12)
    W = np.linspace(0.1, 1.2, 12).reshape(4, 3)
    v = ac.check_gradients(lambda W: np.sum(W ** 3), lambda W: 3 * W ** 2, W, analytic=True,
                           loss_error=1e-14, grad_error=[np.full((1, 3), 1e-12)])
    assert v.passed and "complex_step" in {r.oracle for r in v.results}   # the exact oracle reads grad_error


def test_unit_roundoff_and_kinks_name_bad_input():
    assert ac.unit_roundoff(np.float32) == 2.0**-24
    with pytest.raises(TypeError, match=r"unit_roundoff needs a floating-point dtype; got <class 'numpy.int32'>"):
        ac.unit_roundoff(np.int32)
    with pytest.raises(TypeError, match=r"kinks\(params\) must return an array .*; got NoneType"):
        ac.numerical_grad_with_error(lambda P: float(np.sum(P[0])), [np.ones(2)], kinks=lambda P: None)
