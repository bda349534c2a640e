"""``dsalab report``: one self-contained HTML report of result files (several files: compared)."""

from __future__ import annotations

import pathlib

import typer

from dsalab.cli._app import app, fail

#: where reports go unless -o says otherwise
REPORTS_DIR = pathlib.Path("data/reports")


#: what a report's file name may end with
REPORT_SUFFIXES = (".html", ".htm")


def _same_file(a: pathlib.Path, b: pathlib.Path) -> bool:
    """Whether paths ``a`` and ``b`` name the same file (symlinks and hard links followed)."""
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.samefile(b))
    except OSError:
        return False


def default_output(files: list[pathlib.Path], root: pathlib.Path = REPORTS_DIR) -> pathlib.Path:
    """``<root>/<result file name>.html`` for one file; ``<root>/compare-<first name>-and-<n-1>-more.html`` for
    several."""
    first = files[0].stem
    if len(files) == 1:
        return root / f"{first}.html"
    return root / f"compare-{first}-and-{len(files) - 1}-more.html"


def run_names(files: list[pathlib.Path]) -> list[str]:
    """A name per result file: its name without ``.nc``, with its folder where two files share a name."""
    stems = [f.stem for f in files]
    return [f"{f.parent.name}/{f.stem}" if stems.count(f.stem) > 1 else f.stem for f in files]


@app.command()
def report(
    paths: list[str] = typer.Argument(
        None, help="Result netCDF files, directories of them, or globs ('data/results/**/*.nc'); several: compared."
    ),
    out: str = typer.Option(None, "--out", "-o", help="The HTML file. Default: data/reports/<result name>.html."),
    latest: bool = typer.Option(False, "--latest", help="Report the newest file under --results (no PATHS)."),
    results_dir: str = typer.Option("data/results", "--results", help="Where --latest looks."),
    title: str = typer.Option(None, "--title", help="The report's title (default: sweep and host)."),
) -> None:
    """Write one self-contained HTML report (opens offline; plotly.js embedded once) and print its path: what ran
    (sweep file, machine, versions, commit), backends and caveats, the summary tables, the seed's published
    figures beside ours and every figure that applies. Several result files are compared side by side."""
    from dsalab import explore
    from dsalab import report as reporting
    from dsalab.errors import DsalabError

    if latest:
        if paths:
            fail("give PATHS or --latest, not both")
        newest = explore.latest_result(results_dir)
        if newest is None:
            fail(f"no result files (*.nc) under {results_dir}: nothing to report")
        files = [newest]
    elif not paths:
        fail("give PATHS (result netCDF files, directories or globs) or --latest")
    else:
        files = []
        for p in paths:
            try:
                found = explore.find_results(p)
            except DsalabError as exc:
                fail(str(exc))
            if not found:
                fail(f"no result files match {p}")
            files += [f for f in found if f not in files]
    target = pathlib.Path(out) if out else default_output(files)
    if target.is_dir():
        fail(f"--out {target} is a directory: give the report's file name, e.g. {target / 'report.html'}")
    clash = next((f for f in files if _same_file(f, target)), None)
    if clash is not None:
        fail(f"--out {target} is the result file {clash}: it would be overwritten; give another .html name")
    if target.suffix.lower() not in REPORT_SUFFIXES:
        fail(f"--out {target} is not allowed: the report is one HTML file, give a name ending in .html or .htm")
    datasets = []
    for f in files:
        try:
            datasets.append(explore.load(f))
        except (OSError, ValueError) as exc:
            fail(f"cannot read {f}: {exc}")
    data = datasets[0] if len(datasets) == 1 else datasets
    try:
        written = reporting.write(data, target, names=None if len(files) == 1 else run_names(files), title=title)
    except DsalabError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {target}: {exc}")
    typer.echo(str(written))
