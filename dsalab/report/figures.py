"""The report's figures: every kind of :data:`dsalab.plots.REGISTRY` that applies to a run, the per-thread CPU beside
the seed's, and for several runs the "saved by DSA" figure overlaid and the others side by side (one per run)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dsalab.analysis import saving_pairs
from dsalab.errors import DsalabError
from dsalab.plots import REGISTRY, saved_by_dsa, thread_cpu
from dsalab.report.page import esc, figure_div
from dsalab.report.seed import matches, seed_scenarios

#: what each figure shows, one sentence under its heading
CAPTIONS = {
    "threads": "Host CPU of each source-side thread, stacked, mean over repeats.",
    "threads-seed": (
        "Per-thread host CPU per GB of guest RAM beside the seed's published runs: ours only at the points that "
        "migrate the seed's guests (all zero pages, 0 or 0.5 of them forced normal)."
    ),
    "batch-packet": "A metric against batch size and packet size, mean ± std over repeats.",
    "heatmap": "Host CPU per GB over batch size × packet size (mean ± std over repeats in each cell).",
    "scaling": "Device-count and channel scaling.",
    "break-even": "Offload minus CPU detection against the normal ratio, paired by repeat; below 0 DSA saves.",
    "saved": (
        "Host CPU per GB and total time each DSA point saves against its CPU-detector twin (same guest, seed and "
        "other parameters; the fields only DSA uses, such as batch size, ignored), mean ± std over repeat pairs "
        "(no error bar under two pairs); above 0 DSA saves. The label on a top bar is the summary's saving in "
        "percent (mean of the per-repeat percentages). Hatched bars are the model's predictions."
    ),
    "latency": "Total time and downtime of every successful trial, per detector.",
}
#: headings of the figure kinds (registry names otherwise)
TITLES = {
    "threads": "Host CPU per thread",
    "threads-seed": "Host CPU per thread, beside the seed's",
    "batch-packet": "Batch size and packet size",
    "heatmap": "Heatmap: batch size × packet size",
    "scaling": "Devices and channels",
    "break-even": "Break-even normal ratio",
    "saved": "Saved by DSA",
    "latency": "Total time and downtime",
}


def slug(text: str) -> str:
    """``text`` as a fragment of an HTML id: lower-case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def seed_points(ds):
    """``ds`` with only the points that migrate one of the seed's guests (:func:`dsalab.report.seed.matches`; every
    detector kept), or None when none does. The seed's guests are all-zero with 0 or 0.5 of them forced normal, so
    the matching points are a grid: every value of the other parameters at each matching guest."""
    found = [p for sc in seed_scenarios() for p in matches(ds, sc)]
    if not found:
        return None
    keep = {d: [v for v in ds[d].values if any(p[d] == v for p in found)] for d in found[0]}
    return ds.sel(keep) if keep else ds


def kinds(ds) -> list[str]:
    """The figure kinds the report shows for one run, in order: the registry's that apply, and ``threads-seed``
    (after ``threads``) when the run compares a DSA and a CPU detector, as the seed did, at a point that migrates
    one of the seed's guests (:func:`seed_points`)."""
    out = []
    for name, kind in REGISTRY.items():
        if kind.applies(ds):
            out.append(name)
            if name == "threads" and saving_pairs(ds) and seed_points(ds) is not None:
                out.append("threads-seed")
    return out


def build_figure(ds, kind: str):
    """The figure of ``kind`` (a registry kind or ``threads-seed``: ours at the seed's guests only) for one run."""
    if kind == "threads-seed":
        return thread_cpu(seed_points(ds), reference=True)
    return REGISTRY[kind].build(ds)


def _one(build, div_id: str, ids: list[str]) -> str:
    """The figure ``build()`` makes in a ``<div id=div_id>`` (its id added to ``ids``), or a note saying why not."""
    try:
        fig = build()
    except (DsalabError, ValueError) as exc:  # a kind that applies but cannot be drawn for this data says why
        return f'<p class="note" id="{esc(div_id)}-missing">Not drawn: {esc(exc)}</p>'
    ids.append(div_id)
    return f'<div class="figure">{figure_div(fig, div_id)}</div>'


def figures_section(runs: Sequence[tuple[str, Any]]) -> tuple[str, list[str]]:
    """Section "Figures" and the ids of the figure ``<div>``s in it (``fig-<kind>`` for one run; for several,
    ``fig-saved`` overlays the runs and ``fig-<kind>-<run>`` facets the others, one per run side by side)."""
    out = ['<h2 id="figures">Figures</h2>']
    ids: list[str] = []
    order = list(dict.fromkeys(k for _, ds in runs for k in kinds(ds)))
    if not order:
        out.append('<p class="note">No figure applies to these results.</p>')
    for kind in order:
        out.append(f'<h3 id="h-{slug(kind)}">{esc(TITLES.get(kind, kind))}</h3>')
        out.append(f'<p class="note">{esc(CAPTIONS.get(kind, ""))}</p>')
        if len(runs) == 1:
            out.append(_one(lambda ds=runs[0][1], k=kind: build_figure(ds, k), f"fig-{slug(kind)}", ids))
            continue
        if kind == "saved":
            overlay = {name: ds for name, ds in runs if saving_pairs(ds)}
            out.append(_one(lambda o=overlay: saved_by_dsa(o), "fig-saved", ids))
            continue
        out.append('<div class="facets">')
        for i, (name, ds) in enumerate(runs):
            out.append(f"<div><h4>{esc(name)}</h4>")
            if kind in kinds(ds):
                out.append(_one(lambda ds=ds, k=kind: build_figure(ds, k), f"fig-{slug(kind)}-{i}", ids))
            else:
                out.append('<p class="note">This figure does not apply to this run.</p>')
            out.append("</div>")
        out.append("</div>")
    return "\n".join(out), ids
