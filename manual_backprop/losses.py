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

Infinite logits give the limit of the finite formula as each infinite logit grows on its own
(a target weight of 0 times an infinite term counts 0, as 0 log 0 = 0 in a cross-entropy): a
class masked out by z = -inf with y = 0 adds nothing, a target put on it costs inf; NaN where
the limit depends on how the logits grow (terms of both signs that diverge; a weight on one of
two +inf logits of a softmax row, or on a row of -inf only) or z or y holds NaN. The network
never passes such z (it refuses a z_L that is not finite); they take a slower path than finite
z, and softmax's refuses a masked array. Both cross-entropies take z of shape (batch, n_out) only.
"""

from __future__ import annotations

import numpy as np

from .activations import _as_float, _masked_like, sigmoid, softplus


def _real_targets(y, loss: str) -> np.ndarray:
    """``y`` as a non-empty (batch, n_out) array of real numbers, or an error naming ``loss``;
    NaN and inf are left to each loss's domain test (which no NaN passes)."""
    y = _as_float(y)
    if y.dtype.kind != "f":
        raise TypeError(f"{loss} targets y must be real numbers; got dtype {y.dtype}")
    if y.ndim != 2 or y.size == 0:
        raise ValueError(f"{loss} targets y must be a non-empty (batch, n_out) array; got shape {y.shape}")
    return y


def _takes_limits(z: np.ndarray, loss: str) -> bool:
    """Whether a real z holds a NaN or inf (in an entry not masked), so takes the loss's limits
    (module docstring); a z not of shape (batch, n_out) is refused."""
    if z.ndim != 2:
        raise ValueError(f"{loss} takes logits z of shape (batch, n_out); got shape {z.shape}")
    return z.dtype.kind == "f" and not np.isfinite(np.ma.filled(z, 0)).all()   # masked entries: 0


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
        if _takes_limits(z, self.name):
            with np.errstate(invalid="ignore"):        # and entries' limits +inf and -inf: NaN
                return _masked_like(z, self._limits(z, y)).sum(axis=1)
        return (softplus(z) - y * z).sum(axis=1)

    @staticmethod
    def _limits(z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """l per entry where z may be +-inf: softplus(z) - y z -> (1 - y) z as z -> +inf and
        -y z as z -> -inf, so (1 - y) inf and y inf, each 0 where its weight is 0. Its caller
        runs it under errstate(invalid="ignore"): inf - inf and 0 * inf, replaced here."""
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
        if _takes_limits(z, self.name):
            return _masked_like(z, self._output_limits(self._unmasked(z)))
        _, e = self._shifted(z)
        return e / np.sum(e, axis=1, keepdims=True)

    def value(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        z, y = _as_float(z), _as_float(y)
        if _takes_limits(z, self.name):
            l = self._value_limits(*np.broadcast_arrays(self._unmasked(z), np.ma.getdata(y)))
            return np.ma.masked_array(l) if isinstance(z, np.ma.MaskedArray) else l
        m, e = self._shifted(z)
        logsumexp = m[:, 0] + np.log(np.sum(e, axis=1))
        return np.sum(y, axis=1) * logsumexp - np.sum(y * z, axis=1)

    def _unmasked(self, z: np.ndarray) -> np.ndarray:
        """z's numbers; a masked class with a NaN or inf beside it is refused (its weight would
        count in sum_k y_k but not in the products: a class to drop is given z = -inf)."""
        if np.ma.is_masked(z):
            raise ValueError(f"{self.name}: a masked z with NaN or inf logits is not supported; "
                             "give a class that is left out the logit -inf instead of a mask")
        return np.ma.getdata(z)

    @staticmethod
    def _output_limits(z: np.ndarray) -> np.ndarray:
        """p where z holds +-inf or NaN: 0 at -inf; in a row with +inf logits, 0 below them and,
        at them, 1 for one, NaN for two or more (their shares depend on how they grow); a row of
        -inf only: 1 for one class, else NaN; NaN for a row with a NaN."""
        top = z == np.inf
        n_top = top.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):            # inf - inf, in rows replaced below
            _, e = SoftmaxCrossEntropy._shifted(z)
            p = e / np.sum(e, axis=1, keepdims=True)
        at_top = np.where(n_top == 1, p.dtype.type(1), p.dtype.type(np.nan))
        p = np.where(n_top > 0, np.where(top, at_top, 0), p)
        if z.shape[1] == 1:                            # one class: p = 1 whatever z, -inf too
            p[:] = 1
        p[np.isnan(z).any(axis=1)] = np.nan
        return p

    @staticmethod
    def _value_limits(z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """l = sum_k y_k (lse(z) - z_k) where z holds +-inf, each infinite logit growing on its
        own. With +inf logits lse -> +inf, and every term below them diverges with the sign of
        its weight; a -inf entry's term does so also without them. Where none diverges the
        finite terms remain: -sum y_k z_k, plus s lse if no logit is +inf. A weight on a term
        whose limit depends on the growth (at one of two +inf logits, or in a row of -inf only)
        leaves no limit unless a term of the same sign diverges. Terms diverging with both signs,
        or a NaN in the row: NaN."""
        top, low = z == np.inf, z == -np.inf
        n_top, n = top.sum(axis=1), z.shape[1]
        all_low = low.sum(axis=1) == n
        with np.errstate(invalid="ignore"):            # 0 * inf and inf - inf, in rows replaced below
            below = np.where(top, 0, y).sum(axis=1)    # the weight under the +inf logits
            sunk = low & ~all_low[:, None]             # -inf below a larger logit
            up = ((n_top > 0) & (below > 0)) | (sunk & (y > 0)).any(axis=1)
            down = ((n_top > 0) & (below < 0)) | (sunk & (y < 0)).any(axis=1)
            open_ = np.where(n_top[:, None] > 1, top, all_low[:, None] & (n > 1))   # terms with no limit
            open_up, open_down = (open_ & (y > 0)).any(axis=1), (open_ & (y < 0)).any(axis=1)
            m, e = SoftmaxCrossEntropy._shifted(z)     # lse: finite where no logit is +inf, not all -inf
            s_lse = np.where((n_top == 0) & ~all_low, np.sum(y, axis=1) * (m[:, 0] + np.log(np.sum(e, axis=1))), 0)
            rest = s_lse - np.where(top | low, 0, y * z).sum(axis=1)
        l = rest
        l[open_up | open_down] = np.nan                # no limit, unless a term of the same sign diverges:
        l[up] = np.inf
        l[down] = -np.inf
        l[(up & (down | open_down)) | (down & open_up)] = np.nan
        l[np.isnan(z).any(axis=1) | np.isnan(y).any(axis=1)] = np.nan
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
