"""Helpers shared by the scripts in ``benchmarks/``: timing with warm-ups and repeats, page-aligned buffers,
and JSON output with machine metadata. Numbers are measured, never asserted: the scripts print and record."""

from __future__ import annotations

import dataclasses
import json
import mmap
import pathlib
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from dsalab import machine
from dsalab.errors import InvalidArgument

#: version of the benchmark JSON layout; changes:
#: 1 - first version: {"benchmark", "schema", "machine", "parameters", "results": [...]}
BENCH_SCHEMA = 1


@dataclasses.dataclass
class Timing:
    """Wall-clock seconds of every repeat (warm-ups excluded) and their median."""

    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def time_call(fn: Callable[[], object], *, repeats: int = 5, warmups: int = 1) -> Timing:
    """Run ``fn`` ``warmups`` times (discarded: the first numba call compiles), then ``repeats`` times."""
    for _ in range(warmups):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return Timing(out)


def aligned_buffer(nbytes: int) -> np.ndarray:
    """A page-aligned anonymous mapping of ``nbytes`` as a uint8 array, every page written (so it is backed
    by its own memory, not the shared zero page)."""
    m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    arr = np.frombuffer(m, dtype=np.uint8)
    arr.fill(0)
    return arr


def write_json(path: pathlib.Path, benchmark: str, parameters: dict, results: Sequence[dict] | dict) -> pathlib.Path:
    """Write results with machine metadata (schema :data:`BENCH_SCHEMA`); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": benchmark,
        "schema": BENCH_SCHEMA,
        "machine": machine.info(),
        "parameters": parameters,
        "results": results if isinstance(results, dict) else list(results),
    }
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    return path


def read_json(path: str | pathlib.Path, benchmark: str) -> dict:
    """A benchmark JSON file that :func:`write_json` wrote for ``benchmark``: the whole document (``results``,
    ``parameters``, ``machine``, ...). A missing file raises ``FileNotFoundError``; a file that is not JSON, of
    another benchmark or of another schema raises :class:`~dsalab.errors.InvalidArgument` naming it."""
    path = pathlib.Path(path)
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"{path} is not a benchmark JSON file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("benchmark") != benchmark or not isinstance(doc.get("results"), list):
        found = doc.get("benchmark") if isinstance(doc, dict) else type(doc).__name__
        raise InvalidArgument(
            f"{path} is not a {benchmark!r} benchmark result: its benchmark is {found!r}; allowed is a file "
            f"written by benchmarks/bench_{benchmark}.py"
        )
    if doc.get("schema") != BENCH_SCHEMA:
        raise InvalidArgument(
            f"{path} has benchmark schema {doc.get('schema')!r}; allowed is schema {BENCH_SCHEMA} (run it again)"
        )
    return doc


def table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """A plain text table: ``columns`` are (key, heading, format spec)."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append([format(r[k], f) if r.get(k) is not None else "-" for k, _, f in columns])
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c[i].rjust(widths[i]) for i in range(len(columns))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
