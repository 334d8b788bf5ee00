"""What the tests share besides strategies: one comparison helper, so that a test shows the
math it compares and nothing else."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def assert_same_gradient(g: Sequence[np.ndarray], ref: Sequence[np.ndarray], tol) -> None:
    """Every entry within its tolerance: |g - ref| <= tol, per layer; ``tol`` is one number, or
    one number or array per layer. The message names the layer, the entry and both values."""
    assert len(g) == len(ref), f"{len(g)} layers against {len(ref)}"
    tols = tol if isinstance(tol, (list, tuple)) else [tol] * len(ref)
    for l, (a, b, t) in enumerate(zip(g, ref, tols)):
        assert a.shape == b.shape, f"layer {l}: shape {a.shape} against {b.shape}"
        err = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
        over = err - np.asarray(t, np.float64)
        if not np.all(over <= 0):
            i = np.unravel_index(int(np.nanargmax(np.where(np.isnan(over), np.inf, over))), a.shape)
            raise AssertionError(f"layer {l} {list(i)}: {a[i]!r} vs {b[i]!r}, error {err[i]:.3g} > tolerance "
                                 f"{np.broadcast_to(t, a.shape)[i]:.3g}")


def assert_bit_equal(g: Sequence[np.ndarray], ref: Sequence[np.ndarray]) -> None:
    """The same numbers, bit for bit, dtype included."""
    assert len(g) == len(ref)
    for l, (a, b) in enumerate(zip(g, ref)):
        assert a.dtype == b.dtype and a.shape == b.shape, f"layer {l}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        assert np.array_equal(a, b), f"layer {l} differs"
