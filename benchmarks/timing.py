"""Interleaved repeated timing, robust to a shared, noisy machine.

Protocol for one benchmark cell:

1. each callable's first call is timed alone (``first_call_s``: tracing and compilation for
   JAX, warm-up for the others), then one more call estimates its steady cost;
2. ``rounds`` rounds follow (more where a slow callable would otherwise get fewer than
   ``min_samples`` timed calls: at 60 ms a call, 7 rounds are 7 samples, whose median moves
   by a tenth between runs); in each, the callables run in a freshly shuffled order, each for
   ``n`` back-to-back calls timed one by one (``n`` chosen so that a callable spends about
   ``round_time`` seconds per round, at least 1 and at most ``max_calls``), each turn after
   ``warmup`` seconds of its own untimed calls (:func:`warm_up`);
3. the statistics are taken over all timed calls: median, quartiles, minimum; the process
   CPU time over the wall time of the rounds, about the number of threads a backend kept busy
   (2 for a two-threaded BLAS that had both cores, 1 for a single thread); and, where the
   platform reports them, the minor page faults per call and the kernel's share of the wall
   time (memory the allocator gave back to the kernel and takes again, zeroed, on every call);
4. :func:`ratio_interval` turns two callables' rounds into a bootstrap interval of the ratio of
   their medians: how far the ratio could have moved within this run.

A disturbance from another process lands in one round of one callable, not in all of one
callable's samples, and the median ignores it.
"""

from __future__ import annotations

import math
import random
import time

try:
    import resource
except ImportError:  # not on Windows: no page-fault counts there
    resource = None
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Stats:
    """Seconds per call over ``n`` timed calls."""

    median_s: float
    p25_s: float
    p75_s: float
    min_s: float
    n: int
    first_call_s: float
    cpu_per_wall: float  # process CPU time / wall time while it ran: about the threads it kept busy
    faults_per_call: float | None = None   # minor page faults per call (None: not reported here)
    kernel_per_wall: float | None = None   # kernel CPU time / wall time while it ran
    #: the timed calls, one row per round (rounds in the order they ran; not written to JSON)
    by_round: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False, compare=False)

    @property
    def compile_s(self) -> float:
        """First call minus a steady one: tracing and compilation, for JAX."""
        return max(0.0, self.first_call_s - self.median_s)

    def as_dict(self) -> dict:
        d = asdict(self)
        del d["by_round"]
        return {**d, "compile_s": self.compile_s}


def _faults_and_kernel_time() -> tuple[int, float]:
    if resource is None:
        return 0, 0.0
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_minflt, r.ru_stime


#: Seconds of untimed calls before each timed turn in the full command lines (``--warmup``).
#: OpenBLAS's pthreads pool (NumPy's and SciPy's wheels) keeps an idle worker polling, with
#: sched_yield, until 2^28 time-stamp-counter ticks have passed since its last job (about 0.1 s
#: at 2.6 GHz; ``OPENBLAS_THREAD_TIMEOUT`` sets the exponent, 4-30; driver/others/blas_server.c):
#: a multi-threaded callable timed in that window shares the cores with it. A pause instead of
#: the warm-up leaves the next callable's own pool cold (docs/performance.md).
WARMUP_S = 0.2


def warm_up(fn: Callable[[], object], seconds: float) -> None:
    """Call ``fn`` untimed until ``seconds`` have passed (at least once; not at all for 0)."""
    if seconds > 0:
        end = time.perf_counter() + seconds
        fn()
        while time.perf_counter() < end:
            fn()


def take_turns(turns: dict[str, tuple[Callable[[int, int], object], Callable[[], object]]],
               bounds: Sequence[int], warmup: float = 0.0) -> tuple[dict[str, list[float]], dict[str, list]]:
    """The training benchmarks' protocol: ``turns`` maps a name to ``(run(lo, hi), warm())``;
    each takes its turn on every slice ``bounds[k]..bounds[k + 1]`` (the first of a turn
    rotating, so that a change in the machine's load falls on all), each slice after ``warmup``
    seconds of its own ``warm()`` (:func:`warm_up`, outside the clock). Returns, per name, the
    seconds of each slice and what ``run`` returned for it."""
    names = list(turns)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, list] = {name: [] for name in names}
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        for name in names[k % len(names):] + names[:k % len(names)]:
            run, warm = turns[name]
            warm_up(warm, warmup)
            t0 = time.perf_counter()
            results[name].append(run(int(lo), int(hi)))
            seconds[name].append(time.perf_counter() - t0)
    return seconds, results


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    rounds: int = 5,
    round_time: float = 0.05,
    max_calls: int = 1000,
    min_samples: int = 1,
    seed: int = 0,
    first_calls: dict[str, float] | None = None,
    warmup: float = 0.0,
) -> dict[str, Stats]:
    """Time every callable of ``fns`` by the protocol above; ``first_calls`` holds first-call
    times already measured (e.g. while checking results), which are not repeated."""
    first = dict(first_calls or {})
    for name, fn in fns.items():
        if name not in first:
            first[name] = _timed(fn)
    per_round = {}
    for name, fn in fns.items():
        estimate = _timed(fn)
        per_round[name] = max(1, min(max_calls, math.ceil(round_time / max(estimate, 1e-7))))
    rounds = max([rounds, *(math.ceil(min_samples / n) for n in per_round.values())])
    samples: dict[str, list[float]] = {name: [] for name in fns}
    cpu = {name: 0.0 for name in fns}
    wall = {name: 0.0 for name in fns}
    faults = {name: 0 for name in fns}
    kernel = {name: 0.0 for name in fns}
    order = list(fns)
    rng = random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            fn = fns[name]
            warm_up(fn, warmup)
            (f0, k0), c0, w0 = _faults_and_kernel_time(), time.process_time(), time.perf_counter()
            for _ in range(per_round[name]):
                samples[name].append(_timed(fn))
            cpu[name] += time.process_time() - c0
            wall[name] += time.perf_counter() - w0
            f1, k1 = _faults_and_kernel_time()
            faults[name] += f1 - f0
            kernel[name] += k1 - k0
    out = {}
    for name, s in samples.items():
        a = np.asarray(s)
        out[name] = Stats(
            median_s=float(np.median(a)),
            p25_s=float(np.percentile(a, 25)),
            p75_s=float(np.percentile(a, 75)),
            min_s=float(a.min()),
            n=int(a.size),
            first_call_s=float(first[name]),
            cpu_per_wall=cpu[name] / wall[name] if wall[name] > 0 else 0.0,
            faults_per_call=faults[name] / a.size if resource is not None else None,
            kernel_per_wall=kernel[name] / wall[name] if resource is not None and wall[name] > 0 else None,
            by_round=a.reshape(rounds, per_round[name]),
        )
    return out


def ratio_interval(num: Stats, den: Stats, *, level: float = 0.9, resamples: int = 1000,
                   seed: int = 0) -> tuple[float, float]:
    """The ``level`` bootstrap interval of ``num.median_s / den.median_s`` for two callables
    timed in one :func:`interleaved` run: draw as many rounds as ran, with replacement, the same
    rounds for both (a disturbance that slowed one round is drawn for both or neither), and take
    the ratio of the medians of the drawn calls; the interval holds the middle ``level`` of
    ``resamples`` such ratios. It says how far this run's ratio could have moved had its rounds
    gone otherwise; not how another machine or another hour would measure."""
    R = len(num.by_round)
    if R != len(den.by_round) or R < 2:
        raise ValueError(f"ratio_interval needs two Stats of one run with at least 2 rounds; "
                         f"got {R} and {len(den.by_round)} rounds")
    picks = np.random.default_rng(seed).integers(0, R, size=(resamples, R))
    ratios = np.empty(resamples)
    for i in range(0, resamples, 100):   # 100 resamples at a time bounds the memory at 100 x (calls per run)
        p = picks[i:i + 100]
        ratios[i:i + 100] = (np.median(num.by_round[p].reshape(len(p), -1), axis=1)
                             / np.median(den.by_round[p].reshape(len(p), -1), axis=1))
    lo, hi = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
