"""Mini-batch SGD with momentum for the fully connected network or the CNN, on MNIST-layout data.

    >>> from manual_backprop.app.training import RECIPES, train
    >>> result = train(RECIPES["default"])                  # >= 98 % test accuracy
    >>> result.test_accuracy, result.params                 # float, [(785, 500), (501, 500), (501, 10)]
    >>> import autodiff_check                               # the same loop with JAX's gradient
    >>> train(RECIPES["default"].replace(backend="jax"), backend=autodiff_check)
    >>> train(RECIPES["cnn"])                               # manual_backprop.model.mnist_cnn

Models: ``"mlp"``, the post's network (``network``/``fast``), and ``"cnn"``,
``manual_backprop.model.mnist_cnn`` (layers with hand-derived VJPs); its params are a list of
tuples, one per layer, and the update below runs over their arrays in order. With a backend
passed in, the CNN comes from ``backend.sequential.mnist_cnn`` (``autodiff_check.sequential``,
the JAX twin), never imported here.

The loop receives its update, as in JAX's ``mnist_classifier_fromscratch.py``: ``backend`` is
a module with the shared API (``loss_and_grad`` and, optionally, ``sgd_step``):
``manual_backprop.fast`` by default, ``manual_backprop.as_published`` for the post's wrong
gradient, ``autodiff_check`` for JAX's (passed in by the caller: this module never imports
JAX). Per mini-batch of B examples, with ``lr_t`` the schedule's rate at global step t:

    J, g = loss_and_grad(W, x, y)             g[i] has the shape of W[i] (the CNN: its arrays)
    v[i] = momentum * v[i] + g[i]
    W[i] = W[i] - lr_t * v[i]

With momentum 0 (the post's plain SGD) and a backend that has ``sgd_step``, the step is
``sgd_step`` (the same numbers up to rounding, without storing g).

With ``standardize`` the loop sees ``(x - mean) / std`` (one mean and standard deviation over
all training pixels), and :func:`fold_input_scaling` folds that into the first layer, so
returned and checkpointed ``params`` take raw [0, 1] pixels. MLP only: the CNN trains on the
raw [0, 1] pixels (He initialisation and ReLU need no more; folding into a convolution is
exact only without padding, and the first layer is a reshape), and ``standardize`` with the
CNN is refused rather than silently ignored.

Augmentation (CNN only): with ``shift`` = s, every training image of a batch is moved by a
random (down, right) offset in [-s, s]^2, zeros shifted in (:func:`translate`), drawn from
``default_rng([seed, e, 1])`` in epoch e: resumed runs stay bit-identical.

Validation: ``validation=N`` holds out the last N training examples (before ``train_subset``
takes the first of the rest), reports their accuracy after every epoch instead of the test
accuracy, and scores the test set once, at the end: recipes are chosen on held-out training
data, never on the test set (docs/training.md). A class missing from what is left to train on
is refused (class-sorted data would hold out whole classes); a ``train_subset`` may miss
classes (a debug run on a few examples).

Determinism: the initial weights come from ``init_params(seed=seed)`` and epoch e visits the
examples in the order ``default_rng([seed, e]).permutation(n)``; the same config (thread count
included) gives bit-identical weights, and a run resumed from an end-of-epoch checkpoint is
bit-identical to one never interrupted.

Divergence: the run stops with :class:`DivergenceError` when a loss is NaN or inf, or when the
running mean of the training loss (each step weighted 0.02, the first step's loss as its
start, kept across epochs and, in the checkpoint, across a resume) exceeds
``DIVERGENCE_FACTOR`` = 3 times the first step's loss. The measurements behind the 3 (``python
-m benchmarks.divergence``, docs/training.md): the default recipe's running loss peaks at 1.02
times its start, learning rates of 1 and more with momentum 0.9 reach 5 to 22,000 times it
within the first 3,000 examples.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from .. import _checks, _threads, as_published, fast, network
from .. import model as layered
from ..activations import get_activation
from ..losses import get_loss
from . import paths
from .checkpoint import check_metadata, load_checkpoint, save_checkpoint
from .data import Dataset, check_labels, data_files, load_mnist, memory_available

SCHEDULES = ("constant", "cosine", "linear")
BACKENDS = ("manual", "as_published", "jax")
MODELS = ("mlp", "cnn")
#: what the CNN is (manual_backprop.model.mnist_cnn): the Config fields that must say so
CNN_FIXED = {"activation": "relu", "loss": "softmax_cross_entropy", "standardize": False}
#: examples per forward pass when the CNN is scored (bounds the im2col buffers to ~60 MB)
CNN_EVAL_BATCH = 1000
#: bytes of the widest layer's activations per block of rows when an MLP is scored (mlp_predict)
MLP_EVAL_BYTES = 64 << 20
DIVERGENCE_FACTOR = 3.0
#: more BLAS threads than any machine has cores (OpenBLAS takes a C int)
MAX_THREADS = 4096


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _finite(v: float) -> bool:
    """A number (from a JSON file too) that float64 holds as a finite number (an int past its range does not)."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")


@dataclass(frozen=True)
class Config:
    """Everything that determines a run's weights; stored in its checkpoints. Every field is
    checked here, once, whoever builds the config (the command line or a caller)."""

    hidden_sizes: tuple[int, ...] = (500, 500)
    activation: str = "sigmoid"
    loss: str = "binary_cross_entropy"
    lr: float = 0.1
    momentum: float = 0.9
    batch_size: int = 64
    epochs: int = 12
    schedule: str = "cosine"
    standardize: bool = True
    dtype: str = "float32"
    seed: int = 0
    backend: str = "manual"
    threads: int | None = 1
    train_subset: int | None = None
    model: str = "mlp"
    validation: int = 0
    channels: tuple[int, ...] | None = None
    shift: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.hidden_sizes, (tuple, list, np.ndarray)):
            raise ValueError(f"hidden_sizes must be a sequence of positive integers; got {self.hidden_sizes!r}")
        hidden = tuple(_checks.check_layer_sizes([1, *self.hidden_sizes, 1])[1:-1])
        object.__setattr__(self, "hidden_sizes", hidden)
        get_activation(self.activation)
        get_loss(self.loss)
        object.__setattr__(self, "dtype", _checks.check_dtype(self.dtype).name)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("backend", self.backend, BACKENDS)
        lr = float(self.lr) if _is_real(self.lr) and _finite(self.lr) else math.nan   # an int past float64 too
        if not lr > 0:
            raise ValueError(f"lr must be a positive finite number; got {self.lr!r}")
        with np.errstate(over="ignore"):
            rate = np.dtype(self.dtype).type(lr)
        if not 0 < rate < math.inf:
            raise ValueError(f"lr = {self.lr!r} is {rate} in {self.dtype}; it must be a positive finite "
                             f"{self.dtype} number")
        if rate < np.finfo(self.dtype).tiny:   # lr * g is below half an ulp of any weight of ordinary size
            raise ValueError(f"lr = {self.lr!r} is subnormal in {self.dtype} (below {np.finfo(self.dtype).tiny:.3g}): "
                             "an update lr * g would move no weight; the run would train nothing")
        if not (_is_real(self.momentum) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must lie in [0, 1); got {self.momentum!r}")
        for name in ("batch_size", "epochs") + (("threads",) if self.threads is not None else ()) + (
                ("train_subset",) if self.train_subset is not None else ()):
            if not (_is_int(getattr(self, name)) and getattr(self, name) >= 1):
                also = " or None, NumPy's default (--threads 0 on the command line)" if name == "threads" else ""
                raise ValueError(f"{name} must be a positive integer{also}; got {getattr(self, name)!r}")
        if self.threads is not None and self.threads > MAX_THREADS:
            raise ValueError(f"threads must be at most {MAX_THREADS}; got {self.threads!r}")
        _checks.check_seed(self.seed)
        if not isinstance(self.standardize, bool):
            raise ValueError(f"standardize must be True or False; got {self.standardize!r}")
        _choice("model", self.model, MODELS)
        if not (_is_int(self.validation) and self.validation >= 0):
            raise ValueError(f"validation must be a non-negative integer (examples held out); got {self.validation!r}")
        if self.channels is not None:
            if self.model != "cnn":
                raise ValueError(f"channels are the CNN's convolution widths; model {self.model!r} takes none")
            channels = tuple(self.channels) if isinstance(self.channels, (tuple, list)) else self.channels
            if not (isinstance(channels, tuple) and len(channels) == 2 and all(_is_int(c) and c >= 1 for c in channels)):
                raise ValueError(f"channels must be two positive integers (the two convolutions' outputs); got {self.channels!r}")
            object.__setattr__(self, "channels", tuple(int(c) for c in channels))
        if not (_is_int(self.shift) and 0 <= self.shift < 14):
            raise ValueError(f"shift must be an integer in [0, 14) (pixels of random translation); got {self.shift!r}")
        if self.shift and self.model != "cnn":
            raise ValueError(f"shift (random translation of the 28 x 28 images) is the CNN's; model {self.model!r} takes none")
        if self.model == "cnn":
            wrong = {k: getattr(self, k) for k, v in CNN_FIXED.items() if getattr(self, k) != v}
            if wrong:
                raise ValueError(
                    "model 'cnn' is relu with softmax_cross_entropy on raw [0, 1] pixels (no standardize: it is "
                    "folded into the MLP's first dense layer only); got " +
                    ", ".join(f"{k} {v!r}" for k, v in wrong.items()) + " (use --recipe cnn)")
            if self.backend == "as_published":
                raise ValueError("backend 'as_published' is the post's wrong backward for the MLP; model 'cnn' has none")
        if self.backend == "as_published" and list(hidden) != list(hidden)[::-1]:
            raise ValueError(f"backend 'as_published' needs hidden sizes that read the same backwards "
                             f"(the post's backward pairs layer l with L - l); got {list(hidden)}")
        # Python numbers from here on: NumPy scalars, accepted above, are not JSON (a checkpoint's
        # metadata) and failed the first save, after an epoch's work (a review, 2026-12-02)
        for name in ("lr", "momentum"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("batch_size", "epochs", "seed", "threads", "train_subset", "validation", "shift"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, int(getattr(self, name)))

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` (checked like any config)."""
        return dataclasses.replace(self, **changes)


RECIPES: dict[str, Config] = {
    # The post's network on 2 CPU cores: >= 98 % test accuracy in well under a minute.
    "default": Config(),
    # The post's own: one example per update, learning rate 0.001, 2 epochs, float64.
    "post": Config(lr=0.001, momentum=0.0, batch_size=1, epochs=2, schedule="constant",
                   standardize=False, dtype="float64"),
    # mnist_cnn, hand-derived VJPs: >= 99.2 % test accuracy in under 10 minutes on 2 cores;
    # chosen on a validation split (the last 5,000 training images), docs/training.md.
    "cnn": Config(model="cnn", channels=(8, 16), hidden_sizes=(128,), activation="relu",
                  loss="softmax_cross_entropy", lr=0.05, momentum=0.9, batch_size=64, epochs=10,
                  schedule="cosine", standardize=False, shift=2),
}


class DivergenceError(RuntimeError):
    """The training loss became NaN or inf, or grew far above its first value."""


@dataclass
class TrainResult:
    """A finished run: ``params`` as for ``network`` (MLP) or a list of tuples (CNN), ``history``
    one dict per epoch."""

    params: list
    config: Config
    history: list[dict[str, float]]
    test_accuracy: float
    seconds: float


def learning_rate(config: Config, step: int, total_steps: int) -> float:
    """The learning rate of global step ``step`` (0-based) out of ``total_steps``."""
    frac = step / total_steps
    return {"constant": config.lr,
            "cosine": config.lr * 0.5 * (1.0 + math.cos(math.pi * frac)),
            "linear": config.lr * (1.0 - frac)}[config.schedule]


def fold_input_scaling(params: list[np.ndarray], shift: float, scale: float) -> list[np.ndarray]:
    """The same network for raw inputs x, given ``params`` trained on ``(x - shift) / scale``.

    ``((x - m) / s) W[1:] + W[0] = x (W[1:] / s) + (W[0] - (m / s) sum_i W[1:][i])``: only W_1
    changes; computed in float64, returned in the params' dtype.
    """
    W = params[0].astype(np.float64)
    first = np.empty_like(W)
    first[1:] = W[1:] / scale
    first[0] = W[0] - (shift / scale) * W[1:].sum(axis=0)
    return [first.astype(params[0].dtype), *params[1:]]


def input_scaling(x: np.ndarray, standardize: bool) -> tuple[float, float]:
    """(shift, scale): one mean and one standard deviation over all of ``x``, or (0, 1)."""
    if not standardize:
        return 0.0, 1.0
    total = total_sq = 0.0
    for start in range(0, x.shape[0], 4096):  # float64 sums chunk by chunk: no 8-byte copy of x
        chunk = x[start : start + 4096].astype(np.float64)
        total += float(chunk.sum())
        total_sq += float(np.einsum("ij,ij->", chunk, chunk))
    mean = total / x.size
    std = math.sqrt(max(total_sq / x.size - mean * mean, 0.0))
    return mean, (std if std > 0 else 1.0)


def cnn_network(backend: ModuleType | None, config: Config, n_classes: int):
    """The CNN whose gradient ``backend`` computes: ``manual_backprop.model.mnist_cnn`` for the
    NumPy backend, ``backend.sequential.mnist_cnn`` for one passed in (autodiff_check's twin)."""
    source = layered if backend in (None, fast) else getattr(backend, "sequential", None)
    if not callable(getattr(source, "mnist_cnn", None)):
        raise TypeError(f"model 'cnn' needs a backend with sequential.mnist_cnn (autodiff_check has it); got {backend!r}")
    return source.mnist_cnn(hidden_sizes=config.hidden_sizes, n_classes=n_classes, **_cnn_options(config))


def _cnn_options(config: Config) -> dict[str, Any]:
    return {} if config.channels is None else {"channels": config.channels}


def leaves(params: list[tuple]) -> list[np.ndarray]:
    """A layered network's arrays in order: layer by layer, each tuple's arrays in turn."""
    return [a for p in params for a in p]


def make_update(backend: ModuleType, config: Config, *, n_classes: int = 10) -> Callable[[list, list | None, Any, Any, Any], float]:
    """``update(params, velocity, x, y, lr) -> J``: one step of the module docstring's update,
    in place, with ``backend``'s gradient (J before the step). For the CNN, ``velocity`` is one
    array per array of ``leaves(params)``."""
    if config.model == "cnn":
        return _leafwise_step(cnn_network(backend, config, n_classes).loss_and_grad, config.momentum)
    kw = {"activation": config.activation, "loss": config.loss}
    if config.momentum == 0 and hasattr(backend, "sgd_step"):
        extra = {"workspace": fast.Workspace()} if backend is fast else {}

        def sgd(params, velocity, x, y, lr):
            J, new = backend.sgd_step(params, x, y, lr, **kw, **extra)
            if new is not params:                    # a backend that returns new arrays
                for W, V in zip(params, new):
                    W[...] = V
            return J

        return sgd
    extra = {"workspace": fast.Workspace(), "out": None} if backend is fast else {}

    def gradient_step(params, velocity, x, y, lr):
        if "out" in extra and extra["out"] is None:
            extra["out"] = fast.empty_like(params)
        J, grads = backend.loss_and_grad(params, x, y, **kw, **extra)
        for i, (W, g) in enumerate(zip(params, grads)):
            if velocity is not None:           # v = momentum v + g, and the step follows v
                velocity[i] *= config.momentum
                velocity[i] += g
                g = velocity[i]
            W -= lr * g
        return J

    return gradient_step


def _leafwise_step(loss_and_grad, momentum: float):
    """The MLP's gradient step over a layered network's arrays (``leaves``)."""

    def gradient_step(params, velocity, x, y, lr):
        J, grads = loss_and_grad(params, x, y)
        for i, (W, g) in enumerate(zip(leaves(params), leaves(grads))):
            if velocity is not None:
                velocity[i] *= momentum
                velocity[i] += g
                g = velocity[i]
            W -= lr * g
        return J

    return gradient_step


def cnn_predict(net, params: list[tuple], x: np.ndarray) -> np.ndarray:
    """The CNN's predicted classes, CNN_EVAL_BATCH examples at a time (training and evaluate
    score alike). Logits that overflow are model.Sequential's NonFiniteError."""
    return np.concatenate([net.predict(params, x[i:i + CNN_EVAL_BATCH]) for i in range(0, x.shape[0], CNN_EVAL_BATCH)])


def mlp_predict(params: list[np.ndarray], x: np.ndarray, activation: str, loss: str) -> np.ndarray:
    """The MLP's predicted classes (``network.predict``) in blocks of rows whose widest layer's
    activations hold at most MLP_EVAL_BYTES: one block for MNIST's test set on the post's
    network; evaluate of a hand-saved [1, 50000, 2] network on 100,000 examples asked for 18.6
    GiB at once (a review, 2026-12-05). Training and evaluate score alike."""
    rows = _mlp_rows(max(W.shape[1] for W in params), x.dtype.itemsize)
    return np.concatenate([network.predict(params, x[i:i + rows], activation=activation, loss=loss)
                           for i in range(0, max(x.shape[0], 1), rows)])


def _mlp_rows(widest: int, itemsize: int) -> int:
    """Rows of :func:`mlp_predict`'s blocks: a widest layer's activations within MLP_EVAL_BYTES."""
    return max(1, MLP_EVAL_BYTES // (widest * itemsize))


def _memory_needed(config: Config, n_features: int, n_classes: int, n_train: int, n_test: int) -> int:
    """Bytes a run allocates at its peak beyond the data it is given: three copies of the
    training inputs in the run's dtype (as given, standardised, the epoch's order), two of the
    one-hot targets, the test and validation inputs, six arrays the size of all weights
    (params, velocity, gradient, the folded copy and the one before it, a checkpoint's
    buffer), and the largest of a step's activations, a scoring's and, with ``standardize``,
    the fold's: W_1 in float64 three times (a copy, the result, a quotient) and once in the
    dtype (:func:`fold_input_scaling`). A step holds four numbers per unit of the dense
    layers per example and, for the CNN's convolutions with channels (c1, c2), three times what
    one pass holds per example: the im2col buffers 25 (576 + 64 c1), the convolutions' and
    ReLUs' outputs 2 (576 c1 + 64 c2) and the pools' 144 c1 + 16 c2, 14,400 + 2,896 c1 + 144 c2
    in all. Scoring holds two numbers per unit (z and a) of every example scored at once: the
    MLP a block of :func:`mlp_predict`'s rows, the CNN one pass of CNN_EVAL_BATCH of them. Measured
    (tracemalloc): a CNN step of channels (1024, 8) at batch 16 peaks at 1.02 times two passes'
    count, of (8, 16) at batch 64 at 0.73 times it; the MLP [784, 4000, 10] scoring 10,000 rows
    at 1.00 times its count; a fold of float32 weights at 5.9 times W_1 (6 counted)."""
    sizes = [n_features, *config.hidden_sizes, n_classes]
    n_score, itemsize = max(n_test, config.validation), np.dtype(config.dtype).itemsize
    if config.model == "cnn":
        spec = layered.mnist_cnn(hidden_sizes=config.hidden_sizes, n_classes=n_classes, **_cnn_options(config))
        n_params = sum(math.prod(shape) for layer in spec.layers for shape in layer.shapes)
        c1, c2 = config.channels or (8, 16)   # mnist_cnn's default
        one_pass = 14_400 + 2_896 * c1 + 144 * c2 + 2 * sum(sizes[1:])
        per_example, scoring = 3 * one_pass + 4 * sum(sizes), min(n_score, CNN_EVAL_BATCH) * one_pass
    else:
        n_params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
        rows = min(n_score, _mlp_rows(max(sizes[1:]), itemsize))
        per_example, scoring = 4 * sum(sizes), rows * 2 * sum(sizes[1:])
    batch = min(config.batch_size, n_train)   # the last batch of an epoch is what is left
    data = 3 * n_train * n_features + 2 * n_train * n_classes + (n_test + config.validation) * n_features
    fold = (3 * 8 // itemsize + 1) * (n_features + 1) * sizes[1] if config.standardize else 0
    return itemsize * (data + 6 * n_params + max(batch * per_example, scoring, fold))


def _check_memory(config: Config, n_features: int, n_classes: int, n_train: int, n_test: int) -> None:
    """Refuse, before allocating, a run this machine cannot hold (MemoryError with both sizes)."""
    need, have = _memory_needed(config, n_features, n_classes, n_train, n_test), memory_available()
    if need > have:
        raise MemoryError(f"this configuration needs about {need / 2**30:.1f} GiB and {have / 2**30:.1f} GiB "
                          f"is available; use smaller hidden sizes, batch or --train-subset")


def config_of(path, meta: dict) -> Config:
    """The training config a checkpoint's metadata holds, checked as any Config is (a
    ValueError naming the file)."""
    check_metadata(path, meta, {"config": dict})
    saved = meta["config"]
    try:
        return Config(**{**saved, "hidden_sizes": tuple(saved.get("hidden_sizes", ()))})  # channels: a list
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: training config does not match this version ({e})") from None


def check_fold(path, stored: list[np.ndarray], train_params: list[np.ndarray], shift: float, scale: float) -> None:
    """The model a checkpoint holds (what evaluate scores) must be the one its training weights
    give with the input scaling folded in, bit for bit (a ValueError naming the file)."""
    if [(W.shape, W.dtype) for W in stored] != [(W.shape, W.dtype) for W in train_params]:
        raise ValueError(f"{path}: params of {[(W.shape, W.dtype.name) for W in stored]} beside train_params of "
                         f"{[(W.shape, W.dtype.name) for W in train_params]}")
    if not (_finite(shift) and _finite(scale) and scale > 0):
        raise ValueError(f"{path}: input scaling ({shift}, {scale}) must be finite with a scale > 0")
    with np.errstate(over="ignore", invalid="ignore"):   # an edited scale or weight overflows the
        folded = fold_input_scaling(train_params, shift, scale)   # fold: refused below, not warned
    for i, (W, F) in enumerate(zip(stored, folded)):
        if W.tobytes() != F.tobytes():
            raise ValueError(f"{path}: params[{i}] is not train_params[{i}] with the input scaling folded in "
                             "(a corrupt or edited checkpoint)")


def check_names(path, meta: dict) -> None:
    """A training checkpoint names its model, activation and loss twice, in its manifest or
    metadata and in its config: where both do, they must agree (else an edited one is scored or
    resumed as the other)."""
    config = meta.get("config")
    if not isinstance(config, dict):
        return
    if "model" in config and config["model"] != meta.get("model", "mlp"):
        raise ValueError(f"{path}: its manifest says model {meta.get('model', 'mlp')!r} and its training config "
                         f"{config['model']!r} (an edited checkpoint)")
    for key in ("activation", "loss"):
        if key in meta and key in config and config[key] != meta[key]:
            raise ValueError(f"{path}: its metadata says {key} {meta[key]!r} and its training config "
                             f"{config[key]!r} (an edited checkpoint)")


def _resume(path, config: Config, keep_epochs: bool, shift: float, scale: float, digest: str | None, net=None,
            sizes: list[int] | None = None, blas_threads: int | None = None):
    """(params, velocity, history, config, the divergence rule's state or None) from a
    checkpoint; a mismatch is refused: the config, the data, and every array's shape (``sizes``
    for the MLP, ``net`` for the CNN), dtype and finiteness, naming the file and the array;
    with ``threads`` None, also ``blas_threads``, the count NumPy's BLAS runs here."""
    params, meta = load_checkpoint(path)
    if not {"config", "epoch", "history"} <= meta.keys():
        raise ValueError(f"{path}: not a training checkpoint (no config, epoch or history)")
    check_metadata(path, meta, {"config": dict, "epoch": int, "history": list[dict[str, float]]})
    if not 0 <= meta["epoch"] == len(meta["history"]):
        raise ValueError(f"{path}: not a valid training checkpoint: epoch {meta['epoch']} with "
                         f"{len(meta['history'])} epochs of history")
    check_names(path, meta)
    for key, used in (("velocity", config.momentum > 0), ("train_params", config.standardize)):
        if used and key in meta:   # an edited JSON list where the arrays were
            check_metadata(path, meta, {key: list[np.ndarray]})
    saved_config = config_of(path, meta)
    mismatched = [
        f"{f.name}: checkpoint {getattr(saved_config, f.name)!r}, requested {getattr(config, f.name)!r}"
        for f in dataclasses.fields(Config)
        if f.name != "epochs" and getattr(saved_config, f.name) != getattr(config, f.name)
    ]
    if digest is not None and meta.get("data_digest") not in (None, digest):
        mismatched.append(f"data: checkpoint trained on data with digest {meta.get('data_digest')}, "
                          f"these files have {digest}")
    if (meta.get("input_shift"), meta.get("input_scale")) != (shift, scale):
        mismatched.append(f"input scaling: checkpoint ({meta.get('input_shift')}, {meta.get('input_scale')}), "
                          f"this data ({shift}, {scale}) (different training data?)")
    if config.threads is None and meta.get("blas_threads", blas_threads) != blas_threads:
        mismatched.append(f"threads: checkpoint ran NumPy's default, {meta['blas_threads']} BLAS threads; here it is "
                          f"{blas_threads} (the gradients' bits depend on it: run with NumPy's BLAS on "
                          f"{meta['blas_threads']}, e.g. OPENBLAS_NUM_THREADS={meta['blas_threads']})")
    if mismatched:
        raise ValueError(f"{path}: checkpoint does not match this run: " + "; ".join(mismatched))
    if meta.get("model", "mlp") != config.model:   # the arrays' layout: an edited manifest, its config unchanged
        raise ValueError(f"{path}: the checkpoint holds model {meta.get('model', 'mlp')!r}; this run trains {config.model!r}")
    scored = "validation_accuracy" if saved_config.validation else "test_accuracy"
    for i, h in enumerate(meta["history"]):
        if not {"epoch", "train_loss", "seconds", scored} <= h.keys():
            raise ValueError(f"{path}: history[{i}] lacks one of epoch, train_loss, seconds, {scored}")
        # an edited NaN, inf or negative loss reached the plot's log scale (a warning; a review)
        if not (all(_finite(h[k]) for k in ("epoch", "train_loss", "seconds", scored)) and h["epoch"] == i + 1
                and h["train_loss"] >= 0 and h["seconds"] >= 0 and 0 <= h[scored] <= 1):
            raise ValueError(f"{path}: history[{i}] must hold epoch {i + 1}, finite numbers, a train_loss and "
                             f"seconds >= 0 and an accuracy in [0, 1]; got {h}")
    if keep_epochs:
        config = config.replace(epochs=saved_config.epochs)
    stored = params   # what evaluate scores: with standardize, the fold of train_params (checked below)
    if config.standardize:
        params = meta.get("train_params")
        if not isinstance(params, list) or len(params) != len(config.hidden_sizes) + 1:
            raise ValueError(f"{path}: the weights on standardised inputs (train_params) are missing")
    arrays = params
    if config.model == "cnn":
        try:
            net.check_params(params)
        except ValueError as e:
            raise ValueError(f"{path}: not this run's CNN: {e}") from None
        arrays = leaves(params)
    else:
        shapes = [(n_in + 1, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        if [W.shape for W in arrays] != shapes:
            raise ValueError(f"{path}: weights of shapes {[W.shape for W in arrays]}; this run's network "
                             f"{sizes} has {shapes}")
    velocity = meta.get("velocity")
    if config.momentum > 0 and (not isinstance(velocity, list)
                                or [v.shape for v in velocity] != [W.shape for W in arrays]):
        raise ValueError(f"{path}: momentum buffers missing or of the wrong shapes")
    name = "train_params" if config.standardize else "params"
    if config.model == "cnn":   # named as evaluate names them: layer, array, the layer's name
        labels = [f"{name}[{l}][{k}] ({layer.name})" for l, (p, layer) in enumerate(zip(params, net.layers))
                  for k in range(len(p))]
    else:
        labels = [f"{name}[{i}]" for i in range(len(arrays))]
    checked = arrays
    if config.momentum > 0:
        checked, labels = [*arrays, *velocity], [*labels, *(f"velocity[{i}]" for i in range(len(velocity)))]
    for label, a in zip(labels, checked):
        if a.dtype != np.dtype(config.dtype):
            raise ValueError(f"{path}: {label} is {a.dtype}; the config says {config.dtype}")
        if not _checks.all_finite(a):
            raise ValueError(f"{path}: {label} contains NaN or inf (a corrupt checkpoint)")
    if config.standardize:
        check_fold(path, stored, arrays, shift, scale)
    rule = meta.get("divergence")   # absent from checkpoints before 2026-12-03: the rule restarts
    if rule is not None:
        check_metadata(path, meta, {"divergence": dict[str, float]})
        if rule.keys() != {"first", "running"} or not all(_finite(v) and v >= 0 for v in rule.values()):
            raise ValueError(f"{path}: divergence must hold the rule's first and running losses, finite and "
                             f"non-negative; got {rule!r}")
        if rule["running"] > DIVERGENCE_FACTOR * rule["first"]:   # the rule stops a run before it saves this
            raise ValueError(f"{path}: divergence holds a running loss {rule['running']:.4g} over {DIVERGENCE_FACTOR:g}x "
                             f"the first step's {rule['first']:.4g}, a state no run saves (a corrupt or edited checkpoint)")
    return params, velocity, list(meta["history"]), config, rule


def train(
    config: Config = RECIPES["default"],
    *,
    backend: ModuleType | None = None,
    data: Dataset | None = None,
    data_dir=None,
    n_classes: int | None = None,
    checkpoint=None,
    resume=None,
    plot=None,
    overwrite: bool = False,
    keep_checkpoint_epochs: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train a ``[n_features, *config.hidden_sizes, n_classes]`` network; return it and its history.

    ``backend``: the module whose gradient the loop runs (module docstring); by default the
    one ``config.backend`` names among the NumPy ones (``"jax"`` needs ``autodiff_check``
    passed in). ``data`` is used as given, otherwise ``load_mnist(data_dir, n_classes=)``
    (10 classes unless said). Output paths are checked and locked before any work
    (``paths.check_outputs``, ``paths.lock_outputs``); ``checkpoint`` is written atomically
    after every epoch; ``resume`` continues from one (config and data must match; only
    ``epochs`` may change, and ``keep_checkpoint_epochs`` keeps the checkpoint's count).
    ``plot`` writes the training curve as PNG. An existing checkpoint or plot file is refused
    unless ``overwrite`` (a resumed run may continue its checkpoint in place); both are
    checked again once the run holds their locks. ``log`` receives one line per
    epoch. Raises :class:`DivergenceError` (module docstring).
    """
    t_start = time.perf_counter()
    if not isinstance(config, Config):
        raise TypeError(f"config must be a training.Config (e.g. RECIPES['default']); got {type(config).__name__}")
    backend = _backend(config, backend)

    def check_outputs():
        return paths.check_outputs(checkpoint=checkpoint, plot=plot, resume=resume, overwrite=overwrite,
                                   inputs=data_files(data_dir) if data is None else ())

    out = check_outputs()
    if plot is not None:
        _require_matplotlib()
    with paths.lock_outputs(checkpoint=out.checkpoint, plot=out.plot):
        check_outputs()   # again, now that no other run can write them: one may have finished in between
        if data is None:
            data = load_mnist(data_dir, n_classes=n_classes)
        n_pool = _check_data(config, data)
        if config.validation:   # the data's labels were checked whole; what is left to train on may miss a class
            check_labels(data.y_train[:n_pool], data.n_classes, f"the training examples left by validation = "
                         f"{config.validation} (the first {n_pool})", all_present=True)
        n = n_pool if config.train_subset is None else config.train_subset
        _check_memory(config, data.x_train.shape[1], data.n_classes, n, data.x_test.shape[0])
        dt = np.dtype(config.dtype)
        x_raw = np.asarray(data.x_train[:n], dtype=dt)
        y_train = network.one_hot(data.y_train[:n], data.n_classes, dtype=dt)
        x_test = np.asarray(data.x_test, dtype=dt)
        held_out = slice(n_pool, n_pool + config.validation)
        x_val, y_val = np.asarray(data.x_train[held_out], dtype=dt), data.y_train[held_out]
        shift, scale = input_scaling(x_raw, config.standardize)
        x_train = (x_raw - dt.type(shift)) / dt.type(scale) if config.standardize else x_raw
        digest = getattr(data, "digest", None)
        cnn = config.model == "cnn"
        net = cnn_network(None, config, data.n_classes) if cnn else None

        def accuracy(model, x, labels) -> float:
            if cnn:
                return float(np.mean(cnn_predict(net, model, x) == labels))
            return float(np.mean(mlp_predict(model, x, config.activation, config.loss) == labels))

        sizes = [data.x_train.shape[1], *config.hidden_sizes, data.n_classes]   # the MLP's
        if resume is not None:
            params, velocity, history, config, rule = _resume(resume, config, keep_checkpoint_epochs, shift, scale,
                                                              digest, net, sizes, _blas_threads())
            if len(history) > config.epochs:
                raise ValueError(f"{resume}: {len(history)} epochs are done already; epochs = {config.epochs} asks "
                                 "for fewer (nothing to train)")
        else:
            if cnn:
                params = net.init(seed=config.seed, dtype=dt)
            else:
                params = network.init_params(sizes, seed=config.seed, dtype=dt)
            velocity, history, rule = None, [], None
        if config.momentum > 0 and velocity is None:
            velocity = [np.zeros_like(W) for W in (leaves(params) if cnn else params)]
        update = make_update(backend, config, n_classes=data.n_classes)
        if cnn:
            convs = [layer.shapes[0][0] for layer in net.layers if layer.name == "conv2d"]
            what = f"cnn: conv 5x5 {convs}, dense {list(config.hidden_sizes)}, relu/{config.loss}, shift {config.shift}"
        else:
            what = f"{sizes} {config.activation}/{config.loss}"
        model = fold_input_scaling(params, shift, scale) if config.standardize else params
        log(f"training {what} on {n} examples"
            f"{f' ({config.validation} held out for validation)' if config.validation else ''}: lr {config.lr} "
            f"({config.schedule}), momentum {config.momentum}, batch {config.batch_size}, {config.epochs} "
            f"epochs, {config.dtype}, standardize {config.standardize}, backend {config.backend}")

        scored, x_score, y_score = (("validation", x_val, y_val) if config.validation
                                    else ("test", x_test, data.y_test))
        divergence = _DivergenceRule(rule)

        def save(model) -> None:   # the checkpoint after len(history) epochs
            extra: dict[str, Any] = {"velocity": velocity} if velocity is not None else {}
            if config.standardize:
                extra["train_params"] = params
            if cnn:
                extra["model"] = "cnn"
            if divergence.state() is not None:
                extra["divergence"] = divergence.state()
            if config.threads is None:   # NumPy's default: the count it was, which a resume must match
                extra["blas_threads"] = _blas_threads()
            save_checkpoint(out.checkpoint, model, config=_as_dict(config), epoch=len(history),
                            history=history, activation=config.activation, loss=config.loss,
                            input_shift=shift, input_scale=scale, data_digest=digest,
                            data_dir=getattr(data, "data_dir", None), **extra)

        done = len(history)
        with threadpool_limits(limits=config.threads, user_api="blas"):
            for epoch in range(done, config.epochs):
                t_epoch = time.perf_counter()
                total = _epoch(update, params, velocity, x_train, y_train, config, epoch, divergence, progress)
                model = fold_input_scaling(params, shift, scale) if config.standardize else params
                acc = accuracy(model, x_score, y_score)
                history.append({"epoch": epoch + 1, "train_loss": total / n, f"{scored}_accuracy": acc,
                                "seconds": time.perf_counter() - t_epoch})
                log(f"epoch {epoch + 1}/{config.epochs}: train loss {total / n:.4f}, "
                    f"{scored} accuracy {acc:.4f} ({history[-1]['seconds']:.1f} s)")
                if checkpoint is not None:
                    save(model)
            if checkpoint is not None and len(history) == done:   # a resume with nothing left to train
                save(model)                                       # still writes the checkpoint it was given
            if len(history) > done and not config.validation:   # scored by this run, just above
                acc = history[-1]["test_accuracy"]
            else:  # validation runs score the test set once, here, never to choose a recipe; so does a
                acc = accuracy(model, x_test, data.y_test)   # resume with nothing left (not the file's word)
        if plot is not None:
            plot_history(history, out.plot, title=what)
    return TrainResult(model, config, history, acc, time.perf_counter() - t_start)


def _blas_threads() -> int:
    """The thread count of NumPy's BLAS now (the largest, where it has several libraries)."""
    return max((c.num_threads for c in _threads._numpy_blas()[0].lib_controllers), default=1)


def _check_data(config: Config, data: Dataset) -> int:
    """The number of training examples left after ``config.validation`` are held out; refuses
    data the model cannot take, a validation split that leaves nothing to train on and a
    ``train_subset`` larger than what is left."""
    n_all, n_features = data.x_train.shape
    if config.model == "cnn":
        rows, cols = layered.CNN_INPUT[1:]
        if n_features != rows * cols:
            raise ValueError(f"model 'cnn' takes {rows} x {cols} images ({rows * cols} features); "
                             f"the data has {n_features} features")
        shape = getattr(data, "image_shape", None)
        if shape is not None and tuple(shape) != (rows, cols):
            raise ValueError(f"model 'cnn' takes {rows} x {cols} images; {data.source} has {shape[0]} x {shape[1]} "
                             "(as many pixels, another image: the convolutions would mix up its rows)")
    if config.validation >= n_all:
        raise ValueError(f"validation {config.validation} must leave training examples; the data has {n_all}")
    n_pool = n_all - config.validation
    if config.train_subset is not None and config.train_subset > n_pool:   # else it would quietly train on fewer
        left = f" left by validation = {config.validation}" if config.validation else ""
        raise ValueError(f"train_subset {config.train_subset} is more than the {n_pool} training examples{left}")
    return n_pool


class _DivergenceRule:
    """The module docstring's rule: the running loss (weight 0.02 a step, started at the first
    step's loss) above DIVERGENCE_FACTOR times the first step's loss. ``state`` (the
    checkpoint's ``divergence``) continues a run's rule where it stopped."""

    def __init__(self, state: dict[str, float] | None = None) -> None:
        self.first, self.running = (state["first"], state["running"]) if state else (None, None)

    def state(self) -> dict[str, float] | None:
        return None if self.first is None else {"first": self.first, "running": self.running}

    def __call__(self, J: float, epoch: int, s: int, lr: float) -> None:
        if self.first is None:
            self.first = self.running = J
        self.running = 0.98 * self.running + 0.02 * J
        if self.running > DIVERGENCE_FACTOR * self.first:
            raise DivergenceError(
                f"training diverged in epoch {epoch + 1}, step {s + 1}: the running loss {self.running:.4g} "
                f"is over {DIVERGENCE_FACTOR:g}x the first step's {self.first:.4g}; try a smaller learning rate than {lr}")


class _BarStream:
    """Standard error for tqdm's bar, except that a bar it cannot write (a reader that stopped,
    ``2>&1 | head -1``; a full disk) is dropped, not the run: the run died with an error it could
    not print either, and wrote no checkpoint (a review, 2026-12-05). A broken pipe points the
    descriptor at /dev/null, as cli._say does for standard output, so that the flush at exit
    cannot fail."""

    def __init__(self, stream) -> None:
        self.stream, self.broken = stream, False

    def _guard(self, write: Callable[[], object]) -> None:
        if self.broken:
            return
        try:
            write()
        except BrokenPipeError:
            self.broken = True
            paths.discard(self.stream)
        except OSError:
            self.broken = True

    def write(self, s: str) -> None:
        self._guard(lambda: self.stream.write(s))

    def flush(self) -> None:
        self._guard(self.stream.flush)


def _epoch(update, params, velocity, x_train, y_train, config: Config, epoch: int, divergence, progress: bool) -> float:
    """One pass over the training set in the epoch's order; returns the summed loss."""
    n, B, dt = x_train.shape[0], config.batch_size, x_train.dtype
    steps = -(-n // B)
    order = np.random.default_rng([config.seed, epoch]).permutation(n)
    xs, ys = np.take(x_train, order, axis=0), np.take(y_train, order, axis=0)
    rng = np.random.default_rng([config.seed, epoch, 1])  # the epoch's translations (config.shift)
    total = 0.0
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", leave=False,
               mininterval=0.5, disable=not progress, file=_BarStream(sys.stderr))
    with np.errstate(over="ignore", invalid="ignore"):
        for s in bar:
            x, y = xs[s * B:(s + 1) * B], ys[s * B:(s + 1) * B]
            if config.shift:
                x = translate(x, rng.integers(-config.shift, config.shift + 1, (x.shape[0], 2)))
            lr = dt.type(learning_rate(config, epoch * steps + s, steps * config.epochs))
            J = _step(update, params, velocity, x, y, lr, epoch, s)
            divergence(J, epoch, s, config.lr)
            total += J * x.shape[0]
            if s % 50 == 0:
                bar.set_postfix_str(f"loss {divergence.running:.4f}", refresh=False)
    return total


def translate(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each 28 x 28 image (a row of ``x``, (B, 784)) moved by its ``offsets[b]`` = (down,
    right) pixels, zeros shifted in: ``y[b, i, j] = x[b, i - down, j - right]`` (0 outside)."""
    B, s = x.shape[0], int(np.abs(offsets).max(initial=0))
    padded = np.pad(x.reshape(B, 28, 28), ((0, 0), (s, s), (s, s)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (28, 28), axis=(1, 2))  # (B, 2s+1, 2s+1, 28, 28)
    return windows[np.arange(B), s - offsets[:, 0], s - offsets[:, 1]].reshape(B, 784)


def _step(update, params, velocity, x, y, lr, epoch: int, s: int) -> float:
    """One update; a loss or update that is NaN or inf is a DivergenceError (params untouched
    when the backend refuses before updating, as ``manual_backprop`` does)."""
    try:
        J = update(params, velocity, x, y, lr)
    except (FloatingPointError, ValueError) as e:
        if isinstance(e, FloatingPointError) or "NaN or inf" in str(e):
            raise DivergenceError(f"training diverged in epoch {epoch + 1}, step {s + 1}: {e}") from None
        raise
    if not math.isfinite(J):
        raise DivergenceError(f"training diverged in epoch {epoch + 1}, step {s + 1}: the loss is {J}")
    return J


def _backend(config: Config, backend: ModuleType | None) -> ModuleType:
    if backend is not None:
        if not callable(getattr(backend, "loss_and_grad", None)):
            raise TypeError(f"backend must have loss_and_grad(params, x, y, activation=, loss=); got {backend!r}")
        return backend
    if config.backend == "jax":
        raise ValueError("config.backend 'jax' needs the JAX backend passed in: train(config, backend=autodiff_check)")
    return {"manual": fast, "as_published": as_published}[config.backend]


def _as_dict(config: Config) -> dict[str, Any]:
    d = dataclasses.asdict(config)
    d["hidden_sizes"] = list(config.hidden_sizes)
    d["channels"] = None if config.channels is None else list(config.channels)
    return d


def _require_matplotlib() -> None:
    try:
        with paths.interrupts_deferred():  # pybind11 turns an interrupt in its init into ImportError
            import matplotlib.figure  # noqa: F401
    except ImportError:
        raise ImportError("the training-curve plot needs matplotlib: pip install 'manual-backprop[plot]'") from None


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of examples of class i predicted as class j; (n_classes, n_classes) int64."""
    C = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(C, (np.asarray(labels), np.asarray(predictions)), 1)
    return C


def plot_history(history: list[dict[str, float]], path, *, title: str = "") -> None:
    """Training loss and test (or validation) accuracy per epoch, side by side, as a PNG at
    ``path`` (matplotlib). Built with interrupts held (:func:`paths.interrupts_deferred`, a few
    tenths of a second): matplotlib's compiled modules, started lazily, fail on one."""
    with paths.interrupts_deferred():
        _plot_history(history, path, title)


def _plot_history(history: list[dict[str, float]], path, title: str) -> None:
    _require_matplotlib()
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(9, 3.5))
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o")
    positive = any(h["train_loss"] > 0 for h in history)   # a log scale of no positive value warns
    ax_loss.set(xlabel="epoch", ylabel="mean training loss", yscale="log" if positive else "linear", title="training loss")
    scored = "validation" if history and "validation_accuracy" in history[0] else "test"
    ax_acc.plot(epochs, [100 * h[f"{scored}_accuracy"] for h in history], marker="o", color="C1")
    ax_acc.set(xlabel="epoch", ylabel=f"{scored} accuracy (%)", title=f"{scored} accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    paths.write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=100), what="plot")
