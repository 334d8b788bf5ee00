"""``python -m benchmarks``: manual against autodiff gradients, and one training epoch.

Prints a table, writes a JSON file (``--out``, default ``runs/benchmark-<time>.json``) and a
PNG plot beside it when matplotlib is installed. Exit status 0 whether or not the speed goals
are met (they are reported, never asserted, each ratio with its 90 % interval over this run's
rounds: a goal missed within it is a tie, not a loss); 1 when a backend's gradient disagrees with the
reference (``manual_backprop.loss_and_grad``) by more than the rounding bound allows; 3 when the
table or the JSON could not be written (a full disk: the other one holds the run).

To benchmark NumPy's BLAS with its native kernel on a machine that pins OpenBLAS to an older
one (``OPENBLAS_CORETYPE``), unset both variables for this command only::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks

``python -m benchmarks layers [--quick] [...]`` runs the per-layer benchmark instead: each
layer's forward + VJP against jax.jit and torch, and the MNIST CNN (:mod:`benchmarks.layers`,
``python -m benchmarks layers --help``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import time

import numpy as np

from . import SCHEMA, epoch, gradients, report, timing
from .options import MAX_BATCH, integer, integers, names, path, seconds

QUICK = dict(networks=["post"], batches=[1, 100], dtypes=["float32", "float64"], rounds=3, round_time=0.02, warmup=0.0,
             min_samples=3, train_batches=[1, 64], train_examples=640, test_examples=1000, per_example_max_batch=100)
FULL = dict(networks=["post", "deep", "wide"], batches=[1, 32, 100, 1000], dtypes=["float32", "float64"], rounds=7,
            round_time=0.06, warmup=timing.WARMUP_S, min_samples=21, train_batches=[1, 64], train_examples=None, test_examples=None,
            per_example_max_batch=100)
MNIST_TRAIN, MNIST_TEST = 60_000, 10_000


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: the post network at batch 1 and 100, 640 training examples (about a minute on 2 cores)")
    p.add_argument("--out", type=path, default=None, help="JSON file to write (default runs/benchmark-<time>.json)")
    p.add_argument("--plot", type=path, default=None, help="PNG file (default: the JSON path with .png)")
    p.add_argument("--no-plot", action="store_true", help="write no PNG")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out or --plot file (default: refuse)")
    p.add_argument("--networks", type=names(gradients.NETWORKS), help=f"comma-separated, from {', '.join(gradients.NETWORKS)}")
    p.add_argument("--batches", type=integers(1, MAX_BATCH),
                   help=f"comma-separated batch sizes, 1 to {MAX_BATCH} (default 1,32,100,1000)")
    p.add_argument("--dtypes", type=names(["float32", "float64"]), help="comma-separated, float32 and/or float64")
    p.add_argument("--backends", type=names(gradients.BACKENDS),
                   help=f"comma-separated, from {', '.join(gradients.BACKENDS)} (default: all installed)")
    p.add_argument("--rounds", type=integer(1, 1000), help="interleaved rounds per cell (default 7; quick 3)")
    p.add_argument("--min-samples", type=integer(1, 100_000),
                   help="at least this many timed calls per backend and cell, in more rounds where needed "
                        "(default 21; quick 3)")
    p.add_argument("--round-time", type=seconds(60), help="seconds per backend per round, (0, 60] (default 0.06)")
    p.add_argument("--warmup", type=seconds(10, zero=True),
                   help="seconds of a backend's own untimed calls before each of its turns (training: steps on a copy "
                        "of the parameters), so that no other pool's workers still spin and its own are awake, [0, 10] "
                        f"(default {timing.WARMUP_S:g}; quick 0; a full run of the post network takes about 2.5x longer)")
    p.add_argument("--per-example-max-batch", type=integer(0, MAX_BATCH),
                   help="largest batch for the per-example loop (default 100: it is ~B times a batch-1 call; 0: none)")
    p.add_argument("--train-batches", type=integers(1, MNIST_TRAIN, allow_empty=True),
                   help="batch sizes of the training epochs (default 1,64; empty: none)")
    p.add_argument("--train-examples", type=integer(1, MNIST_TRAIN),
                   help="train on the first N shuffled examples only (default: the whole epoch; quick 640)")
    p.add_argument("--test-examples", type=integer(1, MNIST_TEST),
                   help="test accuracy on the first N test examples only (default: all 10000; quick 1000)")
    p.add_argument("--no-training", action="store_true", help="skip the training benchmark")
    p.add_argument("--threads", type=integer(1, 4096),
                   help="hold every library to N threads: NumPy's BLAS (threadpoolctl) and torch are limited, and "
                        "the process is pinned to N CPUs so that JAX's pool has N threads. Default: each library's own")
    p.add_argument("--seed", type=integer(0, 2**32 - 1), default=0)
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    given = {key for key in base if getattr(args, key) is not None}   # what the command line set
    for key, value in base.items():
        if key not in given:
            setattr(args, key, value)
    if args.backends is None:
        args.backends = list(gradients.BACKENDS)
    if args.no_plot and args.plot is not None:   # the plot was silently not drawn (a review)
        p.error("--plot with --no-plot: no plot is drawn (drop one or the other)")
    if args.no_training:
        extra = [f"--{k.replace('_', '-')}" for k in ("train_batches", "train_examples", "test_examples") if k in given]
        if extra:
            p.error(f"{', '.join(extra)} with --no-training: no training runs (drop one or the other)")
        args.train_batches = []
    largest = max(args.train_batches, default=1)
    if args.train_examples is not None and args.train_examples < largest:
        if "train_examples" in given:
            p.error(f"--train-examples {args.train_examples} holds no batch of {largest} (--train-batches)")
        p.error(f"--quick trains on {args.train_examples} examples: no batch of {largest} fits (--train-batches); "
                "pass --train-examples")
    return args


def _lr(batch_size: int) -> float:
    """The post's learning rate at batch 1; a mini-batch rate (the default recipe's 0.1) otherwise."""
    return 0.001 if batch_size == 1 else 0.1


def run_gradients(args, backends: list[str], log) -> tuple[list[dict], dict[str, str]]:
    cells: list[dict] = []
    skipped: dict[str, str] = {}
    for network in args.networks:
        sizes = gradients.NETWORKS[network]
        for dtype in args.dtypes:
            for batch in args.batches:
                problem = gradients.make_problem(network, sizes, batch, dtype, seed=args.seed)
                ref_J, ref_g = gradients.BACKENDS[gradients.REFERENCE](problem).result()
                fns, first, cell_backends = {"gemm": gradients.gemm_reference(problem)}, {}, {}
                for name in backends:
                    if name in skipped:
                        continue
                    if name == "per_example" and batch > args.per_example_max_batch:
                        cell_backends[name] = {"skipped": f"batch > --per-example-max-batch {args.per_example_max_batch}"}
                        continue
                    try:
                        runner = gradients.BACKENDS[name](problem)
                    except gradients.Unavailable as e:
                        skipped[name] = str(e)
                        continue
                    t0 = time.perf_counter()
                    runner.call()
                    first[name] = time.perf_counter() - t0
                    J, g = runner.result()
                    cell_backends[name] = {**gradients.agreement(problem, J, g, ref_J, ref_g), **runner.notes}
                    if not cell_backends[name]["agrees"]:
                        b = cell_backends[name]
                        log(f"  WARNING: {name} disagrees with the reference ({gradients.REFERENCE}) on {network} "
                            f"batch {batch} {dtype}: error / rounding bound {b['error_to_bound']:.2g} (gradient), "
                            f"{b['loss_error_to_bound']:.2g} (loss); max rel. error {b['max_rel_error']:.2e}")
                    fns[name] = runner.call
                stats = timing.interleaved(fns, rounds=args.rounds, round_time=args.round_time,
                                           min_samples=args.min_samples, seed=args.seed + batch, first_calls=first,
                                           warmup=args.warmup)
                flops = problem.flops
                gemm = stats.pop("gemm")
                base = stats.get(gradients.BASELINE)
                jitted = [n for n in gradients.JAX_JITTED if n in stats]
                fastest = min(jitted, key=lambda n: stats[n].median_s) if jitted else None
                best = stats[fastest] if fastest else None
                for name, st in stats.items():
                    b = cell_backends[name]
                    b.update(st.as_dict())
                    b["gflops"] = flops / st.median_s / 1e9
                    b["gemm_fraction"] = gemm.median_s / st.median_s
                    b["ratio_to_baseline"] = st.median_s / base.median_s if base else None
                    b["ratio_to_fastest_jax"] = st.median_s / best.median_s if best else None
                    if base and name != gradients.BASELINE and len(st.by_round) >= 2:   # one round: no spread
                        b["ratio_interval_90"] = timing.ratio_interval(st, base, seed=args.seed + batch)
                    if best and name != fastest and len(st.by_round) >= 2:
                        b["fastest_jax_interval_90"] = timing.ratio_interval(st, best, seed=args.seed + batch)
                cell = {"network": network, "layer_sizes": sizes, "batch": batch, "dtype": dtype,
                        "flops": flops, "gemm": {**gemm.as_dict(), "gflops": flops / gemm.median_s / 1e9},
                        "baseline": gradients.BASELINE if base else None, "fastest_jax": fastest,
                        "backends": cell_backends}
                cells.append(cell)
                shown = [n for n in ("plain", "fast", gradients.BASELINE) if "median_s" in cell_backends.get(n, {})]
                log(f"  {network:>5} {dtype:>8} batch {batch:>5}: "
                    + ", ".join(f"{n} {report._fmt_time(cell_backends[n]['median_s'])}" for n in shown)
                    + f", GEMM {report._fmt_time(gemm.median_s)}; load {report.load_average()[0]:.1f}")
    return cells, skipped


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["layers"]:  # python -m benchmarks layers [...]: per-layer speed (benchmarks.layers)
        from . import layers

        return layers.main(argv[1:])
    args = parse_args(argv)
    started, cpu_started = time.perf_counter(), time.process_time()
    load_start, source = report.load_average(), report.source_state()
    wanted = args.backends
    out, reserved = args.out, ()
    try:
        if out is None:   # runs/<time>.json, made here (a given --out's folder must exist)
            out, reserved = report.default_out(plot=not args.no_plot and args.plot is None)
        plot_path = None if args.no_plot else args.plot or out.with_suffix(".png")
        from manual_backprop.app.data import data_files

        held = report.hold_outputs({"--out": out, "--plot": plot_path}, inputs=data_files(), overwrite=args.overwrite,
                                   reserved=reserved)
    except (ValueError, OSError) as e:   # before any timing: nothing is lost
        report.release(reserved)
        print(f"python -m benchmarks: error: {e}", file=sys.stderr)
        return 2
    with held:
        return _run(args, argv, wanted, out, plot_path, started, cpu_started, load_start, source)


def _run(args, argv, wanted, out, plot_path, started, cpu_started, load_start, source) -> int:
    """The run of :func:`main`, its outputs checked and locked."""
    limits = None
    log = lambda msg: report.say(msg, sys.stderr)  # noqa: E731  progress on stderr
    log(f"load average at start: {', '.join(f'{v:.2f}' for v in load_start)} on {os.cpu_count()} cores")
    if args.threads is not None:
        limits = report.hold_threads(args.threads, log)  # noqa: F841  held for the whole run
    # torch gets as many threads as NumPy's BLAS has (its own default may differ, e.g. physical cores)
    gradients.TORCH_THREADS = args.threads if args.threads is not None else report.numpy_blas_threads()
    log(f"gradient benchmark: networks {','.join(args.networks)}, batches {','.join(map(str, args.batches))}, "
        f"dtypes {','.join(args.dtypes)}; "
        f"NumPy BLAS threads {report.numpy_blas_threads()}, torch threads set to {gradients.TORCH_THREADS}")
    cells, skipped = run_gradients(args, wanted, log)
    backends = [b for b in wanted if b not in skipped]

    training = []
    if args.train_batches:
        for bs in args.train_batches:
            dtype = "float64" if bs == 1 else "float32"  # the post's recipe; the default recipe's dtype
            tb = ["sgd_step", "fast_grad"] + (list(epoch.JAX_LOOPS) if "jax_jit" in backends else [])
            log(f"training benchmark: batch {bs}, {dtype}, {args.train_examples or 'all'} examples, {', '.join(tb)}")
            data = epoch.load_data(np.dtype(dtype))
            training.append(epoch.run(batch_size=bs, dtype=dtype, lr=_lr(bs), n_examples=args.train_examples,
                                      seed=args.seed, data=data, backends=tb, n_test=args.test_examples,
                                      warmup=args.warmup))

    own = (time.process_time() - cpu_started) / (time.perf_counter() - started)  # this run's busy threads
    env = report.environment(load_start=load_start, torch_threads=gradients.TORCH_THREADS, own_threads=own,
                             source=source)
    gs = report.goals(cells, training)
    result = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "settings": {"threads": args.threads, "rounds": args.rounds, "min_samples": args.min_samples,
                     "round_time_s": args.round_time, "warmup_s": args.warmup, "seed": args.seed,
                     "per_example_max_batch": args.per_example_max_batch,
                     "flops": "matrix products only: 2 B (3 sum n_in n_out - n_0 n_1)",
                     "baseline": f"{gradients.BASELINE}: jax.jit(jax.value_and_grad(benchmarks.gradients.jax_loss))",
                     "reference": f"{gradients.REFERENCE}: manual_backprop.loss_and_grad; every backend agrees with it "
                                  "within 4x autodiff_check.rounding_bound (error_to_bound <= 1)",
                     "ratio": f"median time / median time of {gradients.BASELINE} in the same cell",
                     "fastest_jax": "per cell, the fastest of " + ", ".join(gradients.JAX_JITTED) + " timed; the "
                                    "goals are judged against it (ratio_to_fastest_jax)",
                     "gemm_fraction": "median time of the GEMM reference / median time of the backend"},
        "environment": env,
        "backends": backends,
        "skipped_backends": skipped,
        "gradients": cells,
        "training": training,
        "goals": gs,
        "elapsed_s": None,
    }
    lines = report.environment_lines(env)
    for name, why in skipped.items():
        lines.append(f"skipped {name}: {why}")
    lines += report.gradient_table(cells, backends)
    lines += report.training_table(training)
    lines += report.goal_lines(gs)
    if plot_path is not None:
        why = report.plot(plot_path, cells, backends)
        if why:
            lines.append(why)
            plot_path = None
    result["plot"] = str(plot_path) if plot_path else None
    result["elapsed_s"] = time.perf_counter() - started
    unprinted = report.say("\n".join(lines))   # before the JSON: a disk that fills then keeps the measurements
    try:
        report.write_json(out, result)
    except OSError as e:
        report.say(f"error: {e}; the table above is this run's only record", sys.stderr)
        return 3
    if unprinted:
        report.say(f"error: cannot write the table to standard output ({unprinted}); {out} holds the run", sys.stderr)
        return 3
    report.say(f"\nwrote {out}" + (f" and {plot_path}" if plot_path else "") + f" in {result['elapsed_s']:.0f} s")
    disagree = [(c["network"], c["batch"], c["dtype"], n) for c in cells for n, b in c["backends"].items()
                if b.get("agrees") is False]
    return 1 if disagree else 0


if __name__ == "__main__":
    report.exit_on_termination()   # a killed run leaves no empty reservation (report.default_out)
    sys.exit(main())
