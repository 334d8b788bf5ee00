"""Mini-batch SGD with momentum for the fully connected network, on MNIST-layout data.

    >>> from manual_backprop.training import train
    >>> result = train()                      # the default recipe: >= 98 % test accuracy
    >>> result.test_accuracy, result.params   # float, [(785, 500), (501, 500), (501, 10)]

Update, per mini-batch of B examples (x (B, n_0), one-hot y (B, n_L)), with the learning
rate ``lr_t`` of global step t given by the schedule:

    J, g = loss_and_grad(W, x, y)             g[l] has the shape of W[l]
    v[l] = momentum * v[l] + g[l]             (v = g when momentum = 0: plain SGD, the post's)
    W[l] = W[l] - lr_t * v[l]

With momentum = 0 and the manual backend the step is ``network.sgd_step``, which applies
``-lr_t g`` as it forms g (the same numbers up to rounding, faster at batch 1).

With ``standardize`` (the default recipe) the loop sees ``(x - mean) / std``, one mean and one
standard deviation over all training pixels; :func:`fold_input_scaling` folds that into the
first layer, so returned and checkpointed ``params`` take the raw [0, 1] inputs like any
other network. A checkpoint, written after every epoch, holds those params, the config, the
history, the momentum buffers and (if standardised) the weights the loop works on.

Determinism: the initial weights come from ``init_params(seed=seed)`` and epoch e visits the
examples in the order ``default_rng([seed, e]).permutation(n)``, so the same seed, dtype and
backend give bit-identical weights, and a run resumed from an end-of-epoch checkpoint is
bit-identical to one that was never interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _checks, network
from ..activations import get_activation
from .checkpoint import load_checkpoint, save_checkpoint
from .data import Dataset, load_mnist
from ..losses import get_loss

BACKENDS = ("manual", "jax")
BACKWARDS = ("manual", "as_published")
SCHEDULES = ("constant", "cosine", "linear")


@dataclass(frozen=True)
class Recipe:
    """The optimisation settings a named recipe fixes; ``train``'s arguments override them."""

    lr: float
    momentum: float
    batch_size: int
    epochs: int
    dtype: str
    schedule: str
    standardize: bool


RECIPES: dict[str, Recipe] = {
    # Tuned for the post's network on 2 CPU cores: >= 98 % test accuracy in well under 60 s.
    # Inputs standardised (one mean and one standard deviation over all training pixels).
    "default": Recipe(
        lr=0.1, momentum=0.9, batch_size=64, epochs=12, dtype="float32", schedule="cosine", standardize=True
    ),
    # The post's own: one example per update, learning rate 0.001, 2 epochs, float64, no momentum.
    "post": Recipe(
        lr=0.001, momentum=0.0, batch_size=1, epochs=2, dtype="float64", schedule="constant", standardize=False
    ),
}


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run's weights; stored in its checkpoints."""

    recipe: str
    layer_sizes: list[int]
    activation: str
    loss: str
    lr: float
    momentum: float
    batch_size: int
    epochs: int
    schedule: str
    standardize: bool
    seed: int
    dtype: str
    backend: str
    backward: str
    train_subset: int | None
    data_dir: str | None


@dataclass
class TrainResult:
    """A finished run: ``params`` as for ``network``, ``history`` one dict per epoch."""

    params: list[np.ndarray]
    config: TrainConfig
    history: list[dict[str, float]]
    test_accuracy: float
    seconds: float


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of global step ``step`` (0-based) out of ``total_steps``."""
    if config.schedule == "constant":
        return config.lr
    frac = step / total_steps
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * frac))
    return config.lr * (1.0 - frac)  # linear


def blas_threads(n: int | None):
    """A context limiting NumPy's BLAS to ``n`` threads (threadpoolctl), or a no-op for None.

    Training defaults to one thread: its products are small (B x 784 @ 784 x 500), and on a
    shared 2-core machine OpenBLAS's spinning threads can make a 2-thread run 10x slower
    than a 1-thread one. Without threadpoolctl installed this is a no-op.
    """
    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def _jax_loss_and_grad() -> Callable:
    """``autodiff_check.loss_and_grad``, imported on demand so that this package never needs JAX."""
    try:
        from autodiff_check import loss_and_grad
    except ImportError as e:
        raise ImportError(f"backend 'jax' needs JAX and autodiff_check: {e}") from None
    return loss_and_grad


def _gradient_fn(config: TrainConfig) -> Callable[[list[np.ndarray], np.ndarray, np.ndarray], tuple[float, list[np.ndarray]]]:
    """``(params, x, y) -> (J, grads)`` for the configured backend and backward pass."""
    kw = {"activation": config.activation, "loss": config.loss}
    if config.backend == "jax":
        jax_loss_and_grad = _jax_loss_and_grad()

        def jax_step(params, x, y):
            J, grads = jax_loss_and_grad(params, x, y, **kw)
            return float(J), [np.asarray(g, dtype=W.dtype) for g, W in zip(grads, params)]

        return jax_step
    if config.backward == "as_published":
        from ..as_published import loss_and_grad as published
        return lambda params, x, y: published(params, x, y, check_finite=False, **kw)
    workspace, out = network.Workspace(), []

    def manual_step(params, x, y):  # gradients and scratch arrays reused from step to step
        if not out:
            out.extend(np.empty_like(W) for W in params)
        return network.loss_and_grad(params, x, y, check_finite=False, out=out, workspace=workspace, **kw)

    return manual_step


def _fused_step(config: TrainConfig) -> Callable | None:
    """``(params, x, y, rate) -> J`` updating params in place by :func:`network.sgd_step`, for
    plain SGD with the manual backend (the post's recipe), where it saves the passes over
    memory that storing the gradient costs; None otherwise (momentum needs the gradient)."""
    if config.backend != "manual" or config.backward != "manual" or config.momentum > 0:
        return None
    workspace, kw = network.Workspace(), {"activation": config.activation, "loss": config.loss}

    def step(params, x, y, rate):
        try:
            return network.sgd_step(params, x, y, rate, check_finite=False, workspace=workspace, **kw)[0]
        except FloatingPointError:  # the loss is not finite; params were left unchanged
            return math.nan

    return step


def _resolve(recipe: str, overrides: dict[str, Any], n_features: int, n_classes: int) -> TrainConfig:
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    base = dataclasses.asdict(RECIPES[recipe])
    o = {k: (v if v is not None else base.get(k)) for k, v in overrides.items()}
    hidden_sizes = o.pop("hidden_sizes")
    hidden = [500, 500] if hidden_sizes is None else list(hidden_sizes)
    get_activation(o["activation"])
    get_loss(o["loss"])
    if o["backend"] not in BACKENDS:
        raise ValueError(f"unknown backend {o['backend']!r}; choose from {', '.join(BACKENDS)}")
    if o["backward"] not in BACKWARDS:
        raise ValueError(f"unknown backward {o['backward']!r}; choose from {', '.join(BACKWARDS)}")
    if o["backend"] == "jax" and o["backward"] != "manual":
        raise ValueError("backward='as_published' needs backend='manual' (JAX differentiates the true loss)")
    if o["schedule"] not in SCHEDULES:
        raise ValueError(f"unknown schedule {o['schedule']!r}; choose from {', '.join(SCHEDULES)}")
    if not (isinstance(o["lr"], (int, float)) and math.isfinite(o["lr"]) and o["lr"] > 0):
        raise ValueError(f"lr must be a positive number; got {o['lr']!r}")
    if not (isinstance(o["momentum"], (int, float)) and 0 <= o["momentum"] < 1):
        raise ValueError(f"momentum must lie in [0, 1); got {o['momentum']!r}")
    for name in ("batch_size", "epochs"):
        if isinstance(o[name], bool) or not isinstance(o[name], int) or o[name] < 1:
            raise ValueError(f"{name} must be a positive integer; got {o[name]!r}")
    if isinstance(o["seed"], bool) or not isinstance(o["seed"], int) or o["seed"] < 0:
        raise ValueError(f"seed must be a non-negative integer; got {o['seed']!r}")
    if o["train_subset"] is not None and (not isinstance(o["train_subset"], int) or o["train_subset"] < 1):
        raise ValueError(f"train_subset must be a positive integer; got {o['train_subset']!r}")
    dtype = _checks.check_dtype(o["dtype"]).name
    sizes = _checks.check_layer_sizes([n_features, *hidden, n_classes])
    return TrainConfig(
        recipe=recipe, layer_sizes=sizes, activation=o["activation"], loss=o["loss"],
        lr=float(o["lr"]), momentum=float(o["momentum"]), batch_size=o["batch_size"],
        epochs=o["epochs"], schedule=o["schedule"], standardize=bool(o["standardize"]), seed=o["seed"], dtype=dtype,
        backend=o["backend"], backward=o["backward"], train_subset=o["train_subset"],
        data_dir=o["data_dir"],
    )


def _check_writable(path: str | os.PathLike | None, what: str) -> None:
    if path is None:
        return
    directory = Path(path).parent
    if not directory.is_dir():
        raise FileNotFoundError(f"{what} directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} directory {directory} is not writable")


def fold_input_scaling(params: list[np.ndarray], shift: float, scale: float) -> list[np.ndarray]:
    """The same network for raw inputs x, given ``params`` trained on ``(x - shift) / scale``.

    ``((x - m) / s) W[1:] + W[0] = x (W[1:] / s) + (W[0] - (m / s) sum_i W[1:][i])``: only the
    first layer (n_0 + 1, n_1) changes; computed in float64, returned in the params' dtype.
    """
    W = params[0].astype(np.float64)
    first = np.empty_like(W)
    first[1:] = W[1:] / scale
    first[0] = W[0] - (shift / scale) * W[1:].sum(axis=0)
    return [first.astype(params[0].dtype), *params[1:]]


def _input_scaling(x: np.ndarray, standardize: bool) -> tuple[float, float]:
    """(shift, scale): one mean and one standard deviation over all of ``x``, or (0, 1)."""
    if not standardize:
        return 0.0, 1.0
    total = total_sq = 0.0
    for start in range(0, x.shape[0], 4096):  # float64 sums, chunk by chunk (no 8-byte copy of x)
        chunk = x[start : start + 4096].astype(np.float64)
        total += float(chunk.sum())
        total_sq += float(np.einsum("ij,ij->", chunk, chunk))
    mean = total / x.size
    std = math.sqrt(max(total_sq / x.size - mean * mean, 0.0))
    return mean, (std if std > 0 else 1.0)


def _resume_state(path, config: TrainConfig, epochs_given: bool, shift: float, scale: float):
    """(params, velocity, epochs_done, history, config) from a checkpoint, refusing a mismatch."""
    params, meta = load_checkpoint(path)
    saved = meta.get("config")
    if not isinstance(saved, dict) or "epoch" not in meta or "history" not in meta:
        raise ValueError(f"{path}: not a training checkpoint (no config, epoch or history)")
    try:
        saved_config = TrainConfig(**saved)
    except TypeError as e:
        raise ValueError(f"{path}: training config does not match this version ({e})") from None
    mismatched = [
        f"{f.name}: checkpoint {getattr(saved_config, f.name)!r}, requested {getattr(config, f.name)!r}"
        for f in dataclasses.fields(TrainConfig)
        if f.name != "epochs" and getattr(saved_config, f.name) != getattr(config, f.name)
    ]
    if (meta.get("input_shift"), meta.get("input_scale")) != (shift, scale):
        mismatched.append(
            f"input scaling: checkpoint ({meta.get('input_shift')}, {meta.get('input_scale')}), "
            f"this data ({shift}, {scale}) (different training data?)"
        )
    if mismatched:
        raise ValueError(f"{path}: checkpoint does not match this run: " + "; ".join(mismatched))
    if not epochs_given:
        config = dataclasses.replace(config, epochs=saved_config.epochs)
    if config.standardize:
        params = meta.get("train_params")
        if not isinstance(params, list) or [W.shape for W in params] != [
            (a + 1, b) for a, b in zip(config.layer_sizes[:-1], config.layer_sizes[1:])
        ]:
            raise ValueError(f"{path}: the weights on standardised inputs (train_params) are missing")
    velocity = meta.get("velocity")
    if config.momentum > 0 and (
        not isinstance(velocity, list) or [v.shape for v in velocity] != [W.shape for W in params]
    ):
        raise ValueError(f"{path}: momentum buffers missing or of the wrong shapes")
    return params, velocity, int(meta["epoch"]), list(meta["history"]), config


def _sgd_epoch(params, velocity, step_fn, x_all, y_all, config, epoch, pbar) -> float:
    """One pass over ``x_all`` (n, n_0), ``y_all`` (n, n_L) in the epoch's order, updating
    ``params`` and ``velocity`` in place; returns the summed loss (mean loss times batch size)."""
    n, B = x_all.shape[0], config.batch_size
    dt = x_all.dtype
    steps = -(-n // B)
    total_steps = steps * config.epochs
    perm = np.random.default_rng([config.seed, epoch]).permutation(n)
    x_buf, y_buf = np.take(x_all, perm, axis=0), np.take(y_all, perm, axis=0)
    tmp = [np.empty_like(W) for W in params]
    mu = dt.type(config.momentum)
    fused = _fused_step(config)
    total, running, every = 0.0, 0.0, max(1, steps // 100)
    for s in range(steps):
        x, y = x_buf[s * B : (s + 1) * B], y_buf[s * B : (s + 1) * B]
        rate = dt.type(learning_rate(config, epoch * steps + s, total_steps))
        if fused is not None:
            J, grads = fused(params, x, y, rate), []
        else:
            J, grads = step_fn(params, x, y)
        if not math.isfinite(J):
            raise DivergenceError(
                f"training diverged in epoch {epoch + 1}, step {s + 1}: the loss is {J}; "
                f"try a smaller learning rate than {config.lr}"
            )
        for l, (W, g) in enumerate(zip(params, grads)):
            if velocity is not None:
                velocity[l] *= mu
                velocity[l] += g
                g = velocity[l]
            np.multiply(g, rate, out=tmp[l])
            W -= tmp[l]
        total += J * x.shape[0]
        running = J if s == 0 else 0.98 * running + 0.02 * J
        if (s + 1) % every == 0 or s + 1 == steps:
            pbar.set_postfix_str(f"loss {running:.4f}", refresh=False)
            pbar.update((s + 1) - pbar.n)
    return total


def train(
    *,
    recipe: str = "default",
    hidden_sizes: Sequence[int] | None = None,
    activation: str = "sigmoid",
    loss: str = "binary_cross_entropy",
    lr: float | None = None,
    momentum: float | None = None,
    batch_size: int | None = None,
    epochs: int | None = None,
    schedule: str | None = None,
    standardize: bool | None = None,
    seed: int = 0,
    dtype: Any = None,
    backend: str = "manual",
    backward: str = "manual",
    data: Dataset | None = None,
    data_dir: str | os.PathLike | None = None,
    train_subset: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    threads: int | None = 1,
) -> TrainResult:
    """Train a ``[n_features, *hidden_sizes, n_classes]`` network and return it with its history.

    ``recipe`` supplies lr, momentum, batch_size, epochs, dtype, schedule and standardize; an
    argument that is not None overrides it. ``data`` (a :class:`Dataset`) is used as given,
    otherwise ``load_mnist(data_dir)``; ``train_subset`` keeps the first n training examples.

    With ``standardize`` the network trains on ``(x - mean) / std``; the returned and
    checkpointed ``params`` have that folded into the first layer (:func:`fold_input_scaling`),
    so they take the raw [0, 1] inputs like any other network. ``checkpoint`` is written
    atomically after every epoch; ``resume`` continues from one (its config must match; only
    ``epochs`` may change). ``plot`` writes the training curve as PNG (needs matplotlib).
    ``log`` receives one line per epoch (default: print). ``threads`` limits NumPy's BLAS
    (:func:`blas_threads`; None leaves it alone). Raises :class:`DivergenceError` when the
    loss stops being finite.
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None; got {threads!r}")
    with blas_threads(threads):
        return _train(
            recipe=recipe, hidden_sizes=hidden_sizes, activation=activation, loss=loss, lr=lr,
            momentum=momentum, batch_size=batch_size, epochs=epochs, schedule=schedule,
            standardize=standardize, seed=seed, dtype=dtype, backend=backend, backward=backward,
            data=data, data_dir=data_dir, train_subset=train_subset, checkpoint=checkpoint,
            resume=resume, plot=plot, progress=progress, log=log,
        )


def _train(*, recipe, hidden_sizes, activation, loss, lr, momentum, batch_size, epochs, schedule,
           standardize, seed, dtype, backend, backward, data, data_dir, train_subset, checkpoint,
           resume, plot, progress, log) -> TrainResult:
    t_start = time.perf_counter()
    say = print if log is None else log
    # Cheap checks first: a bad output path or a missing extra should not cost a data load.
    _check_writable(checkpoint, "checkpoint")
    _check_writable(plot, "plot")
    if plot is not None:
        _require_matplotlib()
    if resume is not None and not Path(resume).exists():
        raise FileNotFoundError(f"checkpoint {resume} does not exist")
    if backend == "jax" and backward == "manual":
        _jax_loss_and_grad()
    if data is None:
        data = load_mnist(data_dir)
    overrides = dict(
        hidden_sizes=hidden_sizes, activation=activation, loss=loss, lr=lr, momentum=momentum,
        batch_size=batch_size, epochs=epochs, schedule=schedule, standardize=standardize,
        seed=seed, dtype=dtype, backend=backend, backward=backward, train_subset=train_subset,
        data_dir=None if data_dir is None else str(data_dir),
    )
    config = _resolve(recipe, overrides, data.x_train.shape[1], data.n_classes)
    step_fn = _gradient_fn(config)
    dt = np.dtype(config.dtype)

    # Data, validated once so that the loop can skip per-step checks.
    n = data.x_train.shape[0] if config.train_subset is None else min(config.train_subset, data.x_train.shape[0])
    x_raw = np.asarray(data.x_train[:n], dtype=dt)
    if x_raw.ndim != 2 or not np.isfinite(x_raw).all():
        raise ValueError("training inputs must be a finite 2-D array")
    y_train = network.one_hot(_checks.check_labels(data.y_train[:n], data.n_classes, batch=n), data.n_classes, dtype=dt)
    x_test = np.asarray(data.x_test, dtype=dt)
    _checks.check_labels(data.y_test, data.n_classes, batch=x_test.shape[0])
    shift, scale = _input_scaling(x_raw, config.standardize)
    x_train = (x_raw - dt.type(shift)) / dt.type(scale) if config.standardize else x_raw

    if resume is not None:
        params, velocity, done, history, config = _resume_state(resume, config, epochs is not None, shift, scale)
    else:
        params = network.init_params(config.layer_sizes, seed=config.seed, dtype=dt)
        velocity, done, history = None, 0, []
    if config.momentum > 0 and velocity is None:
        velocity = [np.zeros_like(W) for W in params]
    model = fold_input_scaling(params, shift, scale) if config.standardize else params

    bar = _progress(progress)
    steps = -(-n // config.batch_size)
    say(
        f"training {config.layer_sizes} {config.activation}/{config.loss}, recipe {config.recipe}: "
        f"lr {config.lr} ({config.schedule}), momentum {config.momentum}, batch {config.batch_size}, "
        f"{config.epochs} epochs, {config.dtype}, standardize {config.standardize}, "
        f"backend {config.backend}, backward {config.backward}, {n} training examples"
    )
    for epoch in range(done, config.epochs):
        t_epoch = time.perf_counter()
        with bar(steps, f"epoch {epoch + 1}/{config.epochs}") as pbar, np.errstate(over="ignore", invalid="ignore"):
            total = _sgd_epoch(params, velocity, step_fn, x_train, y_train, config, epoch, pbar)
        model = fold_input_scaling(params, shift, scale) if config.standardize else params
        acc = network.accuracy(model, x_test, data.y_test, activation=config.activation, loss=config.loss)
        history.append({"epoch": epoch + 1, "train_loss": total / n, "test_accuracy": acc,
                        "seconds": time.perf_counter() - t_epoch})
        say(f"epoch {epoch + 1}/{config.epochs}: train loss {total / n:.4f}, "
            f"test accuracy {acc:.4f} ({history[-1]['seconds']:.1f} s)")
        if checkpoint is not None:
            extra: dict[str, Any] = {"velocity": velocity} if velocity is not None else {}
            if config.standardize:
                extra["train_params"] = params
            save_checkpoint(
                checkpoint, model, config=dataclasses.asdict(config), epoch=epoch + 1,
                history=history, activation=config.activation, loss=config.loss,
                input_shift=shift, input_scale=scale, **extra,
            )
    if plot is not None:
        plot_history(history, plot, title=f"{config.layer_sizes} {config.activation}, recipe {config.recipe}")
    acc = history[-1]["test_accuracy"] if history else network.accuracy(
        model, x_test, data.y_test, activation=config.activation, loss=config.loss)
    return TrainResult(model, config, history, acc, time.perf_counter() - t_start)


def _progress(enabled: bool):
    """A factory ``(total, desc) -> context manager`` with ``set_postfix_str``, ``update`` and ``n``."""
    if enabled:
        from tqdm import tqdm

        return lambda total, desc: tqdm(total=total, desc=desc, unit="step", leave=False, mininterval=0.5)

    class _Silent:
        n = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def set_postfix_str(self, *a, **k):
            pass

        def update(self, k):
            self.n += k

    return lambda total, desc: _Silent()


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("the training-curve plot needs matplotlib: pip install 'manual-backprop[plot]'") from None


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of examples of class i predicted as class j; (n_classes, n_classes) int64."""
    C = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(C, (np.asarray(labels), np.asarray(predictions)), 1)
    return C


def plot_history(history: list[dict[str, float]], path: str | os.PathLike, *, title: str = "") -> None:
    """Training loss and test accuracy per epoch, side by side, as a PNG at ``path`` (matplotlib)."""
    _require_matplotlib()
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(9, 3.5))
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="mean training loss", yscale="log", title="training loss")
    ax_acc.plot(epochs, [100 * h["test_accuracy"] for h in history], marker="o", color="C1")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
