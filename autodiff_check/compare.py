"""Say where two gradients disagree: per layer (or pytree leaf), worst entry with its full index.

Lists of 2-D arrays are read as the network's layers (row 0 the bias, ``layer 1 W[3, 2]``);
anything else (arrays of any rank, dicts, nested lists) is labelled by its pytree path and full
index (``params['W1'][3, 7]``), or by ``labels=``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .pytree import by_key, flatten, format_index, format_path


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
    """Result of :func:`compare`: ``passed`` iff every checkable entry is within
    ``atol + rtol |b|`` and ``a`` is finite everywhere (:func:`compare`); ``atol`` is the largest
    finite tolerance (entries of tolerance inf are not checkable)."""

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


def _as_layers(name: str, grads) -> tuple[list[np.ndarray], list[str] | None, object]:
    """The leaves, their labels unless the input is the network's list of 2-D layers, and the
    tree's structure (to pair another tree's leaves by key)."""
    if isinstance(grads, Sequence) and not isinstance(grads, (str, np.ndarray)) and grads and all(
            not isinstance(g, (list, tuple, dict)) and np.ndim(g) == 2 for g in grads):   # NumPy or JAX arrays
        return [np.asarray(g) for g in grads], None, None
    leaves, paths, treedef = flatten(grads, what=name)
    return [np.asarray(g) for g in leaves], [format_path("params", p) for p in paths], treedef


def _real(name: str, a: np.ndarray, l: int, complex_ok: bool) -> np.ndarray:
    if a.dtype.kind not in ("biufc" if complex_ok else "biuf"):
        raise TypeError(f"{name} layer {l} must be a real numeric array; got dtype {a.dtype}")
    return a.astype(np.complex128 if a.dtype.kind == "c" else np.float64)


def _tolerances(atol, shapes: list[tuple]) -> list[np.ndarray]:
    """``atol`` as one float64 array per layer: a number for all, or a list of one number or
    one layer-shaped array per layer; each >= 0 (inf: the entry is not checkable)."""
    if isinstance(atol, np.ndarray) and atol.ndim > 0:
        raise TypeError("atol must be one number, or a list with one number or array per layer; got an array "
                        f"of shape {atol.shape} (for per-layer tolerances pass a list)")
    per_layer = isinstance(atol, (list, tuple))
    if per_layer and len(atol) != len(shapes):
        raise ValueError(f"atol has {len(atol)} entries for {len(shapes)} layers")
    out = []
    for l, (t, shape) in enumerate(zip(atol if per_layer else [atol] * len(shapes), shapes)):
        where = f"atol[{l}]" if per_layer else "atol"
        if isinstance(t, (bool, np.bool_, str, bytes)) or not (isinstance(t, (int, float, np.number)) or hasattr(t, "__array__")):
            raise TypeError(f"{where} must be a number or an array; got {type(t).__name__}")
        t = np.asarray(t)
        if t.dtype.kind not in "iuf":
            raise TypeError(f"{where} must be real; got dtype {t.dtype}")
        if t.ndim and t.shape != shape:
            raise ValueError(f"{where} has shape {t.shape}; a per-entry tolerance must have the layer's shape {shape}")
        t = t.astype(np.float64)
        if np.isnan(t).any() or (t < 0).any():
            raise ValueError(f"{where} must be >= 0 (inf: not checkable); got {'NaN' if np.isnan(t).any() else 'a negative value'}")
        out.append(t)
    return out


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

    An entry passes when ``a`` is finite and ``|a - b| <= atol + rtol * |b|`` with ``b``
    finite, or when its ``atol`` is inf (not checkable there, as the finite-difference oracle
    marks a kink: ``b`` may be NaN). So a NaN or inf in ``a`` never passes, nor an entry
    against an inf or NaN reference; a comparison in which no entry is checkable passes
    (vacuously: the ``check_*`` verdicts say NOT CHECKED instead). ``rtol`` is a number >= 0; ``atol`` one number >= 0, or
    one per layer, each a number or an array shaped like that layer (a per-entry tolerance).
    The worst entry is the one that exceeds its tolerance by the largest factor.
    ``grads_a``/``grads_b`` may be any pytrees of arrays of any rank, of the same structure
    (dicts are paired by key); a shape mismatch raises ``ValueError`` naming the layer: it is
    a derivation error too. ``labels`` names each leaf in the report (default: the network's
    bias/W for lists of 2-D arrays, else the pytree path).
    """
    if not (isinstance(names, (tuple, list)) and len(names) == 2 and all(isinstance(n, str) for n in names)):
        raise TypeError(f"names must be a pair of strings; got {names!r}")
    r = np.asarray(rtol) if not isinstance(rtol, (bool, np.bool_, str, bytes)) else None
    if r is None or r.ndim or r.dtype.kind not in "iuf" or not (np.isfinite(r) and r >= 0):
        raise ValueError(f"rtol must be a finite number >= 0; got {rtol!r}")
    rtol = float(r)
    (A, auto, tree_a), (B, _, tree_b) = _as_layers("grads_a", grads_a), _as_layers("grads_b", grads_b)
    if (tree_a is None) != (tree_b is None):
        raise ValueError(f"{names[0]} and {names[1]} have different structures: one is a list of 2-D layers, "
                         "the other not")
    if tree_a is not None:   # a pytree: b's leaves again, its dicts in a's key order
        B = _as_layers("grads_b", by_key(grads_b, tree_a, root=names[1], what=names[1]))[0]
    if len(A) != len(B):
        raise ValueError(f"{names[0]} has {len(A)} layers, {names[1]} has {len(B)}")
    if not sum(np.size(a) for a in A):
        raise ValueError(f"{names[0]} and {names[1]} have no entries: nothing to compare")
    if labels is not None and (isinstance(labels, str) or len(labels) != len(A)):
        raise ValueError(f"labels must be a list of {len(A)} names, one per layer; got {labels!r}")
    labels = list(labels) if labels is not None else auto
    for l, (a, b) in enumerate(zip(A, B)):
        if np.shape(a) != np.shape(b):
            raise ValueError(f"layer {l}: {names[0]} has shape {np.shape(a)}, {names[1]} has shape {np.shape(b)}")
    atols = _tolerances(atol, [np.shape(a) for a in A])
    layers, worst, worst_excess = [], None, -np.inf
    for l, (a, b, tol) in enumerate(zip(A, B, atols)):
        a64, b64 = _real(names[0], np.asarray(a), l, complex_ok=True), _real(names[1], np.asarray(b), l, complex_ok=False)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):   # inf - inf, x / 0: judged below
            err = np.abs(a64 - b64)
            bound = tol + rtol * np.abs(b64)
            checkable = np.broadcast_to(~np.isinf(tol), err.shape)
            finite_a, finite_b = np.isfinite(a64), np.isfinite(b64)
            ok = finite_a & (~checkable | (finite_b & (err <= bound)))
            ratio = np.where(err == 0, 0.0, err / bound)   # > 1 where out of tolerance (inf where the bound is 0)
        # the worst entry: the largest ratio among checkable finite pairs; inf where a, or a checked b, is
        # not finite; -1 where the entry is not checkable (and a finite). Entries not checked count nowhere.
        excess = np.where(checkable & finite_a & finite_b, ratio, np.where(ok, -1.0, np.inf))
        counted = checkable | ~finite_a
        shown = np.where(counted, np.where(np.isnan(err), np.inf, err), 0.0)
        label = labels[l] if labels else ""
        if not err.size:   # an empty leaf: nothing to disagree
            layers.append(LayerError(l, 0.0, 0.0, True, Entry(l, "weight", 0, 0, float("nan"), float("nan"), (), label)))
            continue
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), excess.shape))
        row, col = (idx + (0, 0))[:2] if len(idx) != 1 else (0, idx[0])
        entry = Entry(l, "bias" if row == 0 else "weight", row, col, float(np.real(a64[idx])), float(b64[idx]), idx, label)
        scale = np.abs(b64)[counted & finite_b]
        bmax, emax = (float(scale.max()) if scale.size else 0.0), float(shown.max())
        rel = emax / bmax if bmax > 0 else (0.0 if emax == 0 else float("inf"))
        layers.append(LayerError(l, emax, rel, bool(ok.all()), entry))
        if excess[idx] > worst_excess:
            worst, worst_excess = entry, float(excess[idx])
    finite_tols = [t[np.isfinite(t)] for t in atols]   # inf: entries not checkable, not a tolerance
    return Comparison(layers, worst, all(e.passed for e in layers), float(rtol),
                      max(float(t.max()) if t.size else 0.0 for t in finite_tols), tuple(names))
