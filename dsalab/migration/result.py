"""Old import path of :mod:`dsalab.result` (TrialResult now lives in a leaf module)."""

from __future__ import annotations

from dsalab.result import TrialResult
from dsalab.threads import split_threads

__all__ = ["TrialResult", "split_threads"]
