"""The checker on a corpus of hand-written derivatives (benchmarks/checker_corpus.py): every
classic bug caught and localised to the input it breaks, no correct derivative flagged, no
exception, over sizes, seeds and dtypes drawn by hypothesis. Called the plain way: no options."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff_check as ac
from benchmarks.checker_corpus import CASES
from strategies import examples

PARAMS = [pytest.param(c, np.dtype(dt), id=f"{c.name}-{c.bug or 'correct'}-{np.dtype(dt).name}")
          for c in CASES for dt in c.dtypes]


def _check(case, fn, deriv, args):
    return ac.check_gradients(fn, deriv, args) if case.kind == "grad" else ac.check_vjp(fn, deriv, *args)


@pytest.mark.parametrize("case,dtype", PARAMS)
@settings(max_examples=examples(3))
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 4))
def test_corpus(case, dtype, seed, n):
    fn, deriv, args = case.build(np.random.default_rng(seed), case.min_n + n, dtype)
    verdict = _check(case, fn, deriv, args)
    if case.bug is None:
        assert verdict.passed, verdict.report(full=True)
        return
    assert not verdict.passed, f"{case.bug} missed:\n{verdict.report(full=True)}"
    named = verdict.mismatches
    assert named, f"{case.bug} caught but not localised:\n{verdict.report(full=True)}"
    for m in named:  # every entry named lies in an input the bug breaks
        assert any(m.where.startswith(w) for w in case.where), f"{m} is not in {case.where}"
    assert abs(named[0].value - named[0].reference) > named[0].tolerance  # both values and the tolerance shown
    assert named[0].where in str(verdict)


def test_every_classic_bug_of_the_issue_is_in_the_corpus():
    bugs = {c.bug for c in CASES if c.bug}
    for b in ("a sign", "a missing 1/B", "a transposed square matrix", "a missing term", "a wrong derivative",
              "a forgotten mask", "a forgotten regulariser", "a kernel not flipped", "only the diagonal of the Jacobian"):
        assert b in bugs
    assert {c.name for c in CASES if c.bug is None} >= {
        "rosen / rosen_der", "softmax cross-entropy", "affine layer", "batch norm (cs231n)", "relu net at its kink",
        "tanh net", "least squares near its optimum", "logistic regression + weight decay", "2,500-parameter tanh layer"}
