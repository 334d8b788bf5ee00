"""Losses, each with the output function it fixes, derived by hand.

A loss object works on the output layer's pre-activations (logits) ``z`` of shape
``(batch, n_out)`` and targets ``y`` of the same shape:

    output(z)    -> the network's prediction f(z)
    value(z, y)  -> per-example loss l(z, y), shape (batch,)
    delta(z, y)  -> dl/dz, shape (batch, n_out): the output error term of backpropagation
    check_targets(y) raises ValueError when y is outside the loss's domain

The network's loss is the mean of ``value`` over the batch, so its output error is
``delta / batch``. Values are computed from the logits, never as ``log(f(z))``: no
``log(0)`` and no overflow, also at |z| = 1000.
"""

from __future__ import annotations

import numpy as np

from .activations import sigmoid, softplus


class BinaryCrossEntropy:
    """Sigmoid outputs p = sigma(z), one independent Bernoulli per output unit (the post's loss):

        l      = -sum_k [y_k log p_k + (1 - y_k) log(1 - p_k)] = sum_k [softplus(z_k) - y_k z_k]
        dl/dz  = sigma(z) - y = p - y          (the post's output error ``predictions - y``)

    Targets: any values in [0, 1].
    """

    name = "binary_cross_entropy"
    analytic = True

    def output(self, z: np.ndarray) -> np.ndarray:
        return sigmoid(z)

    def value(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (softplus(z) - y * z).sum(axis=1)

    def delta(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return sigmoid(z) - y

    def check_targets(self, y: np.ndarray) -> None:
        lo, hi = y.min(), y.max()
        if lo < 0 or hi > 1:
            raise ValueError(f"binary_cross_entropy targets y must lie in [0, 1]; got values in [{lo}, {hi}]")


class SoftmaxCrossEntropy:
    """Softmax outputs p = exp(z) / sum_j exp(z_j); with s = sum_k y_k (1 for a distribution)

        l      = -sum_k y_k log p_k = s * logsumexp(z) - sum_k y_k z_k
        dl/dz  = s p - y               (p - y when y is a probability row)

    logsumexp(z) = m + log sum_j exp(z_j - m) with m = max_j z_j, so no exp overflows.
    Targets: rows of probabilities (non-negative, summing to 1).
    """

    name = "softmax_cross_entropy"
    analytic = True

    @staticmethod
    def _shifted(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = np.max(z.real, axis=1, keepdims=True)
        return m, np.exp(z - m)

    def output(self, z: np.ndarray) -> np.ndarray:
        _, e = self._shifted(z)
        return e / np.sum(e, axis=1, keepdims=True)

    def value(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        m, e = self._shifted(z)
        logsumexp = m[:, 0] + np.log(np.sum(e, axis=1))
        return np.sum(y, axis=1) * logsumexp - np.sum(y * z, axis=1)

    def delta(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.output(z) * np.sum(y, axis=1, keepdims=True) - y

    def check_targets(self, y: np.ndarray) -> None:
        if np.any(y < 0):
            raise ValueError(
                f"softmax_cross_entropy targets y must be non-negative; got min {y.min()}"
            )
        sums = np.sum(y, axis=1, dtype=np.float64)
        # 1e-6 per entry: float32 rows (u = 6e-8) pass even after a cast to float64
        bad = np.flatnonzero(np.abs(sums - 1) > 1e-6 * y.shape[1])
        if bad.size:
            raise ValueError(
                "softmax_cross_entropy targets y must be rows of probabilities summing to 1; "
                f"row {bad[0]} sums to {sums[bad[0]]}"
            )


class MeanSquaredError:
    """Identity outputs a = z:

        l      = 1/2 sum_k (z_k - y_k)^2
        dl/dz  = z - y

    Targets: any finite values.
    """

    name = "mean_squared_error"
    analytic = True

    def output(self, z: np.ndarray) -> np.ndarray:
        return z

    def value(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        r = z - y
        return 0.5 * np.sum(r * r, axis=1)

    def delta(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return z - y

    def check_targets(self, y: np.ndarray) -> None:
        return None


LOSSES = {l.name: l for l in (BinaryCrossEntropy(), SoftmaxCrossEntropy(), MeanSquaredError())}


def get_loss(name: str):
    """The loss object called ``name``; ``ValueError`` naming the supported ones otherwise."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; supported: {', '.join(sorted(LOSSES))}") from None
