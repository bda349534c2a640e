"""``dsalab calibrate``: measure this machine and write its hardware profile (``data/hardware/<hostname>.toml``).

:func:`calibrate` measures every key of ``[host]`` and ``[network]`` here, with a warm-up and repeats (the
median, the spread recorded in each source string):

- the engine's per-phase CPU (zero check per page for ``cpu-numba`` and ``cpu-native``, ``live_migration`` per
  page and per packet, sender per packet and per normal page, receiver per page, packet and byte), from engine
  runs on loopback (:mod:`dsalab.model.calibrate_engine`);
- ``host.wakeup``: ``live_migration``'s CPU per packet in engine runs where it blocks once per packet (a
  condition-variable ping-pong in C, ``native/calibrate.c``, is measured beside it for comparison);
- ``host.send_byte``: the writer's CPU per byte of a loopback TCP stream of 512 KiB messages (the rest of a
  normal page's sending cost measured in the engine is ``host.send_page``);
- ``network.bandwidth`` and ``network.message``: the same stream's bytes per second, and the wall time per
  32-byte message of a stream of small messages;
- ``host.memory_read_bandwidth``: the native OR-reduce loop over a buffer larger than the caches, all cores;
- ``host.cores``: ``sched_getaffinity``; ``network.same_host``: true (loopback: receivers share these cores).

There is no DSA device here: ``[dsa]`` holds the device's published figures (:data:`dsalab.model.published.DEVICE`)
and the unpublished submission and poll costs as estimates (:data:`~dsalab.model.published.ESTIMATES`), with
``dsa.devices = 1`` ("what if this host had one DSA device"). The CPU costs of the offload layer are measured:
``dsa.prepare_descriptor`` is the sender's detection CPU per page of engine runs on the emulated device with its
timing model off (``gbps=0``) and batches of 1024, and ``dsa.submit_write`` the CPU of a 64-byte ``write()`` to
``/dev/null`` (the proxy for the idxd character device's ``write()`` path).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import socket
import sys
from collections.abc import Callable, Sequence

from dsalab.model import calibrate_engine as ce
from dsalab.model import calibrate_micro as micro
from dsalab.model.calibrate_engine import Figure, figure
from dsalab.model.profile import (
    CPU_DETECTORS,
    OPTIONAL,
    SPEC,
    ZERO_CHECK,
    ZERO_CHECK_OPTIONAL,
    Entry,
    HardwareProfile,
    Setting,
)
from dsalab.model.published import DEVICE, ESTIMATES
from dsalab.model.quantities import Quantity

#: guest size of the engine runs, bytes (full, quick)
GUEST_BYTES = {False: 256 << 20, True: 32 << 20}
#: repeats (full, quick)
REPEATS = {False: 7, True: 2}
#: most repeats allowed
MAX_REPEATS = 100
#: the command a profile says measured it
COMMAND = "dsalab calibrate"

#: Progress callback: (steps done, steps in all, what is being measured)
ProgressFn = Callable[[int, int, str], None]


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _check_repeats(repeats: object) -> int:
    from dsalab.errors import InvalidArgument

    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise InvalidArgument(
            f"calibrate: repeats={repeats!r} is not allowed: allowed is a whole number 1..{MAX_REPEATS}"
        )
    return repeats


def _check_guest(guest_bytes: object) -> int:
    from dsalab.errors import InvalidArgument

    ok = isinstance(guest_bytes, int) and not isinstance(guest_bytes, bool)
    if not ok or not (4 << 20) <= guest_bytes <= (16 << 30) or guest_bytes % (4 << 20):
        raise InvalidArgument(
            f"calibrate: guest_bytes={guest_bytes!r} is not allowed: allowed is a multiple of 4 MiB, 4 MiB to 16 GiB"
        )
    return guest_bytes


class _Steps:
    """Counts measurement steps for the progress callback / bar."""

    def __init__(self, total: int, progress: ProgressFn | bool | None) -> None:
        self.done, self.total = 0, total
        self.bar = None
        self.fn = progress if callable(progress) else None
        if progress is True:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="calibrate", unit="step", file=sys.stderr, leave=False)

    def step(self, what: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(what, refresh=False)
            self.bar.update(1)
        if self.fn is not None:
            self.fn(self.done, self.total, what)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def measure(
    *,
    quick: bool = False,
    repeats: int | None = None,
    progress: ProgressFn | bool | None = None,
    guest_bytes: int | None = None,
) -> dict:
    """Every measured figure of this machine: key -> :class:`Figure` (canonical units: ns, bytes/s), plus
    ``"_about"``, what was measured how (guest size, repeats, load averages). ``guest_bytes``: the engine runs'
    guest, 4 MiB..16 GiB, a multiple of 4 MiB (default 256 MiB, quick 32 MiB)."""
    from dsalab.migration import GuestMemory, run_trial

    reps = REPEATS[quick] if repeats is None else _check_repeats(repeats)
    guest_bytes = GUEST_BYTES[quick] if guest_bytes is None else _check_guest(guest_bytes)
    steps = _Steps(2 + reps * (len(ce.POINTS) + 6), progress)
    load_before = _loadavg()
    try:
        guests = {r: GuestMemory(guest_bytes, normal_ratio=r, seed=0) for r in (*ce.RATIOS, ce.MIXED)}
        truth = guests[ce.MIXED].truth  # True where a page is zero
        boundaries = int((truth[1:] & ~truth[:-1]).sum())
        for d in ce.DETECTORS:  # warm-up: numba compiles, the destination's allocator settles
            run_trial(ce.trial_of((d, 0.0, ce.PACKETS[-1]), guest_bytes), guest=guests[0.0])
        steps.step("warm-up")
        micro.dsa_prepare(guests[0.0], guest_bytes)
        steps.step("warm-up (emulated DSA)")
        per_repeat: dict[str, list[float]] = {}

        def add(key: str, value: float) -> None:
            per_repeat.setdefault(key, []).append(value)

        for _ in range(reps):
            add("pingpong", micro.wakeup(20000))
            steps.step("wake-up hand-off")
            runs = {}
            for point in ce.POINTS:
                runs[point] = run_trial(ce.trial_of(point, guest_bytes), guest=guests[point[1]])
                steps.step(ce.label(point))
            for key, value in ce.costs_of_repeat(runs, boundaries).items():
                add(key, value)
            wall, cpu = micro.stream(512 << 10, 512)
            add("stream_wall_512k", wall)
            add("send_byte", cpu / (512 << 10))
            steps.step("loopback stream, 512 KiB messages")
            small, _ = micro.stream(32, 50000)
            add("stream_wall_32", small)
            steps.step("loopback stream, 32-byte messages")
            add("write64", micro.write64(100000))
            steps.step("64-byte write()")
            add("prepare", micro.dsa_prepare(guests[0.0], guest_bytes))
            steps.step("emulated DSA, timing model off")
            add("memory", micro.bandwidth(max(guest_bytes, 64 << 20)))
            steps.step("memory read bandwidth")
    finally:
        steps.close()
    return _figures(per_repeat, guest_bytes, reps, load_before)


def _figures(v: dict[str, list[float]], guest_bytes: int, reps: int, load_before: str) -> dict:
    runs = ce.describe(guest_bytes)
    out: dict = {}
    for key, values in v.items():
        leaf = key.rsplit(".", 1)[-1]
        out[key] = figure(values, f"{runs}: {ce.HOW[leaf]}" if leaf in ce.HOW else key)
    page = ce.PAGE
    # the stream's writer CPU per byte is send_byte; the rest of a normal page's sending cost is send_page
    send_page = [max(0.0, c - page * b) for c, b in zip(v["send_normal_page"], v["send_byte"], strict=True)]
    out["send_page"] = figure(
        send_page,
        f"{runs}: {ce.HOW['send_normal_page']}, minus 4096 x host.send_byte",
    )
    out["send_byte"] = figure(
        v["send_byte"],
        "writer thread CPU per byte of a one-way loopback TCP stream of 512 KiB messages, another thread reading "
        "(native/calibrate.c dsl_cal_stream)",
    )
    bw = [(512 << 10) / w * 1e9 for w in v["stream_wall_512k"]]
    out["bandwidth"] = figure(
        bw, "bytes per wall second of a one-way loopback TCP stream of 512 KiB messages (native/calibrate.c)"
    )
    msg = [max(0.0, w - 32 / out["bandwidth"].value * 1e9) for w in v["stream_wall_32"]]
    out["message"] = figure(
        msg,
        "wall time per 32-byte message of a one-way loopback TCP stream (native/calibrate.c, TCP_NODELAY), "
        "minus its bytes at network.bandwidth",
    )
    pingpong = figure(v["pingpong"], "")
    out["wakeup"] = figure(
        v["wakeup"],
        f"{runs}: {ce.HOW['wakeup']} (for comparison, a mutex + condition-variable ping-pong in C, "
        f"native/calibrate.c dsl_cal_wakeup, costs {pingpong.value / 1e3:.3g} us of both threads' CPU per hand-off)",
    )
    out["write64"] = figure(
        v["write64"],
        "CPU of one 64-byte write() to /dev/null, 100000 calls (native/calibrate.c dsl_cal_write): the proxy "
        "for a descriptor written to an idxd work queue's character device, whose own checks are not measured",
    )
    out["prepare"] = figure(
        v["prepare"],
        f"detect_cpu_ms per page of engine runs on the emulated DSA with its timing model off "
        f"(emu:gbps=0,engines=1), {guest_bytes >> 20} MiB all-zero guest, 1 channel, batches of 1024 pages, "
        "completion thread: the offload layer's software cost per descriptor (includes 1/1024 of a submission "
        "and of a wake-up)",
    )
    out["memory"] = figure(
        v["memory"],
        f"native OR-reduce loop (dsalab.kernels.bandwidth_reference) over {max(guest_bytes, 64 << 20) >> 20} MiB, "
        f"{len(os.sched_getaffinity(0))} threads",
    )
    out["_about"] = {"guest_bytes": guest_bytes, "repeats": reps, "load_before": load_before, "load_after": _loadavg()}
    return out


def combine(measured: Sequence[dict]) -> dict:
    """One figure set from several :func:`measure` results (e.g. taken between other runs, so that drift of a
    shared machine's load affects both alike): each figure the median of every repeat of every set."""
    out: dict = {}
    keys = [k for k in measured[0] if k != "_about"]
    for key in keys:
        values = [v for m in measured for v in m[key].values]
        first = measured[0][key]
        out[key] = figure(values, first.how)
    about = dict(measured[0]["_about"])
    about["repeats"] = sum(m["_about"]["repeats"] for m in measured)
    about["load_after"] = measured[-1]["_about"]["load_after"]
    out["_about"] = about
    return out


#: profile key -> (figure key, unit written, significant digits); the rest of [host]/[network] is set below
_MEASURED = {
    "host.memory_read_bandwidth": ("memory", "GB/s"),
    "host.main_page": ("main_page", "ns/page"),
    "host.main_packet": ("main_packet", "ns/packet"),
    "host.packet": ("packet", "ns/packet"),
    "host.send_page": ("send_page", "ns/page"),
    "host.send_byte": ("send_byte", "ns/B"),
    "host.send_parallel": ("send_parallel", "fraction"),
    "host.receive_page": ("receive_page", "ns/page"),
    "host.receive_byte": ("receive_byte", "ns/B"),
    "host.receive_packet": ("receive_packet", "ns/packet"),
    "host.wakeup": ("wakeup", "ns/wakeup"),
    "network.bandwidth": ("bandwidth", "GB/s"),
    "network.message": ("message", "ns/message"),
    "dsa.prepare_descriptor": ("prepare", "ns/descriptor"),
    "dsa.submit_write": ("write64", "ns/submission"),
}


def _round(x: float) -> float:
    """Four significant digits (what a profile writes)."""
    return float(f"{x:.4g}")


def _quantity(key: str, fig: Figure, unit: str) -> Quantity:
    leaf = key.rsplit(".", 1)[-1]
    kind = (
        (SPEC | OPTIONAL)[key].kind if key in SPEC or key in OPTIONAL else (ZERO_CHECK | ZERO_CHECK_OPTIONAL)[leaf].kind
    )
    from dsalab.model.quantities import KINDS

    written = _round(max(0.0, KINDS[kind].from_canonical(fig.value, unit)))
    clipped = " (clipped at 0: the fit came out negative, i.e. below what the runs resolve)" if fig.value < 0 else ""
    return Quantity.of(kind, written, unit, f"{COMMAND}: {fig.note()}{clipped}")


def build_profile(figures: dict, *, name: str | None = None, quick: bool = False) -> HardwareProfile:
    """The hardware profile of this machine from :func:`measure`'s figures."""
    from dsalab import machine

    about_m = figures["_about"]
    cpu = machine.cpu()
    system = machine.system()
    git = machine.git()
    import dsalab

    host = name or system["hostname"]
    flags = str(cpu["cpu_flags"]) or "none"
    cmd = COMMAND + (" --quick" if quick else "") + f" --repeats {about_m['repeats']}"
    if about_m["guest_bytes"] != GUEST_BYTES[quick]:
        cmd += f" (python: guest_bytes={about_m['guest_bytes']})"
    about = {
        "name": host,
        "description": f"this machine ({cpu['cpu_model']}, {cpu['cpu_affinity']} usable cores), measured by "
        f"{COMMAND}; [dsa] is one published Sapphire Rapids DSA device (none is here)",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": cmd,
        "dsalab_version": dsalab.__version__,
        "git_commit": str(git["git_commit"]) + (" (dirty)" if git["git_dirty"] else ""),
        "cpu_model": str(cpu["cpu_model"]),
        "cpu_flags": flags,
        "cores": int(cpu["cpu_affinity"]),
        "kernel": system["kernel"],
        "load_average": f"before {about_m['load_before']}, after {about_m['load_after']} (1, 5, 15 min)",
    }
    entries: dict[str, Entry] = {}
    cores = len(os.sched_getaffinity(0))
    entries["host.cores"] = Quantity.of("count", cores, "cores", f"{COMMAND}: os.sched_getaffinity (usable cores)")
    for key, (fkey, unit) in _MEASURED.items():
        if key.startswith("host.") or key.startswith("network."):
            entries[key] = _quantity(key, figures[fkey], unit)
    entries["host.page_bytes"] = Quantity.of("size", ce.PAGE, "B", f"{COMMAND}: the page size of every run")
    for d in CPU_DETECTORS:
        for leaf in [*ZERO_CHECK, *ZERO_CHECK_OPTIONAL]:
            key = f"host.zero_check.{d}.{leaf}"
            entries[key] = _quantity(key, figures[f"zero_check.{d}.{leaf}"], "ns/page")
    entries["network.same_host"] = Setting(
        True, f"{COMMAND}: loopback on this host, so the receivers share these cores"
    )
    no_dsa = "this host has no DSA device; "
    entries["dsa.devices"] = Quantity.of(
        "count",
        4,
        "count",
        f"{COMMAND}: what if this host had DSA (it has none): one Sapphire Rapids socket's 4 devices (a 2-socket "
        "server of 192 CPUs has 8: the seed's thread, Liu Yuan1, Intel, 15 Jul 2024)",
    )
    for key, entry in DEVICE.items():
        entries[key] = dataclasses.replace(entry, source=f"{COMMAND} copied the published figure: {entry.source}")
    for key in ("dsa.prepare_descriptor", "dsa.submit_write"):
        fkey, unit = _MEASURED[key]
        entries[key] = _quantity(key, figures[fkey], unit)
    for key, entry in ESTIMATES.items():
        if key in entries:  # measured here
            continue
        flag = {"dsa.submit_enqcmd": "enqcmd", "dsa.submit_movdir64b": "movdir64b"}.get(key)
        why = f"this CPU has no {flag.upper()} to measure it" if flag and flag not in flags.split(",") else no_dsa
        entries[key] = dataclasses.replace(entry, source=f"{COMMAND} ({why.rstrip('; ')}): {entry.source}")
    order = [*SPEC, *(k for k in entries if k not in SPEC)]
    ordered = {k: entries[k] for k in sorted(entries, key=lambda k: _order(k, order))}
    return HardwareProfile(host, ordered, about)


def _order(key: str, order: list[str]) -> tuple[int, str]:
    if key in order[: len(SPEC)]:
        return (order.index(key), key)
    return (len(SPEC), key)


def calibrate(
    *,
    quick: bool = False,
    repeats: int | None = None,
    progress: ProgressFn | bool | None = None,
    name: str = "",
    guest_bytes: int | None = None,
) -> HardwareProfile:
    """Measure this machine and return its :class:`HardwareProfile` (not saved: see :meth:`HardwareProfile.save`).

    ``quick``: a 32 MiB guest and 2 repeats (well under 30 s) instead of 256 MiB and 7 (a minute or two);
    ``repeats``: 1..100, overrides the mode's; ``progress``: True for a tqdm bar on stderr, or a callable
    ``(steps done, steps in all, what)``; ``name``: the profile's name (default: this host's name);
    ``guest_bytes``: the engine runs' guest (see :func:`measure`)."""
    figures = measure(quick=quick, repeats=repeats, progress=progress, guest_bytes=guest_bytes)
    return build_profile(figures, name=name or None, quick=quick)


def default_path(root: str | os.PathLike[str] = "data/hardware") -> str:
    """Where this machine's profile goes: ``data/hardware/<hostname>.toml``."""
    return os.path.join(os.fspath(root), f"{socket.gethostname()}.toml")


def table(profile: HardwareProfile) -> str:
    """The profile as a text table: key, value, unit, and how the number was obtained (measured here, with its
    spread; set here; published; estimate)."""
    lines = [f"{'key':44} {'value':>12} {'unit':16} how"]
    for key, entry in profile.entries.items():
        if isinstance(entry, Quantity):
            shown = f"{entry.written:>12.4g} {entry.unit:16}"
        elif isinstance(entry, Setting):
            shown = f"{entry.value!s:>12} {'':16}"
        else:
            shown = f"{'curve':>12} {entry.unit:16}"
        src = entry.source
        if "median of" in src:
            how = "measured, " + src[src.rfind("median of") :]
        elif "estimate" in src:
            how = "estimate (not published)"
        elif "published" in src:
            how = "published"
        else:
            how = "set: " + src.removeprefix(f"{COMMAND}: ")
        lines.append(f"{key:44} {shown} {how}")
    return "\n".join(lines)
