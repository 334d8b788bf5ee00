"""autodiff_check alone over many seeds of the checker corpus: the rare wrong verdicts.

    python -m benchmarks.corpus_sweep [--first 3000] [--seeds 250] [--sizes 0 2 4]

Every case of benchmarks/checker_corpus.py, every dtype it lists, each size offset and seed,
called the plain way (``check_gradients`` / ``check_vjp``). A verdict is wrong when a correct
derivative fails (a false alarm) or a wrong one passes or is caught without being localised to
an input the bug breaks. Prints each wrong verdict as it comes, then the counts per case; exit
status 1 if any. benchmarks.peers compares tools on three seeds; this looks for what is rare.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import autodiff_check as ac

from .checker_corpus import CASES


def verdict_is_right(case, verdict) -> bool:
    if case.bug is None:
        return bool(verdict.passed)
    named = verdict.mismatches
    return not verdict.passed and bool(named) and all(any(m.where.startswith(w) for w in case.where) for m in named)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.corpus_sweep", description=__doc__.splitlines()[0])
    p.add_argument("--first", type=int, default=3000, help="first seed (default 3000)")
    p.add_argument("--seeds", type=int, default=250, help="how many seeds (default 250)")
    p.add_argument("--sizes", type=int, nargs="+", default=[0, 2, 4], help="size offsets n (default 0 2 4)")
    args = p.parse_args(argv)
    if args.first < 0 or args.seeds < 1 or any(n < 0 for n in args.sizes):
        p.error("--first and --sizes must be >= 0, --seeds >= 1")
    counts: dict[tuple, list[int]] = {}
    start = time.perf_counter()
    for seed in range(args.first, args.first + args.seeds):
        for case in CASES:
            for dtype in case.dtypes:
                for n in args.sizes:
                    fn, deriv, prims = case.build(np.random.default_rng(seed), case.min_n + n, np.dtype(dtype))
                    verdict = (ac.check_gradients(fn, deriv, prims) if case.kind == "grad"
                               else ac.check_vjp(fn, deriv, *prims))
                    key = (case.name, case.bug or "correct", np.dtype(dtype).name)
                    tally = counts.setdefault(key, [0, 0])
                    tally[0] += 1
                    if not verdict_is_right(case, verdict):
                        tally[1] += 1
                        print(f"WRONG  {key}  seed {seed}  n {n}", flush=True)
    total, wrong = sum(t for t, _ in counts.values()), sum(w for _, w in counts.values())
    for key, (t, w) in sorted(counts.items()):
        if w:
            print(f"{w} of {t} wrong: {key}")
    print(f"{total} checks, {wrong} wrong verdicts, seeds {args.first}-{args.first + args.seeds - 1}, "
          f"sizes {args.sizes}, {time.perf_counter() - start:.0f} s")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
