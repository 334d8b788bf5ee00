"""The per-entry noise reading of autodiff_check (ECNoise's table at shrinking spacings): its spread
on known noise, and what it changes in verdicts. docs/checker.md quotes both.

    python -m benchmarks.noise_readings [--draws 1000000] [--seeds 10]

1. Draws: the table's reading max(sigma_3, sigma_4, sigma_5) of 16 independent draws of Gaussian
   and of uniform noise, divided by the noise's sigma: quantiles, and how often two readings of
   the same noise differ by more than ``autodiff_check.noise.CONFIRM`` (where a smaller spacing
   would refuse to confirm noise as noise).
2. Seeds: ``check_vjp`` verdicts on correct and wrong float32 VJPs where the function varies on a
   finer scale than sqrt(u) max|x|, with g's noise read at one spacing (as before) and at
   shrinking spacings (now): sin at |x| 1e3-1e4, one entry of dx 1 % off; layer norm of rows at
   100 +- 1e-3 with ``jax_fn``, one entry of dx 10 % and 1 % off.
"""

from __future__ import annotations

import argparse
import time
import warnings
from contextlib import contextmanager
from typing import Iterable

import numpy as np

import autodiff_check as ac
from autodiff_check import blackbox
from autodiff_check import noise as _noise
from manual_backprop import layers as L


def readings(draws: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """Quantiles of reading / sigma and P(one reading < another / CONFIRM), per distribution."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, draw, sigma in (("Gaussian", lambda n: rng.standard_normal((16, n)), 1.0),
                              ("uniform", lambda n: rng.uniform(-0.5, 0.5, (16, n)), 12**-0.5)):
        a, b = _noise._table_noise(draw(draws)) / sigma, _noise._table_noise(draw(draws)) / sigma
        q = np.quantile(a, [1e-6, 1e-3, 0.5, 1 - 1e-3, 1 - 1e-6])
        out[name] = {"q1e-6": q[0], "q1e-3": q[1], "median": q[2], "q1-1e-3": q[3], "q1-1e-6": q[4],
                     "P(ratio > CONFIRM)": float(np.mean(b < a / _noise.CONFIRM))}
    return out


@contextmanager
def one_spacing():
    """g's noise read as before this reading shrank: vector_noise at h = sqrt(u) max|x| alone."""
    shrinking = blackbox.entry_noise

    def at_h(g, flat, rng):
        p, h = blackbox.noise_probe(flat, rng, floor=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            s = _noise.vector_noise(g, flat.x, p, h)
        return np.where(np.isfinite(s), s, 0.0)

    blackbox.entry_noise = at_h
    try:
        yield
    finally:
        blackbox.entry_noise = shrinking


def _one_entry_off(vjp, rel, i=7):
    def wrong(dy, *primals):
        out = list(vjp(dy, *primals))
        out[0] = out[0].copy()
        out[0].flat[i] *= 1 + rel
        return tuple(out)
    return wrong


def _sin(seed):
    rng = np.random.default_rng(1000 + seed)
    return (rng.choice([-1, 1], 50) * 10 ** rng.uniform(3, 4, 50)).astype(np.float32),


def _layer_norm(seed):
    rng = np.random.default_rng(seed)
    x = (100 + 1e-3 * rng.uniform(-1, 1, (16, 32))).astype(np.float32)
    gamma, beta = rng.standard_normal((2, 32)).astype(np.float32)
    return x, gamma, beta


def cases() -> list[tuple[str, object, object, object, dict]]:
    """(name, f, vjp, primals of a seed, options): the verdict sweep's cases."""
    import autodiff_check.layers as J   # JAX: the exact oracle for layer norm, which refuses complex input
    sin_vjp = lambda dy, x: (dy * np.cos(x),)  # noqa: E731
    jax_ln = {"jax_fn": J.FORWARD["layer_norm"]}
    return [
        ("sin, correct", np.sin, sin_vjp, _sin, {}),
        ("sin, dx[7] 1 % off", np.sin, _one_entry_off(sin_vjp, 0.01), _sin, {}),
        ("layer norm + jax, correct", L.layer_norm, L.layer_norm_vjp, _layer_norm, jax_ln),
        ("layer norm + jax, dx[0, 7] 10 % off", L.layer_norm, _one_entry_off(L.layer_norm_vjp, 0.1), _layer_norm, jax_ln),
        ("layer norm + jax, dx[0, 7] 1 % off", L.layer_norm, _one_entry_off(L.layer_norm_vjp, 0.01), _layer_norm, jax_ln),
    ]


def verdicts(seeds: int, only: Iterable[str] | None = None) -> list[tuple[str, str, str, float, float]]:
    """Per case (those named in ``only``, or all): (name, statuses at one spacing, statuses
    shrinking, seconds each), P/F/N per seed."""
    rows = []
    for name, f, vjp, make, options in cases():
        if only is not None and name not in only:
            continue
        line = []
        for variant in ("one", "shrinking"):
            t0, st = time.perf_counter(), ""
            for s in range(seeds):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if variant == "one":
                        with one_spacing():
                            v = ac.check_vjp(f, vjp, *make(s), seed=s, **options)
                    else:
                        v = ac.check_vjp(f, vjp, *make(s), seed=s, **options)
                st += v.status[0]
            line += [st, time.perf_counter() - t0]
        rows.append((name, line[0], line[2], line[1], line[3]))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1_000_000, help="draws of 16 points per distribution")
    ap.add_argument("--seeds", type=int, default=10, help="seeds per verdict case")
    args = ap.parse_args(argv)
    if args.draws < 1 or args.seeds < 0:
        ap.error("--draws must be >= 1 and --seeds >= 0")
    print(f"readings of 16 draws / sigma ({args.draws:,} each; CONFIRM = {_noise.CONFIRM:g}):")
    for name, r in readings(args.draws).items():
        print(f"  {name:9s} " + "  ".join(f"{k} {v:.3g}" for k, v in r.items()), flush=True)
    if args.seeds:
        print(f"check_vjp verdicts, seeds 0-{args.seeds - 1} (P pass, F fail, N not checked):")
        for name, one, shrink, t1, t2 in verdicts(args.seeds):
            print(f"  {name:38s} one spacing {one} ({t1:.1f} s)   shrinking {shrink} ({t2:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
