"""README's code runs as written: every ```python block, in a fresh interpreter from the
repository root, and the checker's example prints what README says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def _section(title: str) -> str:
    return README.split(title, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def test_readme_has_the_blocks_it_promises():
    assert len(BLOCKS) >= 3
    assert "```python" in _section("### Check your own gradient") and "```python" in _section("### Layers")


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(code):
    run = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, cwd=REPO,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    if "def batchnorm" in code:  # the checker's first example: a pass, then the bug caught and located
        assert "vjp: PASS" in run.stdout and "vjp: FAIL" in run.stdout and "primal 0 [" in run.stdout
