"""The runs of a combined result dataset (:func:`dsalab.results.open` of several files: a ``run`` dimension), each
as its own dataset with only what it ran: the report (:func:`dsalab.report.runs_of`) and the "saved by DSA" figure
split them the same way."""

from __future__ import annotations

from typing import Any

import numpy as np

#: the error of a trial that never ran: a point only another file of a combined dataset has
#: (:func:`dsalab.results.combine` fills them in), or one a stopped sweep did not reach
NOT_RUN = "not run"


def ran_only(ds):
    """``ds`` with only the coordinate values (of every dimension of the trials, repeats too) at which it ran some
    trial (``error`` other than "not run"), and only the threads it recorded: a run of a combined dataset loses the
    detectors, points and repeats that only the other files have. Unchanged when it ran nothing."""
    if "error" not in ds:
        return ds
    dims = ds["error"].dims
    ran = np.asarray(ds["error"].values).astype(str) != NOT_RUN
    if not ran.any():
        return ds
    keep = {}
    for axis, dim in enumerate(dims):
        mask = ran.any(axis=tuple(a for a in range(len(dims)) if a != axis))
        if not mask.all():
            keep[dim] = np.flatnonzero(mask)
    if "thread" in ds.dims and "thread_cpu_ms" in ds:
        other = [d for d in ds["thread_cpu_ms"].dims if d != "thread"]
        recorded = np.asarray(ds["thread_cpu_ms"].notnull().any(other).values)
        if recorded.any() and not recorded.all():
            keep["thread"] = np.flatnonzero(recorded)
    return ds.isel(keep) if keep else ds


def split_runs(ds) -> list[tuple[str, Any]]:
    """The runs of a combined dataset (``run`` dimension), each with its own attributes back (``run_<name>``) and
    only what it ran (:func:`ran_only`)."""
    out = []
    for r in ds["run"].values:
        one = ds.sel(run=r)
        extra = [str(v) for v in one.data_vars if str(v).startswith("run_")]
        attrs = dict(ds.attrs)
        for v in extra:
            value = one[v].values
            attrs[v.removeprefix("run_")] = value.item() if isinstance(value, np.ndarray | np.generic) else value
        one = one.drop_vars([*extra, "run"])
        one.attrs = attrs
        out.append((str(r), ran_only(one)))
    return out
