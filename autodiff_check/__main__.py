"""``python -m autodiff_check``: verify a backward pass against every oracle and say where it is wrong.

Checks the post's network ([784, 500, 500, 10], sigmoid, binary cross-entropy) along random
directions, then a sweep over every activation x loss on drawn small architectures, entry by
entry. Prints one line per check and, for a failing one, one line per layer with its worst
entry; ``--detail`` prints every oracle's table, ``--plot FILE`` draws |g - ref| / tol per
weight matrix. Exits 0 when every oracle agrees with the backward pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np

import manual_backprop as mb

from manual_backprop.app import paths
from manual_backprop.app.data import memory_available

from .check import MAX_DIRECTIONS, Verdict, check_network

#: examples per checked batch at most: the post's network checks cost ~B x 784 x 500 per direction
MAX_BATCH = 100_000
#: bytes the post network's check holds per example: five float64 copies of every layer's
#: activations (784 + 500 + 500 + 10 numbers); measured peak RSS grew by 56 KB an example between
#: --batch 1000 and 4000 (2026-12-05), four copies' worth
POST_BYTES_PER_EXAMPLE = 5 * 8 * (784 + 500 + 500 + 10)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m autodiff_check",
        description="Verify a hand-derived backward pass against JAX reverse and forward mode, "
        "finite differences and the complex step; print per-layer errors and the tolerance used.",
    )
    p.add_argument("--backward", choices=["manual", "as_published"], default="manual",
                   help="backward pass to verify: the hand-derived one (default) or the post's as "
                        "published (known wrong; the run then exits non-zero)")
    p.add_argument("--activations", nargs="+", default=sorted(mb.ACTIVATIONS), metavar="NAME",
                   help=f"activations in the sweep (default: all of {', '.join(sorted(mb.ACTIVATIONS))})")
    p.add_argument("--losses", nargs="+", default=sorted(mb.LOSSES), metavar="NAME",
                   help=f"losses in the sweep (default: all of {', '.join(sorted(mb.LOSSES))})")
    p.add_argument("--architectures", type=int, default=2, metavar="N",
                   help="random small architectures drawn per activation x loss pair (default 2)")
    p.add_argument("--directions", type=int, default=12, metavar="K",
                   help="random +-1 directions for the full post network, 1 to "
                        f"{MAX_DIRECTIONS}; an error with any entry above tolerance escapes with "
                        f"probability <= 2^-K (default 12; beyond {MAX_DIRECTIONS} the bound is below "
                        "anything a run can observe, and each direction costs a full pass)")
    p.add_argument("--batch", type=int, default=4, help="examples per checked batch (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed for architectures, data and directions (0 to 2^32 - 1)")
    p.add_argument("--no-jax", action="store_true",
                   help="use only finite differences and the complex step (no JAX needed)")
    p.add_argument("--skip-post", action="store_true", help="skip the full-size post network")
    p.add_argument("--verbose", "-v", action="store_true", help="print a line per layer for passing checks too")
    p.add_argument("--detail", action="store_true",
                   help="print every oracle's table and every named entry (long: the default is a summary)")
    p.add_argument("--plot", metavar="PNG",
                   help="draw |g - ref| / tol per weight matrix of the first failing check (needs matplotlib)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --plot file (default: refuse)")
    return p


def _targets(loss: str, rng: np.random.Generator, batch: int, n_out: int) -> np.ndarray:
    if loss == "mean_squared_error":
        return rng.normal(size=(batch, n_out))
    return mb.one_hot(rng.integers(0, n_out, batch), n_out)


def _report(title: str, verdict: Verdict, verbose: bool, detail: bool) -> None:
    _out(f"{'PASS' if verdict.passed else 'FAIL'}  {title}")
    if detail:
        _out("\n".join("      " + line for line in verdict.report(full=True).splitlines()[1:]))
    elif verbose:
        _out("\n".join("      " + line for line in verdict.report().splitlines()[1:]))
    elif not verdict.passed:
        worst = verdict.mismatches[:1]
        _out(f"      worst: {worst[0]}" if worst else "      " + "; ".join(verdict.disagreements()))


def _plot(verdict: Verdict, path) -> None:
    """|g - ref| / tol per weight matrix, for the per-coordinate oracle with the most failures,
    as PNG, written atomically to the path checked before the run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coord = [r for r in verdict.results if r.values is not None]
    if not coord:
        raise SystemExit("--plot needs a per-coordinate oracle (a small network, or jax_grad)")
    r = max(coord, key=lambda r: r.n_failed)
    fig, axes = plt.subplots(1, len(verdict.inputs), figsize=(4 * len(verdict.inputs), 3.6), squeeze=False)
    for ax, (path_, shape, start, size) in zip(axes[0], verdict.inputs):
        err = np.abs(r.values[start:start + size] - r.references[start:start + size])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(np.isfinite(r.tolerances[start:start + size]), err / r.tolerances[start:start + size], np.nan)
        im = ax.imshow(np.log10(np.maximum(ratio, 1e-3)).reshape(shape if len(shape) == 2 else (1, -1)),
                       aspect="auto", cmap="magma", vmin=-3, vmax=max(3, float(np.nanmax(np.log10(np.maximum(ratio, 1e-3))))))
        ax.set_title(f"{path_}: {int(np.sum(ratio > 1))} of {size} > tol", fontsize=9)
        ax.set_xlabel("column")
        ax.set_ylabel("row (0: bias)")
        fig.colorbar(im, ax=ax, label="log10 |g - ref| / tol")
    fig.suptitle(f"{verdict.name} vs {r.oracle}: |g - ref| / tol per weight matrix (> 0: wrong)", fontsize=10)
    fig.tight_layout()
    paths.write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=110), what="plot")
    _out(f"plot: {path}")


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when every check passes, 1 when one fails or standard output's reader stopped
    reading (``| head``: the rest goes nowhere, without a traceback), 2 for an error (standard
    output that cannot be written: a full disk), 130 when interrupted."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _Unwritable as e:
        paths.discard(sys.stdout)                   # the flush at exit goes nowhere too
        if isinstance(e.__cause__, BrokenPipeError):
            return 1
        print(f"python -m autodiff_check: error: cannot write to standard output ({e.__cause__})", file=sys.stderr)
        return 2


class _Unwritable(Exception):
    """Standard output could not be written (raised by :func:`_out`)."""


def _out(*args, **kwargs) -> None:
    """print to standard output; a failure (a reader that stopped, a full disk) as _Unwritable,
    which main turns into an exit status instead of a traceback (a review, 2026-12-05)."""
    try:
        print(*args, **kwargs, flush=True)
    except OSError as e:
        raise _Unwritable from e


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    args.activations, args.losses = list(dict.fromkeys(args.activations)), list(dict.fromkeys(args.losses))   # once each
    for name in args.activations:
        if name not in mb.ACTIVATIONS:
            _parser().error(f"unknown activation {name!r}; supported: {', '.join(sorted(mb.ACTIVATIONS))}")
    for name in args.losses:
        if name not in mb.LOSSES:
            _parser().error(f"unknown loss {name!r}; supported: {', '.join(sorted(mb.LOSSES))}")
    if args.architectures < 1:
        _parser().error(f"--architectures must be positive; got {args.architectures}")
    if not 1 <= args.batch <= MAX_BATCH:
        _parser().error(f"--batch must be in 1..{MAX_BATCH}; got {args.batch}")
    if not args.skip_post:   # refused now, not by the kernel's OOM killer halfway
        need, have = args.batch * POST_BYTES_PER_EXAMPLE, memory_available()
        if need > have:
            _parser().error(f"--batch {args.batch} needs about {need / 2**30:.1f} GiB for the post network's check; "
                            f"{have / 2**30:.1f} GiB is available (a smaller --batch, or --skip-post)")
    if not 1 <= args.directions <= MAX_DIRECTIONS:
        _parser().error(f"--directions must be between 1 and {MAX_DIRECTIONS} (2^-{MAX_DIRECTIONS} is already "
                        f"below any miss rate a run can observe); got {args.directions}")
    if not 0 <= args.seed < 2**32:
        _parser().error(f"--seed must be between 0 and 2^32 - 1; got {args.seed}")
    if args.plot is not None:   # checked before the run: an unwritable path is refused now, not after it
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            _parser().error("--plot needs matplotlib: pip install 'manual-backprop[plot]'")
    held = contextlib.ExitStack()
    if args.plot is not None:
        try:
            plot_path = paths.check_outputs(plot=args.plot, overwrite=args.overwrite).plot
            held.enter_context(paths.lock_outputs(plot=plot_path))   # held for the run; checked again under it
            paths.check_outputs(plot=args.plot, overwrite=args.overwrite)
        except (OSError, ValueError) as e:   # a path, not the options' syntax: one line, no usage
            held.close()
            print(f"python -m autodiff_check: error: {e}", file=sys.stderr)
            return 2
    with held:
        return _run(args, plot_path if args.plot is not None else None)


def _run(args: argparse.Namespace, plot_path) -> int:
    """The checks of :func:`main`, the plot's path checked and locked."""
    rng = np.random.default_rng(args.seed)
    use_jax = not args.no_jax
    verdicts: list[Verdict] = []
    errors = 0  # checks whose backward raised instead of returning a gradient
    start = time.perf_counter()
    _out(f"backward: {args.backward}   oracles: finite differences, complex step"
          + (", jax.grad, jax.jvp" if use_jax else "") + "\n")

    if not args.skip_post:
        params = mb.init_params([784, 500, 500, 10], seed=args.seed)
        x = rng.uniform(0, 1, size=(args.batch, 784))
        y = mb.one_hot(rng.integers(0, 10, args.batch), 10)
        oracles = ["fd", "complex_step"] + (["jax_grad", "jax_jvp"] if use_jax else [])
        v = check_network(params, x, y, backward=args.backward, use_jax=use_jax, oracles=oracles,
                          per_coordinate=False, n_directions=args.directions, seed=args.seed)
        verdicts.append(v)
        _report(f"post network [784, 500, 500, 10] sigmoid / binary_cross_entropy, "
                f"{args.directions} directions", v, True, args.detail)
        _out()

    for activation in args.activations:
        for loss in args.losses:
            for _ in range(args.architectures):
                n_hidden = int(rng.integers(1, 4))
                sizes = [int(rng.integers(2, 7))] + [int(rng.integers(2, 7))] * n_hidden + [int(rng.integers(2, 5))]
                params = mb.init_params(sizes, seed=int(rng.integers(2**31)))
                x = rng.normal(size=(args.batch, sizes[0]))
                y = _targets(loss, rng, args.batch, sizes[-1])
                try:
                    v = check_network(params, x, y, activation=activation, loss=loss,
                                      backward=args.backward, use_jax=use_jax, seed=args.seed)
                except ValueError as e:  # a backward whose shapes do not even fit
                    _out(f"FAIL  {activation:<10} {loss:<22} {str(sizes):<20} backward raised: {e}")
                    errors += 1
                    continue
                verdicts.append(v)
                worst = ", ".join(f"{r.oracle} {r.max_error:.1e}/{r.tolerance:.1e}" for r in v.results)
                _report(f"{activation:<10} {loss:<22} {str(sizes):<20} err/tol: {worst}", v, args.verbose, args.detail)

    if args.plot is not None:
        bad = [v for v in verdicts if not v.passed and any(r.values is not None for r in v.results)]
        try:
            _plot(bad[0] if bad else verdicts[-1], plot_path)
        except (OSError, ValueError) as e:   # a full disk, or the path turned into a special file
            print(f"python -m autodiff_check: error: {e}", file=sys.stderr)
            return 2
    failed = errors + sum(not v.passed for v in verdicts)
    total = errors + len(verdicts)
    if failed and not (args.detail or args.verbose):
        _out("\n(one line per check; --verbose: one line per layer, --detail: every oracle's table, "
              "--plot FILE: |g - ref| / tol per weight matrix)")
    _out(f"\n{total - failed} of {total} checks passed in {time.perf_counter() - start:.1f} s"
          f" (backward: {args.backward})")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
