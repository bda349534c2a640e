"""The ``dsalab`` command line (typer). Each command is thin: it parses, calls the package, prints."""

from __future__ import annotations

import json

import typer

from dsalab.trial_options import with_trial_options

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


@app.command()
def devices(
    suggest_config: str = typer.Option(None, "--suggest-config", help="Write an accel-config JSON here."),
    device: list[str] = typer.Option(None, "--device", help="Devices to configure (dsa0, ...); default: those found."),
    sysfs_root: str = typer.Option("/sys/bus/dsa/devices", help="Where the idxd driver shows devices."),
    dev_root: str = typer.Option("/dev/dsa", help="Where the work queues' character devices are."),
) -> None:
    """DSA work queues of this machine (mode, size, priority, max batch, portal or write()), and a suggested
    accel-config setup."""
    import pathlib

    from dsalab import devices as dv

    queues = dv.discover(pathlib.Path(sysfs_root), pathlib.Path(dev_root))
    if not queues:
        typer.echo(f"no DSA work queues under {sysfs_root}: dsalab uses the emulated device ('emu').")
    for q in queues:
        typer.echo(
            f"{q.name}  {q.path}  mode {q.mode}, size {q.size}, priority {q.priority}, max batch "
            f"{q.max_batch_size}, {q.state}, type {q.type}, name {q.wq_name or '-'}\n    access: {q.access}: {q.advice}"
        )
    if suggest_config:
        try:
            config = dv.suggest_accel_config(device or None, sysfs_root=pathlib.Path(sysfs_root))
        except ValueError as exc:
            _fail(str(exc))
        pathlib.Path(suggest_config).write_text(json.dumps(config, indent=2) + "\n")
        names = ", ".join(c["dev"] for c in config)
        typer.echo(
            f"wrote {suggest_config}: one shared user queue 'dsalab' of 128 descriptors on {names}.\n"
            f"load it as root with: accel-config load-config -c {suggest_config} -e"
        )


@app.command()
@with_trial_options
def run(
    fields: dict,
    out: str = typer.Option(None, "--out", help="Write the result dataset (netCDF) here."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Run one migration trial over loopback TCP and print a table laid out like the seed's.

    Every Trial field is an option of its name and default (--guest, --packet: --guest-bytes, --packet-bytes)."""
    from tqdm import tqdm

    from dsalab.errors import DsalabError
    from dsalab.migration import Trial, run_trial

    try:
        trial = Trial(**fields)
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

        try:
            path = results.write_trial(result, out)
        except (DsalabError, OSError) as exc:
            _fail(f"cannot write {out} ({exc})")
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


def _load_sweep(file: str):
    from dsalab import sweepfile
    from dsalab.errors import SweepFileError

    try:
        return sweepfile.load(file)
    except SweepFileError as exc:
        _fail(str(exc))


def _open_client(scheduler: str | None, local_workers: int | None):
    """(client, cluster, label) for the options, or (None, None, "serial")."""
    if scheduler and local_workers:
        _fail("--scheduler and --local-workers exclude each other: give one (or neither for a serial run)")
    if scheduler is not None:
        import re

        if not re.fullmatch(r"tcp://[^\s:/]+:\d{1,5}", scheduler):
            _fail(f"--scheduler {scheduler!r} is not allowed: give a Dask scheduler address tcp://HOST:PORT")
        from distributed import Client

        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            _fail(f"--scheduler {scheduler}: cannot connect ({exc})")
        return client, None, scheduler
    if local_workers is not None:
        if local_workers < 1:
            _fail(f"--local-workers {local_workers} is not allowed: an int >= 1")
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster, f"local:{local_workers}"
    return None, None, "serial"


@app.command()
def sweep(
    file: str = typer.Argument(..., help="Sweep file (TOML), e.g. data/sweeps/quick.toml."),
    out: str = typer.Option(
        None, "--out", help="Result file (netCDF). Default: data/results/<hostname>/<date>-<sweep>-<commit8>.nc."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the trials of an interrupted run of this file."),
    scheduler: str = typer.Option(None, "--scheduler", help="Run on an existing Dask cluster: tcp://HOST:PORT."),
    local_workers: int = typer.Option(
        None, "--local-workers", help="Start a local Dask cluster of N single-thread worker processes."
    ),
    quiet: bool = typer.Option(False, help="No progress bar."),
    summary: bool = typer.Option(True, help="Print the summary when done."),
) -> None:
    """Run every trial of a sweep file (serially unless a Dask option is given), write the dataset, summarise."""
    import contextlib
    import pathlib
    import warnings

    from dsalab import results
    from dsalab import sweep as sw
    from dsalab.errors import DsalabError

    spec = _load_sweep(file)
    path = results.default_path(spec.name) if out is None else pathlib.Path(out)
    partial = sw.default_partial_path(spec) if out is None else sw.partial_path_for(out)
    if path.is_dir():
        _fail(f"--out {path} is a directory: give the result file's path, e.g. {path / (spec.name + '.nc')}")
    with contextlib.ExitStack() as held, warnings.catch_warnings():
        warnings.simplefilter("always", sw.PartialFileWarning)
        warnings.showwarning = lambda message, *_a, **_k: typer.echo(f"warning: {message}", err=True)
        try:  # one writer per output and per partial file, from here until the partial file is gone
            held.enter_context(sw.exclusive(path))
            held.enter_context(sw.exclusive(partial))
        except DsalabError as exc:
            _fail(str(exc))
        if partial.exists() and not resume:
            _fail(f"partial file {partial} of an interrupted run exists: pass --resume to continue it, or delete it")
        client, cluster, label = _open_client(scheduler, local_workers)
        typer.echo(
            f"sweep {spec.name}: {spec.n_points} points x {spec.repeats} repeats (+{spec.warmups} warm-up passes), "
            f"{label}; partial results in {partial}",
            err=True,
        )
        try:
            ds = sw.run_sweep(spec, partial=partial, resume=resume, client=client, progress=not quiet, scheduler=label)
        except KeyboardInterrupt:
            typer.echo(f"interrupted: finished trials are kept in {partial}; rerun with --resume to continue", err=True)
            raise typer.Exit(130) from None
        except DsalabError as exc:
            _fail(str(exc))
        finally:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
        try:  # fsyncs the file and its directory: only then may the partial file go
            results.write(ds, path)
        except (DsalabError, OSError) as exc:
            _fail(f"cannot write {path} ({exc}); the finished trials are kept in {partial}: rerun with --resume")
        partial.unlink(missing_ok=True)
    typer.echo(f"wrote {path}")
    if summary:
        from dsalab import analysis

        typer.echo(analysis.format_summary(analysis.summarize(ds), ds))


@app.command("summary")
def summary_cmd(
    path: str = typer.Argument(..., help="A result file, a glob of them (quoted), e.g. 'data/results/*/*.nc'."),
) -> None:
    """Best point per detector (CPU per GB, total time) and the host CPU DSA saves, per result file."""
    from dsalab import analysis, results

    try:
        ds = results.open(path)
    except (OSError, ValueError) as exc:
        _fail(f"{path}: {exc}")
    runs = [(str(r), ds.sel(run=r)) for r in ds["run"].values] if "run" in ds.dims else [(path, ds)]
    blocks = []
    for name, one in runs:
        if "run" in ds.dims:
            one = one.drop_vars([v for v in one.data_vars if str(v).startswith("run_")] + ["run"])
        blocks.append((f"== {name}\n" if len(runs) > 1 else "") + analysis.format_summary(analysis.summarize(one), one))
    typer.echo("\n\n".join(blocks))


@app.command()
def tune(
    file: str = typer.Argument("data/sweeps/tune.toml", help="Sweep file whose [sweep] lists the candidate values."),
    slack: float = typer.Option(10.0, "--slack", help="Allowed throughput loss below the best seen, percent."),
    max_rounds: int = typer.Option(4, help="Rounds of coordinate descent at most."),
    out: str = typer.Option(None, "--out", help="Dataset of the trials run. Default: data/results/<host>/..."),
) -> None:
    """Search batch size x packet size x channels for the lowest host CPU per GB within --slack % of the best
    throughput (coordinate descent: far fewer trials than the grid); write the trials run as a dataset."""
    import pathlib

    from dsalab import results
    from dsalab import sweep as sw
    from dsalab import tune as tn
    from dsalab.errors import DsalabError, SweepFileError

    spec = _load_sweep(file)
    if not 0 <= slack < 100:
        _fail(f"--slack {slack} is not allowed: a percentage from 0 to below 100")
    if max_rounds < 1:
        _fail(f"--max-rounds {max_rounds} is not allowed: an int >= 1")
    try:
        tn.check_spec(spec)
    except SweepFileError as exc:
        _fail(str(exc))
    found, ds = tn.tune(spec, slack_pct=slack, max_rounds=max_rounds, progress=lambda m: typer.echo(m, err=True))
    path = results.default_path(f"tune-{spec.name}") if out is None else pathlib.Path(out)
    try:
        with sw.exclusive(path):
            results.write(ds, path)
    except (DsalabError, OSError) as exc:
        _fail(f"cannot write {path} ({exc})")
    typer.echo(f"wrote {path}")
    best = found.scores[tn.point_key(found.best)]
    shown = f"{best[0]:.1f} ms/GB host CPU at {best[1]:.0f} Mbit/s" if best else "every trial failed"
    typer.echo(
        f"best: {found.best} -> {shown}; {found.evaluated} of {found.grid_points} grid points measured "
        f"({ds.attrs['tune_trials']} trials) in {found.rounds} rounds, slack {slack}%"
    )


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
