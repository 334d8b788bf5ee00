"""Training: accuracy on a subset, determinism, resume, backends, the post's recipe, the CLI."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import manual_backprop as mb
from manual_backprop.app import paths, training
from manual_backprop.app.cli import main
from manual_backprop.app.checkpoint import load_checkpoint, save_checkpoint
from manual_backprop.app.data import Dataset, load_mnist
import running_error as R
from running_error import Rounded
from support import bits, fake_mnist
from manual_backprop.app.training import RECIPES, Config, DivergenceError, fold_input_scaling, train

REPO = Path(__file__).resolve().parents[1]
QUIET = dict(progress=False, log=lambda line: None)
LAST_LINE = re.compile(r"^test accuracy: (0\.\d{4}|1\.0000)$")


@pytest.fixture(scope="module")
def mnist() -> Dataset:
    return load_mnist()


@pytest.fixture(scope="module")
def small(mnist) -> Dataset:
    """600 training and 500 test examples: enough to tell runs apart, fast to train on."""
    return mnist._replace(x_train=mnist.x_train[:600], y_train=mnist.y_train[:600],
                          x_test=mnist.x_test[:500], y_test=mnist.y_test[:500])


def without_seconds(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def stop_in_epoch(epoch: int, config: Config, ckpt: Path, **kw) -> None:
    """Train ``config`` with checkpoints to ``ckpt`` and stop it as Ctrl-C does when epoch
    ``epoch`` starts (its log line): the checkpoint then holds epoch ``epoch - 1``."""
    def stop(line):
        if line.startswith(f"epoch {epoch}/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, checkpoint=ckpt, progress=False, log=stop, **kw)


# ------------------------------------------------------------------ it learns


def test_post_network_beats_85_percent_on_a_2000_example_subset(mnist):
    """The post's [784, 500, 500, 10] sigmoid network, 2,000 training examples, 4 epochs:
    must exceed 85 % on the full 10,000-example test set (it reaches about 89 %)."""
    result = train(Config(train_subset=2000, epochs=4, batch_size=16, lr=0.05), data=mnist, **QUIET)
    assert [W.shape for W in result.params] == [(785, 500), (501, 500), (501, 10)]
    assert [W.dtype for W in result.params] == [np.float32] * 3
    assert result.test_accuracy > 0.85
    assert result.test_accuracy == mb.accuracy(result.params, mnist.x_test, mnist.y_test)
    losses = [h["train_loss"] for h in result.history]
    assert losses == sorted(losses, reverse=True)


def test_default_recipe_is_the_posts_network():
    r = RECIPES["default"]
    assert (r.hidden_sizes, r.activation, r.loss) == ((500, 500), "sigmoid", "binary_cross_entropy")
    assert (r.dtype, r.momentum > 0) == ("float32", True)


# ------------------------------------------------------------------ determinism and resume


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_gives_bit_identical_weights(small, dtype):
    config = Config(epochs=2, dtype=dtype, hidden_sizes=(64, 32), seed=3)
    a, b = train(config, data=small, **QUIET), train(config, data=small, **QUIET)
    assert bits(a.params) == bits(b.params)
    assert without_seconds(a.history) == without_seconds(b.history)
    assert bits(train(config.replace(seed=4), data=small, **QUIET).params) != bits(a.params)


@pytest.mark.parametrize("recipe", ["default", "post"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(small, tmp_path, recipe):
    """Interrupted during epoch 3 (after epoch 2's checkpoint), resumed with the same options."""
    config = RECIPES[recipe].replace(epochs=4, hidden_sizes=(32,), train_subset=150 if recipe == "post" else None)
    kw = dict(data=small, progress=False)
    whole = train(config, log=lambda line: None, **kw)

    ckpt = tmp_path / "run.npz"
    stop_in_epoch(3, config, ckpt, data=small)
    assert load_checkpoint(ckpt)[1]["epoch"] == 2
    resumed = train(config, checkpoint=ckpt, resume=ckpt, log=lambda line: None, **kw)
    assert bits(resumed.params) == bits(whole.params)
    assert without_seconds(resumed.history) == without_seconds(whole.history)
    params, meta = load_checkpoint(ckpt)
    assert meta["epoch"] == 4 and bits(params) == bits(whole.params)


def test_a_resumed_run_keeps_the_divergence_rules_start(small, tmp_path):
    """The rule compares the running loss with the run's first step (training's docstring),
    not with the first step after a resume: a resumed run stops where the uninterrupted one
    would, and here that is nowhere. This run's epoch 3 starts on a batch of loss 0.63; a rule
    restarted there read the ordinary losses after it as a divergence (a review, helper-103)."""
    config = RECIPES["post"].replace(lr=0.05, seed=3, hidden_sizes=(50, 50), epochs=4)
    whole = train(config, data=small, **QUIET)
    ckpt = tmp_path / "run.npz"
    stop_in_epoch(3, config, ckpt, data=small)
    resumed = train(config, checkpoint=ckpt, resume=ckpt, data=small, **QUIET)
    assert bits(resumed.params) == bits(whole.params)


def test_a_run_on_numpys_default_threads_resumes_only_on_as_many(small, tmp_path):
    """threads None (--threads 0) left the count to the environment, and a resume under
    another count went through to other weights (the fast path splits a batch by it; a review,
    helper-103). The checkpoint holds the count it ran on, and a resume must match it."""
    from threadpoolctl import threadpool_info, threadpool_limits

    config = Config(epochs=2, hidden_sizes=(8,), threads=None, batch_size=512, train_subset=600)
    ckpt = tmp_path / "run.npz"
    with threadpool_limits(1, user_api="blas"):
        stop_in_epoch(2, config, ckpt, data=small)
    assert load_checkpoint(ckpt)[1]["blas_threads"] == 1
    with threadpool_limits(2, user_api="blas"):
        if max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas") < 2:
            pytest.skip("NumPy's BLAS runs one thread here")
        with pytest.raises(ValueError, match=r"threads: checkpoint ran NumPy's default, 1 BLAS threads; here it is 2"):
            train(config, data=small, resume=ckpt, **QUIET)
    with threadpool_limits(1, user_api="blas"):
        assert len(train(config, data=small, resume=ckpt, **QUIET).history) == 2


def test_a_resume_with_nothing_left_to_train_still_writes_its_checkpoint(small, tmp_path):
    """A review (2026-12-05): resuming a finished run with --checkpoint b.npz scored it and exited
    0, but b.npz was written only after an epoch, so never. It is the resumed run's checkpoint,
    the same arrays and metadata, and resumes as the first does."""
    one = Config(hidden_sizes=(16,), schedule="constant", epochs=1, momentum=0.5)
    first, copy = tmp_path / "a.npz", tmp_path / "b.npz"
    train(one, data=small, checkpoint=first, **QUIET)
    train(one, data=small, resume=first, checkpoint=copy, **QUIET)
    (pa, ma), (pb, mb_) = load_checkpoint(first), load_checkpoint(copy)
    arrays = ("velocity", "train_params")   # lists of arrays; the rest of the metadata is JSON
    assert bits(pa) == bits(pb) and all(bits(ma[k]) == bits(mb_[k]) for k in arrays)
    assert {k: v for k, v in ma.items() if k not in arrays} == {k: v for k, v in mb_.items() if k not in arrays}
    two = one.replace(epochs=2)
    assert bits(train(two, data=small, resume=copy, **QUIET).params) == bits(train(two, data=small, resume=first,
                                                                                  **QUIET).params)


def test_resume_can_extend_but_refuses_a_mismatch(small, tmp_path):
    ckpt = tmp_path / "run.npz"
    one = Config(hidden_sizes=(16,), schedule="constant", epochs=1)
    two = one.replace(epochs=2)
    train(one, data=small, checkpoint=ckpt, **QUIET)
    longer = train(two, data=small, resume=ckpt, **QUIET)
    assert [h["epoch"] for h in longer.history] == [1, 2]
    assert bits(longer.params) == bits(train(two, data=small, **QUIET).params)  # constant lr: as 2 epochs at once
    with pytest.raises(ValueError, match=r"lr: checkpoint 0\.1, requested 0\.2"):
        train(two.replace(lr=0.2), data=small, resume=ckpt, **QUIET)
    with pytest.raises(ValueError, match="hidden_sizes"):
        train(two.replace(hidden_sizes=(17,)), data=small, resume=ckpt, **QUIET)
    with pytest.raises(ValueError, match="threads: checkpoint 1, requested 2"):
        train(two.replace(threads=2), data=small, resume=ckpt, **QUIET)
    plain = tmp_path / "plain.npz"
    save_checkpoint(plain, mb.init_params([784, 16, 10]))
    with pytest.raises(ValueError, match="not a training checkpoint"):
        train(two, data=small, resume=plain, **QUIET)


def test_resume_refuses_a_stored_model_that_is_not_its_training_weights_folded(small, tmp_path):
    """With standardised inputs a checkpoint holds the weights trained on (train_params) and the
    model evaluate scores (params: the input scaling folded into layer 1). Resume checked only
    the first: a NaN or 3e38 in params was resumed with exit 0, while evaluate refused the file (a
    review, 2026-12-02). The fold is deterministic, so params must be its bits."""
    config = Config(hidden_sizes=(16,), schedule="constant", epochs=1)
    ckpt = tmp_path / "run.npz"
    train(config, data=small, checkpoint=ckpt, **QUIET)
    params, meta = load_checkpoint(ckpt)
    for bad in (np.nan, 3e38, params[0][3, 4] * (1 + 2**-20)):
        edited = [W.copy() for W in params]
        edited[0][3, 4] = bad
        path = tmp_path / "edited.npz"
        save_checkpoint(path, edited, **{k: v for k, v in meta.items() if k not in ("layer_sizes", "dtype")})
        with pytest.raises(ValueError, match=r"params\[0\] is not train_params\[0\] with the input scaling folded in"):
            train(config, data=small, resume=path, **QUIET)
    train(config, data=small, resume=ckpt, **QUIET)   # the file as saved resumes


def test_a_config_of_numpy_numbers_trains_and_saves(small, tmp_path):
    """Config took np.int64 and np.float32 values and kept them; JSON refused them at the first
    checkpoint, after an epoch's work (a review, 2026-12-02). They are Python numbers now."""
    config = Config(hidden_sizes=(np.int64(16),), batch_size=np.int64(64), epochs=np.int64(1), seed=np.int64(3),
                    lr=np.float32(0.1), momentum=np.float32(0.5), validation=np.int64(0))
    assert all(type(getattr(config, k)) is int for k in ("batch_size", "epochs", "seed", "validation"))
    assert type(config.lr) is float and type(config.momentum) is float
    train(config, data=small, checkpoint=tmp_path / "np.npz", **QUIET)
    assert load_checkpoint(tmp_path / "np.npz")[1]["config"]["batch_size"] == 64


# ------------------------------------------------------------------ the update rule itself


def test_post_recipe_is_plain_sgd_one_example_at_a_time(small):
    """``--recipe post``: W <- W - 0.001 * grad, one example per update, float64: bit for bit
    the loop of ``sgd_step``, and the formula with loss_and_grad up to rounding."""
    n = 7
    result = train(RECIPES["post"].replace(train_subset=n, epochs=1, hidden_sizes=(20, 20)), data=small, **QUIET)
    cfg = result.config
    assert (cfg.lr, cfg.momentum, cfg.batch_size, cfg.dtype, cfg.standardize) == (0.001, 0.0, 1, "float64", False)
    W = mb.init_params([784, 20, 20, 10], seed=0)  # the post's initialisation
    V = [Wl.copy() for Wl in W]
    x, y = small.x_train[:n].astype(np.float64), mb.one_hot(small.y_train[:n], 10)
    for i in np.random.default_rng([0, 0]).permutation(n):
        _, g = mb.loss_and_grad(W, x[i : i + 1], y[i : i + 1])
        W = [Wl - 0.001 * gl for Wl, gl in zip(W, g)]
        mb.sgd_step(V, x[i : i + 1], y[i : i + 1], 0.001)
    assert bits(result.params) == bits(V)
    # Each step rounds W - lr g (2 roundings) where sgd_step rounds W + (-lr delta) a (3), so the
    # two differ by at most 5 u (|W| + lr |g|) per step; over n steps, with |lr g| << |W|:
    u = np.finfo(np.float64).eps / 2
    for a, b in zip(result.params, W):
        np.testing.assert_allclose(a, b, rtol=0, atol=n * 5 * u * 1.01 * np.abs(b).max())


def test_momentum_update_matches_its_formula(small):
    n, B, mu, lr = 12, 4, 0.9, 0.05
    result = train(Config(train_subset=n, batch_size=B, lr=lr, momentum=mu, epochs=1, schedule="constant",
                          standardize=False, dtype="float64", hidden_sizes=(8,)), data=small, **QUIET)
    W = mb.init_params([784, 8, 10], seed=0)
    v = [np.zeros_like(w) for w in W]
    order = np.random.default_rng([0, 0]).permutation(n)
    x, y = small.x_train[:n].astype(np.float64)[order], mb.one_hot(small.y_train[:n], 10)[order]
    for s in range(0, n, B):  # the loop's gradient is the fast path's (sigmoid's in-place kernels)
        _, g = mb.fast.loss_and_grad(W, x[s : s + B], y[s : s + B])
        v = [mu * vl + gl for vl, gl in zip(v, g)]
        W = [Wl - lr * vl for Wl, vl in zip(W, v)]
    assert bits(result.params) == bits(W)


def test_standardised_training_is_folded_into_the_first_layer():
    """The folded network on raw x is the trained one on (x - m) / s, up to rounding. Both
    sides compute the same exact p = sigma(sigma(x' W_1[1:] + W_1[0]) W_2[1:] + W_2[0]); the
    running error of each side's own operations (tests/running_error.py: the fold's division,
    sum and product, the standardisation's subtraction and division, then the network) bounds
    its distance from that p by C u, so the two differ by at most (C_fold + C_standardised) u."""
    rng = np.random.default_rng(1)
    params = mb.init_params([6, 5, 3], seed=2)
    x = rng.random((9, 6))
    shift, scale = 0.3, 0.7
    folded, standardised = mb.forward(fold_input_scaling(params, shift, scale), x), mb.forward(params, (x - shift) / scale)

    def network(x, W, b):           # z_1 = x W + b, then the rest of the network
        a = R.sigmoid(x @ W + b)
        return R.sigmoid(a @ Rounded.exact(params[1][1:]) + Rounded.exact(params[1][0]))

    W1 = Rounded.exact(params[0])
    bound_fold = network(Rounded.exact(x), W1[1:] / scale, W1[0] - (Rounded.exact(shift) / scale) * W1[1:].sum(axis=0))
    bound_std = network((Rounded.exact(x) - shift) / scale, W1[1:], W1[0])
    u = np.finfo(np.float64).eps / 2
    assert np.all(np.abs(folded - standardised) <= (bound_fold.c + bound_std.c) * u)
    assert not np.array_equal(folded, mb.forward(params, x))      # the fold changed something


def test_learning_rate_schedules():
    cfg = Config(lr=0.4)
    assert training.learning_rate(cfg, 0, 100) == 0.4
    assert training.learning_rate(cfg, 50, 100) == pytest.approx(0.2)
    assert training.learning_rate(cfg.replace(schedule="linear"), 75, 100) == pytest.approx(0.1)
    assert training.learning_rate(cfg.replace(schedule="constant"), 99, 100) == 0.4


# ------------------------------------------------------------------ backends and backward passes


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_the_jax_backend_trains_by_its_own_steps(small, momentum):
    """``--backend jax``: bit for bit the loop of autodiff_check's sgd_step (momentum 0) or of
    its loss_and_grad with v = mu v + g, W -= lr v, over the same batches (that one JAX step is
    the manual one up to rounding is tests/test_api.py's)."""
    ac = pytest.importorskip("autodiff_check")
    pytest.importorskip("jax")
    n, B, lr = 64, 16, 0.1
    config = Config(train_subset=n, batch_size=B, lr=lr, momentum=momentum, epochs=1, schedule="constant",
                    standardize=False, dtype="float64", hidden_sizes=(8,), backend="jax")
    result = train(config, backend=ac, data=small, **QUIET)
    W = mb.init_params([784, 8, 10], seed=0)
    v = [np.zeros_like(w) for w in W]
    order = np.random.default_rng([0, 0]).permutation(n)
    x, y = small.x_train[:n].astype(np.float64)[order], mb.one_hot(small.y_train[:n], 10)[order]
    for s in range(0, n, B):
        if momentum == 0:
            _, W = ac.sgd_step(W, x[s : s + B], y[s : s + B], lr)
        else:
            _, g = ac.loss_and_grad(W, x[s : s + B], y[s : s + B])
            v = [momentum * vl + gl for vl, gl in zip(v, g)]
            W = [Wl - lr * vl for Wl, vl in zip(W, v)]
    assert all(a.dtype == np.float64 for a in result.params)
    assert bits(result.params) == bits(W)
    assert bits(result.params) != bits(mb.init_params([784, 8, 10], seed=0))


def test_the_jax_backend_is_passed_in_not_imported(small):
    with pytest.raises(ValueError, match="needs the JAX backend passed in"):
        train(Config(backend="jax"), data=small, **QUIET)


def test_as_published_backward_trains_differently(small):
    """The post's wrong gradient runs with its own recipe (and trains), but not to the same weights."""
    config = RECIPES["post"].replace(train_subset=100, epochs=1)
    right, wrong = train(config, data=small, **QUIET), train(config.replace(backend="as_published"), data=small, **QUIET)
    assert bits(right.params) != bits(wrong.params)
    with pytest.raises(ValueError, match="read the same backwards"):
        config.replace(backend="as_published", hidden_sizes=(8, 16))


@pytest.mark.parametrize("momentum", [0.9, 0.0])  # 0.0: plain SGD through sgd_step
@pytest.mark.parametrize("lr,loss", [(100.0, "mean_squared_error"), (100.0, "binary_cross_entropy"),
                                     (1000.0, "binary_cross_entropy")])
def test_divergence_is_a_clear_error(small, momentum, lr, loss):
    """A NaN or inf loss, or a running loss far above the first one (the rule in training's
    docstring): a divergent learning rate never ends with exit 0 and chance accuracy."""
    with pytest.raises(DivergenceError, match="diverged in epoch 1"):
        train(Config(loss=loss, lr=lr, momentum=momentum, hidden_sizes=(16,)), data=small, **QUIET)


def test_a_learning_run_never_trips_the_divergence_rule(small):
    """Every recipe, on the small set, runs to the end (the rule's other side)."""
    for config in RECIPES.values():
        result = train(config.replace(epochs=1, train_subset=300, hidden_sizes=(32,)), data=small, **QUIET)
        assert len(result.history) == 1


@pytest.mark.parametrize("bad", [dict(lr=-1.0), dict(lr=float("nan")), dict(momentum=1.0), dict(batch_size=0),
                                 dict(epochs=0), dict(seed=-1), dict(backend="torch"), dict(activation="swish"),
                                 dict(dtype="float16"), dict(schedule="step"), dict(threads=0),
                                 dict(hidden_sizes=(0,)), dict(standardize="yes"), dict(train_subset=0)])
def test_bad_options_are_refused_by_the_config_itself(bad):
    field = next(iter(bad))
    with pytest.raises((ValueError, TypeError), match=field.replace("hidden_sizes", "layer_sizes")):
        Config(**bad)


def test_a_subset_larger_than_the_training_examples_is_refused(small):
    """A train_subset was clipped to what the data holds: --train-subset 100000 trained on
    MNIST's 60,000 examples and said nothing (a review, 2026-12-03)."""
    with pytest.raises(ValueError, match="train_subset 601 is more than the 600 training examples$"):
        train(Config(epochs=1, hidden_sizes=(8,), train_subset=601), data=small, **QUIET)
    with pytest.raises(ValueError, match="train_subset 501 is more than the 500 training examples left by "
                                         "validation = 100"):
        train(Config(epochs=1, hidden_sizes=(8,), train_subset=501, validation=100), data=small, **QUIET)
    assert len(train(Config(epochs=1, hidden_sizes=(8,), train_subset=500, validation=100), data=small,
                     **QUIET).history) == 1


# ------------------------------------------------------------------ plot


def test_training_curve_png(small, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    train(Config(epochs=2, hidden_sizes=(8,)), data=small, plot=png, **QUIET)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_interrupt_while_the_plot_is_drawn_waits_for_the_png(tmp_path, monkeypatch):
    """matplotlib starts compiled modules lazily while a figure is laid out; pybind11 turns an
    interrupt there into ImportError("initialization failed"), reported as an error, and Python
    could abort at exit (a review, 2026-12-03). The plot is now drawn with interrupts held."""
    pytest.importorskip("matplotlib")
    import signal

    from matplotlib.figure import Figure

    real = Figure.tight_layout

    def laid_out_interrupted(self, *args, **kwargs):
        _signal_self(signal.SIGINT)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "tight_layout", laid_out_interrupted)
    png = tmp_path / "curve.png"
    with pytest.raises(KeyboardInterrupt):
        training.plot_history([{"epoch": 1, "train_loss": 1.0, "test_accuracy": 0.5}], png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and [p.name for p in tmp_path.iterdir()] == ["curve.png"]


# ------------------------------------------------------------------ command line


def test_cli_train_then_evaluate(tmp_path, capsys):
    ckpt, png = tmp_path / "c.npz", tmp_path / "c.png"
    args = ["train", "--train-subset", "300", "--epochs", "2", "--hidden-sizes", "32",
            "--checkpoint", str(ckpt), "--no-progress"]
    if _has_matplotlib():
        args += ["--plot", str(png)]
    assert main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert LAST_LINE.match(out[-1]) and "epoch 2/2" in "\n".join(out)
    assert main(["evaluate", str(ckpt)]) == 0
    ev = capsys.readouterr().out.strip().splitlines()
    assert ev[-1] == out[-1]  # the checkpoint reproduces the reported accuracy exactly
    assert any(line.startswith("true\\pred") for line in ev)
    assert png.exists() == _has_matplotlib()


def test_cli_train_refuses_another_runs_checkpoint_unless_told(tmp_path, capsys):
    """A new run pointed at a finished run's checkpoint used to replace it (even a read-only one:
    the rename needs only the directory) and exit 0."""
    data_dir, ckpt = tmp_path / "fake", tmp_path / "c.npz"
    fake_mnist(data_dir, n_train=40, n_test=20)
    run = ["train", "--data-dir", str(data_dir), "--epochs", "1", "--hidden-sizes", "8", "--checkpoint", str(ckpt),
           "--no-progress"]
    assert main(run) == 0
    capsys.readouterr()
    before = ckpt.read_bytes()
    assert main([*run, "--hidden-sizes", "4"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists; refusing to replace" in err and "--resume" in err
    assert ckpt.read_bytes() == before
    assert main([*run, "--resume", str(ckpt), "--epochs", "2"]) == 0           # continued in place
    assert main([*run, "--hidden-sizes", "4", "--overwrite"]) == 0            # told to replace it
    assert ckpt.read_bytes() != before


def test_cli_data_dir(tmp_path, capsys):
    data_dir = tmp_path / "fake"
    fake_mnist(data_dir, n_train=40, n_test=20)
    ckpt = tmp_path / "c.npz"
    assert main(["train", "--data-dir", str(data_dir), "--epochs", "1", "--hidden-sizes", "8",
                 "--checkpoint", str(ckpt), "--no-progress"]) == 0
    assert LAST_LINE.match(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["evaluate", str(ckpt)]) == 0  # finds the data directory in the checkpoint
    assert "20 test examples" in capsys.readouterr().out


def test_mlp_scoring_holds_one_block_of_rows_at_a_time(tmp_path, capsys, monkeypatch):
    """evaluate of a hand-saved [1, 50000, 2] network on 100,000 examples asked for 18.6 GiB at
    once (a review, 2026-12-05). Training's test accuracy and evaluate now predict in blocks of
    rows whose widest activations hold at most MLP_EVAL_BYTES, and say what one pass says."""
    data_dir = tmp_path / "fake"
    fake_mnist(data_dir, n_train=40, n_test=20)
    ckpt = tmp_path / "c.npz"
    assert main(["train", "--data-dir", str(data_dir), "--epochs", "1", "--hidden-sizes", "8",
                 "--checkpoint", str(ckpt), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(ckpt)]) == 0
    one_pass = capsys.readouterr().out
    rows, predict = [], mb.network.predict
    monkeypatch.setattr(mb.network, "predict", lambda p, x, **kw: rows.append(len(x)) or predict(p, x, **kw))
    monkeypatch.setattr(training, "MLP_EVAL_BYTES", 3 * 10 * 4)   # 3 rows of the 10 float32 outputs
    assert main(["evaluate", str(ckpt)]) == 0
    assert capsys.readouterr().out == one_pass and rows == [3] * 6 + [2]


@pytest.mark.parametrize(
    "argv, status, message",
    [
        (["train", "--lr", "fast"], 2, "argument --lr"),
        (["train", "--momentum", "1.5"], 2, "momentum must lie in [0, 1)"),
        (["train", "--batch-size", "0"], 2, "batch_size must be a positive integer"),
        (["train", "--threads", "-1"], 2, "threads must be a positive integer or None, NumPy's default (--threads 0"),
        (["train", "--backward", "as_published", "--hidden-sizes", "8", "16"], 2, "read the same backwards"),
        (["train", "--activation", "swish"], 2, "argument --activation"),
        (["train", "--bogus"], 2, "unrecognized arguments"),
        ([], 2, "required"),
        (["train", "--data-dir", "/nonexistent/mnist"], 1, "does not exist"),
        (["train", "--checkpoint", "/nonexistent/dir/c.npz"], 1, "checkpoint directory"),
        (["train", "--plot", "/nonexistent/dir/c.png"], 1, "plot directory"),
        (["evaluate", "/nonexistent/c.npz"], 1, "does not exist"),
        (["train", "--resume", "/nonexistent/c.npz", "--train-subset", "10"], 1, "does not exist"),
        (["train", "--train-subset", "100000"], 1, "train_subset 100000 is more than the 60000 training examples"),
        (["train", "--lr", "1000", "--train-subset", "600", "--hidden-sizes", "16", "--no-progress"], 1,
         "training diverged in epoch 1"),
    ],
)
def test_cli_errors_are_one_line_without_traceback(argv, status, message, capsys):
    try:
        got = main(argv)
    except SystemExit as e:
        got = e.code
    err = capsys.readouterr().err
    assert got == status
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_evaluate_names_the_checkpoint_whose_names_are_unknown_and_refuses_a_closed_stdout(tmp_path, capsys):
    """An edited checkpoint's unknown activation or loss was refused without naming the file; and
    evaluate started with standard output closed (``>&-``) printed nothing and exited 0 (a
    review, 2026-12-05)."""
    params = mb.init_params([784, 4, 10], seed=0, dtype=np.float32)
    for key in ("activation", "loss"):
        path = tmp_path / f"{key}.npz"
        save_checkpoint(path, params, **{"activation": "sigmoid", key: "bogus"})
        assert main(["evaluate", str(path)]) == 1
        assert capsys.readouterr().err == f"error: {path}: unknown {key} 'bogus'; supported: " + ", ".join(
            sorted(mb.ACTIVATIONS if key == "activation" else mb.LOSSES)) + "\n"
    good = tmp_path / "good.npz"
    save_checkpoint(good, params, activation="sigmoid")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(["sh", "-c", 'exec "$0" -m manual_backprop evaluate "$1" >&-', sys.executable, str(good)],
                         stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    assert run.returncode == 1 and "standard output is closed" in run.stderr, run.stderr


def test_evaluate_prints_a_checkpoint_name_that_is_not_valid_utf_8(tmp_path):
    """A review (2026-12-05): a checkpoint named with a byte of another encoding (b"bad\\xff"),
    under the strict UTF-8 standard output of a UTF-8 locale, stopped evaluate with "'utf-8'
    codec can't encode character '\\udcff'" before any score. The name is printed escaped."""
    params = mb.init_params([784, 4, 10], seed=0, dtype=np.float32)
    path = tmp_path / os.fsdecode(b"bad\xffname.npz")
    save_checkpoint(path, params, activation="sigmoid")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8"}
    run = subprocess.run([sys.executable, "-m", "manual_backprop", "evaluate", str(path)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert run.returncode == 0 and "bad\\udcffname.npz" in run.stdout, run.stderr
    assert re.search(r"^test accuracy: 0\.\d{4}$", run.stdout, re.M), run.stdout


def test_cli_refuses_a_corrupt_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04" + os.urandom(100))
    assert main(["evaluate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a valid manual_backprop checkpoint" in err


def test_cli_refuses_a_checkpoint_whose_metadata_and_config_disagree(tmp_path, capsys):
    """A training checkpoint names its activation and loss in its metadata (what evaluate used)
    and in its training config: metadata edited to tanh scored the sigmoid network as tanh,
    exit 0 with 0.1335 for 0.1960 (a review, 2026-12-02)."""
    ckpt = tmp_path / "c.npz"
    assert main(["train", "--train-subset", "300", "--epochs", "1", "--hidden-sizes", "16",
                 "--checkpoint", str(ckpt), "--no-progress"]) == 0
    params, meta = load_checkpoint(ckpt)
    kept = {k: v for k, v in meta.items() if k not in ("layer_sizes", "dtype")}
    save_checkpoint(tmp_path / "edited.npz", params, **{**kept, "activation": "tanh"})
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "edited.npz")]) == 1
    err = capsys.readouterr().err
    assert "metadata says activation 'tanh' and its training config 'sigmoid'" in err and err.count("\n") == 1
    assert main(["evaluate", str(ckpt)]) == 0


def test_python_dash_m_in_a_real_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-m", "manual_backprop", "train", "--train-subset", "100", "--epochs", "1",
         "--hidden-sizes", "8", "--no-progress"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert LAST_LINE.match(run.stdout.strip().splitlines()[-1])
    bad = subprocess.run([sys.executable, "-m", "manual_backprop", "train", "--epochs", "-3"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_a_reader_that_stops_reading_does_not_stop_the_run(tmp_path):
    """train ... | head -1: the second line's write raised BrokenPipeError, the run stopped with
    "error: [Errno 32] Broken pipe", exit 1, and wrote no checkpoint (a review, 2026-12-02). The
    run now finishes and saves; the rest of its report goes nowhere. A full disk under stdout
    (/dev/full) says it was standard output, not the checkpoint."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ckpt = tmp_path / "c.npz"
    cmd = [sys.executable, "-m", "manual_backprop", "train", "--train-subset", "100", "--epochs", "3",
           "--hidden-sizes", "8", "--no-progress", "--checkpoint", str(ckpt)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    assert p.stdout.readline().startswith(b"training ")
    p.stdout.close()                                  # head -1 exits
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0 and err == b"", err
    assert load_checkpoint(ckpt)[1]["epoch"] == 3
    if Path("/dev/full").exists():
        with open("/dev/full", "w") as full:
            run = subprocess.run(cmd[:-2], stdout=full, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                                 timeout=120)
        assert run.returncode == 1 and "error: cannot write to standard output" in run.stderr, run.stderr


def test_a_progress_bar_that_cannot_be_written_does_not_stop_the_run(tmp_path):
    """train ... 2>&1 | head -1, or 2>/dev/full: the progress bar's write to standard error
    raised, the run stopped with an error it could not print either (exit 1) and wrote no
    checkpoint (a review, 2026-12-05). The bar is now dropped and the run finishes."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "manual_backprop", "train", "--train-subset", "100", "--epochs", "3",
           "--hidden-sizes", "8", "--checkpoint"]
    p = subprocess.Popen(cmd + [str(tmp_path / "a.npz")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=env, cwd=tmp_path)
    p.stderr.close()                                  # the reader is gone before the first bar
    assert p.wait(timeout=120) == 0
    assert load_checkpoint(tmp_path / "a.npz")[1]["epoch"] == 3
    if Path("/dev/full").exists():
        with open("/dev/full", "w") as full:
            run = subprocess.run(cmd + [str(tmp_path / "b.npz")], stdout=subprocess.DEVNULL, stderr=full, env=env,
                                 cwd=tmp_path, timeout=120)
        assert run.returncode == 0 and load_checkpoint(tmp_path / "b.npz")[1]["epoch"] == 3


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_matplotlib(), reason="needs matplotlib")
def test_a_history_whose_losses_are_all_zero_is_plotted_without_a_warning(tmp_path):
    """A log scale of no positive value made matplotlib warn (an error in this suite); such a
    history (a loss that rounds to 0) is drawn on a linear scale."""
    training.plot_history([{"epoch": 1, "train_loss": 0.0, "test_accuracy": 1.0, "seconds": 1.0}], tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ what a run must never lose or get wrong


def test_overlapping_outputs_are_refused_before_any_work(small, tmp_path):
    """--plot naming the checkpoint (or the resumed file) would overwrite it with a PNG."""
    ckpt = tmp_path / "run.npz"
    with pytest.raises(paths.OutputPathError, match="plot"):
        train(Config(epochs=1, hidden_sizes=(8,)), data=small, checkpoint=ckpt, plot=ckpt, **QUIET)
    assert not ckpt.exists()
    train(Config(epochs=1, hidden_sizes=(8,)), data=small, checkpoint=ckpt, **QUIET)
    before = ckpt.read_bytes()
    with pytest.raises(paths.OutputPathError, match="plot"):
        train(Config(epochs=2, hidden_sizes=(8,)), data=small, resume=ckpt, plot=ckpt, **QUIET)
    assert ckpt.read_bytes() == before


def test_a_second_run_on_one_checkpoint_is_refused(small, tmp_path):
    ckpt = tmp_path / "run.npz"
    with paths.OutputLock(ckpt, "checkpoint"):  # another run holds it
        with pytest.raises(paths.OutputLockedError, match=str(ckpt)):
            train(Config(epochs=1, hidden_sizes=(8,)), data=small, checkpoint=ckpt, **QUIET)
    assert not ckpt.exists()


def test_a_configuration_this_machine_cannot_hold_is_refused_before_allocating(small, monkeypatch):
    with pytest.raises(MemoryError, match="GiB"):
        train(Config(hidden_sizes=(10_000_000,)), data=small, **QUIET)
    with pytest.raises(MemoryError, match="GiB"):
        train(Config(hidden_sizes=(3_000_000, 3_000_000)), data=small, **QUIET)
    # the CNN's convolutions by their widths: a fixed 40,000 numbers per example let this one
    # (1.4 TB at batch 600) through to NumPy's allocation error (a review, helper-103)
    with pytest.raises(MemoryError, match=r"needs about [\d.]+ GiB and [\d.]+ GiB is available"):
        train(RECIPES["cnn"].replace(channels=(65536, 8), batch_size=600), data=small, **QUIET)
    # scoring, the larger of the two here: the CNN scores CNN_EVAL_BATCH examples in one pass
    # whatever the batch (47 GB for this one on the 500 test images; counted as a step of one
    # example, 0.3 GB, it passed, trained, and reached the allocation error when it scored, a
    # review); on 8 GiB available, wherever the suite runs
    monkeypatch.setattr(training, "memory_available", lambda: 8 * 2**30)
    with pytest.raises(MemoryError, match=r"needs about [\d.]+ GiB and 8.0 GiB is available"):
        train(RECIPES["cnn"].replace(channels=(8192, 8), batch_size=1, epochs=1, train_subset=2), data=small, **QUIET)
    # a batch larger than the data is the whole data: it used to be counted as 10^9 examples
    train(Config(epochs=1, hidden_sizes=(8,), batch_size=10**9, train_subset=200), data=small, **QUIET)


@pytest.mark.parametrize("config,n_train,n_test", [
    (RECIPES["default"].replace(hidden_sizes=(4000,), batch_size=32, epochs=1, lr=0.001), 600, 50),  # the fold
    (RECIPES["default"].replace(hidden_sizes=(4000,), batch_size=600, epochs=1), 600, 50),            # a step
    (RECIPES["default"].replace(hidden_sizes=(512,), batch_size=32, epochs=1, validation=300), 900, 500),
    (RECIPES["cnn"].replace(batch_size=8, epochs=1), 100, 1200),                                   # scoring
], ids=["mlp-fold", "mlp-step", "mlp-validation", "cnn-scoring"])
def test_the_memory_estimate_covers_what_a_run_allocates(config, n_train, n_test, monkeypatch):
    """The refusal above is only as good as the estimate: with as much memory available as a
    run allocated (tracemalloc's peak, beyond the data it was given), the same run is refused.
    A review measured a run folding its weights (float64 copies of W_1) at 1.8 times the
    estimate before it counted the fold."""
    import tracemalloc

    rng = np.random.default_rng(0)
    data = Dataset(rng.random((n_train, 784)).astype(np.float32), np.arange(n_train) % 10,
                   rng.random((n_test, 784)).astype(np.float32), np.arange(n_test) % 10, 10, None, None, None, None)
    tracemalloc.start()
    try:
        train(config, data=data, **QUIET)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    monkeypatch.setattr(training, "memory_available", lambda: peak)
    with pytest.raises(MemoryError, match="this configuration needs about"):
        train(config, data=data, **QUIET)


def test_crafted_checkpoint_fields_are_refused_naming_file_and_field(small, tmp_path):
    ckpt = tmp_path / "run.npz"
    config = Config(epochs=1, hidden_sizes=(8,), standardize=False, momentum=0.0)
    train(config, data=small, checkpoint=ckpt, **QUIET)
    params, meta = load_checkpoint(ckpt)
    for field, value in [("epoch", "abc"), ("epoch", 5), ("history", "x")]:
        crafted = tmp_path / f"crafted-{field}.npz"
        keep = {k: v for k, v in meta.items() if k not in ("layer_sizes", "dtype")}
        save_checkpoint(crafted, params, **{**keep, field: value})
        with pytest.raises(ValueError, match=rf"crafted-{field}\.npz.*(epoch|history)"):
            train(config.replace(epochs=2), data=small, resume=crafted, **QUIET)


def test_evaluate_follows_the_data_not_the_spelling_of_its_path(tmp_path, monkeypatch, capsys):
    """A relative --data-dir is stored resolved; evaluate from elsewhere scores the same data,
    and other files at that path (another digest) are refused."""
    fake_mnist(tmp_path / "a" / "data", n_train=40, n_test=20)
    monkeypatch.chdir(tmp_path / "a")
    ckpt = tmp_path / "c.npz"
    assert main(["train", "--data-dir", "data", "--epochs", "1", "--hidden-sizes", "8", "--checkpoint", str(ckpt),
                 "--no-progress"]) == 0
    trained = capsys.readouterr().out.strip().splitlines()[-1]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()  # a same-named directory here must not be used
    assert main(["evaluate", str(ckpt)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == trained
    fake_mnist(tmp_path / "a" / "data", n_train=40, n_test=20, seed=1)  # other files, same path
    assert main(["evaluate", str(ckpt)]) == 1
    assert "digest" in capsys.readouterr().err


def test_labels_outside_the_classes_are_refused_with_value_and_file(tmp_path, capsys):
    directory = tmp_path / "data"
    arrays = fake_mnist(directory, n_train=40, n_test=20)
    labels = arrays["train_labels"].copy()
    labels[3] = 200
    from support import idx_bytes, write

    write(directory / "train-labels-idx1-ubyte.gz", idx_bytes(labels), gz=True)
    assert main(["train", "--data-dir", str(directory), "--epochs", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "200" in err and "train-labels" in err and "on the command line --n-classes" in err   # the flag, too
    assert main(["train", "--data-dir", str(directory), "--epochs", "1", "--n-classes", "201", "--no-progress",
                 "--hidden-sizes", "4"]) == 1  # 201 declared: now classes never seen are refused
    err = capsys.readouterr().err
    assert "never occur" in err and "on the command line --n-classes" in err


# ------------------------------------------------------------------ the CNN (--model cnn)


def leaf_bits(params) -> list[bytes]:
    return bits(training.leaves(params))


def test_cnn_recipe_trains_and_improves_on_a_small_subset(small):
    """RECIPES['cnn'] on 600 examples, 3 epochs: the training loss falls every epoch and the
    500 test examples are scored far above chance (10 %); measured 73 % (77 % without the
    recipe's augmentation), asserted 60 %."""
    result = train(RECIPES["cnn"].replace(epochs=3), data=small, **QUIET)
    net = mb.model.mnist_cnn()
    net.check_params(result.params)
    assert all(a.dtype == np.float32 for a in training.leaves(result.params))
    losses = [h["train_loss"] for h in result.history]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.5 * losses[0]
    assert result.test_accuracy > 0.6
    assert result.test_accuracy == np.mean(net.predict(result.params, small.x_test.astype(np.float32)) == small.y_test)


def test_cnn_resume_is_bit_identical_to_an_uninterrupted_run(small, tmp_path):
    config = RECIPES["cnn"].replace(epochs=3, train_subset=256)
    whole = train(config, data=small, **QUIET)
    ckpt = tmp_path / "cnn.npz"
    stop_in_epoch(2, config, ckpt, data=small)
    params, meta = load_checkpoint(ckpt)
    assert meta["epoch"] == 1 and meta["model"] == "cnn" and len(meta["velocity"]) == len(training.leaves(params))
    resumed = train(config, data=small, checkpoint=ckpt, resume=ckpt, **QUIET)
    assert leaf_bits(resumed.params) == leaf_bits(whole.params)
    assert without_seconds(resumed.history) == without_seconds(whole.history)
    assert leaf_bits(load_checkpoint(ckpt)[0]) == leaf_bits(whole.params)
    with pytest.raises(ValueError, match="model: checkpoint 'cnn', requested 'mlp'"):
        train(RECIPES["default"].replace(epochs=3, train_subset=256), data=small, resume=ckpt, **QUIET)


def test_cnn_manual_and_jax_backends_agree_after_a_few_steps(small):
    """Three steps of momentum SGD in float64, the hand-derived VJPs against jit(value_and_grad).

    Bound, per array: each step's gradients differ by at most eps = 2 * CANCELLATION * n * u *
    G (layer_checks' exact-vs-exact bound: n = every parameter, input and logit entry, G =
    the largest gradient entry, taken from JAX's first step times 2 for the later steps).
    Step t moves the weights by lr * (sum_{j<=t} mu^j) * g, so equal inputs give a weight
    difference of at most lr * (1 + 1.9 + 2.71) * eps after three steps; unequal inputs grow
    the difference by at most 1 + lr * lambda_max per step, and momentum SGD is stable only
    for lr * lambda_max < 2 (1 + mu), so by at most (3 + 2 mu)^3 over the three steps."""
    ac = pytest.importorskip("autodiff_check")
    pytest.importorskip("jax")
    from layer_checks import CANCELLATION, U64

    B, lr, mu = 32, 0.01, 0.9
    config = RECIPES["cnn"].replace(train_subset=3 * B, batch_size=B, epochs=1, dtype="float64", lr=lr,
                                    momentum=mu, schedule="constant")
    manual = train(config, data=small, **QUIET)
    jax_run = train(config.replace(backend="jax"), backend=ac, data=small, **QUIET)
    net = ac.sequential.mnist_cnn()
    start = net.init(0, dtype=np.float64)
    x, y = small.x_train[:B].astype(np.float64), mb.one_hot(small.y_train[:B], 10)
    G = 2 * max(np.abs(g).max() for g in training.leaves(net.loss_and_grad(start, x, y)[1]))
    n = sum(a.size for a in training.leaves(start)) + x.size + y.size
    eps = 2 * CANCELLATION * n * U64 * G
    tol = (3 + 2 * mu) ** 3 * lr * (1 + 1.9 + 2.71) * eps
    moved = 0.0
    for a, b, a0 in zip(training.leaves(manual.params), training.leaves(jax_run.params), training.leaves(start)):
        assert a.dtype == b.dtype == np.float64
        assert np.abs(a - b).max() <= tol
        moved = max(moved, np.abs(a - a0).max())
    assert moved > 1e3 * tol  # the steps moved the weights far more than the two backends differ


def test_cnn_checkpoint_evaluates_to_the_reported_accuracy(tmp_path, capsys):
    """28 x 28 random images (fast: 200 examples each), the checkpoint found by its data digest."""
    fake_mnist(tmp_path / "data", n_train=200, n_test=200, rows=28, cols=28)
    ckpt = tmp_path / "cnn.npz"
    assert main(["train", "--model", "cnn", "--data-dir", str(tmp_path / "data"), "--epochs", "1",
                 "--checkpoint", str(ckpt), "--no-progress"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert LAST_LINE.match(out[-1]) and "training cnn" in out[0]
    assert "softmax_cross_entropy" in out[0] and "standardize False" in out[0]  # the cnn recipe, chosen by --model
    assert main(["evaluate", str(ckpt)]) == 0
    ev = capsys.readouterr().out.strip().splitlines()
    assert ev[-1] == out[-1] and ev[0].startswith(f"checkpoint {ckpt}: cnn")
    params, meta = load_checkpoint(ckpt)
    # a CNN checkpoint whose arrays do not fit the architecture its config names
    wrong = [p if l != 1 else (p[0][:4], p[1][:4]) for l, p in enumerate(params)]
    bad = tmp_path / "bad.npz"
    save_checkpoint(bad, wrong, **{k: v for k, v in meta.items() if k not in ("param_shapes", "dtype")})
    assert main(["evaluate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.npz" in err and "conv2d" in err


def test_layered_checkpoints_round_trip_and_refuse_lies(tmp_path):
    params = mb.model.mnist_cnn().init(1, dtype=np.float64)
    path = tmp_path / "c.npz"
    save_checkpoint(path, params, model="cnn", velocity=[np.ones(3)], epoch=2)
    got, meta = load_checkpoint(path)
    assert [tuple(a.shape for a in p) for p in got] == [tuple(a.shape for a in p) for p in params]
    assert leaf_bits(got) == leaf_bits(params) and all(isinstance(p, tuple) for p in got)
    assert (meta["model"], meta["dtype"], meta["epoch"]) == ("cnn", "float64", 2) and "layer_sizes" not in meta
    with pytest.raises(ValueError, match="need model=NAME"):
        save_checkpoint(path, params)
    with pytest.raises(ValueError, match="needs a layered network"):
        save_checkpoint(path, mb.init_params([3, 2]), model="cnn")
    with pytest.raises(TypeError, match=r"params mix dtypes.*params\[4\]\[0\] is float32"):
        save_checkpoint(path, [p if l != 4 else (p[0].astype(np.float32), p[1]) for l, p in enumerate(params)],
                        model="cnn")
    # a manifest whose declared shape disagrees with the stored array
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    manifest = np.load(path)["manifest"][()]
    lie = json.loads(str(manifest))
    lie["param_shapes"][1][0] = [8, 1, 5, 4]
    crafted = tmp_path / "lie.npz"
    buf = io.BytesIO()
    np.save(buf, np.array(json.dumps(lie)))
    members["manifest.npy"] = buf.getvalue()
    with zipfile.ZipFile(crafted, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(ValueError, match=r"lie\.npz.*param_1_0 is float64 of shape \(8, 1, 5, 5\), the manifest says"):
        load_checkpoint(crafted)


def test_validation_holds_out_the_last_examples_and_never_scores_the_test_set_per_epoch(small):
    lines = []
    result = train(RECIPES["cnn"].replace(epochs=2, validation=100), data=small, progress=False, log=lines.append)
    assert "on 500 examples (100 held out for validation)" in lines[0]
    assert all("validation accuracy" in line and "test" not in line for line in lines[1:])
    assert [set(h) for h in result.history] == [{"epoch", "train_loss", "validation_accuracy", "seconds"}] * 2
    net = mb.model.mnist_cnn()
    x_val = small.x_train[500:].astype(np.float32)
    assert result.history[-1]["validation_accuracy"] == np.mean(net.predict(result.params, x_val) == small.y_train[500:])
    assert result.test_accuracy == np.mean(net.predict(result.params, small.x_test.astype(np.float32)) == small.y_test)
    # the held-out examples are not trained on: the same run on only the first 500 is bit-identical
    first_500 = small._replace(x_train=small.x_train[:500], y_train=small.y_train[:500])
    assert leaf_bits(train(RECIPES["cnn"].replace(epochs=2), data=first_500, **QUIET).params) == leaf_bits(result.params)


@pytest.mark.parametrize("bad, message", [
    (dict(model="rnn"), "unknown model 'rnn'"),
    (dict(model="cnn"), "model 'cnn' is relu with softmax_cross_entropy.*activation 'sigmoid'"),
    (dict(standardize=True), "got standardize True"),
    (dict(activation="sigmoid"), "got activation 'sigmoid'"),
    (dict(backend="as_published"), "model 'cnn' has none"),
    (dict(validation=-1), "validation must be a non-negative integer"),
])
def test_cnn_bad_combinations_are_refused_by_the_config(bad, message):
    base = RECIPES["default"] if bad.get("model") else RECIPES["cnn"]
    with pytest.raises(ValueError, match=message):
        base.replace(**bad)


def test_cnn_bad_data_is_refused_before_training(small, tmp_path):
    with pytest.raises(ValueError, match="validation 600 must leave training examples; the data has 600"):
        train(RECIPES["cnn"].replace(validation=600), data=small, **QUIET)
    narrow = small._replace(x_train=small.x_train[:, :400], x_test=small.x_test[:, :400])
    with pytest.raises(ValueError, match=r"model 'cnn' takes 28 x 28 images \(784 features\); the data has 400"):
        train(RECIPES["cnn"], data=narrow, **QUIET)
    fake_mnist(tmp_path / "wide", rows=16, cols=49)      # 784 pixels, not 28 x 28: used to train as if it were
    with pytest.raises(ValueError, match=r"takes 28 x 28 images; .*wide has 16 x 49"):
        train(RECIPES["cnn"], data_dir=tmp_path / "wide", **QUIET)


@pytest.mark.parametrize("argv, message", [
    (["--model", "cnn", "--recipe", "default"], "--recipe default trains model 'mlp'; --model cnn needs a recipe of its own (cnn)"),
    (["--model", "mlp", "--recipe", "cnn"], "--recipe cnn trains model 'cnn'; --model mlp needs a recipe of its own (default, post)"),
    (["--model", "cnn", "--standardize"], "got standardize True"),
    (["--model", "cnn", "--backward", "as_published"], "model 'cnn' has none"),
    (["--model", "cnn", "--loss", "mean_squared_error"], "got loss 'mean_squared_error'"),
    (["--model", "transformer"], "argument --model"),
    (["--validation", "-5"], "validation must be a non-negative integer"),
    (["--shift", "2"], "model 'mlp' takes none"),
    (["--model", "cnn", "--shift", "14"], "shift must be an integer in [0, 14)"),
    (["--channels", "4", "6"], "model 'mlp' takes none"),
])
def test_cli_refuses_bad_cnn_combinations_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err


def test_cnn_channels_reach_the_network_the_checkpoint_and_evaluate(small, tmp_path):
    ckpt = tmp_path / "wide.npz"
    result = train(RECIPES["cnn"].replace(epochs=1, train_subset=64, channels=(4, 6)), data=small, checkpoint=ckpt,
                   **QUIET)
    assert [a.shape for a in training.leaves(result.params)][:4] == [(4, 1, 5, 5), (4,), (6, 4, 5, 5), (6,)]
    assert load_checkpoint(ckpt)[1]["config"]["channels"] == [4, 6]
    with pytest.raises(ValueError, match="channels: checkpoint \\(4, 6\\), requested \\(4, 7\\)"):
        train(RECIPES["cnn"].replace(epochs=2, train_subset=64, channels=(4, 7)), data=small, resume=ckpt, **QUIET)
    with pytest.raises(ValueError, match="model 'mlp' takes none"):
        RECIPES["default"].replace(channels=(4, 6))
    with pytest.raises(ValueError, match="channels must be two positive integers"):
        RECIPES["cnn"].replace(channels=(4, 0))


def test_cnn_momentum_update_matches_its_formula(small):
    """v = mu v + g, W = W - lr v over every array, in the loop's order: bit for bit."""
    n, B, mu, lr = 12, 4, 0.9, 0.05
    result = train(RECIPES["cnn"].replace(train_subset=n, batch_size=B, lr=lr, momentum=mu, epochs=1,
                                          schedule="constant", dtype="float64", shift=0), data=small, **QUIET)
    net = mb.model.mnist_cnn()
    W = net.init(0, dtype=np.float64)
    v = [tuple(np.zeros_like(a) for a in p) for p in W]
    order = np.random.default_rng([0, 0]).permutation(n)
    x, y = small.x_train[:n].astype(np.float64)[order], mb.one_hot(small.y_train[:n], 10)[order]
    for s in range(0, n, B):
        _, g = net.loss_and_grad(W, x[s : s + B], y[s : s + B])
        v = [tuple(mu * a + b for a, b in zip(vl, gl)) for vl, gl in zip(v, g)]
        W = [tuple(a - lr * b for a, b in zip(Wl, vl)) for Wl, vl in zip(W, v)]
    assert leaf_bits(result.params) == leaf_bits(W)


def test_translate_moves_each_image_by_its_offset_with_zeros_shifted_in():
    rng = np.random.default_rng(0)
    x = rng.random((5, 784))
    offsets = np.array([[0, 0], [1, 0], [0, -2], [-2, 2], [2, 1]])
    got = training.translate(x, offsets).reshape(5, 28, 28)
    X = x.reshape(5, 28, 28)
    for b, (down, right) in enumerate(offsets):
        want = np.zeros((28, 28))
        for i in range(28):
            for j in range(28):
                if 0 <= i - down < 28 and 0 <= j - right < 28:
                    want[i, j] = X[b, i - down, j - right]
        assert np.array_equal(got[b], want), (down, right)


def test_cnn_shift_augmentation_changes_training_and_resumes_bit_identically(small, tmp_path):
    config = RECIPES["cnn"].replace(epochs=2, train_subset=128, shift=2)
    plain = train(config.replace(shift=0), data=small, **QUIET)
    whole = train(config, data=small, **QUIET)
    assert leaf_bits(whole.params) != leaf_bits(plain.params)
    assert leaf_bits(train(config, data=small, **QUIET).params) == leaf_bits(whole.params)
    ckpt = tmp_path / "aug.npz"
    stop_in_epoch(2, config, ckpt, data=small)
    resumed = train(config, data=small, resume=ckpt, checkpoint=ckpt, **QUIET)
    assert leaf_bits(resumed.params) == leaf_bits(whole.params)
    with pytest.raises(ValueError, match="shift: checkpoint 2, requested 1"):
        train(config.replace(shift=1), data=small, resume=ckpt, **QUIET)
    with pytest.raises(ValueError, match="model 'mlp' takes none"):
        RECIPES["default"].replace(shift=1)


# ------------------------------------------------------------------ a second hostile-input sweep


def _crafted(tmp_path, name, params, meta, **changes):
    path = tmp_path / name
    keep = {k: v for k, v in meta.items() if k not in ("layer_sizes", "dtype")}
    save_checkpoint(path, params, **{**keep, **changes})
    return path


def test_resume_checks_every_array_against_the_run(small, tmp_path):
    """Weights of another shape (same depth), dtype or with a NaN, a velocity of another dtype,
    a history entry without its keys: each refused naming the file, where training used to go
    on (or fail deep inside NumPy, or call a corrupt file a divergence)."""
    ckpt = tmp_path / "run.npz"
    config = Config(epochs=1, hidden_sizes=(8,), momentum=0.9)
    train(config, data=small, checkpoint=ckpt, **QUIET)
    params, meta = load_checkpoint(ckpt)
    tp, vel = meta["train_params"], meta["velocity"]
    nan = [W.copy() for W in tp]
    nan[1][2, 3] = np.nan
    cases = [
        ("shape.npz", dict(train_params=[np.zeros((785, 3), np.float32), np.zeros((4, 10), np.float32)]),
         r"shape\.npz: weights of shapes \[\(785, 3\), \(4, 10\)\]; this run's network \[784, 8, 10\]"),
        ("f64.npz", dict(train_params=[W.astype(np.float64) for W in tp]), r"f64\.npz: train_params\[0\] is float64"),
        ("nan.npz", dict(train_params=nan), r"nan\.npz: train_params\[1\] contains NaN or inf"),
        ("vel.npz", dict(velocity=[v.astype(np.int32) for v in vel]), r"vel\.npz: velocity\[0\] is int32"),
        ("hist.npz", dict(history=[{}]), r"hist\.npz: history\[0\] lacks one of"),
        # a NaN or negative loss reached the plot's log scale, a warning (a review, 2026-12-05)
        ("hist2.npz", dict(history=[{**meta["history"][0], "train_loss": float("nan")}]),
         r"hist2\.npz: history\[0\] must hold epoch 1, finite numbers, a train_loss and seconds >= 0"),
        ("hist3.npz", dict(history=[{**meta["history"][0], "train_loss": -1.0}]), r"hist3\.npz: history\[0\] must hold"),
        # an accuracy above 1, negative seconds, an epoch out of turn reached the plot (the sweep, 2026-12-05)
        ("hist4.npz", dict(history=[{**meta["history"][0], "test_accuracy": 1.5}]), r"hist4\.npz: history\[0\] must hold"),
        ("hist5.npz", dict(history=[{**meta["history"][0], "seconds": -1.0}]), r"hist5\.npz: history\[0\] must hold"),
        ("hist6.npz", dict(history=[{**meta["history"][0], "epoch": 2}]), r"hist6\.npz: history\[0\] must hold epoch 1"),
        # an int past float64: OverflowError in math.isfinite, a traceback (a review, 2026-12-05)
        ("hist7.npz", dict(history=[{**meta["history"][0], "train_loss": 10**400}]), r"hist7\.npz: history\[0\] must hold"),
        ("rule6.npz", dict(divergence={"first": 10**400, "running": 1.0}), r"rule6\.npz: divergence must hold"),
        # an edited JSON list where the momentum buffers were: AttributeError deep in the resume (the sweep)
        ("vel2.npz", dict(velocity=[[0.0]]), r"vel2\.npz: .*velocity"),
        ("loss.npz", dict(loss="mean_squared_error"), r"loss\.npz: its metadata says loss 'mean_squared_error' and its "
                                                        r"training config 'binary_cross_entropy'"),
        ("rule.npz", dict(divergence={"first": 1.0, "running": "x"}), r"rule\.npz: .*divergence"),
        ("rule2.npz", dict(divergence={"first": float("nan"), "running": 1.0}),
         r"rule2\.npz: divergence must hold the rule's first and running losses"),
        ("rule3.npz", dict(divergence={"first": 1.0}), r"rule3\.npz: divergence must hold"),
        ("rule4.npz", dict(divergence={"first": 0.0, "running": 0.5}), r"rule4\.npz: .* a state no run saves"),
        ("rule5.npz", dict(divergence={"first": 1.0, "running": 3.5}), r"rule5\.npz: .* a state no run saves"),
    ]
    for name, change, message in cases:
        with pytest.raises(ValueError, match=message):
            train(config.replace(epochs=2), data=small, resume=_crafted(tmp_path, name, params, meta, **change), **QUIET)
    # the MLP's matrices under a manifest that says 'cnn', the config beside them unchanged (the
    # sweep: a traceback), and with a config that names no model (whose default is the MLP)
    wrapped = _crafted(tmp_path, "wrapped.npz", [(W,) for W in params], meta, model="cnn")
    with pytest.raises(ValueError, match=r"wrapped\.npz: its manifest says model 'cnn' and its training config 'mlp'"):
        train(config.replace(epochs=2), data=small, resume=wrapped, **QUIET)
    unnamed = {k: v for k, v in meta["config"].items() if k != "model"}
    wrapped = _crafted(tmp_path, "wrapped2.npz", [(W,) for W in params], meta, model="cnn", config=unnamed)
    with pytest.raises(ValueError, match=r"wrapped2\.npz: the checkpoint holds model 'cnn'; this run trains 'mlp'"):
        train(config.replace(epochs=2), data=small, resume=wrapped, **QUIET)
    boast = _crafted(tmp_path, "boast.npz", params, meta, history=[{**meta["history"][0], "test_accuracy": 0.999}])
    scored = train(config, data=small, resume=boast, **QUIET)   # nothing left to train: scored, not read
    assert scored.test_accuracy == train(config, data=small, **QUIET).test_accuracy
    two = _crafted(tmp_path, "two.npz", params, meta, epoch=2, history=[meta["history"][0], {**meta["history"][0], "epoch": 2}])
    with pytest.raises(ValueError, match=r"2 epochs are done already; epochs = 1 asks for fewer"):
        train(config.replace(epochs=1), data=small, resume=two, **QUIET)


def test_no_output_overwrites_the_data_or_takes_a_users_file_for_its_lock(tmp_path, capsys):
    data_dir = tmp_path / "data"
    fake_mnist(data_dir, n_train=40, n_test=20)
    labels = next(data_dir.glob("train-labels*"))
    before = labels.read_bytes()
    base = ["train", "--data-dir", str(data_dir), "--epochs", "1", "--hidden-sizes", "8", "--no-progress"]
    assert main(base + ["--checkpoint", str(labels)]) == 1
    assert "is the input file" in capsys.readouterr().err and labels.read_bytes() == before
    raw = tmp_path / "raw"   # uncompressed files: a checkpoint under a .gz name would be read as the data
    fake_mnist(raw, n_train=40, n_test=20, gz=False)
    shadow = raw / "train-labels-idx1-ubyte.gz"
    assert main(["train", "--data-dir", str(raw), *base[3:], "--checkpoint", str(shadow)]) == 1
    assert "is the input file" in capsys.readouterr().err and not shadow.exists()
    notes = tmp_path / "model.npz.lock"
    notes.write_text("my notes\n")
    assert main(base + ["--checkpoint", str(tmp_path / "model.npz")]) == 1
    assert "is not a lock file" in capsys.readouterr().err and notes.read_text() == "my notes\n"
    assert main(base + ["--checkpoint", str(tmp_path / "a.npz"), "--plot", str(tmp_path / "a.npz.lock")]) == 1
    assert "is the lock file of checkpoint" in capsys.readouterr().err


def test_cli_refuses_more_bad_values_in_one_line(tmp_path, capsys):
    for argv, status, message in (
        (["train", "--threads", str(10**20)], 2, "threads must be at most 4096"),
        (["train", "--lr", "1e-320", "--dtype", "float32"], 2, "lr = 1e-320 is 0.0 in float32"),
        (["train", "--lr", "1e-45", "--dtype", "float32"], 2, "lr = 1e-45 is subnormal in float32"),   # ran, untrained
        (["train", "--lr", "1e-320", "--dtype", "float64"], 2, "lr = 1e-320 is subnormal in float64"),
        (["train", "--n-classes", "0"], 2, "--n-classes must be in 2..256"),
    ):
        try:
            got = main(argv)
        except SystemExit as e:
            got = e.code
        err = capsys.readouterr().err
        assert got == status and message in err and "Traceback" not in err, err


@pytest.mark.signals
@pytest.mark.parametrize("signame, status", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_unwinds_like_ctrl_c_and_leaves_no_partial_file(tmp_path, signame, status):
    """timeout(1) sends SIGTERM, a closed terminal SIGHUP: the run must stop as after Ctrl-C
    (exit 128 + signal, one line, no temporary or lock file left), not die with a half-written
    checkpoint beside the target (SIGHUP used to: 2 runs in 3 left 100 MB and a lock)."""
    import signal
    import time

    data_dir = tmp_path / "data"
    fake_mnist(data_dir, n_train=40, n_test=20)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "manual_backprop", "train", "--data-dir", str(data_dir), "--hidden-sizes", "300",
         "--epochs", "100000", "--batch-size", "8", "--no-progress", "--checkpoint", str(out / "c.npz")],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "c.npz").exists() and time.monotonic() < deadline:   # at least one save done
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status and err.strip().splitlines()[-1] == "terminated", err
    assert sorted(p.name for p in out.iterdir()) == ["c.npz"]
    load_checkpoint(out / "c.npz")


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_runs_bits(tmp_path):
    """SIGKILL gives the run no chance to clean up: it lands right after epoch 3's log line, so
    during epoch 3's save or early in epoch 4. The checkpoint then holds epoch 2 or 3, and the
    run resumed from it on the command line ends with the weights of one never interrupted."""
    import signal

    data_dir = tmp_path / "data"
    fake_mnist(data_dir, n_train=200, n_test=20)
    args = ["train", "--data-dir", str(data_dir), "--hidden-sizes", "64", "--epochs", "6", "--batch-size", "4",
            "--no-progress"]
    assert main(args + ["--checkpoint", str(tmp_path / "whole.npz")]) == 0
    ckpt = tmp_path / "killed.npz"
    proc = subprocess.Popen([sys.executable, "-m", "manual_backprop", *args, "--checkpoint", str(ckpt)],
                            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("epoch 3/"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(ckpt)[1]["epoch"] in (2, 3)
    assert main(args + ["--checkpoint", str(ckpt), "--resume", str(ckpt)]) == 0
    (whole, w_meta), (resumed, r_meta) = load_checkpoint(tmp_path / "whole.npz"), load_checkpoint(ckpt)
    assert r_meta["epoch"] == 6 and bits(resumed) == bits(whole)
    assert without_seconds(r_meta["history"]) == without_seconds(w_meta["history"])


def _signal_self(sig) -> None:
    """Send ``sig`` to this process and give Python the bytecodes at which it runs the handler."""
    os.kill(os.getpid(), sig)
    for _ in range(1000):
        pass


def _what_a_library_does(how: str, sig) -> float:
    """A step of a run that meets signal ``sig`` and handles it as some libraries do (a review,
    2026-12-03, found each in the command line's imports or its plotting)."""
    if how == "swallows it":          # an extension module's init, importlib's weakref callbacks
        try:
            _signal_self(sig)
        except KeyboardInterrupt:
            pass
        return 0.5
    if how == "turns it into an error":   # pybind11: ImportError("initialization failed")
        try:
            _signal_self(sig)
        except KeyboardInterrupt as e:
            raise ImportError("initialization failed") from e
    raise AssertionError(how)


@pytest.mark.signals
@pytest.mark.parametrize("how", ["swallows it", "turns it into an error"])
@pytest.mark.parametrize("signame, status, line", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated"),
                                                   ("SIGHUP", 129, "terminated")])
def test_a_signal_a_library_swallows_or_renames_still_stops_the_run(monkeypatch, capsys, how, signame, status, line):
    """The command line records the signal, so a run whose KeyboardInterrupt a library ate ends
    as stopped (it finished with exit 0), and one whose interrupt became another error is not
    reported as that error (exit 1, "error: initialization failed")."""
    import signal

    from manual_backprop.app import cli

    monkeypatch.setattr(cli, "_evaluate", lambda args: _what_a_library_does(how, getattr(signal, signame)))
    assert main(["evaluate", "any.npz"]) == status
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [line] and "test accuracy" not in out, (out, err)


@pytest.mark.signals
def test_a_second_signal_while_the_run_unwinds_does_not_break_its_cleanup(monkeypatch, capsys):
    """SIGTERM then Ctrl-C at once (a terminal closing, a supervisor's kill burst): the second
    one landed in the unwinding and cut the cleanup short (lock files left, tracebacks)."""
    import signal

    from manual_backprop.app import cli

    cleaned = []

    def evaluate(args):
        try:
            _signal_self(signal.SIGTERM)
        finally:
            _signal_self(signal.SIGINT)
            cleaned.append("done")

    monkeypatch.setattr(cli, "_evaluate", evaluate)
    assert main(["evaluate", "any.npz"]) == 143
    assert cleaned == ["done"] and capsys.readouterr().err.strip().splitlines() == ["terminated"]


@pytest.mark.signals
@pytest.mark.parametrize("when", ["as the handlers go in", "as they are put back"])
def test_a_signal_while_main_swaps_its_handlers_is_no_traceback(monkeypatch, capsys, when):
    """Ctrl-C just after main's SIGINT handler went in escaped main as a KeyboardInterrupt; a
    SIGTERM after a finished run, while the handlers were being put back, raised out of main's
    finally and lost its exit status (a review, 2026-12-03)."""
    import signal

    from manual_backprop.app import cli

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    real = signal.signal
    sent = []

    def swap(s, handler):
        old = real(s, handler)
        going_in = handler is cli._on_signal
        if s == signal.SIGINT and not sent and going_in == (when == "as the handlers go in"):
            sent.append(s)
            _signal_self(signal.SIGINT if going_in else signal.SIGTERM)
        return old

    monkeypatch.setattr(cli, "_evaluate", lambda args: 0.5)
    monkeypatch.setattr(signal, "signal", swap)
    try:
        status = main(["evaluate", "any.npz"])
    except KeyboardInterrupt:     # what it did: kept from pytest, which would stop the session
        status = "raised KeyboardInterrupt"
    monkeypatch.undo()
    out, err = capsys.readouterr()
    assert sent and {s: signal.getsignal(s) for s in before} == before
    if when == "as the handlers go in":
        assert status == 130 and err.strip().splitlines() == ["interrupted"]
    else:   # the run was over and said so: the late signal is only recorded
        assert status == 0 and "test accuracy: 0.5000" in out and err == ""


@pytest.mark.signals
def test_a_closed_terminal_still_gets_the_signals_exit_status(monkeypatch):
    """SIGHUP from a terminal that is gone: writing "terminated" there fails with EIO, which
    escaped as an error (exit 1) or a traceback; the status is what tells now."""
    import errno
    import signal

    from manual_backprop.app import cli

    class Gone(io.TextIOBase):
        def write(self, text):
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(cli, "_evaluate", lambda args: _signal_self(signal.SIGHUP))
    monkeypatch.setattr(sys, "stderr", Gone())
    assert main(["evaluate", "any.npz"]) == 129


def test_evaluate_refuses_a_cnn_with_non_finite_weights(tmp_path, capsys):
    ckpt = tmp_path / "cnn.npz"
    data_dir = tmp_path / "data"
    fake_mnist(data_dir, n_train=40, n_test=20, rows=28, cols=28)
    assert main(["train", "--recipe", "cnn", "--data-dir", str(data_dir), "--epochs", "1", "--no-progress",
                 "--checkpoint", str(ckpt)]) == 0
    capsys.readouterr()
    params, meta = load_checkpoint(ckpt)
    keep = {k: v for k, v in meta.items() if k not in ("layer_sizes", "param_shapes", "dtype")}
    bad = [tuple(a.copy() for a in p) for p in params]
    i = next(i for i, p in enumerate(bad) if p)   # the first layer with weights: the first convolution
    bad[i][0][0, 0, 0, 0] = np.inf
    save_checkpoint(tmp_path / "inf.npz", bad, **keep)
    assert main(["evaluate", str(tmp_path / "inf.npz")]) == 1
    assert f"params[{i}][0] (conv2d) contains NaN or inf" in capsys.readouterr().err
    # a resume names it as evaluate does, where it named its index among all the arrays ("params[0]"
    # for layer 1's, layer 0 holding none; a review, 2026-12-05); the dense layer's too
    resume = ["train", "--recipe", "cnn", "--data-dir", str(data_dir), "--epochs", "2", "--no-progress", "--resume"]
    assert main([*resume, str(tmp_path / "inf.npz")]) == 1
    assert f"inf.npz: params[{i}][0] (conv2d) contains NaN or inf (a corrupt checkpoint)" in capsys.readouterr().err
    last = [tuple(a.copy() for a in p) for p in params]
    j = max(i for i, p in enumerate(last) if p)
    last[j][0].flat[0] = np.nan
    save_checkpoint(tmp_path / "nan.npz", last, **keep)
    assert main([*resume, str(tmp_path / "nan.npz")]) == 1
    assert f"nan.npz: params[{j}][0] (dense) contains NaN or inf (a corrupt checkpoint)" in capsys.readouterr().err
    big = [tuple(a * np.float32(1e30) for a in p) for p in params]
    save_checkpoint(tmp_path / "big.npz", big, **keep)
    assert main(["evaluate", str(tmp_path / "big.npz")]) == 1
    # weights x 1e30 twice over (1e30 * 1e30 > 3.4e38): the second convolution, layers[4], overflows
    assert "the outputs of layer 5 (conv2d) are NaN or inf" in capsys.readouterr().err


def test_evaluate_names_what_is_wrong_in_an_edited_checkpoint(tmp_path, capsys):
    """A hostile-checkpoint sweep (2026-12-05): a CNN whose last layer holds no weights failed on
    'tuple index out of range', a bad config in the words of mnist_cnn's arguments ('layer_sizes[0]
    must be positive'), a 2-output network on the training labels with advice evaluate does not
    take (--n-classes), and an MLP whose params and train_params were swapped was scored, exit 0."""
    data_dir = tmp_path / "data"
    fake_mnist(data_dir, n_train=40, n_test=20, rows=28, cols=28)
    mlp, cnn = tmp_path / "mlp.npz", tmp_path / "cnn.npz"
    assert main(["train", "--data-dir", str(data_dir), "--epochs", "1", "--hidden-sizes", "8", "--no-progress",
                 "--checkpoint", str(mlp)]) == 0
    assert main(["train", "--recipe", "cnn", "--data-dir", str(data_dir), "--epochs", "1", "--no-progress",
                 "--checkpoint", str(cnn)]) == 0
    capsys.readouterr()
    cases = []
    params, meta = load_checkpoint(cnn)
    keep = {k: v for k, v in meta.items() if k not in ("param_shapes", "dtype")}
    cases.append((params + [()], keep, r"the params are not those of a CNN: its last layer holds arrays of shapes \[\]"))
    cases.append((params, {**keep, "config": {**meta["config"], "channels": [0, 2]}},
                  r"training config does not match this version \(channels must be two positive integers"))
    cases.append((params, {**keep, "config": {}}, r"its manifest says model 'cnn' and its training config 'mlp'"))
    params, meta = load_checkpoint(mlp)
    keep = {k: v for k, v in meta.items() if k not in ("layer_sizes", "dtype")}
    cases.append((meta["train_params"], {**keep, "train_params": params},
                  r"params\[0\] is not train_params\[0\] with the input scaling folded in"))
    # an edited scaling: an int past float64 (OverflowError) and a scale whose fold overflows float32
    # (a RuntimeWarning before the refusal; a review)
    cases.append((params, {**keep, "input_shift": 10**400}, r"input scaling \(1000*, .*\) must be finite"))
    cases.append((params, {**keep, "input_scale": 1e-300}, r"params\[0\] is not train_params\[0\]"))
    cases.append((params, {**keep, "config": {**meta["config"], "model": "cnn"}},
                  r"its manifest says model 'mlp' and its training config 'cnn'"))
    two = mb.init_params([784, 8, 2], seed=0, dtype=np.float32)
    cases.append((two, {"activation": "sigmoid"}, r"the network has 2 outputs; the data's labels do not fit them: "
                                                  r".*train-labels-idx1-ubyte\.gz: label \d+ at index \d+ is outside"))
    for i, (params, meta, message) in enumerate(cases):
        path = tmp_path / f"edited{i}.npz"
        save_checkpoint(path, params, **meta)
        assert main(["evaluate", str(path), "--data-dir", str(data_dir)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(rf"edited{i}\.npz: .*{message}", err), (i, err)
        assert "--n-classes" not in err


def test_cli_main_runs_outside_the_main_thread(capsys):
    """signal.signal works in the main thread only: the SIGTERM handler is installed there alone,
    so main() called from a worker thread still answers (here: one line, exit 1)."""
    import threading

    got = []
    t = threading.Thread(target=lambda: got.append(main(["evaluate", "/nonexistent/c.npz"])))
    t.start()
    t.join()
    assert got == [1] and "does not exist" in capsys.readouterr().err


@pytest.mark.signals
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_cli_sigterm_handler_is_restored_and_never_replaces_an_ignored_sigterm(monkeypatch, capsys, signame):
    """During a run SIGTERM (SIGHUP) unwinds; after it, the caller's handler is back. One the
    parent set to be ignored (SIG_IGN, as nohup does for SIGHUP) stays ignored during the run."""
    import signal

    from manual_backprop.app import cli

    sig = getattr(signal, signame)
    seen = []
    monkeypatch.setattr(cli, "_evaluate", lambda args: seen.append(signal.getsignal(sig)) or 0.5)
    before = signal.getsignal(sig)
    assert main(["evaluate", "any.npz"]) == 0
    assert seen[-1] not in (before, signal.SIG_IGN) and signal.getsignal(sig) is before
    signal.signal(sig, signal.SIG_IGN)
    try:
        assert main(["evaluate", "any.npz"]) == 0
        assert seen[-1] == signal.SIG_IGN and signal.getsignal(sig) == signal.SIG_IGN
    finally:
        signal.signal(sig, before)
    capsys.readouterr()


def test_validation_that_leaves_a_class_out_of_training_is_refused(small):
    """On class-sorted data the held-out tail is whole classes; it used to train without them."""
    order = np.argsort(small.y_train, kind="stable")
    sorted_ = small._replace(x_train=small.x_train[order], y_train=small.y_train[order])
    n9 = int(np.sum(small.y_train == 9))
    with pytest.raises(ValueError, match=r"left by validation = .*classes \[9\] of 0\.\.9 never occur"):
        train(Config(epochs=1, hidden_sizes=(8,), validation=n9), data=sorted_, **QUIET)
    train(Config(epochs=1, hidden_sizes=(8,), validation=n9 - 1), data=sorted_, **QUIET)   # one 9 is left


def test_evaluate_names_the_checkpoint_whose_mlp_weights_are_bad(tmp_path, capsys):
    """NaN weights, weights that overflow on the data, and more outputs than labels can name
    used to be reported without the file ('params[1] contains NaN or inf')."""
    data_dir, ckpt = tmp_path / "data", tmp_path / "c.npz"
    fake_mnist(data_dir, n_train=40, n_test=20)
    assert main(["train", "--data-dir", str(data_dir), "--epochs", "1", "--hidden-sizes", "8", "--no-progress",
                 "--checkpoint", str(ckpt)]) == 0
    capsys.readouterr()
    params, meta = load_checkpoint(ckpt)
    # saved by hand, without the training weights whose fold they would no longer be (tested below)
    keep = {k: v for k, v in meta.items() if k not in ("layer_sizes", "param_shapes", "dtype", "train_params")}
    nan = [W.copy() for W in params]
    nan[1][0, 0] = np.nan
    big = [W.copy() for W in params]
    big[0][1:, 0] = 3e38                    # z_1[:, 0] = 3e38 times the sum of an image's pixels: inf
    for name, bad, message in (("nan", nan, "params[1] contains NaN or inf"), ("big", big, "is NaN or inf")):
        save_checkpoint(tmp_path / f"{name}.npz", bad, **keep)
        assert main(["evaluate", str(tmp_path / f"{name}.npz")]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{name}.npz: " in err and message in err, err


def test_evaluate_refuses_an_mlp_checkpoint_that_does_not_name_its_activation(tmp_path, capsys):
    """evaluate took a checkpoint without ``activation`` for a sigmoid network: a relu network
    saved by ``save_checkpoint(path, params)`` was scored as a sigmoid one, a wrong accuracy
    with exit 0 (a review, 2026-12-04). Predictions depend on g, so it must be named."""
    data_dir, ckpt = tmp_path / "data", tmp_path / "c.npz"
    fake_mnist(data_dir, n_train=40, n_test=20)
    assert main(["train", "--data-dir", str(data_dir), "--epochs", "1", "--hidden-sizes", "8", "--no-progress",
                 "--activation", "relu", "--checkpoint", str(ckpt)]) == 0
    capsys.readouterr()
    params, meta = load_checkpoint(ckpt)
    keep = {k: v for k, v in meta.items() if k not in ("layer_sizes", "param_shapes", "dtype", "activation")}
    save_checkpoint(tmp_path / "bare.npz", params, **keep)
    assert main(["evaluate", str(tmp_path / "bare.npz")]) == 1
    err = capsys.readouterr().err
    assert "bare.npz does not say which activation its network uses" in err, err
    save_checkpoint(tmp_path / "named.npz", params, **keep, activation="relu")
    assert main(["evaluate", str(tmp_path / "named.npz")]) == 0
    named = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["evaluate", str(ckpt)]) == 0
    assert named == capsys.readouterr().out.strip().splitlines()[-1]   # relu named: the trained network's score


def test_a_data_file_that_is_not_a_regular_file_is_named_as_such(tmp_path):
    from manual_backprop.app.data import load_mnist

    fake_mnist(tmp_path / "fifo")
    label = tmp_path / "fifo" / "train-labels-idx1-ubyte.gz"
    label.unlink()
    os.mkfifo(label)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz is a FIFO, device or socket, not a regular file"):
        load_mnist(tmp_path / "fifo")
    label.unlink()
    label.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="is a dangling symlink"):   # used to read 'no ... .gz or ...'
        load_mnist(tmp_path / "fifo")
