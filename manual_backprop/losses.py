"""Losses, each with the output function it fixes, derived by hand.

A loss object works on the output layer's pre-activations (logits) ``z`` of shape
``(batch, n_out)`` and targets ``y`` of the same shape:

    output(z)    -> the network's prediction f(z)
    value(z, y)  -> per-example loss l(z, y), shape (batch,)
    delta(z, y)  -> dl/dz, shape (batch, n_out): the output error term of backpropagation
    check_targets(y) raises ValueError when y is outside the loss's domain (NaN never is
                     in it), TypeError when y is not real

z and y may be any array-likes (read by ``np.asanyarray``); integer and boolean ones are
taken as float64, as the activations take them. The network's loss is the mean of ``value``
over the batch, so its output error is ``delta / batch``. Values are computed from the
logits, never as ``log(f(z))``: no ``log(0)`` and no overflow, also at |z| = 1000.

Infinite logits give the limit of the finite formula (a target weight of 0 times an infinite
term counts 0, as 0 log 0 = 0 in a cross-entropy): a class masked out by z = -inf with y = 0
adds nothing, a target put on it costs inf; NaN where no limit exists (a softmax row with
two +inf logits or only -inf ones) or z holds NaN. The network never passes such z (it refuses a
z_L that is not finite); these rows take a slower path than finite ones.
"""

from __future__ import annotations

import numpy as np

from .activations import _as_float, sigmoid, softplus


def _real_targets(y, loss: str) -> np.ndarray:
    """``y`` as a non-empty (batch, n_out) array of real numbers, or an error naming ``loss``;
    NaN and inf are left to each loss's domain test (which no NaN passes)."""
    y = _as_float(y)
    if y.dtype.kind != "f":
        raise TypeError(f"{loss} targets y must be real numbers; got dtype {y.dtype}")
    if y.ndim != 2 or y.size == 0:
        raise ValueError(f"{loss} targets y must be a non-empty (batch, n_out) array; got shape {y.shape}")
    return y


def _not_finite(z: np.ndarray) -> bool:
    """Whether a real z holds a NaN or inf: such z takes a loss's limits (module docstring)."""
    return z.dtype.kind == "f" and not np.isfinite(z).all()


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
        z, y = _as_float(z), _as_float(y)
        if _not_finite(z):
            return self._limits(z, y).sum(axis=1)
        return (softplus(z) - y * z).sum(axis=1)

    @staticmethod
    def _limits(z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """l per entry where z may be +-inf: softplus(z) - y z -> (1 - y) z as z -> +inf and
        -y z as z -> -inf, so (1 - y) inf and y inf, each 0 where its weight is 0."""
        with np.errstate(invalid="ignore"):            # inf - inf and 0 * inf, replaced below
            l = softplus(z) - y * z
            at_plus = np.where(y == 1, 0, (1 - y) * np.inf)
            at_minus = np.where(y == 0, 0, y * np.inf)
        return np.where(z == np.inf, at_plus, np.where(z == -np.inf, at_minus, l))

    def delta(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return sigmoid(z) - _as_float(y)

    def check_targets(self, y: np.ndarray) -> None:
        y = _real_targets(y, self.name)
        lo, hi = y.min(), y.max()
        if not (lo >= 0 and hi <= 1):                  # a NaN fails both comparisons
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
        z = _as_float(z)
        if _not_finite(z):
            return self._output_limits(z)
        _, e = self._shifted(z)
        return e / np.sum(e, axis=1, keepdims=True)

    def value(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        z, y = _as_float(z), _as_float(y)
        if _not_finite(z):
            return self._value_limits(z, y)
        m, e = self._shifted(z)
        logsumexp = m[:, 0] + np.log(np.sum(e, axis=1))
        return np.sum(y, axis=1) * logsumexp - np.sum(y * z, axis=1)

    def _output_limits(self, z: np.ndarray) -> np.ndarray:
        """p where z may hold +-inf or NaN: -inf entries give 0 (exp(-inf - m) = 0); a row with
        one +inf is one-hot there; NaN for a row with a NaN, two +inf or only -inf."""
        top = z == np.inf
        n_top = top.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):            # inf - inf: NaN rows, one replaced below
            _, e = self._shifted(z)
            p = np.where(n_top == 1, top, e / np.sum(e, axis=1, keepdims=True))
        p[np.isnan(z).any(axis=1)] = np.nan
        return p

    def _value_limits(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """l = sum_k y_k (logsumexp(z) - z_k) where z may hold +-inf: a -inf entry adds
        y_k inf (0 where y_k = 0); in a row with one +inf at k*, logsumexp(z) - z_k* -> 0 and
        every other term is y_k inf (0 where y_k = 0); NaN for a row with a NaN, two +inf or
        only -inf."""
        top = z == np.inf
        n_top = top.sum(axis=1)
        with np.errstate(invalid="ignore"):            # 0 * inf and inf - inf: NaN, replaced below
            m, e = self._shifted(z)                    # -inf entries give e = 0
            yz = np.where(y == 0, 0, y * z)            # y_k z_k, 0 where y_k = 0
            l = np.sum(y, axis=1) * (m[:, 0] + np.log(np.sum(e, axis=1))) - np.sum(yz, axis=1)
            off_top = np.where(top, 0 * y, np.where(y == 0, 0, y * np.inf)).sum(axis=1)
            l = np.where(n_top == 1, off_top, l)       # two +inf or only -inf: NaN from inf - inf
        l[np.isnan(z).any(axis=1)] = np.nan
        return l

    def delta(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        y = _as_float(y)
        return self.output(z) * np.sum(y, axis=1, keepdims=True) - y

    def check_targets(self, y: np.ndarray) -> None:
        y = _real_targets(y, self.name)
        if not np.all(y >= 0):                         # a NaN fails the comparison
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
        return _as_float(z)

    def value(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        r = _as_float(z) - _as_float(y)
        return 0.5 * np.sum(r * r, axis=1)

    def delta(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _as_float(z) - _as_float(y)

    def check_targets(self, y: np.ndarray) -> None:
        y = _real_targets(y, self.name)
        if not np.isfinite(y).all():
            raise ValueError("mean_squared_error targets y must be finite")


LOSSES = {l.name: l for l in (BinaryCrossEntropy(), SoftmaxCrossEntropy(), MeanSquaredError())}


def get_loss(name: str):
    """The loss object called ``name``; ``ValueError`` naming the supported ones otherwise."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; supported: {', '.join(sorted(LOSSES))}") from None
