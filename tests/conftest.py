"""Hypothesis profiles and JAX settings for the test suite.

Profiles (choose with HYPOTHESIS_PROFILE=thorough or ``pytest --hypothesis-profile thorough``):

* ``ci`` (default): few examples per property, derandomized so CI is reproducible.
* ``thorough``: 20x the examples, random seeds; about an hour on 2 cores (58 min at 7b236e8, docs/testing.md).

Property tests scale their example counts from the active profile with ``examples(n)``.
"""

import os
import signal

# Compile JAX at the lowest backend optimisation level: each new shape the tests draw is a
# new compilation, and -O0 halves its cost. Numerics are unchanged (no fast-math either way).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
# Warnings are errors in the suite (pyproject's filterwarnings) and in every process a test
# starts: the command lines and scripts run as subprocesses inherit this.
os.environ["PYTHONWARNINGS"] = "error"

from hypothesis import HealthCheck, settings  # noqa: E402

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=10, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=200, print_blob=True, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


import pytest  # noqa: E402

from support import release_jax_executables  # noqa: E402


@pytest.fixture(autouse=True)
def _release_jax_executables():
    """Drop JAX's compiled executables after each test (support.release_jax_executables)."""
    yield
    release_jax_executables()


_FOREGROUND = {"SIGINT": signal.default_int_handler, "SIGTERM": signal.SIG_DFL, "SIGHUP": signal.SIG_DFL}


@pytest.fixture(autouse=True)
def _signals_as_in_the_foreground(request):
    """Each test sees the signal handlers of a Python started in the foreground. A shell starts a
    background job (``pytest &``) with SIGINT ignored, nohup ignores SIGHUP, and the command lines
    rightly leave an ignored signal ignored: the tests that send signals would then fail. SIGINT
    for every test (a background job gets no Ctrl-C from its terminal); SIGTERM and SIGHUP only
    for the tests marked ``signals``, which send them: for the whole run, nohup would no longer
    keep a closing terminal from killing it (a review)."""
    names = ("SIGINT", "SIGTERM", "SIGHUP") if request.node.get_closest_marker("signals") else ("SIGINT",)
    ignored = {}
    for name in names:
        s = getattr(signal, name, None)
        if s is not None and signal.getsignal(s) == signal.SIG_IGN:
            ignored[s] = signal.signal(s, _FOREGROUND[name])
    yield
    for s, previous in ignored.items():
        signal.signal(s, previous)
