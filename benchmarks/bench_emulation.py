"""How much the emulated DSA distorts the engine's figures on this machine, and what the emulator's settings change.

The emulated device runs its engines on the host's cores, so on a machine with fewer cores than busy threads its
host-CPU and time figures are an upper bound (see dsalab.caveats). This runs the same trial (default: a 512 MiB
guest, normal ratio 0.5, 2 channels) with the CPU baseline and with the emulated device under each setting,
alternating setting by setting inside every repeat (after one discarded warm-up of each), and prints per setting:
host CPU and total time (mean ± sample std), their ratios to cpu-numba paired by repeat, the engines' CPU, busy
threads and cores. Writes data/bench/emulation.json.

Settings (``--settings``, each ``name=spec``; ``cpu-numba`` is the baseline): the default device ``emu``, engine
threads at idle scheduling priority ``emu:priority=idle`` (the host's threads first), at high priority
``emu:priority=high`` (nice -10, the device's work first; needs CAP_SYS_NICE), and one engine thread
``emu:engines=1`` (the timing model keeps one device clock whatever the engine count).

    python benchmarks/bench_emulation.py [--guest 512MiB] [--repeats 5] [--channels 2] [--normal-ratio 0.5]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics

from dsalab import benchmarking
from dsalab.migration import GuestMemory, Trial, run_trial
from dsalab.units import parse_bytes

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_SETTINGS = [
    "emu=emu",
    "idle=emu:priority=idle",
    "high=emu:priority=high",
    "one-engine=emu:engines=1",
]


def _trials(args, guest_bytes: int) -> dict[str, Trial]:
    base = Trial(
        guest_bytes=guest_bytes,
        normal_ratio=args.normal_ratio,
        channels=args.channels,
        packet_bytes=args.packet,
        seed=args.seed,
    )
    out = {"cpu-numba": base.replace(detector="cpu-numba")}
    for item in args.settings:
        name, _, spec = item.partition("=")
        out[name] = base.replace(detector="dsa-emulated", devices=(spec,))
    return out


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guest", default="512MiB", help="guest RAM")
    ap.add_argument("--normal-ratio", type=float, default=0.5)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--packet", default="512KiB")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--settings", nargs="+", default=DEFAULT_SETTINGS, help="name=emu-spec, e.g. idle=emu:priority=idle"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "data/bench/emulation.json")
    args = ap.parse_args(argv)
    if args.repeats < 2:
        ap.error("--repeats must be >= 2 (a standard deviation needs two)")
    guest_bytes = parse_bytes(args.guest)
    guest = GuestMemory(guest_bytes, normal_ratio=args.normal_ratio, seed=args.seed)
    trials = _trials(args, guest_bytes)
    for t in trials.values():
        run_trial(t, guest=guest)  # warm-up (numba compiles, memory gets backed), discarded
    rows = []
    names = list(trials)
    for rep in range(args.repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]  # rotate: no setting always runs first
        for name in order:
            r = run_trial(trials[name], guest=guest)
            rows.append(
                {
                    "setting": name,
                    "spec": ";".join(trials[name].device_specs) if name != "cpu-numba" else "",
                    "repeat": rep,
                    "host_cpu_ms": r.host_cpu_ms,
                    "total_time_ms": r.total_time_ms,
                    "device_cpu_ms": r.device_cpu_ms,
                    "busy_threads": r.busy_threads,
                    "cores": r.cores,
                    "pages_offloaded": r.pages_offloaded,
                    "fallback_pages": r.fallback_pages,
                    "thread_cpu_ms": r.thread_cpu_ms,
                    "verified": r.verified,
                }
            )
            print(
                f"repeat {rep}: {name:16s} host CPU {r.host_cpu_ms:7.0f} ms  total {r.total_time_ms:6.0f} ms",
                flush=True,
            )
    base = {r["repeat"]: r for r in rows if r["setting"] == "cpu-numba"}
    summary = []
    for name in names:
        rs = [r for r in rows if r["setting"] == name]
        row = {"setting": name, "spec": rs[0]["spec"], "n": len(rs), "verified": all(r["verified"] for r in rs)}
        for key in ("host_cpu_ms", "total_time_ms", "device_cpu_ms"):
            row[key], row[key + "_std"] = _stats([r[key] for r in rs])
        for key in ("host_cpu_ms", "total_time_ms"):  # paired by repeat: same guest, neighbouring runs
            row[key + "_ratio"], row[key + "_ratio_std"] = _stats([r[key] / base[r["repeat"]][key] for r in rs])
        row["busy_threads"] = max(r["busy_threads"] for r in rs)
        row["cores"] = min(r["cores"] for r in rs)
        row["fallback_pages"] = max(r["fallback_pages"] for r in rs)
        summary.append(row)
    print(
        benchmarking.table(
            summary,
            [
                ("setting", "setting", "s"),
                ("host_cpu_ms", "host CPU ms", ".0f"),
                ("host_cpu_ms_std", "±", ".0f"),
                ("host_cpu_ms_ratio", "x cpu-numba", ".3f"),
                ("host_cpu_ms_ratio_std", "±", ".3f"),
                ("total_time_ms", "total ms", ".0f"),
                ("total_time_ms_std", "±", ".0f"),
                ("total_time_ms_ratio", "x cpu-numba", ".3f"),
                ("total_time_ms_ratio_std", "±", ".3f"),
                ("device_cpu_ms", "engine CPU ms", ".0f"),
                ("busy_threads", "busy", "d"),
                ("cores", "cores", "d"),
                ("fallback_pages", "fallback", "d"),
            ],
        )
    )
    params = vars(args) | {"out": str(args.out), "guest_bytes": guest_bytes, "affinity": len(os.sched_getaffinity(0))}
    path = benchmarking.write_json(args.out, "emulation", params, {"runs": rows, "summary": summary})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
