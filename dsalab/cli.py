"""The ``dsalab`` command line (typer). Each command is thin: it parses, calls the package, prints."""

from __future__ import annotations

import json

import typer

app = typer.Typer(
    name="dsalab",
    help="Study Intel DSA zero-page offload in QEMU-style multifd live migration.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """dsalab: DSA zero-page offload, CPU baselines, multifd migration engine, sweeps and plots."""


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


@app.command()
def info(as_json: bool = typer.Option(False, "--json", help="Print the provenance dict as JSON.")) -> None:
    """Versions, CPU, memory, native build and the DSA devices and work queues of this machine."""
    from dsalab import machine

    data = machine.info()
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    flags = ", ".join(f"{f} {'yes' if data[f'cpu_has_{f}'] else 'no'}" for f in machine.RELEVANT_FLAGS)
    lines = [
        f"dsalab {data['dsalab_version']}  (git {str(data['git_commit'])[:12]}{' dirty' if data['git_dirty'] else ''})",
        f"python {data['python_version']}  numpy {data['numpy_version']}  numba {data['numba_version']}  "
        f"cffi {data['cffi_version']}",
        f"cpu     {data['cpu_model']}",
        f"        {data['cpu_count']} cores ({data['cpu_affinity']} usable), memory {_gib(int(data['memory_bytes']))}",
        f"flags   {flags}",
        f"system  {data['hostname']}, Linux {data['kernel']}",
        f"native  ABI {data['native_abi']}, build {data['native_build_id']}, kernels use {data['kernel_isa']}",
        f"        <linux/idxd.h> at build time: {'found' if data['built_with_idxd_h'] else 'not found'}",
        f"        hardware submission (ENQCMD/MOVDIR64B): "
        f"{'compiled' if data['built_with_portal_isa'] else 'not compiled'}; "
        f"UMWAIT wait: {'compiled' if data['built_with_waitpkg'] else 'not compiled'}",
    ]
    devs = data["dsa_devices"]
    queues = data["dsa_work_queues"]
    if not devs and not queues:
        lines.append("dsa     no DSA devices (/sys/bus/dsa is empty or absent): use the emulated device, 'emu'")
    else:
        lines.append(f"dsa     {len(devs)} device(s), {len(queues)} work queue(s)")
        for d in devs:
            lines.append(f"        {d['name']}: {d['state']}, max batch {d['max_batch_size']}")
        for q in queues:
            lines.append(
                f"        {q['name']} {q['path']}: {q['mode']}, size {q['size']}, priority {q['priority']}, "
                f"{q['state']}, type {q['type']}, access {q['access']}"
            )
    typer.echo("\n".join(lines))


def _trial_from_options(**opts: object):
    from dsalab.migration import Trial

    devices = opts.pop("devices")
    if devices is not None:
        opts["devices"] = int(devices) if devices.isdigit() else tuple(d for d in devices.split(";") if d)
    return Trial(**{k: v for k, v in opts.items() if v is not None})


@app.command()
def run(
    guest: str = typer.Option("256MiB", "--guest", help="Guest RAM, e.g. 4GiB."),
    normal_ratio: float = typer.Option(0.5, help="Fraction of guest pages that are normal (non-zero)."),
    force_normal_ratio: float = typer.Option(0.0, help="Fraction of zero pages sent as normal anyway."),
    channels: int = typer.Option(2, help="multifd channels."),
    packet: str = typer.Option("512KiB", "--packet", help="multifd packet size, e.g. 512KiB."),
    detector: str = typer.Option("cpu-numba", help="cpu-numba, cpu-native, dsa-emulated or dsa-hardware."),
    devices: str = typer.Option(None, help="DSA devices: a count, or specs separated by ';'."),
    batch_size: int = typer.Option(128, help="Pages per DSA batch descriptor."),
    completion: str = typer.Option("thread", help="DSA completion waiting: thread, poll or umwait."),
    cpu_fraction: float = typer.Option(0.0, help="Fraction of each detection done on the CPU."),
    max_bandwidth: str = typer.Option("0", help="Bandwidth limit in bytes/s, e.g. 1GiB (0 = unlimited)."),
    dirty_rate: str = typer.Option("0", help="Guest dirtying rate in bytes/s, e.g. 100MiB."),
    downtime_limit_ms: float = typer.Option(300.0, help="Downtime limit, ms."),
    page_size: int = typer.Option(4096, help="Page size, bytes."),
    seed: int = typer.Option(0, help="Seed of guest memory and dirtying."),
    huge_pages: bool = typer.Option(False, help="Back guest memory with transparent huge pages."),
    out: str = typer.Option(None, "--out", help="Write the result dataset (netCDF) here."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Run one migration trial over loopback TCP and print a table laid out like the seed's."""
    from tqdm import tqdm

    from dsalab.errors import DsalabError
    from dsalab.migration import run_trial

    try:
        trial = _trial_from_options(
            guest_bytes=guest,
            normal_ratio=normal_ratio,
            force_normal_ratio=force_normal_ratio,
            channels=channels,
            packet_bytes=packet,
            detector=detector,
            devices=devices,
            batch_size=batch_size,
            completion=completion,
            cpu_fraction=cpu_fraction,
            max_bandwidth_bytes=max_bandwidth,
            dirty_rate_bytes_per_s=dirty_rate,
            downtime_limit_ms=downtime_limit_ms,
            page_size=page_size,
            seed=seed,
            huge_pages=huge_pages,
        )
    except (ValueError, TypeError) as exc:
        _fail(str(exc))
    bar = tqdm(
        total=trial.guest_bytes // trial.page_size,
        unit="page",
        unit_scale=True,
        disable=quiet,
        desc=f"{trial.detector} {trial.channels}ch",
    )

    def progress(done: int, total: int) -> None:
        bar.total = max(total, done)
        bar.n = done
        bar.refresh()

    try:
        result = run_trial(trial, progress=progress)
    except (DsalabError, OSError) as exc:
        bar.close()
        _fail(str(exc))
    bar.close()
    typer.echo(result.table())
    if out:
        from dsalab import results

        path = results.write_trial(result, out)
        typer.echo(f"wrote {path}")


@app.command()
def scenarios(
    guest: str = typer.Option("1GiB", "--guest", help="Guest RAM of each trial, e.g. 1GiB."),
    channels: int = typer.Option(8, help="multifd channels (the seed used 8)."),
    cpu_detector: str = typer.Option("cpu-numba", help="The baseline detector."),
    dsa_detector: str = typer.Option("dsa-emulated", help="dsa-emulated, or dsa-hardware with real queues."),
    seed: int = typer.Option(0),
) -> None:
    """The cover letter's scenarios 1 (50% normal) and 2 (all zero), CPU vs DSA, beside the published figures."""
    from dsalab import scenarios as sc
    from dsalab.errors import DsalabError

    try:
        table, _ = sc.compare_seed_scenarios(
            guest,
            channels=channels,
            cpu_detector=cpu_detector,
            dsa_detector=dsa_detector,
            seed=seed,
            progress=lambda msg: typer.echo(msg, err=True),
        )
    except (DsalabError, ValueError, TypeError, OSError) as exc:
        _fail(str(exc))
    typer.echo(sc.format_comparison(table))


@app.command()
def plot(
    path: str = typer.Argument(
        None, help="A results netCDF file, a directory of them, or a glob ('data/results/**/*.nc')."
    ),
    kind: str = typer.Option(
        "auto", "--kind", "-k", help="Figure kinds, comma-separated: auto (every kind that applies) or kinds below."
    ),
    out: str = typer.Option("data/figures", "--out", "-o", help="Directory to write the figures to."),
    formats: str = typer.Option("html,png", "--formats", help="Comma-separated: html, png, svg, pdf, jpeg, webp."),
    latest: bool = typer.Option(False, "--latest", help="Plot the newest file under --results (PATH not needed)."),
    results_dir: str = typer.Option("data/results", "--results", help="Where --latest looks."),
    reference: bool = typer.Option(False, "--reference", help="Per-thread CPU beside the seed's published figures."),
) -> None:
    """Write the figures of result datasets (HTML with plotly.js embedded, and static images) and print their paths.

    Kinds: threads, batch-packet, heatmap, scaling, break-even, latency; `auto` writes every kind the dataset's
    swept parameters allow. Files are named <out>/<result file name>-<kind>.<format>.
    """
    import pathlib

    from dsalab import explore, plots

    kinds = [k.strip() for k in kind.split(",") if k.strip()] or ["auto"]
    bad = [k for k in kinds if k != "auto" and k not in plots.KINDS]
    if bad:
        _fail(f"unknown --kind {', '.join(bad)}; choose from auto, {', '.join(plots.KINDS)}")
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    bad = [f for f in fmts if f not in plots.FORMATS]
    if bad or not fmts:
        given = ", ".join(bad) if bad else repr(formats)
        _fail(f"unknown --formats {given}; choose from {', '.join(plots.FORMATS)}")
    if latest:
        if path is not None:
            _fail("give PATH or --latest, not both")
        newest = explore.latest_result(results_dir)
        if newest is None:
            typer.echo(f"no result files (*.nc) under {results_dir}: nothing to plot")
            return
        files = [newest]
    elif path is None:
        _fail("give PATH (a results netCDF file, directory or glob) or --latest")
    else:
        files = explore.find_results(path)
        if not files:
            _fail(f"no result files match {path}")
    auto = "auto" in kinds
    written = []
    for f in files:
        try:
            ds = explore.load(f)
        except (OSError, ValueError) as exc:
            _fail(f"cannot read {f}: {exc}")
        try:
            figs = plots.overview(ds, None if auto else kinds)
            if not auto and (skipped := [k for k in kinds if k not in figs]):
                plots.figure(ds, skipped[0])  # raises ValueError saying why the kind does not apply
            if reference and "threads" in figs:
                figs["threads"] = plots.thread_cpu(ds, reference=True)
        except ValueError as exc:
            _fail(f"{f}: {exc}")
        base = pathlib.Path(out) / pathlib.Path(f).stem
        written += plots.export_many({f"{base}-{k}": fig for k, fig in figs.items()}, fmts)
    for p in written:
        typer.echo(str(p))


def main() -> None:
    """Entry point of the ``dsalab`` script."""
    app()


if __name__ == "__main__":
    main()
