"""The numba kernels' Python bodies (NUMBA_DISABLE_JIT=1) give the same answers: coverage can see them."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = r"""
import numpy as np
from dsalab import kernels
rng = np.random.default_rng(0)
for ps in (64, 256, 4096):
    buf = np.zeros(6 * ps, dtype=np.uint8)
    buf[ps + rng.integers(0, ps)] = 1
    buf[-1] = 1
    want = [True, False, True, True, True, False]
    assert kernels.find_zero_pages(buf, ps, kernel="numba", threads=2).tolist() == want
    other = buf.copy(); other[3] = 7
    assert kernels.compare_pages(buf, other, ps, kernel="numba").tolist() == [False] + [True] * 5
assert kernels.is_zero(bytes(13), kernel="numba") and not kernels.is_zero(b"\0" * 12 + b"\1", kernel="numba")
import numba
assert numba.config.DISABLE_JIT
print("ok")
"""


def test_kernels_with_jit_disabled():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
