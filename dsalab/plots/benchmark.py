"""The CPU zero-page kernels against the memory-read bandwidth reference (the kernel benchmark's rows)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dsalab.plots.style import color, format_value, new_figure

#: what each case of the kernel benchmark holds
KERNEL_CASES = {
    "all-zero": "all zero",
    "half-random": "half zero, half random",
    "half-last-byte": "half zero, half last-byte",
    "hot-1MiB": "1 MiB zero, in cache",
}


def kernel_bandwidth(rows) -> go.Figure:
    """Zero-page kernels against the memory-read bandwidth reference (``benchmarks/bench_kernels.py`` rows, or
    :func:`dsalab.explore.kernel_benchmark`): GB/s per kernel, one panel per case, one bar per thread count;
    the reference (a loop that ORs every byte, no early exit) is the limit a scan that reads every byte can reach.
    """
    import pandas as pd

    df = pd.DataFrame(rows)
    cases = list(dict.fromkeys(df.case))
    kernels = list(dict.fromkeys(["reference", *df.kernel]))
    fig = new_figure(
        rows=1, cols=len(cases), subplot_titles=[KERNEL_CASES.get(c, c) for c in cases], horizontal_spacing=0.05
    )
    for i, threads in enumerate(sorted(df.threads.unique())):
        for c, case in enumerate(cases, start=1):
            sub = df[(df.case == case) & (df.threads == threads)].set_index("kernel").reindex(kernels)
            fig.add_bar(
                x=kernels,
                y=sub.gbps,
                name=f"{threads} thread(s)",
                legendgroup=str(threads),
                showlegend=(c == 1),
                marker_color=color(i),
                text=[f"{v:.1f}" if np.isfinite(v) else "" for v in sub.gbps],
                textposition="outside",
                hovertemplate="%{x}: %{y:.2f} GB/s<extra></extra>",
                row=1,
                col=c,
            )
    fig.update_yaxes(title_text="Read bandwidth, higher is better (GB/s)", col=1)
    size = int(df["bytes"].max()) if "bytes" in df else 0
    fig.update_layout(
        barmode="group",
        title={
            "text": "Zero-page kernels against the memory-read bandwidth reference"
            + (f"<br><sup>{format_value('guest_bytes', size)} buffers; median of repeats</sup>" if size else ""),
            "x": 0.02,
        },
    )
    return fig
