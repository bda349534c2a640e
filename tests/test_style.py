"""The code is ruff clean (lint and format), so style problems fail the suite, not a reviewer."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGETS = ["dsalab", "tests", "benchmarks", "native", "notebooks"]


def _ruff() -> list[str]:
    exe = pathlib.Path(sys.executable).parent / "ruff"
    if exe.exists():
        return [str(exe)]
    if shutil.which("ruff"):
        return ["ruff"]
    pytest.skip("ruff is not installed")


@pytest.mark.parametrize("mode", [["check"], ["format", "--check"]])
def test_ruff(mode):
    targets = [t for t in TARGETS if (ROOT / t).exists()]
    r = subprocess.run([*_ruff(), *mode, *targets], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
