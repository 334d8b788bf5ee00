"""autodiff_check on kinked functions along random directions: verdicts per case, over seeds.

    python -m benchmarks.kink_sweep [--seeds 14] [--relu-seeds 20] [--near-seeds 4]

Correct float32 derivatives (every verdict should be PASS; NOT CHECKED is honest but checks
nothing, FAIL is a false alarm) and a few wrong ones (FAIL expected), all above 2,000 inputs or
with per_coordinate=False, so finite differences go along random +-1 directions and cross kinks:

- relu over 3,000, 10,000, 30,000 and 100,000 standard normal inputs, ``--relu-seeds`` each;
- abs and leaky relu over 5,000 inputs, 2x2 max pooling of a (2, 4, 16, 16) input, at scales
  1e-3, 1 and 100, ``--seeds`` each, and max pooling's gradient doubled (a bug);
- a relu MLP [40, 50, 40, 5] with zero biases and an all-zero input row (every unit of that row
  at its kink) and the same with random biases, through ``check_gradients``;
- relu written in NumPy alone (it takes complex inputs, so the complex step applies) over 600
  and 5,000 inputs (per_coordinate=False) of which 1, 2, 4 or 8 lie at +-1e-7 to +-1e-3, nearer
  the kink than a float32 difference along a direction resolves, ``--near-seeds`` each: the
  right VJP and one whose entry 7 (at least 0.1 from the kink) is 50 % off (a bug).

Prints one line per case with the count of each verdict; docs/checker.md quotes its numbers.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

import autodiff_check as ac
from manual_backprop import layers as L
from manual_backprop import network as N


def _leaky(x):
    return np.where(x >= 0, x, 0.01 * x).astype(x.dtype)


def _leaky_vjp(dy, x):
    return ((dy * np.where(x >= 0, 1, 0.01)).astype(x.dtype),)


def _abs_vjp(dy, x):
    return ((dy * np.sign(x)).astype(x.dtype),)


def _doubled_pool_vjp(dy, x):
    return (2 * L.max_pool2d_vjp(dy, x)[0],)


def _mlp(seed: int, zero: bool):
    rng = np.random.default_rng(seed)
    params = N.init_params([40, 50, 40, 5], seed=seed)
    x = rng.standard_normal((8, 40))
    if zero:
        for W in params:
            W[0] = 0.0
        x[2] = 0.0
    y = np.eye(5)[rng.integers(0, 5, 8)]
    kw = dict(activation="relu", loss="softmax_cross_entropy")
    return (lambda P: N.loss(P, x, y, **kw)), (lambda P: N.loss_and_grad(P, x, y, **kw)[1]), params


def near_kinks(n: int, k: int, at: float, seed: int) -> np.ndarray:
    """n standard normal float32 inputs, k of them (not entry 7) moved to +-``at``, and entry 7
    at least 0.1 from the kink."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    at_kink = rng.choice(np.arange(8, n), k, replace=False)
    x[at_kink] = at * rng.choice([-1.0, 1.0], k)
    x[7] = abs(x[7]) + 0.1
    return x.astype(np.float32)


def numpy_relu(x):   # as a user writes it: NumPy alone, so complex inputs too (L.relu refuses them)
    return np.maximum(x, 0).astype(x.dtype)


def numpy_relu_vjp(dy, x, entry_7: float = 1.0):
    """``(dx,)`` of :func:`numpy_relu`, with entry 7's derivative times ``entry_7`` (1: right)."""
    m = (x > 0).astype(np.float64)
    m[7] *= entry_7
    return ((dy * m).astype(x.dtype),)


def _relu_vjp_entry_7_off(dy, x):
    return numpy_relu_vjp(dy, x, 1.5)


def sweep(seeds: int, relu_seeds: int, near_seeds: int = 4) -> dict[str, Counter]:
    out: dict[str, Counter] = {}

    def record(case: str, verdict) -> None:
        out.setdefault(case, Counter())[verdict.status] += 1

    for n in (3_000, 10_000, 30_000, 100_000):
        for s in range(relu_seeds):
            x = np.random.default_rng(s).standard_normal(n).astype(np.float32)
            record(f"relu {n} float32", ac.check_vjp(L.relu, L.relu_vjp, x, seed=s))
    for s in range(seeds):
        for scale in (1e-3, 1.0, 100.0):
            rng = np.random.default_rng(500 + s)
            x = (rng.standard_normal((2, 4, 16, 16)) * scale).astype(np.float32)
            z = (rng.standard_normal(5000) * scale).astype(np.float32)
            record(f"max_pool2d float32 scale {scale:g}", ac.check_vjp(L.max_pool2d, L.max_pool2d_vjp, x, seed=s))
            record(f"max_pool2d doubled (bug) float32 scale {scale:g}",
                   ac.check_vjp(L.max_pool2d, _doubled_pool_vjp, x, seed=s))
            record(f"abs float32 scale {scale:g}", ac.check_vjp(np.abs, _abs_vjp, z, seed=s))
            record(f"leaky relu float32 scale {scale:g}", ac.check_vjp(_leaky, _leaky_vjp, z, seed=s))
        for zero in (True, False):
            f, g, params = _mlp(s, zero)
            name = "relu MLP, zero biases and a zero row" if zero else "relu MLP"
            record(name, ac.check_gradients(f, g, params, analytic=False, seed=s))
    for n in (600, 5_000):
        for k in (1, 2, 4, 8):
            for at in (1e-7, 1e-6, 1e-5, 1e-4, 1e-3):
                for s in range(near_seeds):
                    x = near_kinks(n, k, at, s)
                    for name, vjp in ((f"relu {n} float32, inputs near the kink", numpy_relu_vjp),
                                      (f"relu {n} float32 near the kink, entry 7 off (bug)", _relu_vjp_entry_7_off)):
                        record(name, ac.check_vjp(numpy_relu, vjp, x, per_coordinate=False, seed=s))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.kink_sweep", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=14, help="seeds per kinked layer, scale and MLP (default 14)")
    p.add_argument("--relu-seeds", type=int, default=20, help="seeds per relu size (default 20)")
    p.add_argument("--near-seeds", type=int, default=4,
                   help="seeds per size, count and distance of relu inputs near the kink (default 4)")
    args = p.parse_args(argv)
    if args.seeds < 0 or args.relu_seeds < 0 or args.near_seeds < 0:
        p.error("--seeds, --relu-seeds and --near-seeds must be >= 0")
    start = time.perf_counter()
    for case, counts in sweep(args.seeds, args.relu_seeds, args.near_seeds).items():
        print(f"{case:48s} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
