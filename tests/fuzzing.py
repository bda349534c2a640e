"""How many examples the hypothesis property tests (tests/test_fuzz_*.py) try: each file's default, or
``DSALAB_FUZZ_EXAMPLES`` for a longer hunt (e.g. ``DSALAB_FUZZ_EXAMPLES=2000 make test``)."""

from __future__ import annotations

import os


def examples(default: int) -> int:
    """Examples per property: ``DSALAB_FUZZ_EXAMPLES`` if set, else ``default``."""
    return int(os.environ.get("DSALAB_FUZZ_EXAMPLES", default))
