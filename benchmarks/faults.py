"""Minor page faults and time per call of one gradient backend in a loop of its own, in a fresh
process (no other backend before it, so glibc's thresholds are its own):

    python -m benchmarks.faults --dtype float64 --batch 1000      # the reference (plain)
    python -m benchmarks.faults --backend fast --dtype float64 --batch 1000

The post network ``[784, 500, 500, 10]``, sigmoid, binary cross-entropy, uniform inputs. The
reference allocates its arrays on every call; glibc may hand large ones back to the kernel and
take them again page by page on the next call (docs/performance.md). ``MALLOC_*`` variables in
the environment are printed, since they change the answer.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

import manual_backprop as mb

from .options import MAX_BATCH, integer


def measure(backend: str, dtype: str, batch: int, calls: int, warmup: int) -> tuple[float, float]:
    """(minor page faults per call, median seconds per call) over ``calls`` after ``warmup``."""
    params = mb.init_params([784, 500, 500, 10], seed=0, dtype=dtype)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(batch, 784)).astype(dtype)
    y = mb.one_hot(np.arange(batch) % 10, 10, dtype=dtype)
    if backend == "fast":
        ws, out = mb.fast.Workspace(), mb.fast.empty_like(params)
        call = lambda: mb.fast.loss_and_grad(params, x, y, out=out, workspace=ws)  # noqa: E731
    else:
        call = lambda: mb.loss_and_grad(params, x, y)  # noqa: E731
    for _ in range(warmup):
        call()
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return faults / calls, float(np.median(times))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["plain", "fast"], default="plain", help="plain: mb.loss_and_grad (default); "
                   "fast: mb.fast.loss_and_grad with out= and a Workspace")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--batch", type=integer(1, MAX_BATCH), default=1000, help=f"1 to {MAX_BATCH} (default 1000)")
    p.add_argument("--calls", type=integer(1, 100_000), default=200, help="timed calls, 1 to 100000 (default 200)")
    p.add_argument("--warmup", type=integer(0, 100_000), default=20, help="untimed calls first, 0 to 100000 (default 20)")
    args = p.parse_args(argv)
    per_call, median = measure(args.backend, args.dtype, args.batch, args.calls, args.warmup)
    malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    print(f"{args.backend} {args.dtype} batch {args.batch}: {per_call:,.0f} minor page faults per call, "
          f"median {median * 1e3:.2f} ms over {args.calls} calls; load {os.getloadavg()[0]:.2f}; "
          f"MALLOC_* {malloc or 'unset'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
