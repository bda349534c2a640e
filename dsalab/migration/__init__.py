"""The multifd migration engine: guest memory over real TCP on 127.0.0.1, zero pages found by CPU or DSA.

>>> from dsalab.migration import Trial, run_trial
>>> result = run_trial(Trial(guest_bytes="64MiB", normal_ratio=0.5, channels=2, detector="cpu-native"))
>>> result.verified
True

The engine, guest memory and detectors load on first use (PEP 562), so importing a light submodule
(``dsalab.migration.accounting``) or the vocabulary re-exported here (``Trial``, ``TrialResult``) never loads the
compiled module or numba.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dsalab.result import TrialResult
from dsalab.trial import COMPLETIONS, DETECTORS, Trial

if TYPE_CHECKING:
    from dsalab.migration.engine import Fault, connect_channels, run_trial
    from dsalab.migration.guest import GuestMemory

#: name -> the submodule that defines it, imported on first access
_LAZY = {
    "Fault": "dsalab.migration.engine",
    "connect_channels": "dsalab.migration.engine",
    "run_trial": "dsalab.migration.engine",
    "GuestMemory": "dsalab.migration.guest",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dsalab.migration' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


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
