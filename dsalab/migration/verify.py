"""The destination against the source, byte for byte, after a migration."""

from __future__ import annotations

import numpy as np

from dsalab import kernels
from dsalab.errors import MigrationError
from dsalab.result import TrialResult


def count_mismatched(src: np.ndarray, dst: np.ndarray, page_size: int) -> int:
    """Pages of ``dst`` that differ from ``src`` (uint8 arrays of the same length, whole pages of ``page_size``
    bytes), compared with the native kernel."""
    return int((~kernels.compare_pages(src, dst, page_size, kernel="native")).sum())


def require_verified(result: TrialResult) -> TrialResult:
    """``result`` when its destination equalled its source; else :class:`~dsalab.errors.MigrationError` naming
    how many pages differ, the backend and the channels."""
    if not result.verified:
        npages = result.total_bytes // result.trial.page_size
        raise MigrationError(
            f"destination differs from the source in {result.mismatched_pages} of {npages} pages after migration "
            f"({result.backend}, {result.trial.channels} channels)"
        )
    return result
