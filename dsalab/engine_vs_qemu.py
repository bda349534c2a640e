"""The engine against a real QEMU on the same guest memory, like for like, repeat by repeat.

For each scenario (a normal-page ratio) one :class:`~dsalab.migration.GuestMemory` is made (``shared=True``, so
that QEMU maps the very same bytes through its memfd) and migrated by the engine (``cpu-native`` detector, the
closest to QEMU's CPU zero check in its multifd threads) and by two QEMU processes, alternating engine, QEMU,
engine, QEMU... with the same :class:`~dsalab.trial.Trial` (channels, packet size, limits, ``prealloc``). One
discarded warm-up of each runner comes first; then, with ``cold=True``, one run of each with ``prealloc=False``
shows what a cold destination costs. Every run becomes one flat row (:func:`row`), :func:`summarize` pairs them by
repeat (engine/QEMU ratios with their spread, the engine's run-to-run spread, the agreement checks the issue asks
for) and :func:`report` prints both. The benchmark (``benchmarks/bench_engine_vs_qemu.py``), notebook 09 and
``tests/test_engine_vs_qemu.py`` all go through here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dsalab import benchmarking, qemu
from dsalab.backends import Backend
from dsalab.errors import InvalidArgument
from dsalab.migration import GuestMemory, run_trial
from dsalab.result import TrialResult
from dsalab.trial import Trial
from dsalab.units import format_bytes, parse_bytes

#: the seed's two scenarios as this comparison reads them (an unpatched QEMU cannot force zero pages to be sent as
#: normal, so the seed's scenario 1, 0% normal + 50% forced, becomes 50% real normal pages: the same wire load)
SCENARIOS: dict[str, float] = {"half-normal": 0.5, "all-zero": 0.0}
#: the two runners, in the order they alternate
RUNNERS = ("engine", "qemu")
#: thread roles compared (QEMU's names mapped to the seed's): the role prefix and its label
ROLES = (("live_migration", "live_migration"), ("multifdsend_", "multifdsend_*"), ("multifdrecv_", "multifdrecv_*"))
#: the issue's bounds: transferred bytes of the two runners within this fraction; engine spread under this
BYTES_TOLERANCE = 0.01
SPREAD_BOUND = 1.3
#: a run is "quiet" when other processes kept fewer CPUs than this busy while it ran (the spread is also given over
#: quiet runs only, to tell the engine's own variation from the machine's)
QUIET_CORES = 0.25

#: QEMU's migration parameters the report shows (as query-migrate-parameters returned them)
QEMU_PARAMETERS = ("multifd-channels", "zero-page-detection", "max-bandwidth", "downtime-limit", "multifd-compression")

RunFn = Callable[[Trial, GuestMemory], TrialResult]


def role_cpu_ms(thread_cpu_ms: dict[str, float]) -> dict[str, float]:
    """CPU ms per role of :data:`ROLES` (senders and receivers summed over channels)."""
    out = dict.fromkeys((label for _, label in ROLES), 0.0)
    for name, ms in thread_cpu_ms.items():
        for prefix, label in ROLES:
            if name == prefix or (prefix.endswith("_") and name.startswith(prefix)):
                out[label] += ms
    return out


def _cpu_seconds() -> tuple[float, float, float]:
    """(busy CPU seconds of the whole machine, wall seconds as /proc/stat counts them, CPU seconds of this process
    and its waited-for children such as QEMU); zeros where ``/proc/stat`` is unreadable."""
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0, own
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle) / hz, sum(fields) / hz / (os.cpu_count() or 1), own


def _others_cores(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """CPUs (cores' worth) other processes kept busy between two :func:`_cpu_seconds` readings."""
    wall = after[1] - before[1]
    if wall <= 0:
        return float("nan")
    return max(0.0, (after[0] - before[0]) - (after[2] - before[2])) / wall


def _outside_event_loop(fn: RunFn, trial: Trial, guest: GuestMemory) -> TrialResult:
    """``fn(trial, guest)``, in a worker thread when this thread runs an asyncio loop (a Jupyter kernel does, and
    the QEMU runner drives QMP with ``asyncio.run``, which refuses to run inside a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(trial, guest)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dsalab-runner") as pool:
        return pool.submit(fn, trial, guest).result()


def trial_for(
    normal_ratio: float, guest_bytes: int, *, channels: int = 2, seed: int = 0, prealloc: bool = True
) -> Trial:
    """The Trial both runners run: ``cpu-native`` detection, everything else the Trial's defaults."""
    return Trial(
        guest_bytes=guest_bytes,
        normal_ratio=normal_ratio,
        channels=channels,
        detector=Backend.CPU_NATIVE.value,
        seed=seed,
        prealloc=prealloc,
    )


def run_engine(trial: Trial, guest: GuestMemory) -> TrialResult:
    """One engine migration of ``guest``."""
    return run_trial(trial, guest=guest)


def run_qemu(trial: Trial, guest: GuestMemory) -> TrialResult:
    """One QEMU migration of ``guest`` (both QEMU processes are stopped when it returns or fails)."""
    return qemu.run_trial(trial, guest=guest)


def row(scenario: str, runner: str, repeat: int, r: TrialResult, guest: GuestMemory, **extra: Any) -> dict:
    """One run as a flat, JSON-ready dict: times, transferred bytes, page counts beside the guest's truth, CPU
    by role (ms and ms per GB of guest RAM), every thread, and ``extra`` (e.g. the machine's load).

    ``guest_transferred_bytes`` is ``transferred_bytes``, which for QEMU already leaves out its other RAM blocks
    (firmware, ROMs, ACPI: :func:`dsalab.qemu.run_trial`); ``framing_bytes_per_packet`` is what it sent beyond
    the guest's normal pages, per packet of ``packet_bytes`` of guest RAM (headers, page offsets, sync messages,
    device state)."""
    gb = guest.guest_bytes / 1e9
    roles = role_cpu_ms(r.thread_cpu_ms)
    other_normal = int(getattr(r, "extra_normal_pages", 0))  # QEMU's RAM blocks other than the guest's
    guest_sent = r.transferred_bytes  # without those blocks' pages already (qemu.run_trial)
    packets = -(-guest.npages // r.trial.packet_pages)
    out = {
        "scenario": scenario,
        "normal_ratio": guest.normal_ratio,
        "runner": runner,
        "repeat": repeat,
        "prealloc": r.trial.prealloc,
        "total_time_ms": r.total_time_ms,
        "downtime_ms": r.downtime_ms,
        "guest_gbps": guest.guest_bytes / (r.total_time_ms / 1e3) / 1e9 if r.total_time_ms > 0 else 0.0,
        "transferred_bytes": r.transferred_bytes,
        "other_ram_normal_pages": other_normal,
        "guest_transferred_bytes": guest_sent,
        "framing_bytes_per_packet": (guest_sent - r.normal_pages * guest.page_size) / packets,
        "zero_pages": r.zero_pages,
        "normal_pages": r.normal_pages,
        "truth_zero_pages": guest.zero_pages,
        "truth_normal_pages": guest.normal_pages,
        "verified": r.verified,
        "host_cpu_ms": r.host_cpu_ms,
        "destination_cpu_ms": r.destination_cpu_ms,
        "thread_cpu_ms": dict(r.thread_cpu_ms),
    }
    for label, ms in roles.items():
        out[f"cpu_ms[{label}]"] = ms
        out[f"cpu_ms_per_gb[{label}]"] = ms / gb
    return out | extra


def compare(
    guest_bytes: int | str = "2GiB",
    *,
    scenarios: dict[str, float] | None = None,
    repeats: int = 5,
    channels: int = 2,
    seed: int = 0,
    cold: bool = True,
    warmup: bool = True,
    progress: bool = True,
    runners: dict[str, RunFn] | None = None,
) -> tuple[list[dict], dict[str, dict]]:
    """Run every scenario on both runners, alternating repeat by repeat; returns (rows, configuration).

    ``guest_bytes``: guest RAM (bytes or ``"2GiB"``); ``scenarios``: name -> normal ratio (default
    :data:`SCENARIOS`); ``repeats``: preallocated repeats of each runner, 1..100; ``cold``: then one run of each
    with ``prealloc=False``; ``warmup``: one discarded run of each first; ``progress``: a tqdm bar on stderr.
    The configuration maps each runner to what it ran with (Trial fields, QEMU's version and accelerator).
    """
    guest_bytes = parse_bytes(guest_bytes, "guest_bytes")
    scenarios = dict(SCENARIOS if scenarios is None else scenarios)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 100:
        raise InvalidArgument(f"repeats={repeats!r} is not allowed: allowed is an int from 1 to 100")
    runners = runners or {"engine": run_engine, "qemu": run_qemu}
    plan = [(p, i) for p, i in [(True, -1)] if warmup] + [(True, i) for i in range(repeats)]
    plan += [(False, 0)] if cold else []
    bar = None
    if progress:
        from tqdm.auto import tqdm  # a widget in Jupyter, a text bar elsewhere

        bar = tqdm(total=len(scenarios) * len(plan) * len(runners), desc="engine vs qemu", unit="run", file=sys.stderr)
    rows: list[dict] = []
    config: dict[str, dict] = {}
    try:
        for name, ratio in scenarios.items():
            guest = GuestMemory(guest_bytes, normal_ratio=ratio, seed=seed, shared=True)
            try:
                for prealloc, repeat in plan:
                    trial = trial_for(ratio, guest_bytes, channels=channels, seed=seed, prealloc=prealloc)
                    for runner, fn in runners.items():
                        load = os.getloadavg()[0]
                        before = _cpu_seconds()
                        r = _outside_event_loop(fn, trial, guest)
                        after = _cpu_seconds()
                        others = _others_cores(before, after)
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix_str(f"{name} {runner} {r.total_time_ms:.0f} ms")
                        if repeat < 0:
                            continue  # the warm-up: discarded
                        extra = {"load_1min": load, "others_cores": others, "trial_as_asked": r.trial == trial}
                        extra["whole_cpu_ms"] = (after[2] - before[2]) * 1e3
                        extra["prealloc"] = trial.prealloc  # as asked; trial_as_asked says if it was honoured
                        rows.append(row(name, runner, repeat, r, guest, **extra))
                        config.setdefault(runner, configuration(r))
            finally:
                guest.close()
    finally:
        if bar is not None:
            bar.close()
    return rows, config


def configuration(r: TrialResult) -> dict:
    """What a run was configured with: the Trial's fields, the backend, and QEMU's version and accelerator."""
    return {
        "backend": str(r.backend),
        "trial": r.trial.to_dict(),
        "qemu_version": getattr(r, "qemu_version", ""),
        "accel": getattr(r, "accel", ""),
        "migrate_parameters": dict(getattr(r, "migrate_parameters", {}) or {}),
    }


def _spread(values: Sequence[float]) -> float:
    return max(values) / min(values) if values and min(values) > 0 else float("nan")


def _ratio_stats(pairs: Iterable[tuple[float, float]]) -> dict[str, float]:
    ratios = [a / b for a, b in pairs if b > 0]
    if not ratios:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


#: metrics whose engine/QEMU ratio is reported, paired by repeat
RATIO_METRICS = (
    "total_time_ms",
    "transferred_bytes",
    "cpu_ms_per_gb[live_migration]",
    "cpu_ms_per_gb[multifdsend_*]",
    "cpu_ms_per_gb[multifdrecv_*]",
)


def summarize(rows: Sequence[dict]) -> dict[str, dict]:
    """Per scenario: engine/QEMU ratios of :data:`RATIO_METRICS` paired by repeat (median, min, max), each
    runner's spread (max/min total time of its preallocated repeats), the cold run's time over the median warm
    one, and the checks: page counts equal the guest's truth on every run of each runner, transferred bytes within
    :data:`BYTES_TOLERANCE` in every pair, the engine's spread under :data:`SPREAD_BOUND`."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["scenario"] for r in rows):
        mine = [r for r in rows if r["scenario"] == name]
        warm = {
            k: sorted((r for r in mine if r["runner"] == k and r["prealloc"]), key=lambda r: r["repeat"])
            for k in RUNNERS
        }
        pairs = list(zip(warm["engine"], warm["qemu"], strict=False))
        s: dict[str, Any] = {"normal_ratio": mine[0]["normal_ratio"], "repeats": len(pairs)}
        s["ratio"] = {m: _ratio_stats((e[m], q[m]) for e, q in pairs) for m in RATIO_METRICS}
        for k in RUNNERS:
            times = [r["total_time_ms"] for r in warm[k]]
            s[f"{k}_spread"] = _spread(times)
            s[f"{k}_median_ms"] = statistics.median(times) if times else float("nan")
            s[f"{k}_counts_equal_truth"] = bool(warm[k]) and all(
                r["zero_pages"] == r["truth_zero_pages"] and r["normal_pages"] == r["truth_normal_pages"]
                for r in mine
                if r["runner"] == k
            )
            framing = [r.get("framing_bytes_per_packet", float("nan")) for r in warm[k]]
            s[f"{k}_framing_bytes_per_packet"] = statistics.median(framing) if framing else float("nan")
            s[f"{k}_verified"] = all(r["verified"] for r in mine if r["runner"] == k)
            cold = [r["total_time_ms"] for r in mine if r["runner"] == k and not r["prealloc"]]
            s[f"{k}_cold_over_warm"] = cold[0] / s[f"{k}_median_ms"] if cold and times else float("nan")
        dev = [abs(e["transferred_bytes"] - q["transferred_bytes"]) / q["transferred_bytes"] for e, q in pairs]
        s["bytes_max_deviation"] = max(dev) if dev else float("nan")
        key = "guest_transferred_bytes"
        dev_guest = [abs(e[key] - q[key]) / q[key] for e, q in pairs if key in e and q.get(key, 0) > 0]
        s["guest_bytes_max_deviation"] = max(dev_guest) if dev_guest else float("nan")
        s["bytes_within_tolerance"] = bool(dev) and max(dev) <= BYTES_TOLERANCE
        s["engine_spread_ok"] = s["engine_spread"] < SPREAD_BOUND
        quiet = [r["total_time_ms"] for r in warm["engine"] if r.get("others_cores", float("inf")) < QUIET_CORES]
        s["engine_quiet_runs"] = len(quiet)
        s["engine_quiet_spread"] = _spread(quiet) if len(quiet) > 1 else float("nan")
        s["same_trial"] = all(r.get("trial_as_asked", False) for r in mine)
        loads = [r.get("load_1min", float("nan")) for r in mine]
        s["load_1min_median"] = statistics.median(loads)
        others = [r.get("others_cores", float("nan")) for r in mine]
        s["others_cores_median"] = statistics.median(others)
        out[name] = s
    return out


def _ratio_text(st: dict[str, float]) -> str:
    return f"{st['median']:.2f} [{st['min']:.2f}-{st['max']:.2f}]"


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def report(rows: Sequence[dict], summary: dict[str, dict], config: dict[str, dict]) -> str:
    """The comparison as text: the configuration both ran with, a table of medians per scenario and runner,
    engine/QEMU ratios ``median [min-max]`` over the paired repeats, the cold-destination effect, and the checks."""
    lines = ["configuration (both runners ran the same Trial on the same GuestMemory):"]
    for runner, c in config.items():
        t = c["trial"]
        extra = f", QEMU {c['qemu_version']}, accel {c['accel']}" if c.get("qemu_version") else ""
        lines.append(
            f"  {runner:6s} backend {c['backend']}{extra}: guest {format_bytes(t['guest_bytes'], whole=True)}, "
            f"channels {t['channels']}, packet {format_bytes(t['packet_bytes'], whole=True)}, detector {t['detector']}"
        )
        lines.append(
            f"         page {t['page_size']}, max_bandwidth {t['max_bandwidth_bytes'] or 'unlimited'}, downtime_limit "
            f"{t['downtime_limit_ms']:.0f} ms, seed {t['seed']}, prealloc on (repeats) / off (the cold run)"
        )
        params = c.get("migrate_parameters") or {}
        shown = {k: params[k] for k in QEMU_PARAMETERS if k in params}
        if shown:
            lines.append("         QEMU applied: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    table_rows = []
    for name, s in summary.items():
        for k in RUNNERS:
            rs = [r for r in rows if r["scenario"] == name and r["runner"] == k and r["prealloc"]]
            if not rs:
                continue
            med = {m: statistics.median(r[m] for r in rs) for m in ("total_time_ms", "transferred_bytes")}
            med |= {f"cpu[{label}]": statistics.median(r[f"cpu_ms_per_gb[{label}]"] for r in rs) for _, label in ROLES}
            table_rows.append(
                {"scenario": name, "runner": k, "spread": s[f"{k}_spread"], "cold": s[f"{k}_cold_over_warm"]} | med
            )
    columns = [("scenario", "scenario", "s"), ("runner", "runner", "s"), ("total_time_ms", "total ms", ".0f")]
    columns += [("spread", "max/min", ".2f"), ("cold", "cold/warm", ".2f")]
    columns += [(f"cpu[{label}]", f"{label} ms/GB", ".0f") for _, label in ROLES]
    columns += [("transferred_bytes", "transferred B", ".0f")]
    lines += [
        "",
        "medians of the preallocated repeats (CPU per GB of guest RAM):",
        benchmarking.table(table_rows, columns),
    ]
    lines += ["", "engine/QEMU, paired by repeat: median [min-max]"]
    for name, s in summary.items():
        lines.append(f"  {name} (normal ratio {s['normal_ratio']}, {s['repeats']} pairs):")
        for m in RATIO_METRICS:
            lines.append(f"    {m:32s} {_ratio_text(s['ratio'][m])}")
    lines += ["", "checks:"]
    for name, s in summary.items():
        lines += [
            f"  {name}:",
            f"    page counts equal GuestMemory's truth: engine {_yes(s['engine_counts_equal_truth'])}, qemu "
            f"{_yes(s['qemu_counts_equal_truth'])}; destination verified: engine {_yes(s['engine_verified'])}, qemu "
            f"{_yes(s['qemu_verified'])}; every run's Trial as asked: {_yes(s['same_trial'])}",
            f"    transferred bytes within {BYTES_TOLERANCE:.0%}: {_yes(s['bytes_within_tolerance'])} (max deviation "
            f"{s['bytes_max_deviation']:.3%}; {s['guest_bytes_max_deviation']:.3%} without QEMU's other RAM blocks)",
            f"    bytes beyond the normal pages, per packet: engine {s['engine_framing_bytes_per_packet']:.0f}, qemu "
            f"{s['qemu_framing_bytes_per_packet']:.0f}",
            f"    engine spread {s['engine_spread']:.2f} < {SPREAD_BOUND}: {_yes(s['engine_spread_ok'])} (qemu "
            f"{s['qemu_spread']:.2f}); over the {s['engine_quiet_runs']} runs where other processes kept < "
            f"{QUIET_CORES} CPUs busy: {s['engine_quiet_spread']:.2f}",
            f"    machine load: 1-min load average {s['load_1min_median']:.1f} on {os.cpu_count()} CPUs; other "
            f"processes kept {s['others_cores_median']:.2f} CPUs busy during a run (medians)",
        ]
    return "\n".join(lines)
