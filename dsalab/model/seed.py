"""The seed's hosts as a hardware profile, and the model's prediction of the seed's DSA rows.

**What is fitted, what is predicted.** :func:`fit_host` reads only the seed's CPU-mode rows
(``seed_cpu_runtime.csv`` and ``seed_migration_stats.csv``, ``mode = cpu``) and solves the pipeline of
:mod:`dsalab.model.pipeline` for the host costs those rows determine:

- scenario 2 (all zero pages, ``live_migration`` the slowest stage): ``main_page = live_migration / pages``;
- scenario 1 (half the pages forced normal; the network the slowest stage): ``live_migration`` blocks once per
  packet, so ``wakeup = (live_migration_1 - live_migration_2) / packets``;
- scenario 1's total time: ``network.bandwidth = wire bytes / total time``;
- scenario 2's senders (woken once per packet): ``zero_page = (sender - packets/8 x (packet + wakeup)) / pages/8``;
- scenario 1's senders: ``send_byte`` is what is left after the zero checks and packets, per payload byte.

Costs those rows cannot separate are folded into one that they fit (``host.packet`` into the zero check,
``host.send_page`` into ``host.send_byte``, ``host.main_packet`` into ``host.main_page``); the receive costs, the
check of a normal page and the CPU side of DSA submission, which the rows do not touch, come from a base profile
measured on another machine (``dsalab calibrate``); the device is :mod:`dsalab.model.published`. Nothing is taken
from the DSA-mode rows: :func:`check` then *predicts* them, for both readings of whether forced pages were
zero-checked.
"""

from __future__ import annotations

import math

import pandas as pd

from dsalab import reference
from dsalab.backends import Backend
from dsalab.model import published
from dsalab.model.pipeline import HEADER_BYTES, OFFSET_BYTES
from dsalab.model.predict import COMPLETION_THREAD, predict
from dsalab.model.profile import CPU_DETECTORS, Entry, HardwareProfile, Setting
from dsalab.model.quantities import KINDS, Quantity
from dsalab.trial import Trial

#: the seed's guest, bytes (total-ram 102400520 kB as QEMU reports it)
GUEST_BYTES = 102400520 * 1024
#: the seed's scenarios as Trial fields (see data/reference/README.md)
SCENARIOS = reference.SCENARIOS
#: the seed's setup
CHANNELS, PACKET_BYTES, PAGE = 8, 512 << 10, 4096
CSV = "seed_cpu_runtime.csv / seed_migration_stats.csv"


def seed_trial(scenario: int, mode: str) -> Trial:
    """The seed's trial of ``scenario`` (1, 2) in ``mode`` (``cpu`` -> cpu-native, QEMU's vectorised
    buffer_is_zero; ``dsa`` -> dsa-hardware, one device)."""
    detector = Backend.CPU_NATIVE if mode == "cpu" else Backend.DSA_HARDWARE
    return Trial(
        guest_bytes=GUEST_BYTES,
        **SCENARIOS[scenario],
        channels=CHANNELS,
        packet_bytes=PACKET_BYTES,
        batch_size=PACKET_BYTES // PAGE,
        detector=detector.value,
        devices=1,
        completion="thread",
    )


def _rows(mode: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    cpu = reference.cpu_runtime()
    stats = reference.migration_stats()
    return cpu[cpu["mode"] == mode], stats[stats["mode"] == mode]


def fit_host(base: HardwareProfile, *, check_forced: bool = True) -> dict[str, Entry]:
    """Host and network entries of the seed's hosts, fitted on the seed's CPU-mode rows only (see the module
    docstring); ``base`` gives the costs those rows cannot separate (its sources are kept, prefixed).
    ``check_forced``: the reading the fit assumes, whether scenario 1's forced pages were zero-checked."""
    cpu, stats = _rows("cpu")

    def thread(s: int, name: str) -> float:
        rows = cpu[(cpu["scenario"] == s) & cpu["thread"].str.startswith(name)]
        return float(rows["runtime_ms"].mean()) * 1e6  # ns, one thread

    pages = GUEST_BYTES // PAGE
    packets = math.ceil(pages / (PACKET_BYTES // PAGE))
    forced = round(pages * SCENARIOS[1]["force_normal_ratio"])
    packet = 0.0  # folded into zero_page: a per-packet syscall cost does not carry from one machine to another
    main_page = thread(2, "live_migration") / pages
    wakeup = (thread(1, "live_migration") - thread(2, "live_migration")) / packets
    s1 = stats[stats["scenario"] == 1].iloc[0]
    wire = packets * HEADER_BYTES + pages * OFFSET_BYTES + forced * PAGE + 2 * CHANNELS * HEADER_BYTES  # sync, END
    bandwidth = wire / (float(s1["total_time_ms"]) * 1e6) * 1e9
    per_sender = pages / CHANNELS
    zero_page = (thread(2, "multifdsend") - packets / CHANNELS * (packet + wakeup)) / per_sender
    checked_1 = per_sender if check_forced else (pages - forced) / CHANNELS
    rest = thread(1, "multifdsend") - checked_1 * zero_page - packets / CHANNELS * packet
    send_byte = rest / (forced / CHANNELS * PAGE)
    fitted = "fitted on the seed's CPU-mode rows ({}): {}"
    out: dict[str, Entry] = {
        "host.main_page": _fitted("time/page", main_page, "ns/page", fitted.format(CSV, "scenario 2 live_migration")),
        "host.main_packet": Quantity(0.0, "ns/packet", 0.0, "folded into host.main_page (the rows cannot separate)"),
        "host.wakeup": _fitted(
            "time/wakeup", wakeup, "us/wakeup", fitted.format(CSV, "live_migration, scenario 1 - scenario 2")
        ),
        "host.send_page": Quantity(0.0, "ns/page", 0.0, "folded into host.send_byte (the rows cannot separate)"),
        "host.packet": Quantity(
            0.0, "ns/packet", 0.0, "folded into host.zero_check.*.zero_page (the rows cannot separate)"
        ),
        "host.send_byte": _fitted("time/B", send_byte, "ns/B", fitted.format(CSV, "scenario 1 multifdsend_*")),
        "host.send_parallel": Quantity(
            1.0, "fraction", 1.0, f"folded into host.send_byte (every row ran {CHANNELS} channels: no lone sender)"
        ),
        "network.bandwidth": _fitted(
            "rate", bandwidth, "Gbit/s", fitted.format(CSV, "scenario 1 total time; the NIC is not stated")
        ),
        "network.message": Quantity(0.0, "ns/message", 0.0, "folded into network.bandwidth"),
        "network.same_host": Setting(False, "the seed migrated between two hosts"),
    }
    for det in CPU_DETECTORS:
        zc = f"host.zero_check.{det}"
        out[f"{zc}.zero_page"] = _fitted(
            "time/page", zero_page, "ns/page", fitted.format(CSV, "scenario 2 multifdsend_*; QEMU's buffer_is_zero")
        )
        out[f"{zc}.normal_page"] = _from_base(base, f"{zc}.normal_page", "the seed's guest had no normal pages")
    return out


def _fitted(kind: str, canonical: float, unit: str, source: str) -> Quantity:
    """A fitted number written in ``unit`` to 4 significant digits."""
    written = float(f"{KINDS[kind].from_canonical(canonical, unit):.4g}")
    return Quantity.of(kind, written, unit, source)


def _from_base(base: HardwareProfile, key: str, why: str) -> Entry:
    e = base.entries[key]
    assert isinstance(e, Quantity)
    return Quantity(e.value, e.unit, e.written, f"from profile {base.name} ({why}): {e.source}")


def spr_profile(base: HardwareProfile) -> HardwareProfile:
    """The profile ``spr-8457c-dsa``: the seed's hosts with one DSA device (see the module docstring)."""
    lscpu = "the seed's cover letter, lscpu of its hosts"
    entries: dict[str, Entry] = {
        "host.cores": Quantity(96.0, "cores", 96.0, f"{lscpu}: 2 sockets x 48 cores (192 CPUs with SMT)"),
        "host.memory_read_bandwidth": Quantity.of(
            "rate", 307.2, "GB/s", "theoretical, one socket: 8 channels DDR5-4800 x 8 B (Sapphire Rapids)"
        ),
        "host.page_bytes": Quantity(4096.0, "B", 4096.0, "the seed's page size"),
        "dsa.devices": Quantity(
            8.0,
            "count",
            8.0,
            "a 2-socket Sapphire Rapids server of 192 CPUs has 8 DSA devices (the seed's thread: Liu Yuan1, Intel, "
            "15 Jul 2024); the seed's runs used one (its trials say devices = 1)",
        ),
        **published.DEVICE,
        **published.ESTIMATES,
    }
    for key in ("host.receive_page", "host.receive_byte", "host.receive_packet"):
        entries[key] = _from_base(base, key, "the seed's rows cannot separate it")
    for key in ("dsa.submit_write",):
        entries[key] = _from_base(base, key, "not published; the same software path")
    entries.update(fit_host(base))
    about = {
        "name": "spr-8457c-dsa",
        "description": "the seed's hosts (2 x Xeon Platinum 8457C) with one DSA device; host costs fitted on the "
        "seed's CPU-mode rows, the device from published figures",
        "command": f"python -m dsalab.model.seed --base {base.path or base.name}",
    }
    return HardwareProfile("spr-8457c-dsa", entries, about)


def check(profile: HardwareProfile) -> pd.DataFrame:
    """The model's prediction of the seed's rows beside the published ones: per thread role and in total, for
    each scenario and mode, and for DSA both readings of the forced pages (``checked``: zero-checked before being
    sent, as the engine does; ``unchecked``). Columns: scenario, mode, reading, quantity, published, predicted,
    error (predicted / published - 1)."""
    rows = []
    published_cpu = reference.cpu_runtime()
    stats = reference.migration_stats()
    # the other reading, fitted under its own assumption, so that both reproduce the CPU rows
    readings = {
        "checked": profile,
        "unchecked": HardwareProfile(
            profile.name, {**profile.entries, **fit_host(profile, check_forced=False)}, dict(profile.about)
        ),
    }
    for s in SCENARIOS:
        base = _totals(published_cpu, stats, s, "cpu")
        for mode in ("cpu", "dsa"):
            pub = _totals(published_cpu, stats, s, mode)
            for reading in ("checked", "unchecked"):
                fitted, checked = readings[reading], reading == "checked"
                pred = _result_totals(predict(seed_trial(s, mode), fitted, check_forced=checked))
                pred_base = _result_totals(predict(seed_trial(s, "cpu"), fitted, check_forced=checked))
                pub["saving_pct"] = 100 * (1 - pub["host_cpu_ms"] / base["host_cpu_ms"])
                pred["saving_pct"] = 100 * (1 - pred["host_cpu_ms"] / pred_base["host_cpu_ms"])
                for q, v in pub.items():
                    p = pred.get(q, math.nan)
                    err = p / v - 1 if v and q != "saving_pct" else p - v
                    rows.append((s, mode, reading, q, v, p, err))
    return pd.DataFrame(rows, columns=["scenario", "mode", "reading", "quantity", "published", "predicted", "error"])


def _totals(cpu: pd.DataFrame, stats: pd.DataFrame, s: int, mode: str) -> dict[str, float]:
    rows = cpu[(cpu["scenario"] == s) & (cpu["mode"] == mode)]
    out = {
        "live_migration": float(rows[rows["thread"] == "live_migration"]["runtime_ms"].sum()),
        "multifdsend_*": float(rows[rows["thread"].str.startswith("multifdsend")]["runtime_ms"].mean()),
        "host_cpu_ms": float(rows["runtime_ms"].sum()),
        "total_time_ms": float(stats[(stats["scenario"] == s) & (stats["mode"] == mode)]["total_time_ms"].iloc[0]),
    }
    if mode == "dsa":
        out[COMPLETION_THREAD] = float(rows[rows["thread"] == COMPLETION_THREAD]["runtime_ms"].sum())
    return out


def _result_totals(r) -> dict[str, float]:
    t = r.thread_cpu_ms
    return {
        "live_migration": t["live_migration"],
        "multifdsend_*": t["multifdsend_0"],
        COMPLETION_THREAD: t.get(COMPLETION_THREAD, math.nan),
        "host_cpu_ms": r.host_cpu_ms,
        "total_time_ms": r.total_time_ms,
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m dsalab.model.seed --base PROFILE [--out FILE]``: write the spr profile, print the check."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="a profile measured by dsalab calibrate")
    parser.add_argument("--out", default="data/hardware/spr-8457c-dsa.toml")
    args = parser.parse_args(argv)
    prof = spr_profile(HardwareProfile.load(args.base))
    prof.save(args.out)
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(check(HardwareProfile.load(args.out)).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
