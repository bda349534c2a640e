"""``dsalab run`` (one trial, options derived from Trial) and ``dsalab scenarios`` (the seed's two scenarios)."""

from __future__ import annotations

import typer

from dsalab.cli._app import app, fail
from dsalab.cli.trial_options import (
    HARDWARE_HELP,
    QEMU_HELP,
    RUNNER_HELP,
    check_runner,
    model_result,
    with_trial_options,
)


@app.command()
@with_trial_options
def run(
    fields: dict,
    out: str = typer.Option(None, "--out", help="Write the result dataset (netCDF) here."),
    quiet: bool = typer.Option(False, help="No progress bar."),
    runner: str = typer.Option(None, "--runner", help=RUNNER_HELP),
    hardware: str = typer.Option(None, "--hardware", help=HARDWARE_HELP),
    qemu: str = typer.Option(None, "--qemu", help=QEMU_HELP),
) -> None:
    """Run one migration trial over loopback TCP (--runner model --hardware FILE: predict it for that hardware;
    --runner qemu: migrate it between two real QEMU processes) and print a table laid out like the seed's.

    Every Trial field is an option of its name and default (--guest, --packet: --guest-bytes, --packet-bytes)."""
    from tqdm import tqdm

    from dsalab.errors import DsalabError
    from dsalab.migration import Trial, run_trial

    try:
        trial = Trial(**fields)
    except (ValueError, TypeError) as exc:
        fail(str(exc))
    check_runner(runner, hardware, qemu)
    if runner == "qemu":
        from dsalab import qemu as qemu_runner

        try:
            result = qemu_runner.run_trial(trial, qemu=qemu)
        except (DsalabError, OSError) as exc:
            fail(str(exc))
        _report(result, None, out)
        return
    predicted = model_result(trial, runner, hardware)  # None: the engine runs it
    bar = tqdm(
        total=trial.guest_bytes // trial.page_size,
        unit="page",
        unit_scale=True,
        disable=quiet or predicted is not None,
        desc=f"{trial.detector} {trial.channels}ch",
    )

    def progress(done: int, total: int) -> None:
        bar.total = max(total, done)
        bar.n = done
        bar.refresh()

    try:
        result = predicted or run_trial(trial, progress=progress)
    except (DsalabError, OSError) as exc:
        bar.close()
        fail(str(exc))
    bar.close()
    _report(result, hardware if predicted is not None else None, out)


def _report(result, hardware: str | None, out: str | None) -> None:
    """Print a result's table and caveats; write it to ``out`` when given."""
    from dsalab.errors import DsalabError

    typer.echo(result.table())
    from dsalab.caveats import format_caveats

    notes = format_caveats(result, hardware_profile=hardware)
    if notes:
        typer.echo(notes)
    if out:
        from dsalab import results

        try:
            path = results.write_trial(result, out)
        except (DsalabError, OSError) as exc:
            fail(f"cannot write {out} ({exc})")
        typer.echo(f"wrote {path}")


@app.command()
def scenarios(
    guest: str = typer.Option("1GiB", "--guest", help="Guest RAM of each trial, e.g. 1GiB."),
    channels: int = typer.Option(8, help="multifd channels (the seed used 8)."),
    cpu_detector: str = typer.Option("cpu-numba", help="The baseline detector."),
    dsa_detector: str = typer.Option("dsa-emulated", help="dsa-emulated, or dsa-hardware with real queues."),
    seed: int = typer.Option(0),
) -> None:
    """The cover letter's scenarios, CPU vs DSA, beside the published figures: 1 (an all-zero guest with half its
    pages forced normal, force_normal_ratio 0.5) and 2 (all zero)."""
    from dsalab import scenarios as sc
    from dsalab.errors import DsalabError

    try:
        table, results = sc.compare_seed_scenarios(
            guest,
            channels=channels,
            cpu_detector=cpu_detector,
            dsa_detector=dsa_detector,
            seed=seed,
            progress=lambda msg: typer.echo(msg, err=True),
        )
    except (DsalabError, ValueError, TypeError, OSError) as exc:
        fail(str(exc))
    typer.echo(sc.format_comparison(table))
    from dsalab.caveats import caveats

    for note in dict.fromkeys(c for r in results.values() for c in caveats(r)):  # each sentence once
        typer.echo(f"note: {note}")
