"""``python -m autodiff_check``: verify a backward pass against every oracle and say where it is wrong.

Checks the post's network ([784, 500, 500, 10], sigmoid, binary cross-entropy) along random
directions, then a sweep over every activation x loss on drawn small architectures, entry by
entry. Exits 0 when every oracle agrees with the backward pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import manual_backprop as mb

from .check import Verdict, check_network


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
                   help="random +-1 directions for the full post network; an error with any entry "
                        "above tolerance escapes with probability <= 2^-K (default 12)")
    p.add_argument("--batch", type=int, default=4, help="examples per checked batch (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed for architectures, data and directions")
    p.add_argument("--no-jax", action="store_true",
                   help="use only finite differences and the complex step (no JAX needed)")
    p.add_argument("--skip-post", action="store_true", help="skip the full-size post network")
    p.add_argument("--verbose", "-v", action="store_true", help="print every verdict in full")
    return p


def _targets(loss: str, rng: np.random.Generator, batch: int, n_out: int) -> np.ndarray:
    if loss == "mean_squared_error":
        return rng.normal(size=(batch, n_out))
    return mb.one_hot(rng.integers(0, n_out, batch), n_out)


def _report(title: str, verdict: Verdict, verbose: bool) -> None:
    print(f"{'PASS' if verdict.passed else 'FAIL'}  {title}")
    if verbose or not verdict.passed:
        print("\n".join("      " + line for line in str(verdict).splitlines()[1:]))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for name in args.activations:
        if name not in mb.ACTIVATIONS:
            _parser().error(f"unknown activation {name!r}; supported: {', '.join(sorted(mb.ACTIVATIONS))}")
    for name in args.losses:
        if name not in mb.LOSSES:
            _parser().error(f"unknown loss {name!r}; supported: {', '.join(sorted(mb.LOSSES))}")
    if args.architectures < 1 or args.directions < 1 or args.batch < 1:
        _parser().error("--architectures, --directions and --batch must be positive")
    rng = np.random.default_rng(args.seed)
    use_jax = not args.no_jax
    verdicts: list[Verdict] = []
    errors = 0  # checks whose backward raised instead of returning a gradient
    start = time.perf_counter()
    print(f"backward: {args.backward}   oracles: finite differences, complex step"
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
                f"{args.directions} directions", v, True)

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
                    print(f"FAIL  {activation:<10} {loss:<22} {str(sizes):<20} backward raised: {e}")
                    errors += 1
                    continue
                verdicts.append(v)
                worst = ", ".join(f"{r.oracle} {r.max_error:.1e}/{r.tolerance:.1e}" for r in v.results)
                _report(f"{activation:<10} {loss:<22} {str(sizes):<20} err/tol: {worst}", v, args.verbose)

    failed = errors + sum(not v.passed for v in verdicts)
    total = errors + len(verdicts)
    print(f"\n{total - failed} of {total} checks passed in {time.perf_counter() - start:.1f} s"
          f" (backward: {args.backward})")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
