"""The whole tree passes ruff (configured in pyproject.toml), so a lint failure fails the suite and CI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import IN_CI

REPO = Path(__file__).resolve().parent.parent


def _ruff() -> list[str] | None:
    beside = Path(sys.executable).parent / "ruff"  # the venv's own, installed by tests/requirements.txt
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("ruff")
    return [found] if found else None


def test_ruff_is_clean():
    ruff = _ruff()
    if ruff is None:
        if IN_CI:
            pytest.fail("ruff is not installed (pip install -r tests/requirements.txt)")
        pytest.skip("ruff is not installed (pip install -r tests/requirements.txt)")
    result = subprocess.run([*ruff, "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"ruff found problems:\n{result.stdout}{result.stderr}"
