"""The multifd migration engine: guest memory over real TCP on 127.0.0.1, zero pages found by CPU or DSA.

>>> from dsalab.migration import Trial, run_trial
>>> result = run_trial(Trial(guest_bytes="64MiB", normal_ratio=0.5, channels=2, detector="cpu-native"))
>>> result.verified
True
"""

from __future__ import annotations

from dsalab.migration.engine import Fault, connect_channels, run_trial
from dsalab.migration.guest import GuestMemory
from dsalab.migration.result import TrialResult
from dsalab.migration.trial import COMPLETIONS, DETECTORS, Trial

__all__ = [
    "COMPLETIONS",
    "DETECTORS",
    "Fault",
    "GuestMemory",
    "Trial",
    "TrialResult",
    "connect_channels",
    "run_trial",
]
