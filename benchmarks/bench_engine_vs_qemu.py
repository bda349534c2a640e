"""The engine against a real QEMU, like for like: the seed's two scenarios scaled to this machine.

Each scenario (normal ratio 0.5 and 0.0) is one GuestMemory (same seed, a memfd) migrated over 2 channels by the
engine (``cpu-native`` detector, the closest to QEMU's CPU zero check) and by two QEMU processes, alternating
engine, QEMU, engine, QEMU... after one discarded warm-up of each, with the same Trial and ``prealloc`` on both
(the destination and source faulted in before the clock starts); then one run of each with ``prealloc=False``, so
the cold-destination effect shows. Prints the configuration both ran with (Trial fields, QEMU version,
accelerator, prealloc), medians per runner (total time, CPU per GB by role: ``live_migration``,
``multifdsend_*``, ``multifdrecv_*``; transferred bytes), engine/QEMU ratios paired by repeat with their spread
(median [min-max]), the checks (page counts equal GuestMemory's truth, transferred bytes within 1%, the engine's
max/min total time under 1.3) and how loaded the machine was; writes data/bench/engine_vs_qemu.json.

    python benchmarks/bench_engine_vs_qemu.py [--guest 2GiB] [--repeats 5] [--channels 2] [--no-cold]
"""

from __future__ import annotations

import argparse
import pathlib

from dsalab import benchmarking, engine_vs_qemu, qemu
from dsalab.units import parse_bytes

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guest", default="2GiB", help="guest RAM (default 2GiB)")
    ap.add_argument("--repeats", type=int, default=5, help="preallocated repeats of each runner (default 5)")
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cold", action="store_true", help="skip the prealloc=False run of each runner")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "data/bench/engine_vs_qemu.json")
    args = ap.parse_args(argv)
    version = qemu.qemu_version()
    if version is None or version < (9, 0, 0):
        print(f"needs QEMU >= 9.0 (found {version}): apt-get install -t bookworm-backports qemu-system-x86")
        return 2
    guest_bytes = parse_bytes(args.guest)
    rows, config = engine_vs_qemu.compare(
        guest_bytes, repeats=args.repeats, channels=args.channels, seed=args.seed, cold=not args.no_cold
    )
    summary = engine_vs_qemu.summarize(rows)
    print(engine_vs_qemu.report(rows, summary, config))
    params = vars(args) | {"out": str(args.out), "guest_bytes": guest_bytes, "scenarios": engine_vs_qemu.SCENARIOS}
    results = {"configuration": config, "summary": summary, "runs": rows}
    path = benchmarking.write_json(args.out, "engine_vs_qemu", params, results)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
