"""Stress of the offload layer (issue 9): many submitter threads, faulty devices, and close() racing the last calls.

16 submitter threads answer 10^6 pages in total (zero checks and page compares, synchronous calls and futures,
requests of 1 to 512 pages) through one Offloader over 2 emulated devices: a small shared queue with random page
faults and injected "queue full" refusals, and a small dedicated queue that also faults and vanishes part way
through (vanish_after). When 95% of the pages are answered, another thread calls close() while the submitters
keep calling. Every page must be answered exactly once: by the Offloader (checked equal to the CPU kernels of
dsalab.kernels), or, for a call refused because the Offloader was closed (a DsalabError saying so), by the CPU
kernels directly. Any other exception, a wrong answer, a lost or doubly counted page, or a crash fails the run.
Prints the counts as a table and writes data/bench/stress_offload.json.

How to run (about a minute on 2 cores):  python benchmarks/stress_offload.py [--pages 1000000] [--threads 16]
A small variant runs in the test suite (tests/test_offload_lifetime.py::test_stress_small).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import threading
import time
from typing import Any

import numpy as np

from dsalab import benchmarking, kernels
from dsalab.devices import open_device
from dsalab.errors import DsalabError
from dsalab.offload import Offloader

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = 4096
#: the two devices: faults and full queues on both, the second one vanishes after `vanish_after` descriptors
SHARED = "emu:gbps=5,engines=2,wq_size=16,mode=shared,fault_rate=0.02,queue_full_rate=0.05,seed={seed}"
DEDICATED = "emu:gbps=5,engines=2,wq_size=16,mode=dedicated,fault_rate=0.02,vanish_after={vanish},seed={seed}"


class Submitter(threading.Thread):
    """One submitter: answers `quota` pages, request after request, and counts how each page was answered."""

    def __init__(self, off: Offloader, index: int, quota: int, seed: int, window_pages: int, progress: list) -> None:
        super().__init__(name=f"stress_submit_{index}")
        self.off, self.index, self.quota, self.progress = off, index, quota, progress
        self.rng = np.random.default_rng(seed)
        n = window_pages
        self.a = np.zeros(n * PAGE, np.uint8)
        nonzero = np.flatnonzero(self.rng.random(n) < 0.5)
        self.a[nonzero * PAGE + self.rng.integers(0, PAGE, nonzero.size)] = self.rng.integers(1, 256, nonzero.size)
        self.b = self.a.copy()
        differ = np.flatnonzero(self.rng.random(n) < 0.3)
        self.b[differ * PAGE + self.rng.integers(0, PAGE, differ.size)] ^= 0x5A
        self.want_zero = kernels.find_zero_pages(self.a)
        self.want_equal = kernels.compare_pages(self.a, self.b)
        self.by_offloader = self.by_cpu_after_close = self.requests = self.refused = 0
        self.wrong: list[str] = []
        self.unexpected: list[str] = []

    def run(self) -> None:
        done = 0
        while done < self.quota:
            k = int(min(self.quota - done, self.rng.integers(1, 513), self.a.size // PAGE))
            start = int(self.rng.integers(0, self.a.size // PAGE - k + 1))
            sl = slice(start * PAGE, (start + k) * PAGE)
            kind = int(self.rng.integers(0, 4))
            compare = kind in (1, 3)
            want = (self.want_equal if compare else self.want_zero)[start : start + k]
            self.requests += 1
            try:
                if kind == 0:
                    got = self.off.find_zero_pages(self.a[sl])
                elif kind == 1:
                    got = self.off.compare_pages(self.a[sl], self.b[sl])
                elif kind == 2:
                    got = self.off.submit_zero_check(self.a[sl]).result(timeout=300)
                else:
                    got = self.off.compare(self.a[sl], self.b[sl]).result(timeout=300)
                self.by_offloader += k
            except DsalabError as exc:
                if "closed" not in str(exc):
                    self.unexpected.append(f"{type(exc).__name__}: {exc}")
                    return
                self.refused += 1  # refused cleanly: the CPU kernels answer these pages instead
                got = kernels.compare_pages(self.a[sl], self.b[sl]) if compare else kernels.find_zero_pages(self.a[sl])
                self.by_cpu_after_close += k
            except BaseException as exc:  # any other type is a failure, reported by the caller
                self.unexpected.append(f"{type(exc).__name__}: {exc}")
                return
            if not np.array_equal(got, want):
                self.wrong.append(f"thread {self.index}: pages {start}..{start + k} differ from the CPU's answer")
            done += k
            self.progress[self.index] = done


def run(pages: int = 10**6, threads: int = 16, seed: int = 0, window_pages: int = 1024) -> dict[str, Any]:
    """Run the stress; returns the counts and ``ok`` (every check held). ``pages`` in total over ``threads``."""
    vanish = max(2, pages // 64 // 4)  # descriptors: the dedicated queue vanishes roughly a quarter of the way
    dev_a = open_device(SHARED.format(seed=seed + 1))
    dev_b = open_device(DEDICATED.format(seed=seed + 2, vanish=vanish))
    off = Offloader([dev_a, dev_b], batch_size=64, workers=4, max_retries=8, timeout_ms=5000)
    quotas = [pages // threads + (i < pages % threads) for i in range(threads)]
    progress = [0] * threads
    subs = [Submitter(off, i, q, seed * 1000 + i, window_pages, progress) for i, q in enumerate(quotas)]
    t0 = time.perf_counter()
    for s in subs:
        s.start()
    closer_error: list[str] = []

    def closer() -> None:
        while sum(progress) < 0.95 * pages and any(s.is_alive() for s in subs):
            time.sleep(0.001)
        try:
            off.close()  # races the last calls of every submitter
        except BaseException as exc:  # reported below
            closer_error.append(f"{type(exc).__name__}: {exc}")

    ct = threading.Thread(target=closer, name="stress_close")
    ct.start()
    for s in [*subs, ct]:
        s.join(600)
    hung = [s.name for s in [*subs, ct] if s.is_alive()]
    elapsed = time.perf_counter() - t0
    stats = off.stats()  # the counters at close
    dev_b_gone = bool(stats["devices"][1]["gone"])
    dev_a.close()
    dev_b.close()
    by_off = sum(s.by_offloader for s in subs)
    by_cpu = sum(s.by_cpu_after_close for s in subs)
    out = {
        "pages": pages,
        "threads": threads,
        "requests": sum(s.requests for s in subs),
        "answered_by_offloader": by_off,
        "answered_by_cpu_after_close": by_cpu,
        "refused_calls_after_close": sum(s.refused for s in subs),
        "offloader_pages": stats["pages"],
        "pages_offloaded": stats["pages_offloaded"],
        **{f"cpu_{r}": n for r, n in stats["pages_cpu_by_reason"].items()},
        "page_faults": stats["page_faults"],
        "queue_full_retries": stats["retries"],
        "timeouts": stats["timeouts"],
        "stalls": stats["stalls"],
        "device_vanished": dev_b_gone,
        "wrong_answers": sum(len(s.wrong) for s in subs),
        "unexpected_errors": sum(len(s.unexpected) for s in subs) + len(closer_error),
        "hung_threads": len(hung),
        "seconds": round(elapsed, 2),
    }
    problems = [e for s in subs for e in s.wrong + s.unexpected] + closer_error + [f"hung: {h}" for h in hung]
    if by_off + by_cpu != pages:
        problems.append(f"{by_off} + {by_cpu} pages answered, expected {pages}")
    if stats["pages"] != by_off:
        problems.append(f"the Offloader counted {stats['pages']} pages but answered {by_off}")
    if stats["pages_offloaded"] + stats["pages_cpu"] != stats["pages"]:
        problems.append("offloaded + CPU pages != pages: a page answered twice or not at all")
    if stats["stalls"]:
        problems.append(f"{stats['stalls']} missed wake-ups")
    out["problems"] = problems[:20]
    out["ok"] = not problems
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=10**6, help="pages answered in total")
    ap.add_argument("--threads", type=int, default=16, help="submitter threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "data/bench/stress_offload.json")
    args = ap.parse_args(argv)
    if args.pages < args.threads or args.threads < 1:
        ap.error("--pages must be at least --threads, and --threads at least 1")
    res = run(args.pages, args.threads, args.seed)
    rows = [{"count": k, "value": str(v)} for k, v in res.items() if k not in ("problems", "ok")]
    print(benchmarking.table(rows, [("count", "count", "s"), ("value", "value", "s")]))
    for p in res["problems"]:
        print("PROBLEM:", p)
    print("ok: every page answered exactly once, equal to the CPU's answer" if res["ok"] else "FAILED")
    path = benchmarking.write_json(args.out, "stress_offload", vars(args) | {"out": str(args.out)}, res)
    print(f"wrote {path}")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
