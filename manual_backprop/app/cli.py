"""Command line: ``python -m manual_backprop train ...`` and ``python -m manual_backprop evaluate CKPT``.

Both end with the line ``test accuracy: 0.XXXX`` on stdout. Bad options, missing data and
unwritable outputs give one line on stderr and a nonzero exit status (2 for usage errors,
1 for everything else, 130 when interrupted, 143 on SIGTERM, 129 on SIGHUP), never a traceback.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence

import numpy as np

from .. import _checks
from ..activations import ACTIVATIONS
from ..losses import LOSSES
from .paths import discard, restore_handlers


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .training import RECIPES, SCHEDULES

    d, p, c = RECIPES["default"], RECIPES["post"], RECIPES["cnn"]
    parser = _Parser(
        prog="python -m manual_backprop",
        description="Train and evaluate the hand-derived network on MNIST-layout data.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate}",
                                parser_class=_Parser)

    t = sub.add_parser(
        "train", help="train a network (default: the post's [784, 500, 500, 10] sigmoid network)",
        description="Mini-batch SGD with momentum. Options left out come from --recipe; "
                    "the last line printed is 'test accuracy: 0.XXXX'.",
    )
    t.add_argument("--model", choices=["mlp", "cnn"], default=None,
                   help="'mlp', the post's fully connected network (the default), or 'cnn', "
                        "manual_backprop.model.mnist_cnn (convolutions, hand-derived VJPs); default: the recipe's")
    t.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                   help=f"named settings (default: 'cnn' with --model cnn, else 'default'): 'default' (lr {d.lr}, "
                        f"momentum {d.momentum}, batch {d.batch_size}, {d.epochs} epochs, {d.dtype}, {d.schedule} "
                        f"schedule, standardised inputs), 'post', the post's own (one example per update, lr {p.lr}, "
                        f"{p.epochs} epochs, {p.dtype}, no momentum), or 'cnn' (the CNN, channels {c.channels}, shift {c.shift}: lr {c.lr}, momentum "
                        f"{c.momentum}, batch {c.batch_size}, {c.epochs} epochs, {c.dtype}, {c.schedule} schedule)")
    t.add_argument("--hidden-sizes", type=int, nargs="*", metavar="N", default=None,
                   help="hidden layer sizes: the MLP's (default: 500 500, the post's), or the CNN's dense "
                        "layers after its convolutions (default: 128)")
    t.add_argument("--channels", type=int, nargs=2, metavar=("C1", "C2"), default=None,
                   help="the CNN's convolution widths (default: the recipe's)")
    t.add_argument("--shift", type=int, default=None, metavar="S",
                   help="the CNN's augmentation: move each training image by a random offset of up to S "
                        "pixels down/up and right/left (default: the recipe's)")
    t.add_argument("--activation", choices=sorted(ACTIVATIONS), default=None,
                   help="the MLP's hidden activation (default: the recipe's, sigmoid; the CNN is relu)")
    t.add_argument("--loss", choices=sorted(LOSSES), default=None,
                   help="loss, which fixes the output function (default: the recipe's, binary_cross_entropy "
                        "for the MLP, softmax_cross_entropy for the CNN)")
    t.add_argument("--lr", type=float, default=None, help="learning rate, the peak of a schedule (default: from --recipe)")
    t.add_argument("--momentum", type=float, default=None, help="momentum coefficient in [0, 1) (default: from --recipe)")
    t.add_argument("--batch-size", type=int, default=None, help="examples per update (default: from --recipe)")
    t.add_argument("--epochs", type=int, default=None,
                   help="passes over the training set; with --resume the new total (default: from --recipe, or the checkpoint's)")
    t.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="learning-rate schedule over all steps (default: from --recipe)")
    t.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="train on (x - mean) / std of the training pixels, folded back into the first "
                        "layer afterwards; MLP only (default: on for 'default', off for 'post' and 'cnn')")
    t.add_argument("--seed", type=int, default=None, help="seed of the initial weights and of the shuffling (default: 0)")
    t.add_argument("--dtype", choices=["float32", "float64"], default=None, help="floating-point type (default: from --recipe)")
    t.add_argument("--backend", choices=["manual", "jax"], default=None,
                   help="gradient: 'manual' (hand-derived, NumPy; the default) or 'jax' (autodiff_check, needs JAX)")
    t.add_argument("--backward", choices=["manual", "as_published"], default="manual",
                   help="'manual' (the default) or 'as_published', the post's wrong backward pass (negative control)")
    t.add_argument("--data-dir", default=None,
                   help="directory of the four MNIST-layout IDX files (default: the MNIST copy "
                        "shipped with the package, checksums verified)")
    t.add_argument("--n-classes", type=int, default=None, metavar="K",
                   help="classes in the data's labels (default: 10, MNIST's layout); a label outside "
                        "0..K-1, or a class missing from the training labels (those left after --validation), "
                        "is refused; a --train-subset may miss classes")
    t.add_argument("--train-subset", type=int, default=None, metavar="N",
                   help="train on the first N training examples only (at most as many as there are, "
                        "after --validation)")
    t.add_argument("--validation", type=int, default=None, metavar="N",
                   help="hold out the last N training examples and report their accuracy after each "
                        "epoch instead of the test accuracy, which is scored once at the end: choose "
                        "hyperparameters on this, never on the test set (default: 0)")
    t.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="write a checkpoint (.npz) here after every epoch, atomically")
    t.add_argument("--resume", default=None, metavar="PATH", help="continue from this checkpoint")
    t.add_argument("--plot", default=None, metavar="PNG",
                   help="write the training curve (loss and accuracy per epoch) here; needs matplotlib")
    t.add_argument("--overwrite", action="store_true",
                   help="replace an existing --checkpoint or --plot file (default: refuse it, as another "
                        "run's; --resume PATH --checkpoint PATH continues a checkpoint in place)")
    t.add_argument("--threads", type=int, default=None, metavar="N",
                   help="BLAS threads for training, 0 = NumPy's default, whose count a resume must match "
                        "(default: 1, robust on a busy 2-core machine)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser(
        "evaluate", help="test accuracy and confusion matrix of a checkpoint",
        description="Test accuracy and confusion matrix of a checkpoint written by 'train'.",
    )
    e.add_argument("checkpoint", metavar="CHECKPOINT", help="a .npz checkpoint")
    e.add_argument("--data-dir", default=None,
                   help="where the data the checkpoint was trained on is now, if it has moved (default: "
                        "the directory the checkpoint names); files other than those it was trained on, "
                        "by their SHA-256 digest, are refused")
    return parser


def _config(args: argparse.Namespace):
    """The recipe's Config with every option given on the command line applied (and checked
    by Config itself)."""
    from .training import RECIPES

    given = {"hidden_sizes": args.hidden_sizes, "activation": args.activation, "loss": args.loss,
             "lr": args.lr, "momentum": args.momentum, "batch_size": args.batch_size, "epochs": args.epochs,
             "schedule": args.schedule, "standardize": args.standardize, "seed": args.seed,
             "dtype": args.dtype, "backend": args.backend, "train_subset": args.train_subset,
             "model": args.model, "validation": args.validation,
             "channels": tuple(args.channels) if args.channels is not None else None, "shift": args.shift}
    given = {k: v for k, v in given.items() if v is not None}
    if args.threads is not None:
        given["threads"] = args.threads or None  # 0: leave NumPy's BLAS alone
    if args.backward == "as_published":
        if args.backend not in (None, "manual"):
            raise ValueError("--backward as_published needs --backend manual (JAX differentiates the true loss)")
        given["backend"] = "as_published"
    recipe = args.recipe if args.recipe is not None else ("cnn" if args.model == "cnn" else "default")
    if args.model is not None and RECIPES[recipe].model != args.model:
        raise ValueError(f"--recipe {recipe} trains model {RECIPES[recipe].model!r}; --model {args.model} needs a recipe "
                         f"of its own ({', '.join(k for k, c in RECIPES.items() if c.model == args.model)})")
    return RECIPES[recipe].replace(**given)


#: the signals that stopped this run (main clears it), in order of arrival, and when one last raised
_received: list[int] = []
_raised_at = [-math.inf]

#: seconds after a signal during which another one is only recorded: the run unwinds in
#: milliseconds, and a second signal landing in that cleanup broke it (a review, 2026-12-03:
#: tracebacks, lock files left); one pressed later still stops a run that swallowed the first
_UNWINDING_S = 1.0


def _on_signal(signum, frame) -> None:
    """Ctrl-C, SIGTERM (kill, timeout) and SIGHUP (a closed terminal) unwind alike, so no partial
    file stays."""
    _received.append(signum)
    if time.monotonic() - _raised_at[0] > _UNWINDING_S:
        _raised_at[0] = time.monotonic()
        raise KeyboardInterrupt


def _say(line: str) -> None:
    """print a line of the run's report. A reader that stops reading (``| head -1``) does not stop
    the run (it aborted with "[Errno 32] Broken pipe" and wrote no checkpoint, a review,
    2026-12-02): the rest of the report goes to /dev/null. Any other failure to write names
    standard output (a full disk read like the checkpoint's). A signal whose KeyboardInterrupt
    a library swallowed (numpy.random's import does) stops the run here, at its next line."""
    if _received:
        _raised_at[0] = time.monotonic()
        raise KeyboardInterrupt
    try:
        try:
            print(line, flush=True)
        except UnicodeEncodeError:   # a file name in another encoding (undecodable bytes) under strict UTF-8
            encoding = sys.stdout.encoding or "utf-8"
            print(line.encode(encoding, "backslashreplace").decode(encoding), flush=True)
    except BrokenPipeError:
        discard(sys.stdout)
    except OSError as e:
        raise OSError(f"cannot write to standard output ({e})") from None


def _train(args: argparse.Namespace) -> float:
    from .training import train

    config = _config(args)
    backend = None
    if config.backend == "jax":  # the application is the one place that knows both backends
        try:
            import autodiff_check as backend
            backend.loss_and_grad  # noqa: B018 (imports JAX: fails here when it is missing)
        except ImportError as e:
            raise ImportError(f"backend 'jax' needs JAX: {e}") from None
    result = train(config, backend=backend, data_dir=args.data_dir, n_classes=args.n_classes, checkpoint=args.checkpoint,
                   resume=args.resume, plot=args.plot, overwrite=args.overwrite, keep_checkpoint_epochs=args.epochs is None,
                   progress=not args.no_progress, log=_say)
    _say(f"wall time: {result.seconds:.1f} s")
    return result.test_accuracy


def _evaluate(args: argparse.Namespace) -> float:
    from ..activations import get_activation
    from ..losses import get_loss
    from .checkpoint import check_metadata, load_checkpoint
    from .data import LabelError, load_mnist
    from .training import check_fold, check_names, confusion_matrix, mlp_predict

    if sys.stdout is None:                             # started with >&-: the matrix would go nowhere, exit 0
        raise OSError("standard output is closed; evaluate's report would go nowhere")

    params, meta = load_checkpoint(args.checkpoint)
    data_dir = args.data_dir if args.data_dir is not None else meta.get("data_dir")
    if data_dir is not None and not isinstance(data_dir, str):
        raise ValueError(f"{args.checkpoint}: data_dir is {data_dir!r}, not a path (pass --data-dir)")
    if meta.get("model", "mlp") == "mlp" and "activation" not in meta:   # a relu network scored as sigmoid's
        raise ValueError(f"{args.checkpoint} does not say which activation its network uses; evaluate will not "
                         "guess (save_checkpoint(path, params, activation=NAME) records it)")
    activation = meta.get("activation")
    loss = meta.get("loss", "binary_cross_entropy")   # argmax of z_L whatever the loss: every output is monotone
    try:                                               # an edited name: say whose it is
        get_loss(loss)
        if meta.get("model", "mlp") == "mlp":
            get_activation(activation)
    except ValueError as e:
        raise ValueError(f"{args.checkpoint}: {e}") from None
    check_names(args.checkpoint, meta)
    if meta.get("model", "mlp") != "mlp":
        net, predict = _layered_model(args.checkpoint, params, meta)
        n_in, n_out = 784, params[-1][0].shape[1]
        description = f"{meta['model']} {net!r}"
    else:
        n_in, n_out = meta["layer_sizes"][0], meta["layer_sizes"][-1]
        description = f"{meta['layer_sizes']} {activation}" + (f"/{loss}" if "loss" in meta else "")
        for i, W in enumerate(params):
            if not _checks.all_finite(W):
                raise ValueError(f"{args.checkpoint}: params[{i}] contains NaN or inf")
        if "train_params" in meta:   # a training checkpoint: what it scores is its weights' fold, as resume checks
            check_metadata(args.checkpoint, meta, {"train_params": list[np.ndarray], "input_shift": float,
                                                   "input_scale": float})
            check_fold(args.checkpoint, params, meta["train_params"], meta["input_shift"], meta["input_scale"])

        def predict(x):
            return mlp_predict(params, x, activation, loss)

    if not 2 <= n_out <= 256:
        raise ValueError(f"{args.checkpoint}: the network has {n_out} outputs; evaluate takes 2..256 classes "
                         "(the labels are uint8)")
    try:
        data = load_mnist(data_dir, dtype=np.dtype(meta["dtype"]), n_classes=n_out)
    except LabelError as e:   # the count is the network's, not the user's to declare
        raise ValueError(f"{args.checkpoint}: the network has {n_out} outputs; the data's labels do not fit "
                         f"them: {e.fact}") from None
    if meta.get("data_digest") not in (None, data.digest):
        raise ValueError(f"{args.checkpoint} was trained on data with digest {meta['data_digest']}; the files in "
                         f"{data.source} have {data.digest} (pass --data-dir with the training data)")
    if data.x_test.shape[1] != n_in or data.n_classes > n_out:
        raise ValueError(
            f"{args.checkpoint}: the network takes {n_in} inputs and has {n_out} outputs; the data has "
            f"{data.x_test.shape[1]} features and {data.n_classes} classes"
        )
    try:
        pred = predict(data.x_test)
    except _checks.NonFiniteError as e:   # the weights overflow on this data: say whose weights
        raise _checks.NonFiniteError(f"{args.checkpoint}: {e}") from None
    C = confusion_matrix(data.y_test, pred, n_out)
    _say(f"checkpoint {args.checkpoint}: {description}, {meta['dtype']}, epoch {meta.get('epoch', '?')}")
    _say(f"confusion matrix on {len(pred)} test examples (rows: true class, columns: predicted):")
    width = max(5, len(str(C.max())) + 1)
    _say("true\\pred" + "".join(f"{j:>{width}}" for j in range(n_out)))
    for i in range(n_out):
        _say(f"{i:>9}" + "".join(f"{v:>{width}}" for v in C[i]))
    return float(np.trace(C) / C.sum())


def _layered_model(path, params, meta):
    """(net, predict) for a layered checkpoint: the architecture its training config names,
    the params checked against it (a ValueError naming the file and the layer)."""
    from .training import cnn_network, cnn_predict, config_of

    if meta["model"] != "cnn":
        raise ValueError(f"{path}: model {meta['model']!r} is not one this version evaluates (mlp, cnn)")
    config = config_of(path, meta)
    if config.model != "cnn":
        raise ValueError(f"{path}: its manifest says model 'cnn' and its training config {config.model!r} "
                         "(an edited checkpoint)")
    last = params[-1]
    if not (last and last[0].ndim == 2):
        raise ValueError(f"{path}: the params are not those of a CNN: its last layer holds arrays of shapes "
                         f"{[a.shape for a in last]}, not a dense layer's (n_in, n_classes) weights")
    try:
        net = cnn_network(None, config, last[0].shape[1])
        net.check_params(params)
    except (TypeError, ValueError, IndexError) as e:
        raise ValueError(f"{path}: the params are not those of the CNN its config describes: {e}") from None
    for i, p in enumerate(params):
        for j, a in enumerate(p):
            if not _checks.all_finite(a):
                raise ValueError(f"{path}: params[{i}][{j}] ({net.layers[i].name}) contains NaN or inf")
    return net, lambda x: cnn_predict(net, params, x)


def _tell(line: str) -> None:
    """A line on stderr, where a closed terminal (EIO) may refuse it: the exit status still tells."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    # the handlers go in first, each recorded before it is replaced; only where Python delivers
    # signals, and not over one the parent chose to ignore (nohup ignores SIGHUP; getsignal is
    # None for a handler not installed from Python: left alone too)
    _received.clear()
    _raised_at[0] = -math.inf
    previous = {}
    try:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
                if s is not None and signal.getsignal(s) not in (signal.SIG_IGN, None):
                    previous[s] = signal.getsignal(s)
                    signal.signal(s, _on_signal)
        return _run(argv)
    except KeyboardInterrupt:   # as the handlers went in, in the parser, or two signals at once
        return _stopped()
    finally:
        _raised_at[0] = math.inf     # from here on a signal is only recorded, until its handler is back
        restore_handlers(previous)


def _stopped() -> int:
    """The exit of a run stopped by a signal: 128 + its number, as a shell reports one."""
    first = _received[0] if _received else signal.SIGINT
    _tell("interrupted" if first == signal.SIGINT else "terminated")
    return 128 + first


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .training import DivergenceError

    if args.command == "train":
        try:
            _config(args)
            if args.n_classes is not None and not 2 <= args.n_classes <= 256:
                raise ValueError(f"--n-classes must be in 2..256 (labels are uint8); got {args.n_classes}")
        except ValueError as e:  # an option out of its range: a usage error, like argparse's own
            parser.error(str(e))
    try:
        accuracy = _train(args) if args.command == "train" else _evaluate(args)
        _say(f"test accuracy: {accuracy:.4f}")
    except KeyboardInterrupt:
        return _stopped()
    except (ValueError, TypeError, OSError, ImportError, MemoryError, DivergenceError, _checks.NonFiniteError) as e:
        if _received:   # a library turned the interrupt into an error of its own
            return _stopped()
        _tell(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
