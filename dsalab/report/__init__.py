"""One self-contained HTML report of result datasets, to mail or attach to a review (``dsalab report``).

:func:`build` returns the page: what ran (the sweep file as written, machine, versions, git commit), the backends
and their caveats (:mod:`dsalab.caveats`), the summary tables (:func:`dsalab.analysis.summarize`), the seed's
published figures beside ours (:mod:`dsalab.reference`), and every figure of :mod:`dsalab.plots` that applies.
plotly.js is embedded once, in the page's head, and nothing is fetched from the network: the file opens offline.
Several runs are compared: one column per run in the tables, the "saved by DSA" figure overlaid, the other
figures side by side. :func:`write` writes the page to a file.

The modules: :mod:`~dsalab.report.page` (HTML, escaping, tables, figure divs), :mod:`~dsalab.report.sections`
(what ran, caveats, summary), :mod:`~dsalab.report.seed` (the seed beside ours), :mod:`~dsalab.report.figures`.
"""

from __future__ import annotations

import datetime
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from dsalab.errors import InvalidArgument, InvalidType
from dsalab.plots.runs import ran_only, split_runs
from dsalab.report.figures import figures_section
from dsalab.report.page import esc, html_page
from dsalab.report.sections import backends_and_caveats, summary_tables, what_ran
from dsalab.report.seed import seed_section

__all__ = ["build", "figure_ids", "ran_only", "runs_of", "write"]


def _name(ds, i: int) -> str:
    sweep = ds.attrs.get("sweep_name") or ds.attrs.get("source") or f"run {i + 1}"
    when = str(ds.attrs.get("machine_date", ""))[:19]
    return f"{sweep} {when}".strip()


def runs_of(data: Any, names: Sequence[str] | None = None) -> list[tuple[str, Any]]:
    """(name, dataset) of each run in ``data``: one dataset (name ``""``), one with a ``run`` dimension, a sequence
    of datasets (named by ``names``, else by sweep and date) or a mapping name -> dataset."""
    if hasattr(data, "data_vars"):  # first: a Dataset is a Mapping too
        runs = split_runs(data) if "run" in data.dims else [("", data)]
    elif isinstance(data, Mapping):
        runs = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, Sequence) and not isinstance(data, str | bytes):
        runs = [("", d) for d in data]
        if names is not None:
            if len(names) != len(runs):
                raise InvalidArgument(f"names has {len(names)} entries for {len(runs)} datasets: give one per dataset")
            runs = [(str(n), d) for n, (_, d) in zip(names, runs, strict=True)]
        elif len(runs) > 1:
            runs = [(_name(d, i), d) for i, (_, d) in enumerate(runs)]
    else:
        raise InvalidType(
            f"report data={type(data).__name__} is not allowed: a result dataset, a list of them or a mapping"
        )
    if not runs:
        raise InvalidArgument("report data is empty: give at least one result dataset")
    for name, ds in runs:
        if not hasattr(ds, "data_vars") or "status" not in ds or "backend" not in ds:
            raise InvalidType(
                f"report run {name!r} is {type(ds).__name__}: a result dataset (dsalab.results) is needed"
            )
    if len(runs) > 1:
        seen = [n for n, _ in runs]
        runs = [(n if seen.count(n) == 1 else f"{n} #{i + 1}", d) for i, (n, d) in enumerate(runs)]
    return runs


def _title(runs: Sequence[tuple[str, Any]]) -> str:
    if len(runs) > 1:
        return f"dsalab report: {len(runs)} runs compared"
    ds = runs[0][1]
    sweep = ds.attrs.get("sweep_name") or ds.attrs.get("source") or "results"
    host = ds.attrs.get("machine_hostname")
    return f"dsalab report: {sweep}" + (f" on {host}" if host else "")


def figure_ids(html_text: str) -> list[str]:
    """The ids of the figure ``<div>``s of a report built by :func:`build`, in order."""
    import re

    return re.findall(r'<div id="(fig-[a-z0-9-]+)" class="plotly-graph-div"', html_text)


def build(data: Any, *, names: Sequence[str] | None = None, title: str | None = None) -> str:
    """The report of one run, or the comparison of several, as one self-contained HTML page (a str).

    Parameters
    ----------
    data : a result dataset (:mod:`dsalab.results`), one with a ``run`` dimension (:func:`dsalab.results.open` of
        several files), a list of datasets or a mapping run name -> dataset
    names : run names for a list of datasets (default: sweep name and date)
    title : the page's title (default: sweep and host, or the number of runs)
    """
    runs = runs_of(data, names)
    title = title or _title(runs)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    from dsalab import __version__ as version

    figs, ids = figures_section(runs)
    nav = "".join(
        f'<li><a href="#{a}">{t}</a></li>'
        for a, t in (
            ("what-ran", "What ran"),
            ("caveats", "Backends and caveats"),
            ("summary", "Summary"),
            ("seed", "The seed's published figures beside ours"),
            ("figures", f"Figures ({len(ids)})"),
        )
    )
    header = (
        f"<h1>{esc(title)}</h1><p class='note'>Written {esc(now)} by dsalab {esc(version)}; "
        f"{len(runs)} run{'s' if len(runs) > 1 else ''}: {esc(', '.join(n or 'this run' for n, _ in runs))}. "
        "Self-contained: opens offline.</p><nav><ul>" + nav + "</ul></nav>"
    )
    body = [header, what_ran(runs), backends_and_caveats(runs), summary_tables(runs), seed_section(runs), figs]
    return html_page(title, body)


def write(data: Any, path: str | pathlib.Path, **kw: Any) -> pathlib.Path:
    """Write :func:`build`'s page to ``path`` (parent folders made; ``kw`` go to :func:`build`); returns the path."""
    path = pathlib.Path(path)
    text = build(data, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
