"""``dsalab plot``: the figures of result files, written as HTML and static images."""

from __future__ import annotations

import typer

from dsalab.cli._app import app, fail


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

    Kinds: threads, batch-packet, heatmap, scaling, break-even, saved, latency; `auto` writes every kind the dataset's
    swept parameters allow. Files are named <out>/<result file name>-<kind>.<format>.
    """
    import pathlib

    from dsalab import explore, plots

    kinds = [k.strip() for k in kind.split(",") if k.strip()] or ["auto"]
    bad = [k for k in kinds if k != "auto" and k not in plots.KINDS]
    if bad:
        fail(f"unknown --kind {', '.join(bad)}; choose from auto, {', '.join(plots.KINDS)}")
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    bad = [f for f in fmts if f not in plots.FORMATS]
    if bad or not fmts:
        given = ", ".join(bad) if bad else repr(formats)
        fail(f"unknown --formats {given}; choose from {', '.join(plots.FORMATS)}")
    if latest:
        if path is not None:
            fail("give PATH or --latest, not both")
        newest = explore.latest_result(results_dir)
        if newest is None:
            typer.echo(f"no result files (*.nc) under {results_dir}: nothing to plot")
            return
        files = [newest]
    elif path is None:
        fail("give PATH (a results netCDF file, directory or glob) or --latest")
    else:
        files = explore.find_results(path)
        if not files:
            fail(f"no result files match {path}")
    auto = "auto" in kinds
    written = []
    for f in files:
        try:
            ds = explore.load(f)
        except (OSError, ValueError) as exc:
            fail(f"cannot read {f}: {exc}")
        try:
            figs = plots.overview(ds, None if auto else kinds)
            if not auto and (skipped := [k for k in kinds if k not in figs]):
                plots.figure(ds, skipped[0])  # raises ValueError saying why the kind does not apply
            if reference and "threads" in figs:
                figs["threads"] = plots.thread_cpu(ds, reference=True)
        except ValueError as exc:
            fail(f"{f}: {exc}")
        base = pathlib.Path(out) / pathlib.Path(f).stem
        written += plots.export_many({f"{base}-{k}": fig for k, fig in figs.items()}, fmts)
    for p in written:
        typer.echo(str(p))
