"""``dsalab calibrate``: measure this machine's costs and write its hardware profile."""

from __future__ import annotations

import os

import typer

from dsalab.cli._app import app, fail


@app.command()
def calibrate(
    out: str = typer.Option(None, "--out", help="Profile file to write (default data/hardware/<hostname>.toml)."),
    quick: bool = typer.Option(False, "--quick", help="32 MiB guest, 2 repeats: well under 30 s."),
    repeats: int = typer.Option(None, "--repeats", help="Repeats of every measurement, 1..100 (default 7, quick 2)."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Measure this machine (engine per-page and per-packet CPU, wake-ups, loopback, memory bandwidth) and write
    its hardware profile for the model; prints the table of measured costs."""
    from dsalab.errors import DsalabError
    from dsalab.model import calibrate as cal

    path = out or cal.default_path()
    try:
        profile = cal.calibrate(quick=quick, repeats=repeats, progress=not quiet)
    except (DsalabError, OSError) as exc:
        fail(str(exc))
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    try:
        profile.save(path)
    except OSError as exc:
        fail(f"could not write the profile to {path}: {exc.strerror or exc}")
    typer.echo(cal.table(profile))
    typer.echo(f"load average {profile.about['load_average']}")
    typer.echo(f"wrote {path}")
