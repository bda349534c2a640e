"""``dsalab sweep``, ``dsalab summary`` and ``dsalab tune``: sweep files run serially or on Dask, and their results."""

from __future__ import annotations

import typer

from dsalab.cli._app import app, close_dask, fail, open_dask
from dsalab.cli.trial_options import HARDWARE_HELP, QEMU_HELP, RUNNER_HELP


def _load_sweep(file: str, runner: str | None = None, hardware: str | None = None, qemu: str | None = None):
    """The sweep file with ``--runner``/``--hardware``/``--qemu`` applied, its hardware profile (model runner)
    or QEMU binary (qemu runner) checked."""
    from dsalab import sweepfile
    from dsalab.errors import SweepFileError
    from dsalab.sweep import model_profile, qemu_capabilities

    try:
        spec = sweepfile.override(sweepfile.load(file), runner, hardware, qemu)
        model_profile(spec)
        qemu_capabilities(spec)
    except SweepFileError as exc:
        fail(str(exc))
    return spec


def _load_profile(path: str | None, option: str = "--model"):
    """The hardware profile of ``--model`` (None when not given); a bad one ends the command naming it."""
    if path is None:
        return None
    from dsalab.errors import DsalabError
    from dsalab.model.profile import load

    try:
        return load(path)
    except DsalabError as exc:
        fail(f"{option}: {exc}")


def _beside(ds, profile) -> str:
    """The model's predicted DSA saving beside the measured one (``--model``), as text."""
    from dsalab.errors import DsalabError
    from dsalab.model.beside import format_model_beside, model_beside

    try:
        return format_model_beside(model_beside(ds, profile), profile)
    except (DsalabError, ValueError, TypeError) as exc:
        fail(f"--model: {exc}")


#: help of --model (dsalab sweep, dsalab summary)
MODEL_HELP = (
    "Hardware profile (TOML): beside each measured DSA point, print the host CPU saving the model predicts for "
    "the same trial on that hardware (e.g. data/hardware/<hostname>.toml: this host with a real DSA device)."
)


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
    runner: str = typer.Option(None, "--runner", help=f"Instead of the sweep file's runner: {RUNNER_HELP}"),
    hardware: str = typer.Option(None, "--hardware", help=HARDWARE_HELP),
    model: str = typer.Option(None, "--model", help=MODEL_HELP),
    qemu: str = typer.Option(None, "--qemu", help=QEMU_HELP),
) -> None:
    """Run every trial of a sweep file (serially unless a Dask option is given), write the dataset, summarise.

    With --runner model --hardware FILE (or runner = "model" in the file) every trial is predicted by the model
    for that hardware instead of run: one repeat (the model is deterministic), seconds for 1,000 points. With
    --runner qemu (or runner = "qemu") every trial runs on two real QEMU processes (--qemu names the binary); a
    point QEMU cannot honour is a failed point carrying the message."""
    import contextlib
    import pathlib
    import warnings

    from dsalab import results
    from dsalab import sweep as sw
    from dsalab.errors import DsalabError
    from dsalab.model import tenants_sweep

    if tenants_sweep.is_tenants_file(file):  # many VMs on few devices: the tenant model runs it
        from dsalab.cli.tenants import sweep_file

        sweep_file(file, out, local_workers, scheduler)
        return
    spec = _load_sweep(file, runner, hardware, qemu)
    profile = _load_profile(model)
    path = results.default_path(spec.name) if out is None else pathlib.Path(out)
    partial = sw.default_partial_path(spec) if out is None else sw.partial_path_for(out)
    if path.is_dir():
        fail(f"--out {path} is a directory: give the result file's path, e.g. {path / (spec.name + '.nc')}")
    with contextlib.ExitStack() as held, warnings.catch_warnings():
        warnings.simplefilter("always", sw.PartialFileWarning)
        warnings.showwarning = lambda message, *_a, **_k: typer.echo(f"warning: {message}", err=True)
        try:  # one writer per output and per partial file, from here until the partial file is gone
            held.enter_context(sw.exclusive(path))
            held.enter_context(sw.exclusive(partial))
        except DsalabError as exc:
            fail(str(exc))
        if partial.exists() and not resume:
            fail(f"partial file {partial} of an interrupted run exists: pass --resume to continue it, or delete it")
        client, cluster, label = open_dask(scheduler, local_workers)
        how = label
        if spec.runner == "model":
            how += f", predicted by the model for hardware profile {spec.hardware} (one repeat: it is deterministic)"
        elif spec.runner == "qemu":
            how += f", on real QEMU ({spec.qemu or 'qemu-system-x86_64'})"
        typer.echo(
            f"sweep {spec.name}: {spec.n_points} points x {spec.repeats} repeats (+{spec.warmups} warm-up passes), "
            f"{how}; partial results in {partial}",
            err=True,
        )
        try:
            ds = sw.run_sweep(spec, partial=partial, resume=resume, client=client, progress=not quiet, scheduler=label)
        except KeyboardInterrupt:
            typer.echo(f"interrupted: finished trials are kept in {partial}; rerun with --resume to continue", err=True)
            raise typer.Exit(130) from None
        except DsalabError as exc:
            fail(str(exc))
        finally:
            close_dask(client, cluster)
        try:  # fsyncs the file and its directory: only then may the partial file go
            results.write(ds, path)
        except (DsalabError, OSError) as exc:
            fail(f"cannot write {path} ({exc}); the finished trials are kept in {partial}: rerun with --resume")
        partial.unlink(missing_ok=True)
    typer.echo(f"wrote {path}")
    if summary:
        from dsalab import analysis

        typer.echo(analysis.format_summary(analysis.summarize(ds), ds))
        if profile is not None:
            typer.echo(_beside(ds, profile))


@app.command("summary")
def summary_cmd(
    path: str = typer.Argument(..., help="A result file, a glob of them (quoted), e.g. 'data/results/*/*.nc'."),
    model: str = typer.Option(None, "--model", help=MODEL_HELP),
) -> None:
    """Best point per detector (CPU per GB, total time) and the host CPU DSA saves, per result file; with
    --model PROFILE, the model's predicted saving on that hardware beside each measured DSA point."""
    from dsalab import analysis, results

    profile = _load_profile(model)
    try:
        ds = results.open(path)
    except (OSError, ValueError) as exc:
        fail(f"{path}: {exc}")
    if "run" in ds.dims:  # several files: each run with only what it ran (not the joined grid's other points)
        from dsalab.plots.runs import split_runs

        runs = split_runs(ds)
    else:
        runs = [(path, ds)]
    blocks = []
    for name, one in runs:
        text = analysis.format_summary(analysis.summarize(one), one)
        if profile is not None:
            text += "\n" + _beside(one, profile)
        blocks.append((f"== {name}\n" if len(runs) > 1 else "") + text)
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
        fail(f"--slack {slack} is not allowed: a percentage from 0 to below 100")
    if max_rounds < 1:
        fail(f"--max-rounds {max_rounds} is not allowed: an int >= 1")
    try:
        tn.check_spec(spec)
    except SweepFileError as exc:
        fail(str(exc))
    found, ds = tn.tune(spec, slack_pct=slack, max_rounds=max_rounds, progress=lambda m: typer.echo(m, err=True))
    path = results.default_path(f"tune-{spec.name}") if out is None else pathlib.Path(out)
    try:
        with sw.exclusive(path):
            results.write(ds, path)
    except (DsalabError, OSError) as exc:
        fail(f"cannot write {path} ({exc})")
    typer.echo(f"wrote {path}")
    best = found.scores[tn.point_key(found.best)]
    shown = f"{best[0]:.1f} ms/GB host CPU at {best[1]:.0f} Mbit/s" if best else "every trial failed"
    typer.echo(
        f"best: {found.best} -> {shown}; {found.evaluated} of {found.grid_points} grid points measured "
        f"({ds.attrs['tune_trials']} trials) in {found.rounds} rounds, slack {slack}%"
    )
