"""Speed of the tenant contention model: the reviewer's question, 100 VMs x 1 GiB on 8 DSA devices, simulated.

Target: under 10 s on this machine for the default scenario (2 channels, 512 KiB packets, batches of 128 pages:
one batch per packet). The simulation runs at batch granularity (one event per packet gap, device completion and
packet wake-up; retries of a full queue before the next engine completion are taken in one step), not per page:
26 million pages per run would be far beyond simpy's few hundred thousand events per second. Also times a
saturated case (8 channels, batches of 32: the queues fill and retries run), whose cost grows with the retries.

Prints the wall time, the events (the shared run's and each tenant's run alone) and events/s of each case;
nothing is asserted (not a timed test).

    python benchmarks/bench_tenants.py [--hardware data/hardware/spr-8457c-dsa.toml] [--repeats 3]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import time

from dsalab.model import tenants
from dsalab.model.profile import HardwareProfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
CASES = {
    "reviewer: 100 x 1GiB, 8 devices, fifo": dict(),
    "reviewer, priority (15,1)": dict(policy="priority", priorities=(15, 1)),
    "reviewer, quota 4": dict(policy="quota", quota=4),
    "saturated: 8 channels, batch 32, fifo": dict(channels=8, batch_size=32),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default=str(ROOT / "data/hardware/spr-8457c-dsa.toml"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tenants", type=int, default=100)
    ap.add_argument("--guest", default="1GiB")
    ap.add_argument("--devices", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="only the reviewer's fifo case")
    a = ap.parse_args()
    profile = HardwareProfile.load(a.hardware)
    print(f"profile {profile.name}; {a.tenants} tenants x {a.guest} on {a.devices} devices; {a.repeats} repeats")
    print(f"{'case':42} {'median s':>9} {'min s':>7} {'events':>11} {'events/s':>10} {'worst ms':>9}")
    for name, kw in list(CASES.items())[: 1 if a.quick else None]:
        times = []
        for _ in range(a.repeats):
            sc = tenants.scenario(a.tenants, a.guest, a.devices, profile=profile, **kw)
            start = time.perf_counter()
            out = tenants.simulate(sc, profile)
            times.append(time.perf_counter() - start)
        med = statistics.median(times)
        worst = max(t.time_ns for t in out.tenants) / 1e6
        ev = out.events + out.alone_events  # and each tenant's run alone, which contention is measured against
        print(f"{name:42} {med:9.2f} {min(times):7.2f} {ev:11,} {ev / med:10,.0f} {worst:9.1f}")


if __name__ == "__main__":
    main()
