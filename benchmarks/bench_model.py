"""The model calibrated here against the engine on this machine ("Against this machine", issue 11).

Calibrates this machine (``dsalab calibrate``'s measurements, two repeats before each repeat of the check's
engine runs, so that a shared machine's drift hits both alike) unless ``--profile`` names a profile, and runs the
engine over the check's grid (cpu-numba and cpu-native, normal ratio 0 / 0.5 / 1, channels 1 / 2, packets
128 KiB / 512 KiB) on a 1 GiB guest, repeats interleaved, and prints the engine's medians beside the model's
predictions and their ratios (host CPU, total time without setup, sender and receiver CPU). Also prints how much
of the cores this process obtained before and after (other work on a shared machine stretches wall times).
Writes data/bench/model.json.

    python benchmarks/bench_model.py [--guest 1GiB] [--repeats 3] [--profile FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib

from dsalab import benchmarking
from dsalab.model import HardwareProfile
from dsalab.model import calibrate as cal
from dsalab.model import calibrate_check as check
from dsalab.units import parse_bytes

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guest", default="1GiB", help="guest RAM of the engine runs")
    ap.add_argument("--repeats", type=int, default=3, help="engine repeats per point (median)")
    ap.add_argument("--profile", default=None, help="hardware profile to check (default: calibrate now)")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "data/bench/model.json")
    args = ap.parse_args(argv)
    guest_bytes = parse_bytes(args.guest)
    load_before = os.getloadavg()
    share_before = check.cpu_share()
    progress = lambda done, total: print(f"  {done}/{total}", end="\r", flush=True)  # noqa: E731
    print(f"engine runs: {len(check.GRID)} points x {args.repeats} repeats, {args.guest} guest", flush=True)
    if args.profile:
        profile = HardwareProfile.load(args.profile)
        rows = check.against_engine(profile, guest_bytes, args.repeats, progress=progress)
    else:  # calibration and the check's runs in turns, repeat by repeat: a shared machine's drift hits both alike
        measured, runs = [], {}
        for i in range(args.repeats):
            print(f"repeat {i + 1}/{args.repeats}: calibrating, then the check's engine runs", flush=True)
            measured.append(cal.measure(repeats=2))
            for point, results in check.run_engine(guest_bytes, 1, progress=progress).items():
                runs.setdefault(point, []).extend(results)
            print()
        profile = cal.build_profile(cal.combine(measured))
        print(cal.table(profile))
        rows = check.compare(profile, runs)
    share_after = check.cpu_share()
    load_after = os.getloadavg()
    print()
    print(check.format_rows(rows))
    print(
        f"cores obtained by a busy loop: {share_before:.0%} before, {share_after:.0%} after; load average "
        f"{' '.join(f'{x:.2f}' for x in load_before)} before, {' '.join(f'{x:.2f}' for x in load_after)} after"
    )
    params = vars(args) | {
        "out": str(args.out),
        "guest_bytes": guest_bytes,
        "profile_name": profile.name,
        "profile_about": dict(profile.about),
        "cpu_share_before": share_before,
        "cpu_share_after": share_after,
        "load_before": list(load_before),
        "load_after": list(load_after),
        "tolerance": check.TOLERANCE,
    }
    results = {
        "rows": [dataclasses.asdict(r) | {"host_ratio": r.host_ratio, "time_ratio": r.time_ratio} for r in rows],
        "host_within": check.within(rows, "host"),
        "time_within": check.within(rows, "time"),
        "host_geometric_mean": check.geometric_mean(rows, "host"),
        "time_geometric_mean": check.geometric_mean(rows, "time"),
        "host_in_engine_range": check.in_engine_range(rows, "host"),
        "time_in_engine_range": check.in_engine_range(rows, "time"),
        "engine_host_spread": [r.spread("host") for r in rows],
        "engine_time_spread": [r.spread("time") for r in rows],
        "profile_toml": profile.to_toml(),
    }
    path = benchmarking.write_json(args.out, "model", params, results)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
