"""Regression tests for the review of the general checker (findings F1-F8, F11): each test
fails on the checker before its fix. Warnings are errors here (pytest filterwarnings=error)."""

from __future__ import annotations

import numpy as np
import pytest

import autodiff_check as ac
from autodiff_check.check import OracleResult, Verdict


# ---------------------------------------------------------------- F8: warnings escape


def test_noise_estimate_silences_warnings_near_a_domain_edge():
    """f = sum x log x at x = 1e-13 is finite at x and NaN a step to the left: ECNoise samples
    there and used to let 'invalid value in log' escape (an error under -W error)."""
    x = np.full(4, 1e-13)
    ac.check_gradients(lambda x: float(np.sum(x * np.log(x))), lambda x: np.log(x) + 1, x, analytic=False)


def test_report_formats_non_finite_and_zero_tolerances_without_warnings():
    r = OracleResult("o", False, np.inf, 0.0, values=np.array([1.0, 0.0, np.inf]),
                     references=np.array([0.0, 0.0, np.inf]), tolerances=np.array([0.5, 0.0, 0.0]), n_failed=2)
    v = Verdict("g", [r], inputs=[("params", (3,), 0, 3)])
    text = v.report(full=True)
    assert "FAIL" in text and "params" in text
