"""argparse types for the benchmark command lines.

Each refuses a bad value with one line naming what was expected (argparse prefixes the option
and exits with status 2) before any timing starts: a batch of 0 or 1e12, an unknown dtype or a
round time of NaN would otherwise fail in the middle of a run, after its first cells, with a
traceback and no JSON. argparse has no ranged or comma-separated types of its own.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from pathlib import Path


#: the largest batch the gradient benchmarks take: x alone is 0.6 GB in float64 at the post
#: network's 784 inputs
MAX_BATCH = 100_000


def path(text: str) -> Path:
    """A file path; an empty one is refused (Path('') is '.', which reads as the folder: a review)."""
    if not text:
        raise argparse.ArgumentTypeError("the path is empty")
    return Path(text)


def integer(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An int in [lo, hi] (no upper limit when ``hi`` is None)."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None
        if n < lo or (hi is not None and n > hi):
            allowed = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be {allowed}; got {n}")
        return n

    parse.__name__ = "integer"   # argparse names the type in its "invalid ... value" message
    return parse


def seconds(hi: float, *, zero: bool = False) -> Callable[[str], float]:
    """A finite number of seconds in (0, hi], or [0, hi] with ``zero``."""
    interval = f"{'[' if zero else '('}0, {hi:g}]"

    def parse(text: str) -> float:
        try:
            t = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of seconds; got {text!r}") from None
        if not (math.isfinite(t) and (0 <= t if zero else 0 < t) and t <= hi):
            raise argparse.ArgumentTypeError(f"must be a number of seconds in {interval}; got {text}")
        return t

    parse.__name__ = "seconds"
    return parse


def _items(text: str, allow_empty: bool) -> list[str]:
    items = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))   # in order, once each
    if not items and not allow_empty:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of at least one value; got {text!r}")
    return items


def integers(lo: int, hi: int, *, allow_empty: bool = False) -> Callable[[str], list[int]]:
    """Comma-separated ints, each in [lo, hi]; a repeated value counts once."""
    one = integer(lo, hi)

    def parse(text: str) -> list[int]:
        return list(dict.fromkeys(one(t) for t in _items(text, allow_empty)))

    parse.__name__ = "list of integers"
    return parse


def names(choices: Iterable[str], *, allow_empty: bool = False) -> Callable[[str], list[str]]:
    """Comma-separated names, each one of ``choices``; a repeated name counts once."""
    choices = list(choices)

    def parse(text: str) -> list[str]:
        items = _items(text, allow_empty)
        unknown = [t for t in items if t not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; choose from {', '.join(choices)}")
        return items

    parse.__name__ = "list of names"
    return parse
