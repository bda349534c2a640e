"""The kernel benchmark: zero-page kernels vs the memory-read bandwidth reference, measured side by side.

Cases on a page-aligned buffer (default 1 GiB in ``benchmarks/bench_kernels.py``): all pages zero; 50% zero pages
at random positions (the rest random bytes); 50% of pages zero but their last byte (every byte must be read); and
a cache-hot 1 MiB buffer of zero pages. Every kernel runs at each thread count next to a native loop that ORs the
whole buffer without early exit (the reference). :func:`run` measures, :func:`verdicts` checks the targets,
:func:`format_table` lays the rows out; ``benchmarks/bench_kernels.py`` is the command line over them and
:func:`dsalab.explore.kernel_benchmark` the notebook's entry point. Numbers are measured, never asserted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from dsalab import benchmarking, kernels
from dsalab.buffers import check_threads
from dsalab.errors import InvalidArgument

#: page size of every case, bytes
PAGE = 4096
#: the cases, in the order they are measured and reported
CASES = ("all-zero", "half-random", "half-last-byte", "hot-1MiB")
#: bytes of the cache-hot case
HOT_BYTES = 1 << 20
#: the hot case repeats inside each sample until one sample has read this many bytes (well above timer noise)
MIN_SAMPLE_BYTES = 64 << 20
#: most timed repeats per point
MAX_REPEATS = 1000
#: the table :func:`format_table` prints: (row key, heading, format spec)
COLUMNS = (
    ("case", "case", "s"),
    ("kernel", "kernel", "s"),
    ("threads", "threads", "d"),
    ("gbps", "GB/s", ".1f"),
    ("ratio_ref", "x reference", ".2f"),
    ("ratio_numpy", "x numpy", ".2f"),
)


def make_cases(size: int, seed: int) -> dict[str, np.ndarray]:
    """The four buffers (see the module docstring): ``size`` bytes each but the hot one; ``seed`` places pages."""
    rng = np.random.default_rng(seed)
    npages = size // PAGE
    zero = benchmarking.aligned_buffer(size)
    half_random = benchmarking.aligned_buffer(size)
    nz = rng.choice(npages, npages // 2, replace=False)
    pages = half_random.reshape(npages, PAGE)
    pages[nz] = rng.integers(1, 256, size=(nz.size, PAGE), dtype=np.uint8)
    last_byte = benchmarking.aligned_buffer(size)
    last_byte.reshape(npages, PAGE)[rng.choice(npages, npages // 2, replace=False), PAGE - 1] = 1
    hot = benchmarking.aligned_buffer(HOT_BYTES)
    return dict(zip(CASES, (zero, half_random, last_byte, hot), strict=True))


def _timed(fn: Callable[[], object], inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return time.perf_counter() - t0


def check_args(size: int, repeats: int, threads: Sequence[int]) -> list[int]:
    """Refuse what :func:`run` cannot measure: ``size`` must be a positive multiple of 2 pages (bytes), ``repeats``
    an int from 1 to :data:`MAX_REPEATS`, ``threads`` a non-empty list of thread counts. Returns the counts."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 2 * PAGE or size % PAGE:
        raise InvalidArgument(f"size={size!r} is not allowed: allowed is a multiple of {PAGE} bytes >= {2 * PAGE}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise InvalidArgument(f"repeats={repeats!r} is not allowed: allowed is an int from 1 to {MAX_REPEATS}")
    counts = [check_threads(t) for t in threads]
    if not counts:
        raise InvalidArgument("threads=[] is not allowed: allowed is a non-empty list of thread counts")
    return list(dict.fromkeys(counts))


def run(size: int, repeats: int, threads: Sequence[int], seed: int) -> list[dict]:
    """Time every kernel beside the reference on buffers of ``size`` bytes, ``repeats`` times, at each count of
    ``threads``; rows of case, kernel, threads, gbps (GB/s, median), ratio_ref, ratio_numpy, seconds (every
    repeat), inner (calls per sample), bytes.

    Interleaved: each repeat runs the reference and then every kernel, so ratios compare neighbours in time (this
    machine is shared and noisy). Ratios are medians of the per-repeat ratios. NumPy has no threads: it runs once
    per repeat, at 1 thread, and is the "x numpy" base. Each kernel is checked against NumPy first (a warm-up
    that also compiles numba)."""
    threads = check_args(size, repeats, threads)
    cases = make_cases(size, seed)
    results = []
    for case, buf in cases.items():
        expected = kernels.find_zero_pages(buf, PAGE, kernel="numpy")
        inner = max(1, MIN_SAMPLE_BYTES // buf.nbytes)
        points = [("reference", t) for t in threads] + [("numpy", 1)]
        points += [(k, t) for k in kernels.KERNELS if k != "numpy" for t in threads]
        calls = {}
        for k, t in points:
            if k == "reference":
                calls[(k, t)] = lambda b=buf, t=t: kernels.bandwidth_reference(b, t)
            else:
                got = kernels.find_zero_pages(buf, PAGE, kernel=k, threads=t)  # warm-up (numba compiles)
                if not np.array_equal(got, expected):
                    raise AssertionError(f"kernel {k} at {t} threads disagrees with numpy on case {case}")
                calls[(k, t)] = lambda b=buf, k=k, t=t: kernels.find_zero_pages(b, PAGE, kernel=k, threads=t)
        samples: dict[tuple[str, int], list[float]] = {p: [] for p in points}
        for _ in range(repeats):
            for p in points:
                samples[p].append(_timed(calls[p], inner))
        for k, t in points:
            secs = samples[(k, t)]
            ref = samples[("reference", t)]
            base = samples[("numpy", 1)]
            results.append(
                {
                    "case": case,
                    "kernel": k,
                    "threads": t,
                    "gbps": buf.nbytes * inner / statistics.median(secs) / 1e9,
                    "ratio_ref": statistics.median(r / s for r, s in zip(ref, secs, strict=True)),
                    "ratio_numpy": statistics.median(b / s for b, s in zip(base, secs, strict=True)),
                    "seconds": secs,
                    "inner": inner,
                    "bytes": buf.nbytes,
                }
            )
    return results


def verdicts(results: Sequence[dict], threads: Sequence[int]) -> list[str]:
    """The issue's targets, checked on this run's numbers: one line per case and thread count."""
    by = {(r["case"], r["kernel"], r["threads"]): r for r in results}
    lines = []
    for case in CASES:
        for t in threads:
            best = max((by[(case, k, t)] for k in kernels.KERNELS if k != "numpy"), key=lambda r: r["ratio_ref"])
            target = 0.8 if case == "hot-1MiB" else 0.95
            ok_ref = best["ratio_ref"] >= target
            ok_np = case == "hot-1MiB" or best["ratio_numpy"] >= 1.5
            lines.append(
                f"{case:15s} threads={t}: best {best['kernel']:6s} {best['ratio_ref']:.2f}x reference "
                f"(target {target}) {'ok' if ok_ref else 'MISSED'}, {best['ratio_numpy']:.2f}x numpy"
                + ("" if case == "hot-1MiB" else f" (target 1.5) {'ok' if ok_np else 'MISSED'}")
            )
    return lines


def format_table(results: Sequence[dict]) -> str:
    """The rows as the plain text table the benchmark prints (:data:`COLUMNS`)."""
    return benchmarking.table(results, COLUMNS)
