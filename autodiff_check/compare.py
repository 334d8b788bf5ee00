"""Say where two gradients disagree: per layer (or pytree leaf), worst entry with its full index.

Lists of 2-D arrays are read as the network's layers (row 0 the bias, ``layer 1 W[3, 2]``);
anything else (arrays of any rank, dicts, nested lists) is labelled by its pytree path and full
index (``params['W1'][3, 7]``), or by ``labels=``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .pytree import flatten, format_index, format_path


@dataclass(frozen=True)
class Entry:
    """One gradient entry: ``layer`` (0-based), ``part`` ("bias" for row 0, else "weight"),
    ``row``/``col`` in the layer's ``(n_in + 1, n_out)`` matrix, and both values."""

    layer: int
    part: str
    row: int
    col: int
    a: float
    b: float
    index: tuple = ()
    label: str = ""

    def __str__(self) -> str:
        if self.label:
            return f"{self.label}{format_index(self.index)}: {self.a:.10g} vs {self.b:.10g}"
        where = f"bias[{self.col}]" if self.part == "bias" else f"W[{self.row}, {self.col}]"
        return f"layer {self.layer} {where}: {self.a:.10g} vs {self.b:.10g}"


@dataclass(frozen=True)
class LayerError:
    """One layer's largest absolute error, its relative error ``max|a - b| / max|b|`` (norm-wise,
    so zeros in ``b`` do not blow it up) and whether every entry is within tolerance."""

    layer: int
    max_abs: float
    max_rel: float
    passed: bool
    worst: Entry


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`: ``passed`` iff ``|a - b| <= atol + rtol |b|`` everywhere."""

    layers: list[LayerError]
    worst: Entry
    passed: bool
    rtol: float
    atol: float
    names: tuple[str, str] = ("a", "b")

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        a, b = self.names
        head = f"{a} vs {b}: {'agree' if self.passed else 'DISAGREE'} (rtol={self.rtol:.1e}, atol={self.atol:.1e})"
        rows = [f"  {'layer':>5}  {'max abs err':>12}  {'max rel err':>12}  verdict"]
        for e in self.layers:
            rows.append(f"  {e.layer:>5}  {e.max_abs:12.3e}  {e.max_rel:12.3e}  {'ok' if e.passed else 'FAIL'}")
        rows.append(f"  worst entry: {self.worst}")
        return "\n".join([head, *rows])


def _as_layers(name: str, grads) -> tuple[list[np.ndarray], list[str] | None]:
    """The leaves, and their labels unless the input is the network's list of 2-D layers."""
    if isinstance(grads, Sequence) and not isinstance(grads, (str, np.ndarray)) and grads and all(
            isinstance(g, np.ndarray) and g.ndim == 2 for g in grads):
        return [np.asarray(g) for g in grads], None
    leaves, paths, _ = flatten(grads, what=name)
    return [np.asarray(g) for g in leaves], [format_path("params", p) for p in paths]


def compare(
    grads_a: Sequence[np.ndarray],
    grads_b: Sequence[np.ndarray],
    *,
    rtol: float,
    atol: float | Sequence[float],
    names: tuple[str, str] = ("a", "b"),
    labels: Sequence[str] | None = None,
) -> Comparison:
    """Compare two gradients layer by layer, ``b`` being the reference.

    An entry passes when ``|a - b| <= atol + rtol * |b|``. ``atol`` is one number, or one per
    layer, each a number or an array shaped like that layer (a per-entry tolerance, as the
    finite-difference oracle produces). The worst entry is the one that exceeds its tolerance by the largest factor.
    Shape mismatches raise ``ValueError`` naming the layer: they are a derivation error too.
    ``grads_a``/``grads_b`` may be any pytrees of arrays of any rank; ``labels`` names each
    leaf in the report (default: the network's bias/W for lists of 2-D arrays, else the
    pytree path).
    """
    (A, auto), (B, _) = _as_layers("grads_a", grads_a), _as_layers("grads_b", grads_b)
    labels = list(labels) if labels is not None else auto
    if len(A) != len(B):
        raise ValueError(f"{names[0]} has {len(A)} layers, {names[1]} has {len(B)}")
    atols = list(atol) if isinstance(atol, (list, tuple)) else [atol] * len(A)
    if len(atols) != len(A):
        raise ValueError(f"atol has {len(atols)} entries for {len(A)} layers")
    layers, worst, worst_excess = [], None, -np.inf
    for l, (a, b, tol) in enumerate(zip(A, B, atols)):
        if a.shape != b.shape:
            raise ValueError(f"layer {l}: {names[0]} has shape {a.shape}, {names[1]} has shape {b.shape}")
        a64, b64 = a.astype(np.complex128 if np.iscomplexobj(a) else np.float64), b.astype(np.float64)
        err = np.abs(a64 - b64)
        err = np.where(np.isnan(err), np.inf, err)  # NaN anywhere is a disagreement
        bound = np.asarray(tol, dtype=np.float64) + rtol * np.abs(b64)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            excess = np.where(err == 0, 0.0, err / bound)  # > 1 where out of tolerance
        excess = np.nan_to_num(excess, nan=np.inf)  # inf error against an inf tolerance
        idx = np.unravel_index(int(np.argmax(excess)), excess.shape)
        idx = tuple(int(i) for i in idx)
        row, col = (idx + (0, 0))[:2] if len(idx) != 1 else (0, idx[0])
        entry = Entry(l, "bias" if row == 0 else "weight", row, col,
                      float(np.real(a64[idx])), float(b64[idx]), idx, labels[l] if labels else "")
        bmax, emax = (float(np.abs(b64).max()), float(err.max())) if err.size else (0.0, 0.0)
        rel = emax / bmax if bmax > 0 else (0.0 if emax == 0 else float("inf"))
        layers.append(LayerError(l, float(err.max()), rel, bool(np.all(err <= bound)), entry))
        if excess[idx] > worst_excess:
            worst, worst_excess = entry, float(excess[idx])
    return Comparison(layers, worst, all(e.passed for e in layers), rtol,
                      max(float(np.max(t)) for t in atols), names)
