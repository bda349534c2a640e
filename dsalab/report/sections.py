"""The report's text sections: what ran (sweep file, machine, versions, commit), the backends and their caveats,
and the summary tables (:func:`dsalab.analysis.summarize`'s, as ``dsalab summary`` prints them)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from dsalab import analysis
from dsalab.backends import Backend
from dsalab.caveats import caveats
from dsalab.plots.runs import NOT_RUN
from dsalab.report.page import Row, esc, mean_std, number, table
from dsalab.schema import units
from dsalab.units import format_bytes

#: what each backend is, one sentence, beside the caveats :mod:`dsalab.caveats` finds in the data
BACKEND_NOTES = {
    Backend.CPU_NUMBA: "the engine (loopback TCP, per-thread CPU from /proc) with zero pages found by a numba kernel",
    Backend.CPU_NATIVE: "the engine with zero pages found by the C loop (no GIL), the seed's CPU baseline",
    Backend.DSA_EMULATED: (
        "the engine with zero checks offloaded to a software DSA (engine threads on this host's CPU, their time "
        "counted as device time, not host CPU)"
    ),
    Backend.DSA_HARDWARE: "the engine with zero checks offloaded to real DSA work queues (/dev/dsa)",
    Backend.QEMU: "two real QEMU processes migrating over QMP on loopback",
    Backend.MODEL: "predicted by dsalab.model from a hardware profile: nothing was migrated",
}
NOT_RECORDED = "not recorded"
#: a saving with no pair of successful trials (the DSA point has no CPU-detector twin that succeeded)
NO_PAIR = "no pair"

#: (row label, attribute) of the "what ran" table; values not in the attributes say "not recorded"
SWEEP_FIELDS = (
    ("sweep", "sweep_name"),
    ("description", "sweep_description"),
    ("sweep file", "sweep_path"),
    ("sweep file SHA-256", "sweep_sha256"),
    ("runner", "runner"),
    ("hardware profile (model)", "hardware_profile"),
    ("seed", "seed"),
    ("warm-up passes", "warmups"),
    ("scheduler", "scheduler"),
    ("made by", "source"),
    ("created (UTC)", "machine_date"),
)
MACHINE_FIELDS = (
    ("host", "machine_hostname"),
    ("CPU", "machine_cpu_model"),
    ("CPUs of the machine", "machine_cpu_count"),
    ("kernel", "machine_kernel"),
    ("OS", "machine_os"),
    ("DSA devices", "machine_dsa_devices"),
    ("git commit", "git_commit"),
    ("uncommitted changes", "git_dirty"),
)

#: (row label, attributes): what the QEMU runner recorded (the first attribute present: a sweep's ``*_ran``, what
#: its trials' QEMUs did, else one trial's own); rows no run recorded are left out
QEMU_FIELDS = (
    ("QEMU binary", ("qemu_binary",)),
    ("QEMU version that ran", ("qemu_version_ran", "qemu_version")),
    ("QEMU accelerator (kvm, tcg)", ("qemu_accel_ran", "qemu_accel")),
    ("QEMU zero-page detection", ("qemu_zero_page_detection_ran", "qemu_zero_page_detection")),
)


#: attributes shown as words: value as text -> shown
READABLE = {"git_dirty": {"0": "no", "1": "yes"}, "machine_dsa_devices": {"[]": "none found"}}


def _attr(ds, key: str) -> str:
    """Attribute ``key`` of ``ds`` as text (``not recorded`` when missing; flags as yes/no)."""
    value = ds.attrs.get(key)
    if value is None or value == "":
        return NOT_RECORDED
    if isinstance(value, np.generic):
        value = value.item()
    return READABLE.get(key, {}).get(str(value), str(value))


def _first_attr(ds, keys: Sequence[str]) -> str:
    """The first of attributes ``keys`` that ``ds`` recorded, as text (``not recorded`` when none)."""
    return next((v for v in (_attr(ds, k) for k in keys) if v != NOT_RECORDED), NOT_RECORDED)


def backends(ds) -> list[str]:
    """The backends that produced the successful trials of ``ds`` (all of them when none succeeded)."""
    values = np.asarray(ds["backend"].values).astype(str).ravel()
    ok = np.asarray(ds["status"].values).astype(str).ravel() == "ok" if "status" in ds else np.ones(len(values), bool)
    found = sorted({v for v in (values[ok] if ok.any() else values) if v})
    return found or [b for b in str(ds.attrs.get("backend", "")).split(",") if b]


def derived(ds) -> list[tuple[str, str]]:
    """Facts read from the data rather than the attributes: backends, swept parameters, repeats, trials, memory."""
    swept = ", ".join(f"{d} ({ds.sizes[d]})" for d in analysis.swept_dims(ds)) or "nothing"
    status = np.asarray(ds["status"].values).astype(str)
    error = np.asarray(ds["error"].values).astype(str) if "error" in ds else np.full(status.shape, "")
    not_run = int(((status != "ok") & (error == NOT_RUN)).sum())
    failed = int((status != "ok").sum()) - not_run
    ran = status.size - not_run
    trials = f"{ran} ({failed} failed)" if failed else f"{ran}, all succeeded" if ran else "0"
    if not_run:
        trials += f"; {not_run} not run"
    cpus = _attr(ds, "machine_cpu_affinity")
    memory = ds.attrs.get("machine_memory_bytes")
    return [
        ("backends", ", ".join(backends(ds)) or NOT_RECORDED),
        ("swept parameters (values)", swept),
        ("repeats", str(ds.sizes.get("repeat", 1))),
        ("trials", trials),
        ("CPUs this process could use", cpus),
        ("memory", format_bytes(float(memory)) if isinstance(memory, int | float | np.number) else NOT_RECORDED),
    ]


def versions(ds) -> list[tuple[str, str]]:
    """(name, version) of every ``*_version`` attribute (Python, NumPy, numba, dsalab, the schema, ...)."""
    out = []
    for key in sorted(ds.attrs):
        if key.endswith("_version"):
            out.append((key.removeprefix("machine_").removesuffix("_version"), _attr(ds, key)))
    return out


def _rows(runs: Sequence[tuple[str, Any]]) -> list[tuple[str, list[str]]]:
    rows = [(label, [_attr(ds, key) for _, ds in runs]) for label, key in SWEEP_FIELDS]
    per_run = [dict(derived(ds)) for _, ds in runs]
    rows += [(label, [p[label] for p in per_run]) for label in per_run[0]]
    rows += [(label, [_attr(ds, key) for _, ds in runs]) for label, key in MACHINE_FIELDS]
    rows += [(label, [_first_attr(ds, keys) for _, ds in runs]) for label, keys in QEMU_FIELDS]
    names = sorted({n for _, ds in runs for n, _ in versions(ds)})
    vers = [dict(versions(ds)) for _, ds in runs]
    rows += [(f"{n} version", [v.get(n, NOT_RECORDED) for v in vers]) for n in names]
    return rows


def what_ran(runs: Sequence[tuple[str, Any]]) -> str:
    """Section "What ran": sweep, machine, versions and commit (one column per run; rows where runs differ are
    highlighted), then each run's sweep file as written, and every attribute in a collapsed table."""
    header = ["", *(name or "this run" for name, _ in runs)]
    rows = []
    for label, values in _rows(runs):
        if all(v == NOT_RECORDED for v in values):
            continue  # leave out what no run recorded
        cells = [label, *values]
        rows.append(Row(cells, "differs") if len(set(values)) > 1 else cells)
    out = ['<h2 id="what-ran">What ran</h2>', table(header, rows)]
    if len(runs) > 1:
        out.append('<p class="note">Highlighted rows differ between the runs.</p>')
    for name, ds in runs:
        text = ds.attrs.get("sweep_file")
        where = f" of {esc(name)}" if name else ""
        if isinstance(text, str) and text:
            out.append(f"<h3>Sweep file{where} ({esc(_attr(ds, 'sweep_path'))})</h3><pre>{esc(text)}</pre>")
        else:
            base = ds.attrs.get("base_trial") or ds.attrs.get("trial")
            grid = ds.attrs.get("grid")
            out.append(f"<h3>Trials{where}</h3><p class='note'>not from a sweep file: base trial and grid below</p>")
            out.append(f"<pre>{esc(_pretty(base))}\n{esc(_pretty(grid))}</pre>")
        toml = ds.attrs.get("hardware_toml")
        if isinstance(toml, str) and toml:
            out.append(f"<details><summary>Hardware profile{where} (TOML)</summary><pre>{esc(toml)}</pre></details>")
        attrs = [(k, _attr(ds, k)) for k in sorted(ds.attrs) if k not in ("sweep_file", "hardware_toml")]
        out.append(
            f"<details><summary>Every attribute{where}</summary>{table(['attribute', 'value'], attrs)}</details>"
        )
    return "\n".join(out)


def _pretty(text: Any) -> str:
    if not isinstance(text, str) or not text:
        return NOT_RECORDED
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True)
    except ValueError:
        return text


def backends_and_caveats(runs: Sequence[tuple[str, Any]]) -> str:
    """Section "Backends and caveats": what produced the results, and what the figures cannot tell by themselves
    (:func:`dsalab.caveats.caveats`: e.g. an emulated device sharing the host's cores, a model's prediction)."""
    out = ['<h2 id="caveats">Backends and caveats</h2>']
    for name, ds in runs:
        if name:
            out.append(f"<h3>{esc(name)}</h3>")
        items = "".join(
            f"<li><b>{esc(b)}</b>: {esc(BACKEND_NOTES.get(b, 'a backend this report does not describe'))}</li>"
            for b in backends(ds)
        )
        out.append(f"<ul>{items}</ul>")
        notes = caveats(ds)
        if isinstance(ds.attrs.get("model_note"), str):
            notes.append(ds.attrs["model_note"])
        out += [f'<div class="caveat">{esc(c)}</div>' for c in notes]
        if not notes:
            out.append('<p class="note">No caveat applies to these results.</p>')
    return "\n".join(out)


def _point(point: Any) -> str:
    """A parameter point as ``batch_size=32, packet_bytes=131072`` (as ``dsalab summary`` prints it)."""
    if not isinstance(point, dict):
        return str(point)
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "(the only point)"


def summary_tables(runs: Sequence[tuple[str, Any]]) -> str:
    """Section "Summary": the best point per detector and the host CPU DSA saves (overall and per point), from
    :func:`dsalab.analysis.summarize`; several runs side by side (a run column), then ``dsalab summary``'s text."""
    many = len(runs) > 1
    lead = ["run"] if many else []
    best, overall, points, texts = [], [], [], []
    for name, ds in runs:
        s = analysis.summarize(ds)
        texts.append((name, analysis.format_summary(s, ds)))
        for _, r in s.best.iterrows():
            unit = units(r.metric)
            value = mean_std(r["mean"], r["std"], unit, r.n) if r.n else "no successful trial"
            best.append([*([name] if many else []), r.detector, r.criterion, value, r.n, _point(r.point)])
        for _, r in s.overall.iterrows():
            value = f"{mean_std(r.saved_pct, r.saved_pct_std, n=r.n)} %" if r.n else NO_PAIR
            overall.append([*([name] if many else []), r.dsa, r.cpu, value, r.n])
        for _, r in s.savings.iterrows():
            points.append(
                [
                    *([name] if many else []),
                    f"{r.dsa} vs {r.cpu}",
                    _point(r.point),
                    number(r.cpu_ms_per_gb),
                    number(r.dsa_ms_per_gb),
                    f"{mean_std(r.saved_pct, r.saved_pct_std, n=r.n)} %" if r.n else NO_PAIR,
                    r.n,
                ]
            )
    k = len(lead)
    out = ['<h2 id="summary">Summary</h2>', "<h3>Best point per detector (mean ± std over repeats)</h3>"]
    out.append(table([*lead, "detector", "criterion", "value", "n", "at"], best, numeric=(k + 2, k + 3)))
    out.append("<h3>Host CPU saved by DSA against CPU detection (host CPU per GB, paired by repeat)</h3>")
    if overall:
        out.append(table([*lead, "DSA", "CPU", "saved (all points)", "repeat pairs"], overall, numeric=(k + 2, k + 3)))
        header = [*lead, "pair", "point", "CPU ms/GB", "DSA ms/GB", "saved", "pairs"]
        out.append(table(header, points, numeric=(k + 2, k + 3, k + 4, k + 5)))
    else:
        out.append('<p class="note">No run sweeps both a DSA and a CPU detector: nothing to compare.</p>')
    for name, text in texts:
        where = f" ({esc(name)})" if name else ""
        out.append(f"<details><summary>As <code>dsalab summary</code> prints it{where}</summary><pre>{esc(text)}</pre>")
        out.append("</details>")
    return "\n".join(out)
