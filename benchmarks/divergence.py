"""The numbers behind training's divergence rule: per learning rate, the first step's loss, the
largest single-step loss and the largest running loss (weight 0.02 a step, as the rule uses),
each over the first step's, on the first 3,000 MNIST training images of the default recipe's
network (standardised inputs, float32, batch 64, one epoch, constant rate).

    python -m benchmarks.divergence
"""

from __future__ import annotations

import argparse

import numpy as np

import manual_backprop as mb
from manual_backprop.app import training
from manual_backprop.app.data import load_mnist


def run(lr: float, momentum: float, x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(first loss, max loss / first, max running loss / first) over one pass of batches of 64."""
    params = mb.init_params([784, 500, 500, 10], seed=0, dtype=np.float32)
    velocity = [np.zeros_like(W) for W in params]
    first = running = None
    worst = worst_running = 0.0
    with np.errstate(all="ignore"):
        for i in range(0, len(x), 64):
            try:
                J, g = mb.fast.loss_and_grad(params, x[i:i + 64], y[i:i + 64])
            except (FloatingPointError, ValueError):  # the loss overflowed: diverged beyond measure
                return first, float("inf"), float("inf")
            first = J if first is None else first
            running = J if running is None else 0.98 * running + 0.02 * J
            worst, worst_running = max(worst, J / first), max(worst_running, running / first)
            for W, v, G in zip(params, velocity, g):
                v *= np.float32(momentum)
                v += G
                W -= np.float32(lr) * v
    return first, worst, worst_running


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="python -m benchmarks.divergence", description=__doc__.split("\n\n")[0]).parse_args(argv)
    data = load_mnist()
    x = data.x_train[:3000].astype(np.float32)
    shift, scale = training.input_scaling(x, True)
    x = (x - np.float32(shift)) / np.float32(scale)
    y = mb.one_hot(data.y_train[:3000], 10, dtype=np.float32)
    print(f"{'lr':>8} {'momentum':>8} {'first loss':>10} {'max loss/first':>15} {'max running/first':>18}")
    for lr, momentum in [(0.1, 0.9), (0.3, 0.9), (1.0, 0.9), (3.0, 0.9), (100.0, 0.9), (1000.0, 0.9),
                         (0.001, 0.0), (1.0, 0.0), (100.0, 0.0)]:
        first, worst, worst_running = run(lr, momentum, x, y)
        print(f"{lr:>8g} {momentum:>8g} {first:>10.3f} {worst:>15.3g} {worst_running:>18.3g}")


if __name__ == "__main__":
    main()
