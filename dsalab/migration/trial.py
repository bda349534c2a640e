"""Old import path of :mod:`dsalab.trial` (Trial now lives in a leaf module)."""

from __future__ import annotations

from dsalab.trial import (
    COMPLETIONS,
    DETECTORS,
    MAX_GUEST_BYTES,
    MAX_IO_TIMEOUT_MS,
    MAX_RATE_BYTES_PER_S,
    MAX_SEED,
    Trial,
)

__all__ = [
    "COMPLETIONS",
    "DETECTORS",
    "MAX_GUEST_BYTES",
    "MAX_IO_TIMEOUT_MS",
    "MAX_RATE_BYTES_PER_S",
    "MAX_SEED",
    "Trial",
]
