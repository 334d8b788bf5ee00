"""What a check returns: a :class:`Verdict` over one :class:`OracleResult` per oracle, each
naming its :class:`Mismatch` entries. Built by :mod:`autodiff_check.check`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .compare import Comparison
from .pytree import format_index


@dataclass
class Mismatch:
    """One entry out of tolerance: ``where`` (path and full index), the value under test, the
    oracle's value, the tolerance, and a ``note`` (e.g. "at a kink: outside the one-sided derivatives")."""

    where: str
    value: float
    reference: float
    tolerance: float
    oracle: str = ""
    note: str = ""

    @property
    def excess(self) -> float:
        err = abs(float(self.value) - float(self.reference))   # Python floats: an overflow is inf, no warning
        return float("inf") if not np.isfinite(err) else (err / float(self.tolerance) if self.tolerance > 0 else float("inf"))

    def __str__(self) -> str:
        if not np.isfinite(self.value):
            ref = (f"{self.oracle}: {self.reference:.8g}" if np.isfinite(self.tolerance)
                   else f"{self.oracle} has no reference here")
            s = f"{self.where}: {float(self.value)!r} under test ({ref})" + ("" if self.note else ", not finite")
        else:
            a, b = _distinct(self.value, self.reference)
            s = (f"{self.where}: {a} vs {b} ({self.oracle}), "
                 f"|diff| {abs(self.value - self.reference):.2e} > tol {self.tolerance:.2e}")
        return s + (f"; {self.note}" if self.note else "")


#: relative to a leaf's largest |complex step|: below it, a nonzero complex step is taken for the
#: rounding of a 0 (Verdict._resolved). 64 u of float64: a path sum of a few dozen rounded terms of
#: the leaf's scale; a derivative that small is counted as checked by an exact-0 finite difference.
_ROUNDING_OF_ZERO = 64 * np.finfo(np.float64).eps / 2
#: how a Mismatch's note starts for an entry left out of every direction as a kink and judged alone
JUDGED_ALONE = "left out of the directions as a kink, judged alone"


def _factor(c: float) -> str:
    """A ratio to 4 digits, or as 1 +- r where those would read 1 ("1 - 3e-09", not "1"; 1.0001
    read "1" when the test was |c - 1| >= 1e-4, a review)."""
    s = f"{c:.4g}"
    return s if float(s) != 1 else f"1 {'+' if c > 1 else '-'} {abs(c - 1):.2g}"


def _distinct(a: float, b: float) -> tuple[str, str]:
    """a and b to 8 significant digits, or to as many more (up to 17) as tell them apart."""
    for p in range(8, 18):
        sa, sb = f"{a:.{p}g}", f"{b:.{p}g}"
        if sa != sb:
            return sa, sb
    return f"{a:.8g}", f"{b:.8g}"                      # equal


@dataclass
class OracleResult:
    """One oracle against the derivative under test.

    Per-coordinate oracles fill ``comparison`` (per leaf) and the flat arrays ``values``,
    ``references``, ``tolerances`` (inf where not checkable); directional ones fill
    ``directional`` with (value under test, oracle value, tolerance) per direction.
    ``mismatches``: the entries named out of tolerance, worst first (bisected for
    directional oracles). ``skipped`` counts entries or directions not checkable here (kinks,
    non-finite f), listed in ``not_checkable``."""

    oracle: str
    passed: bool
    max_error: float
    tolerance: float
    comparison: Comparison | None = None
    directional: list[tuple[float, float, float]] = field(default_factory=list)
    skipped: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    not_checkable: list[str] = field(default_factory=list)
    n_failed: int = 0
    values: np.ndarray | None = None
    references: np.ndarray | None = None
    tolerances: np.ndarray | None = None

    def summary(self) -> str:
        n = len(self.directional) if self.directional else (len(self.mismatches) if self.values is None else self.values.size)
        unit = "directions" if self.directional else "entries" if self.values is not None else "values"
        s = (f"{self.oracle:<18} {'ok' if self.passed else 'DISAGREES':<9} "
             f"{self.n_failed:>5} of {n:<6} {unit:<10} worst err {self.max_error:9.2e}  tol {self.tolerance:9.2e}")
        if self.skipped:
            s += f"  ({self.skipped} not checkable here)"
        return s


@dataclass
class Verdict:
    """All oracles' results; ``passed`` iff every oracle agrees with the derivative under test.

    ``str(verdict)``: one line per input (pass/fail, worst entry, both values, tolerance);
    ``verdict.report(full=True)``: the per-oracle table, every named mismatch and every entry
    not checkable. ``notes`` say what was skipped and why (e.g. the complex step)."""

    name: str
    results: list[OracleResult]
    notes: list[str] = field(default_factory=list)
    inputs: list[tuple[str, tuple, int, int]] = field(default_factory=list)  # (path, shape, start, size)
    index_sep: str = ""
    #: what the report calls an input beside its path ("W_1" for params[0], "x" for primal 0)
    labels: dict[str, str] = field(default_factory=dict)
    #: names of rows of 2-D inputs, said where the failures lie in them ({0: "the bias row"})
    row_names: dict[int, str] = field(default_factory=dict)
    #: names of factors, said where a wrong input is that factor times the oracle's values
    #: ({5.0: "B = 5: a 1/B left out?"}); -1 is named always
    scale_names: dict[float, str] = field(default_factory=dict)
    #: inputs holding entries that the bisection behind failing directions stopped before
    #: searching: with no entry named they are not localised, rather than clear
    unlocalised: set[str] = field(default_factory=set)
    #: inputs whose part of every direction checked, <g, v> over their entries, stayed within twice
    #: the direction's tolerance: (that part, the tolerance) where their ratio is largest
    unresolved: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No oracle disagrees, and something was checked: an entry resolved by some oracle, or a
        direction (a verdict over nothing is no pass)."""
        return bool(all(r.passed for r in self.results) and self.n_checked > 0)

    @property
    def status(self) -> str:
        """"PASS", "FAIL" (an oracle disagrees) or "NOT CHECKED" (none disagrees, nothing checked)."""
        if not all(r.passed for r in self.results):
            return "FAIL"
        return "PASS" if self.n_checked > 0 else "NOT CHECKED"

    def _resolved(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(checked, resolved) masks over the flat entries, from the per-coordinate oracles: checked
        where some oracle has a finite tolerance; resolved where some oracle's tolerance is below
        |reference|, i.e. a 100 % error, a sign flip included, would show (an exact 0 reference:
        where the tolerance is below the leaf's largest |reference|; a finite difference of 0 in
        a leaf of zeros is f not moving at all, not a derivative resolved to be 0). An exact 0
        that the complex step (complex128 whatever the inputs' dtype) contradicts with a value of
        its own is f not moving at the step: resolved only where its tolerance is below that
        value. A value below ``_ROUNDING_OF_ZERO`` times the leaf's largest complex step is no
        such contradiction: rounding in its own evaluation of a derivative that is 0 (the summed
        paths of a softmax whose sum is constant read 0.1-0.2 u of the leaf's largest; the
        1.8e-10 beside 420 that a finite difference read as 0, 3,900 u). So a true derivative
        below it is counted as checked by the exact 0, as it was before this rule."""
        coord = [r for r in self.results if r.values is not None]
        if not coord:
            return None
        checked = np.zeros(coord[0].values.size, bool)
        resolved = checked.copy()
        seen = np.zeros(checked.size)                  # the complex step's largest |reference|, above the
        for o in coord:                                # rounding of a true 0 in its leaf (complex128 whatever
            if o.oracle.startswith("complex_step"):    # the inputs' dtype; JAX may not be)
                a_o = np.where(np.isfinite(o.references), np.abs(o.references), 0)
                for _, _, start, size in self.inputs:
                    sl = slice(start, start + size)
                    if size:
                        a_o[sl] = np.where(a_o[sl] > _ROUNDING_OF_ZERO * a_o[sl].max(), a_o[sl], 0)
                seen = np.fmax(seen, a_o)              # (an oracle's own is 0 where its reference is)
        for r in coord:
            t, ref = r.tolerances, r.references
            ok = np.isfinite(t)
            checked |= ok
            with np.errstate(invalid="ignore"):
                resolved |= ok & (t < np.abs(ref))
                for _, _, start, size in self.inputs:  # an exact 0 where an error of the leaf's scale would show
                    sl = slice(start, start + size)
                    a = np.abs(ref[sl])[np.isfinite(ref[sl])]
                    if a.size:
                        scale = np.where(seen[sl] > 0, seen[sl], a.max())
                        resolved[sl] |= ok[sl] & (ref[sl] == 0) & (t[sl] < scale)
        return checked, resolved

    @property
    def n_checked(self) -> int:
        """Entries resolved by some per-coordinate oracle plus directions resolved, by the rule
        for entries: a finite tolerance below |reference|, or for a reference exactly 0, below
        the largest |reference| of the oracle's directions. A tolerance above the values it
        judges resolves nothing (near kinks the measured noise of the derivative under test can
        make it exceed them all: a sign flip, or 0, would pass there), and a function flat along
        every direction (a zero cotangent, an integer output, relu below 0) leaves nothing to
        resolve: NOT CHECKED, as entry by entry."""
        m = self._resolved()
        return (int(m[1].sum()) if m is not None else 0) + self._n_directions_checked()

    def _n_directions_checked(self) -> int:
        """Directions resolved, over the directional oracles (the rule of :attr:`n_checked`)."""
        return sum(_directions_resolved(r) for r in self.results if r.directional)

    @property
    def not_resolvable(self) -> list[str]:
        """Entries checked but with every tolerance >= |reference|, and failing no oracle: a wrong
        sign there would pass. (An entry outside a tolerance wider than its reference is wrong by
        more than that, and is listed as wrong only.)"""
        m = self._resolved()
        if m is None:
            return []
        idx = np.flatnonzero(_unresolved(m, [_failing(r) for r in self.results if r.values is not None]))
        return [self._where(int(i)) for i in idx]

    def _where(self, i: int) -> str:
        for path, shape, start, size in self.inputs:
            if start <= i < start + size:
                idx = format_index(np.unravel_index(i - start, shape)) if shape else ""
                return path + (self.index_sep if idx else "") + idx
        return f"entry {i}"

    def __bool__(self) -> bool:
        return self.passed

    @property
    def mismatches(self) -> list[Mismatch]:
        """Every named mismatch over all oracles, worst first."""
        return sorted((m for r in self.results for m in r.mismatches), key=lambda m: -m.excess)

    @property
    def not_checkable(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.results:
            seen.update(dict.fromkeys(r.not_checkable))
        return list(seen)

    def disagreements(self) -> list[str]:
        """One line per disagreeing oracle: how many entries/directions, the worst named entry."""
        out = []
        for r in self.results:
            if r.passed:
                continue
            if r.directional:
                bad = sum(not abs(g - o) <= t for g, o, t in r.directional if np.isfinite(t))
                line = (f"{self.name} disagrees with {r.oracle} along {bad} of {len(r.directional)} random directions"
                        if bad or not r.mismatches else f"{self.name} is not finite where {r.oracle}'s directions "
                        "did not go (entries at kinks)")
            elif r.values is None:   # a single value judged (check_network: the loss returned)
                line = f"{self.name} disagrees with the {r.mismatches[0].oracle}" if r.mismatches else f"{self.name}: {r.oracle}"
            else:
                line = f"{self.name} disagrees with {r.oracle} in {r.n_failed} of {r.values.size} entries"
            if r.mismatches:
                line += f"; worst {r.mismatches[0]}"
            out.append(line)
        return out

    def _leaf_lines(self) -> list[str]:
        lines = []
        coord = [r for r in self.results if r.values is not None]
        failing = [_failing(r) for r in coord]           # once per oracle, sliced per input below
        named = self.mismatches
        resolved = self._resolved()
        passed = self.passed
        along = "checked along random directions" if self._n_directions_checked() else "no direction checkable"
        for path, shape, start, size in self.inputs:
            stop = start + size
            prefix = path + self.index_sep
            mine = [m for m in named if m.where == path or (m.where.startswith(prefix) and m.where[len(prefix):len(prefix) + 1] == "[")]
            counts = [int(np.sum(f[start:stop])) for f in failing]
            n_bad = max(counts, default=0)
            n_nc = max((int(np.sum(~np.isfinite(r.tolerances[start:stop]))) for r in coord), default=0)
            shp = f"= {self.labels[path]} {shape}" if path in self.labels else f"{shape}"
            if mine or n_bad:
                worst = mine[0] if mine else None
                for r, f in zip(coord, failing):  # the worst entry of this leaf, from the arrays (mismatches keeps 200)
                    bad = f[start:stop]
                    if bad.any():
                        e = np.abs(r.values[start:stop] - r.references[start:stop])
                        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # 0/0, x/0, inf/inf
                            ratio = np.where(bad, np.nan_to_num(e / r.tolerances[start:stop], nan=np.inf), -1)
                        i = int(np.argmax(ratio))
                        cand = Mismatch(path + (self.index_sep if shape else "") + format_index(np.unravel_index(i, shape) if shape else ()),
                                        float(r.values[start + i]), float(r.references[start + i]),
                                        float(r.tolerances[start + i]), r.oracle)
                        if worst is None or cand.excess > worst.excess:
                            worst = cand
                count = f"{n_bad} of {size} entries wrong" if n_bad else f"{len(mine)} entr{'y' if len(mine) == 1 else 'ies'} named"
                if n_bad:
                    j = min(range(len(coord)), key=lambda j: (-counts[j], _tightness(coord[j], start, stop)))
                    count += _pattern(coord[j], failing[j][start:stop], start, stop, shape, self.row_names, self.scale_names)
                lines.append(f"  FAIL  {path} {shp}: {count}; worst {worst}" if worst else f"  FAIL  {path} {shp}: {count}")
                continue
            best = None  # the checked entry closest to its tolerance, over the per-coordinate oracles
            for r in coord:
                t = r.tolerances[start:stop]
                e = np.abs(r.values[start:stop] - r.references[start:stop])
                ok = np.isfinite(t) & (t > 0)
                if ok.any():
                    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf in e for a non-finite value
                        ratio = np.where(ok, e / np.where(ok, t, 1), -1)
                    i = int(np.argmax(ratio))
                    if best is None or ratio[i] > best[0]:
                        best = (ratio[i], r.oracle, i, r.values[start + i], r.references[start + i], t[i])
            nc = f" ({n_nc} not checkable here)" if n_nc else ""
            n_nr = int(np.sum(_unresolved(resolved, failing)[start:stop])) if resolved is not None else 0
            nc += f" ({n_nr} not resolvable)" if n_nr else ''
            if best is None and path in self.unresolved and not coord and path not in self.unlocalised:
                part, tol = self.unresolved[path]
                lines.append(f"  -     {path} {shp}: not resolved along the directions: its part of each, <g, v> over its "
                             f"entries, stayed within twice the direction's tolerance ({part:.1e} against {tol:.1e} at "
                             "the closest), so an error as large as its whole derivative would not show; check it "
                             "alone (the other inputs fixed, functools.partial) or with per_coordinate=True, unless "
                             "its derivative is 0 there")
            elif best is None:
                how = ("no entry checkable" if coord else "not localised: the bisection stopped before it (note)"
                       if path in self.unlocalised else along)
                lines.append(f"  {'ok' if passed and not coord else '-':<4}  {path} {shp}: {how}{nc}")
            else:
                _, oracle, i, a, b, t = best
                idx = format_index(np.unravel_index(i, shape)) if shape else ""
                sa, sb = _distinct(float(a), float(b))
                lines.append(f"  ok    {path} {shp}: worst {path}{self.index_sep if idx else ''}{idx}: {sa} vs {sb} "
                             f"({oracle}), |diff| {abs(a - b):.1e} <= tol {t:.1e}{nc}")
        return lines

    def report(self, full: bool = False, max_lines: int = 20) -> str:
        """The one-screen report; ``full=True`` adds the per-oracle table and every named entry."""
        head = f"{self.name}: {self.status}  (" + ", ".join(
            f"{r.oracle} {_headline_word(r)}" for r in self.results) + ")"
        with np.errstate(all="ignore"):  # formatting: inf - inf, 0/0 of non-finite values must not raise
            lines = [head] + self._leaf_lines() + [_direction_line(r) for r in self.results
                                                   if r.directional and not r.passed]
        if full:
            lines += ["  per oracle:"] + ["    " + r.summary() for r in self.results]
            for r in self.results:
                for m in r.mismatches[:max_lines]:
                    lines.append(f"    {r.oracle}: {m}")
                if len(r.mismatches) > max_lines:
                    lines.append(f"    {r.oracle}: ... {len(r.mismatches) - max_lines} more")
        nc = self.not_checkable
        if nc:
            shown = nc if full else nc[:3]
            lines.append(f"  {len(nc)} not checkable here: " + "; ".join(shown)
                         + ("; ..." if len(shown) < len(nc) else ""))
        nr = self.not_resolvable
        if nr:
            shown = nr if full else nr[:3]
            lines.append(f"  {len(nr)} entr{'y' if len(nr) == 1 else 'ies'} not resolvable (tolerance >= |reference|: "
                         "even a sign flip would pass): " + "; ".join(shown) + ("; ..." if len(shown) < len(nr) else ""))
        if self.status == "NOT CHECKED":
            lines.append("  nothing was checked: no entry or direction had a tolerance below its reference "
                         "(this is not a pass)")
        lines += ["  note: " + n for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def _directions_resolved(r: OracleResult) -> int:
    """Directions whose tolerance is below |reference| (or, at a reference of exactly 0, below the
    largest |reference|): a sign flip along them would show."""
    o = np.array([ref for _, ref, _ in r.directional], dtype=np.float64)
    t = np.array([tol for _, _, tol in r.directional], dtype=np.float64)
    a = np.abs(o[np.isfinite(o)])
    with np.errstate(invalid="ignore"):
        return int(np.sum(np.isfinite(t) & ((t < np.abs(o)) | ((o == 0) & (t < (a.max() if a.size else 0))))))


def _headline_word(r: OracleResult) -> str:
    """DISAGREES, ok, or what a passing oracle did not do: check anything (every tolerance
    infinite), or, along directions, resolve any (every tolerance at least |reference|)."""
    if not r.passed:
        return "DISAGREES"
    if not _checked_any(r):
        return "checked nothing"
    return "resolved nothing" if r.directional and not _directions_resolved(r) else "ok"


def _checked_any(r: OracleResult) -> bool:
    """Whether the oracle had a finite tolerance for some entry or direction (not all of them
    not checkable: a jax_fn whose reverse mode is NaN everywhere, say)."""
    if r.values is not None:
        return bool(np.isfinite(r.tolerances).any())
    return not r.directional or any(np.isfinite(t) for _, _, t in r.directional)


def _direction_line(r: OracleResult) -> str:
    """A failing directional oracle's worst failing direction, by |diff| / tol: the size of the
    error where no entry is named (bisection found none above its own tolerance)."""
    bad = [(k, a, b, t) for k, (a, b, t) in enumerate(r.directional)
           if not np.isfinite(a) or (np.isfinite(t) and not abs(a - b) <= t)]
    if not bad and any(m.note == "not finite" for m in r.mismatches):
        return f"  {r.oracle}: no direction out of tolerance; the entries named are not finite, left out of the directions"
    if not bad and any(m.note.startswith(JUDGED_ALONE) for m in r.mismatches):
        return f"  {r.oracle}: no direction out of tolerance; the entries named were left out of them as kinks, judged alone"
    if not bad:
        return f"  {r.oracle}: no direction out of tolerance (the oracle failed on its own terms: report(full=True))"
    k, a, b, t = max(bad, key=lambda p: np.inf if not np.isfinite(p[1]) or p[3] <= 0 else abs(p[1] - p[2]) / p[3])
    head = f"  {r.oracle}: {len(bad)} of {len(r.directional)} directions out of tolerance; worst, direction {k}: "
    if not np.isfinite(a):
        return head + f"<value under test, v> {float(a)!r}, not finite"
    return head + (f"<value under test, v> {float(a)!r} vs {float(b)!r}, |diff| {abs(a - b):.2e} > tol {t:.2e}")


def _unresolved(resolved: tuple[np.ndarray, np.ndarray], failing: list[np.ndarray]) -> np.ndarray:
    """Checked, not resolved (:meth:`Verdict._resolved`), and failing no oracle."""
    checked, ok = resolved
    return checked & ~ok & ~np.logical_or.reduce(failing, initial=False)


def _failing(r: OracleResult) -> np.ndarray:
    t = r.tolerances
    with np.errstate(invalid="ignore"):  # inf - inf: a non-finite value is failing below
        err = np.abs(r.values - r.references)
    err = np.where(np.isnan(err), np.inf, err)
    return (np.isfinite(t) & ~(err <= t)) | ~np.isfinite(r.values)


def _tightness(r: OracleResult, start: int, stop: int) -> float:
    """The median finite tolerance of an oracle over one input (inf where none): of two oracles
    failing as many entries, the tighter one's values describe the error best."""
    t = r.tolerances[start:stop]
    t = t[np.isfinite(t)]
    return float(np.median(t)) if t.size else float("inf")


def _pattern(r: OracleResult, bad: np.ndarray, start: int, stop: int, shape: tuple, row_names: dict[int, str],
             scale_names: dict[float, str]) -> str:
    """Where one input's failing entries (``bad``, flat) lie, and how its values relate to the
    oracle's, when that is simple (", all in row 0 (the bias row), each 0 there"), else "".

    Where: with two or more failing entries, the axis along which they touch the fewest
    indices, at most three or one run over at most half the axis ("columns 10 to 14", a
    gate's block), and not all of them; else an axis along which at most three
    indices have no failing entry and every entry of the others fails ("all but row 0").
    How: over the checked entries there, c = <g, ref> / <ref, ref>, said when every one has
    |g - c ref| <= 2 max(1, |c|) tol (g computed as c times a right value errs by at most |c|
    tol from c ref, and c's own estimate adds at most as much again) and c ref explains each
    failing entry, |g - c ref| <= |g - ref| / 4 (else a c near 1 would "explain" any error of
    a tolerance or two, and a large c fitted to references near 0 anything); never where a
    failing value is NaN or inf. A hint, never a verdict."""
    g, ref, tol = r.values[start:stop], r.references[start:stop], r.tolerances[start:stop]
    bad = bad.reshape(shape)
    region = np.ones(shape, bool)
    where = ""
    if shape and 2 <= bad.sum() < bad.size:
        inside, outside = [], []                         # (fraction of the axis, axis, indices)
        for ax, n in enumerate(shape):
            touched = bad.any(axis=tuple(a for a in range(len(shape)) if a != ax))
            hit, clean = np.flatnonzero(touched), np.flatnonzero(~touched)
            if len(hit) < n and (len(hit) <= 3 or (hit[-1] - hit[0] + 1 == len(hit) and 2 * len(hit) <= n)):
                inside.append((len(hit) / n, ax, hit))     # a few, or one run over at most half the axis
            elif 1 <= len(clean) <= 3 and np.delete(bad, clean, axis=ax).all():
                outside.append((len(clean) / n, ax, clean))
        if inside or outside:
            _, ax, idx = min(inside or outside, key=lambda c: c[:2])
            how_ = "in" if inside else "but"
            slab = np.zeros(shape, bool)
            slab[(slice(None),) * ax + (idx,)] = True
            region = slab if how_ == "in" else ~slab
            nouns = (("entry", "entries") if len(shape) == 1 else ("index", "indices") if len(shape) > 2
                     else ("row", "rows") if ax == 0 else ("column", "columns"))
            names = [f"{i}" + (f" ({row_names[int(i)]})" if len(shape) == 2 and ax == 0 and int(i) in row_names else "")
                     for i in idx]
            if len(idx) > 3:                               # a run: "columns 10 to 14"
                named_rows = [row_names[int(i)] for i in idx if len(shape) == 2 and ax == 0 and int(i) in row_names]
                listed = f"{idx[0]} to {idx[-1]}" + "".join(f" ({n} among them)" for n in named_rows)
            else:
                listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            where = (f", all {how_} {nouns[len(idx) > 1]} {listed}" + (f" of axis {ax}" if len(shape) > 2 else ""))
    failing = (bad & region).ravel()
    if not np.isfinite(g[failing]).all():
        return where
    keep = region.ravel() & np.isfinite(tol) & np.isfinite(g) & np.isfinite(ref)
    rr = float(np.dot(ref[keep], ref[keep])) if keep.any() else 0.0
    if not (rr > 0 and np.isfinite(rr)):
        return where
    c = float(np.dot(g[keep], ref[keep])) / rr
    fits = np.abs(g - c * ref)
    if not (c != 1 and np.isfinite(c) and np.all(fits[keep] <= 2 * max(1.0, abs(c)) * tol[keep])
            and np.all(fits[failing] <= np.abs(g - ref)[failing] / 4)):
        return where
    there = " there" if where else ""
    if np.all(g[keep] == 0):
        return where + f", each 0{there} (a term missing?)"
    if int(keep.sum()) < 2 and not any(f != 0 and abs(c - f) <= 1e-3 * abs(f) for f in (-1.0, *scale_names)):
        return where                                   # one entry: c is its ratio, no pattern
    c_str = _factor(c)
    k = round(1 / c) if 1e-6 < abs(c) < 1 else 0
    if abs(k) >= 3 and abs(1 / c - k) <= 1e-3 * abs(k) and abs(float(c_str) * k - 1) > 1e-9:   # 1/6, not 0.1667 (0.25 stays)
        c_str = f"{'-' if k < 0 else ''}1/{abs(k)}"
    named = {-1.0: "the sign flipped", **scale_names}
    hint = next((name for factor, name in named.items() if factor != 0 and abs(c - factor) <= 1e-3 * abs(factor)), "")
    return where + f", each {c_str} times {r.oracle}'s{there}" + (f" ({hint})" if hint else "")
