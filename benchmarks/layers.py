"""Layer speed: each hand-derived layer's forward + VJP against ``jax.jit`` of its JAX twin's
forward + ``jax.vjp``, at LeNet-sized shapes and batch 64, and one training step (loss and
gradient) of the MNIST CNN in both backends. One process, interleaved rounds, medians
(benchmarks.timing). Results are checked to agree before anything is timed.

    python -m benchmarks.layers [--rounds 7] [--dtype float32]

Numbers depend on the machine and its load: quote them with the environment printed first.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.report import environment, environment_lines
from benchmarks.timing import interleaved


def cells(dtype, batch: int = 64):
    """(label, layer name, primals, options) at LeNet-5's shapes."""
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    return [
        ("conv2d 1->6 5x5 on 28x28", "conv2d", (r(batch, 1, 28, 28), r(6, 1, 5, 5), r(6)), {}),
        ("conv2d 6->16 5x5 on 12x12", "conv2d", (r(batch, 6, 12, 12), r(16, 6, 5, 5), r(16)), {}),
        ("max_pool2d 2x2 on 6x24x24", "max_pool2d", (r(batch, 6, 24, 24),), {"size": 2}),
        ("avg_pool2d 2x2 on 6x24x24", "avg_pool2d", (r(batch, 6, 24, 24),), {"size": 2}),
        ("max_pool2d 2x2 on 16x8x8", "max_pool2d", (r(batch, 16, 8, 8),), {"size": 2}),
    ]


def _numpy_runner(name, primals, options):
    import manual_backprop.layers as L

    f, vjp = getattr(L, name), getattr(L, name + "_vjp")
    dy = np.ones_like(f(*primals, **options))

    def run():
        return f(*primals, **options), vjp(dy, *primals, **options)

    return run, dy


def _jax_runner(name, primals, options, dy):
    import jax

    from autodiff_check.layers import FORWARD

    fn = FORWARD[name]

    @jax.jit
    def both(primals, dy):
        y, pullback = jax.vjp(lambda *p: fn(*p, **options), *primals)
        return y, pullback(dy)

    dev = jax.device_put((primals, dy))

    def run():
        return jax.block_until_ready(both(*dev))

    return run


def _cnn_runners(dtype, batch):
    import jax

    import manual_backprop as mb
    from autodiff_check import sequential
    from manual_backprop import model

    rng = np.random.default_rng(0)
    net, twin = model.mnist_cnn(), sequential.mnist_cnn()
    params = net.init(0, dtype=dtype)
    x = rng.uniform(0, 1, (batch, 784)).astype(dtype)
    y = mb.one_hot(rng.integers(0, 10, batch), 10, dtype=dtype)
    dev = jax.device_put((params, x, y))
    vg = twin._value_and_grad

    def run_np():
        return net.loss_and_grad(params, x, y)

    def run_jax():
        return jax.block_until_ready(vg(*dev))

    J, _ = run_np()
    Jj = float(run_jax()[0])
    assert abs(J - Jj) <= 1e-4 * abs(Jj), (J, Jj)
    return run_np, run_jax


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = ap.parse_args(argv)
    dtype = np.dtype(args.dtype)
    print("\n".join(environment_lines(environment())))
    print(f"batch {args.batch}, {dtype}, {args.rounds} interleaved rounds; medians (p25-p75)\n")
    print(f"{'cell':34s} {'numpy':>22s} {'jax.jit':>22s} {'numpy/jax':>9s}")
    rows = []
    for label, name, primals, options in cells(dtype, args.batch):
        run_np, dy = _numpy_runner(name, primals, options)
        run_jax = _jax_runner(name, primals, options, dy)
        a, b = run_np(), run_jax()
        for u, v in zip([a[0], *a[1]], [b[0], *b[1]]):
            np.testing.assert_allclose(u, np.asarray(v), rtol=1e-3, atol=1e-3 * float(np.abs(v).max()))
        rows.append((label, interleaved({"numpy": run_np, "jax": run_jax}, rounds=args.rounds)))
    t0 = time.perf_counter()
    run_np, run_jax = _cnn_runners(dtype, args.batch)
    rows.append((f"mnist_cnn step (loss+grad), B={args.batch}", interleaved({"numpy": run_np, "jax": run_jax}, rounds=args.rounds, round_time=0.2)))
    for label, st in rows:
        n, j = st["numpy"], st["jax"]
        fmt = lambda s: f"{s.median_s * 1e3:7.3f} ms ({s.p25_s * 1e3:.2f}-{s.p75_s * 1e3:.2f})"  # noqa: E731
        print(f"{label:34s} {fmt(n):>22s} {fmt(j):>22s} {n.median_s / j.median_s:8.2f}x")
    print(f"\n(cnn cell took {time.perf_counter() - t0:.1f} s including JAX compilation)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
