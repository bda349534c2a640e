"""The figure kinds: one table says, for each, what builds it and when a dataset can show it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import plotly.graph_objects as go

from dsalab.analysis import swept_dims
from dsalab.errors import InvalidArgument
from dsalab.plots.breakeven import break_even
from dsalab.plots.distributions import latency
from dsalab.plots.parameters import batch_and_packet, heatmap, scaling
from dsalab.plots.saved import applies as saved_applies
from dsalab.plots.saved import saved_by_dsa
from dsalab.plots.threads import thread_cpu


def _big(ds) -> set[str]:
    """Swept parameters with more than one value."""
    return {d for d in swept_dims(ds) if ds.sizes[d] > 1}


@dataclasses.dataclass(frozen=True)
class FigureKind:
    """A figure kind of :func:`figure`, :func:`overview` and ``dsalab plot --kind``.

    Attributes
    ----------
    name : the kind's name (``"break-even"``)
    build : the dataset -> figure function, with its defaults
    applies : whether a dataset sweeps what the figure needs (else ``build`` raises, saying why)
    """

    name: str
    build: Callable[[Any], go.Figure]
    applies: Callable[[Any], bool]


#: every figure kind, in the order :func:`overview` builds them
REGISTRY: dict[str, FigureKind] = {
    k.name: k
    for k in (
        FigureKind("threads", thread_cpu, lambda ds: "thread_cpu_ms" in ds),
        FigureKind("batch-packet", batch_and_packet, lambda ds: bool(_big(ds) & {"batch_size", "packet_bytes"})),
        FigureKind("heatmap", heatmap, lambda ds: {"batch_size", "packet_bytes"} <= _big(ds)),
        FigureKind("scaling", scaling, lambda ds: bool(_big(ds) & {"devices", "channels"})),
        FigureKind("break-even", break_even, lambda ds: {"normal_ratio", "detector"} <= _big(ds)),
        FigureKind("saved", saved_by_dsa, saved_applies),
        FigureKind("latency", latency, lambda ds: True),
    )
}
#: the names of the figure kinds of :data:`REGISTRY` (``dsalab plot --kind``)
KINDS = tuple(REGISTRY)


def _kind(kind: str) -> FigureKind:
    if kind not in REGISTRY:
        raise InvalidArgument(f"unknown figure kind {kind!r}; choose from {', '.join(REGISTRY)}")
    return REGISTRY[kind]


def figure(ds, kind: str) -> go.Figure:
    """The figure of one kind (:data:`KINDS`) for a dataset; ValueError says why when it does not apply."""
    return _kind(kind).build(ds)


def overview(ds, kinds: Sequence[str] | None = None) -> dict[str, go.Figure]:
    """Every figure kind that applies to the dataset (or those of ``kinds`` that do), by kind."""
    chosen = [_kind(k) for k in (REGISTRY if kinds is None else kinds)]
    return {k.name: k.build(ds) for k in chosen if k.applies(ds)}
