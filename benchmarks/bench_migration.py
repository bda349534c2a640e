"""The migration engine with each CPU zero-page detector, side by side on the same guest.

Default: a 4 GiB guest, 50% normal pages, 2 channels, CPU zero-page detection (the numba baseline and the native
kernel), repeat by repeat after one discarded warm-up of each. Prints total time, guest GB/s, wire throughput, host
CPU per thread, and the engine's per-packet overhead outside detection and sending; writes
data/bench/migration.json. The comparison with a real QEMU, configured like for like, is
``benchmarks/bench_engine_vs_qemu.py``.

    python benchmarks/bench_migration.py [--guest 4GiB] [--repeats 3] [--channels 2]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics

from dsalab import benchmarking
from dsalab.migration import GuestMemory, Trial, run_trial
from dsalab.units import parse_bytes

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _row(kind: str, repeat: int, guest_bytes: int, r) -> dict:
    return {
        "kind": kind,
        "repeat": repeat,
        "total_time_ms": r.total_time_ms,
        "guest_gbps": guest_bytes / (r.total_time_ms / 1e3) / 1e9,
        "throughput_mbps": r.throughput_mbps,
        "transferred_bytes": r.transferred_bytes,
        "host_cpu_ms": r.host_cpu_ms,
        "destination_cpu_ms": r.destination_cpu_ms,
        "thread_cpu_ms": r.thread_cpu_ms,
        "packet_overhead_fraction": getattr(r, "packet_overhead_fraction", None),
        "verified": r.verified,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guest", default="4GiB", help="guest RAM")
    ap.add_argument("--normal-ratio", type=float, default=0.5)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--detectors", nargs="+", default=["cpu-numba", "cpu-native"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "data/bench/migration.json")
    args = ap.parse_args(argv)
    guest_bytes = parse_bytes(args.guest)
    guest = GuestMemory(guest_bytes, normal_ratio=args.normal_ratio, seed=args.seed)
    trials = {
        d: Trial(
            guest_bytes=guest_bytes, normal_ratio=args.normal_ratio, channels=args.channels, detector=d, seed=args.seed
        )
        for d in args.detectors
    }
    for t in trials.values():
        run_trial(t, guest=guest)  # warm-up (numba compiles, memory gets backed), discarded
    rows = []
    for rep in range(args.repeats):
        for d, t in trials.items():
            rows.append(_row(d, rep, guest_bytes, run_trial(t, guest=guest)))
            print(f"repeat {rep}: {d} {rows[-1]['total_time_ms']:.0f} ms", flush=True)
    kinds = list(trials)
    summary = []
    for k in kinds:
        rs = [r for r in rows if r["kind"] == k]
        med = {
            key: statistics.median(r[key] for r in rs)
            for key in ("total_time_ms", "guest_gbps", "throughput_mbps", "host_cpu_ms", "destination_cpu_ms")
        }
        threads = sorted({n for r in rs for n in r["thread_cpu_ms"]})
        med["threads"] = {n: statistics.median(r["thread_cpu_ms"].get(n, 0.0) for r in rs) for n in threads}
        ovh = [r["packet_overhead_fraction"] for r in rs if r["packet_overhead_fraction"] is not None]
        med["packet_overhead_fraction"] = statistics.median(ovh) if ovh else None
        summary.append({"kind": k, "verified": all(r["verified"] for r in rs)} | med)
    print(
        benchmarking.table(
            summary,
            [
                ("kind", "run", "s"),
                ("total_time_ms", "total ms", ".0f"),
                ("guest_gbps", "guest GB/s", ".2f"),
                ("throughput_mbps", "wire Mbps", ".0f"),
                ("host_cpu_ms", "host CPU ms", ".0f"),
                ("destination_cpu_ms", "dest CPU ms", ".0f"),
                ("packet_overhead_fraction", "pkt overhead", ".3f"),
            ],
        )
    )
    for s in summary:
        print(f"{s['kind']:10s} " + "  ".join(f"{n} {v:.0f}" for n, v in s["threads"].items()))
    params = vars(args) | {"out": str(args.out), "guest_bytes": guest_bytes}
    path = benchmarking.write_json(args.out, "migration", params, {"runs": rows, "summary": summary})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
