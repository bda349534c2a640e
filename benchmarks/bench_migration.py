"""The migration engine against a real QEMU multifd migration of the same guest, side by side in one run.

Default: a 4 GiB guest, 50% normal pages, 2 channels, CPU zero-page detection (the numba baseline and the native
kernel). The same guest memory (a memfd) is migrated by the engine and by two QEMU processes (>= 9.0,
``zero-page-detection=multifd``, KVM when /dev/kvm is usable), repeat by repeat after one discarded warm-up of
each. Prints total time, guest GB/s, wire throughput, host CPU per thread, and the engine's per-packet overhead
outside detection and sending; writes data/bench/migration.json.

    python benchmarks/bench_migration.py [--guest 4GiB] [--repeats 3] [--channels 2] [--no-qemu]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics

from dsalab import benchmarking, qemu
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
    ap.add_argument("--no-qemu", action="store_true", help="skip the QEMU comparison")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "data/bench/migration.json")
    args = ap.parse_args(argv)
    guest_bytes = parse_bytes(args.guest)
    guest = GuestMemory(guest_bytes, normal_ratio=args.normal_ratio, seed=args.seed, shared=True)
    trials = {
        d: Trial(
            guest_bytes=guest_bytes, normal_ratio=args.normal_ratio, channels=args.channels, detector=d, seed=args.seed
        )
        for d in args.detectors
    }
    use_qemu = not args.no_qemu
    qemu_note = ""
    if use_qemu:
        try:
            qemu.run_qemu_migration(guest, channels=args.channels)  # warm-up, discarded
        except qemu.QemuUnavailable as exc:
            use_qemu, qemu_note = False, str(exc)
    for t in trials.values():
        run_trial(t, guest=guest)  # warm-up (numba compiles, memory gets backed), discarded
    rows = []
    for rep in range(args.repeats):
        for d, t in trials.items():
            rows.append(_row(d, rep, guest_bytes, run_trial(t, guest=guest)))
            print(f"repeat {rep}: {d} {rows[-1]['total_time_ms']:.0f} ms", flush=True)
        if use_qemu:
            q = qemu.run_qemu_migration(guest, channels=args.channels)
            rows.append(_row("qemu", rep, guest_bytes, q) | {"qemu_version": q.qemu_version, "accel": q.accel})
            print(f"repeat {rep}: qemu {rows[-1]['total_time_ms']:.0f} ms", flush=True)
    kinds = list(trials) + (["qemu"] if use_qemu else [])
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
        if use_qemu and k != "qemu":
            qs = [r for r in rows if r["kind"] == "qemu"]
            med["x_qemu_speed"] = statistics.median(
                a["guest_gbps"] / b["guest_gbps"] for a, b in zip(rs, qs, strict=True)
            )
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
                ("x_qemu_speed", "x QEMU speed", ".2f"),
            ],
        )
    )
    for s in summary:
        print(f"{s['kind']:10s} " + "  ".join(f"{n} {v:.0f}" for n, v in s["threads"].items()))
    if qemu_note:
        print(f"QEMU comparison skipped: {qemu_note}")
    params = vars(args) | {"out": str(args.out), "guest_bytes": guest_bytes, "qemu": use_qemu, "qemu_note": qemu_note}
    path = benchmarking.write_json(args.out, "migration", params, {"runs": rows, "summary": summary})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
