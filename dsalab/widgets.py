"""Interactive panels for Jupyter: tune one trial at a time, or explore a stored sweep with the same controls.

Both panels build one plotly ``FigureWidget`` and update it in place inside ``batch_update()``; sliders use
``continuous_update=False``, so work happens when a slider is released, not on every drag step.

- :class:`TuningPanel` runs one quick trial (a small guest) on every change and keeps the history of trials, so
  that they can be compared; :meth:`TuningPanel.history_dataset` returns that history as a result dataset.
- :class:`SweepExplorer` selects points of a stored sweep dataset instead of running trials.

Both are driven from code as well as by hand: setting a control's ``value`` triggers the same callback as
moving it, and :meth:`TuningPanel.run_once` runs the current setting.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as W
import numpy as np
from plotly.subplots import make_subplots

from dsalab import analysis, explore, plots, results
from dsalab.errors import InvalidArgument
from dsalab.plots.live import LiveFigure
from dsalab.result import TrialResult
from dsalab.threads import SOURCE_THREADS, thread_order
from dsalab.trial import COMPLETIONS, DETECTORS, Trial

#: the parameters both panels control, in display order
CONTROLLED = ("batch_size", "packet_bytes", "devices", "channels", "normal_ratio", "detector", "completion")
BATCH_SIZES = tuple(2**i for i in range(11))  # 1 .. 1024
PACKET_SIZES = tuple(4096 * 2**i for i in range(11))  # 4 KiB .. 4 MiB


def _slider_layout() -> dict[str, Any]:
    return {"style": {"description_width": "110px"}, "layout": W.Layout(width="420px")}


def make_controls(
    base: Trial,
    options: Mapping[str, Sequence[Any]] | None = None,
) -> dict[str, W.ValueWidget]:
    """The controls of :data:`CONTROLLED`, set to ``base``'s values; ``options`` restricts a control to the given
    values (the explorer passes a dataset's coordinates)."""
    options = dict(options or {})
    kw = _slider_layout()

    def choice(name: str, default: Sequence[Any], description: str, fmt=None, dropdown=False) -> W.ValueWidget:
        values = list(options.get(name, default))
        current = getattr(base, name)
        if current not in values:
            values = sorted({*values, current}, key=lambda v: (str(type(v)), v)) if name not in options else values
        value = current if current in values else values[0]
        labels = [(fmt(v) if fmt else str(v), v) for v in values]
        if dropdown:
            return W.Dropdown(options=labels, value=value, description=description, **kw)
        return W.SelectionSlider(options=labels, value=value, description=description, continuous_update=False, **kw)

    def kib(v: int) -> str:
        return plots.format_value("packet_bytes", v)

    controls: dict[str, W.ValueWidget] = {
        "batch_size": choice("batch_size", BATCH_SIZES, "batch size"),
        "packet_bytes": choice("packet_bytes", PACKET_SIZES, "packet size", kib),
        "devices": choice("devices", range(1, 9), "DSA devices"),
        "channels": choice("channels", range(1, 17), "channels"),
        "normal_ratio": choice("normal_ratio", [round(0.05 * i, 2) for i in range(21)], "normal ratio"),
        "detector": choice("detector", DETECTORS, "detector", dropdown=True),
        "completion": choice("completion", COMPLETIONS, "completion", dropdown=True),
    }
    for name, values in options.items():
        if name in controls and len(values) < 2:
            controls[name].disabled = True  # one value only: nothing to choose
    return controls


def _trial_label(i: int, trial: Trial) -> str:
    return (
        f"#{i} {trial.detector} b{trial.batch_size} p{plots.format_value('packet_bytes', trial.packet_bytes)} "
        f"d{trial.devices} c{trial.channels} n{trial.normal_ratio:g}"
    )


def _param_name(name: str) -> str:
    """A swept parameter as a menu entry and in a title: ``"normal ratio"``, ``"packet size"``."""
    return {"packet_bytes": "packet size", "guest_bytes": "guest RAM"}.get(name, name.replace("_", " "))


def _source_threads(cpu: Mapping[str, float]) -> tuple[list[str], list[float]]:
    names = sorted((n for n in cpu if SOURCE_THREADS.match(n) and np.isfinite(cpu[n])), key=thread_order)
    return names, [float(cpu[n]) for n in names]


class TuningPanel:
    """Sliders and dropdowns for a trial's DSA and multifd settings; each change runs one quick trial.

    Parameters
    ----------
    base : the trial the controls start from; its guest size sets how long a trial takes (keep it small:
        16 MiB runs in well under a second here)
    auto_run : run a trial when a control changes (else only :meth:`run_once` and the Run button do)

    Examples
    --------
    >>> panel = TuningPanel(Trial(guest_bytes="4MiB", detector="cpu-native"))
    >>> panel.controls["batch_size"].value = 32      # runs a trial, as releasing the slider does
    >>> len(panel.history)
    1
    >>> panel.widget                                  # doctest: +SKIP  (display it in a notebook)
    """

    def __init__(self, base: Trial | None = None, *, auto_run: bool = True) -> None:
        self.base = base or Trial(guest_bytes="16MiB", detector="dsa-emulated", channels=2)
        self.auto_run = auto_run
        #: (trial, result or None, error text) of every trial run, in order
        self.history: list[tuple[Trial, TrialResult | None, str]] = []
        self.controls = make_controls(self.base)
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.status = W.HTML(value="Move a control (or press Run) to run a trial.")
        self.run_button = W.Button(description="Run", icon="play", tooltip="run one trial with these settings")
        self.run_button.on_click(lambda _: self.run_once())
        self.clear_button = W.Button(description="Clear history", icon="trash")
        self.clear_button.on_click(lambda _: self.clear())
        self.figure = self._build_figure()
        self.widget = W.VBox(
            [
                W.HBox(
                    [
                        W.VBox([self.controls[n] for n in CONTROLLED[:4]]),
                        W.VBox(
                            [self.controls[n] for n in CONTROLLED[4:]] + [W.HBox([self.run_button, self.clear_button])]
                        ),
                    ]
                ),
                self.status,
                self.figure,
            ]
        )

    # -- the figure, built once ----------------------------------------------------------------------------------
    def _build_figure(self) -> LiveFigure:
        fig = make_subplots(
            rows=1,
            cols=3,
            column_widths=[0.36, 0.36, 0.28],
            subplot_titles=["host CPU per GB, every trial", "throughput, every trial", "CPU per thread, last trial"],
            horizontal_spacing=0.09,
        )
        # one bar trace and one marker trace per detector (trials are unrelated: markers, no line), the legend
        # naming the detectors' colours (none of them a thread's, so the thread bars' colours mean threads only)
        for det in DETECTORS:
            color = plots.DETECTOR_COLORS[det]
            fig.add_bar(x=[], y=[], name=det, legendgroup=det, marker_color=color, row=1, col=1)
        for det in DETECTORS:
            fig.add_scatter(
                x=[], y=[], mode="markers", name=det, legendgroup=det, showlegend=False,
                marker={"color": plots.DETECTOR_COLORS[det], "size": 10}, row=1, col=2,
            )  # fmt: skip
        fig.add_bar(x=[], y=[], name="CPU per thread", showlegend=False, row=1, col=3)
        fig.update_yaxes(title_text=plots.label(None, "host_cpu_ms_per_gb"), row=1, col=1)
        fig.update_yaxes(title_text=plots.label(None, "throughput_mbps"), row=1, col=2)
        fig.update_yaxes(title_text=plots.label(None, "thread_cpu_ms"), row=1, col=3)
        fig.update_xaxes(type="category", row=1, col=1)
        fig.update_xaxes(type="category", row=1, col=2)
        fig.update_layout(
            template=plots.TEMPLATE,
            barmode="relative",
            legend={"orientation": "h", "x": 0, "y": 1.12, "yanchor": "bottom", "title": {"text": "detector"}},
            height=460,
            margin={"t": 90, "b": 120},
        )
        return LiveFigure(fig)

    def _update_figure(self) -> None:
        labels = [_trial_label(i, t) for i, (t, _, _) in enumerate(self.history, start=1)]
        last = next((r for _, r, _ in reversed(self.history) if r is not None), None)
        names, values = _source_threads(last.thread_cpu_ms) if last is not None else ([], [])
        colors = plots.thread_colors(names)
        n = len(DETECTORS)
        with self.figure.batch_update():
            for i, det in enumerate(DETECTORS):
                rows = [(lab, r) for lab, (t, r, _) in zip(labels, self.history, strict=True) if t.detector == det]
                xs = [lab for lab, _ in rows]
                self.figure.data[i].x = xs
                self.figure.data[i].y = [r.host_cpu_ms_per_gb if r is not None else None for _, r in rows]
                self.figure.data[n + i].x = xs
                self.figure.data[n + i].y = [r.throughput_mbps if r is not None else None for _, r in rows]
            self.figure.data[2 * n].x = names
            self.figure.data[2 * n].y = values
            self.figure.data[2 * n].marker.color = [colors[t] for t in names]
            # the trials in the order they ran, whichever detector's trace holds them
            for axis in (self.figure.layout.xaxis, self.figure.layout.xaxis2):
                axis.categoryorder = "array"
                axis.categoryarray = labels

    def trial_values(self, metric: str = "host_cpu_ms_per_gb") -> list[float | None]:
        """The figure's value of every trial, in run order (``"host_cpu_ms_per_gb"`` from the bars,
        ``"throughput_mbps"`` from the markers); None for a failed trial."""
        first = {"host_cpu_ms_per_gb": 0, "throughput_mbps": len(DETECTORS)}[metric]
        by_label = {}
        for trace in self.figure.data[first : first + len(DETECTORS)]:
            by_label.update(zip(trace.x or (), trace.y or (), strict=True))
        return [by_label[lab] for lab in self.figure.layout.xaxis.categoryarray or ()]

    @property
    def thread_trace(self):
        """The figure's per-thread CPU bars (the last trial)."""
        return self.figure.data[2 * len(DETECTORS)]

    # -- running ---------------------------------------------------------------------------------------------------
    def trial(self) -> Trial:
        """The trial the controls describe."""
        return self.base.replace(**{name: c.value for name, c in self.controls.items()})

    def _on_change(self, change: Mapping[str, Any]) -> None:
        if self.auto_run:
            self.run_once()

    def run_once(self) -> TrialResult | None:
        """Run one trial with the current settings, add it to the history and update the figure; returns the
        result, or None when the trial failed (the status line says why)."""
        try:
            trial = self.trial()
        except ValueError as exc:
            self.status.value = f"<b>not run:</b> {exc}"
            return None
        self.status.value = f"running {_trial_label(len(self.history) + 1, trial)} ..."
        result, error = explore.run_one(trial)
        self.history.append((trial, result, error))
        if result is None:
            self.status.value = f"<b style='color:#b00'>trial {len(self.history)} failed:</b> {error}"
        else:
            self.status.value = (
                f"trial {len(self.history)} ({result.backend}): host CPU {result.host_cpu_ms:.1f} ms "
                f"({result.host_cpu_ms_per_gb:.0f} ms/GB), total time {result.total_time_ms:.1f} ms, throughput "
                f"{result.throughput_mbps:.0f} Mbit/s, {result.pages_offloaded} pages offloaded, "
                f"verified {'yes' if result.verified else 'NO'}"
            )
        self._update_figure()
        return result

    def clear(self) -> None:
        """Forget the history."""
        self.history.clear()
        self._update_figure()
        self.status.value = "history cleared"

    def history_dataset(self, attrs: Mapping[str, str | int | float] | None = None):
        """The history as a result dataset (:func:`dsalab.explore.history_dataset`): the controlled parameters
        that changed are its dimensions; a setting run twice has two repeats."""
        if not self.history:
            raise InvalidArgument("the history is empty: run a trial first")
        return explore.history_dataset(self.history, CONTROLLED, attrs)

    def save(self, path: str | pathlib.Path) -> pathlib.Path:
        """Write :meth:`history_dataset`, with this machine's provenance attributes, through
        :func:`dsalab.results.write` (schema validation, durable atomic netCDF write); returns the path."""
        return results.write(self.history_dataset(results.provenance()), path)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


class SweepExplorer:
    """The tuning controls over a stored sweep dataset: moving a control selects that point instead of running.

    The left panel shows a metric along the parameter chosen in "x axis", the other parameters fixed at the
    controls' values, ± one standard deviation over repeats, the selected point marked; the right panel shows
    the selected point's CPU per thread. Controls whose parameter the dataset does not sweep are disabled; swept
    parameters without a tuning control get a dropdown each.
    """

    def __init__(self, ds, metric: str = "host_cpu_ms_per_gb") -> None:
        self.ds = ds
        self.swept = plots.swept_dims(ds)
        if not self.swept:
            raise InvalidArgument("the dataset sweeps no parameter; nothing to explore")

        def values(name: str) -> list[Any]:
            return [v.item() if hasattr(v, "item") else v for v in ds[name].values]

        opts = {name: values(name) for name in self.swept if name in CONTROLLED}
        base = explore.dataset_trial(ds)  # the values of the controls the sweep did not vary
        for name in CONTROLLED:
            opts.setdefault(name, [getattr(base, name)])
        self.controls = make_controls(base, opts)
        # swept parameters without a tuning control (guest size, cpu_fraction, ...) get a dropdown each
        self.extra = {
            name: W.Dropdown(
                options=[(plots.format_value(name, v), v) for v in values(name)],
                description=name.replace("_", " "),
                disabled=ds.sizes[name] < 2,
                **_slider_layout(),
            )
            for name in self.swept
            if name not in CONTROLLED
        }
        self.metric = W.Dropdown(
            options=[(plots.short_metric(m), m) for m in plots.METRIC_SHORT if m in ds],
            value=metric,
            description="metric",
            **_slider_layout(),
        )
        big = [d for d in self.swept if ds.sizes[d] > 1] or self.swept
        self.x_axis = W.Dropdown(
            options=[(_param_name(d), d) for d in big], value=big[0], description="x axis", **_slider_layout()
        )
        for control in [*self.controls.values(), *self.extra.values(), self.metric, self.x_axis]:
            control.observe(self._on_change, names="value")
        self.status = W.HTML()
        self.figure = self._build_figure()
        self.widget = W.VBox(
            [
                W.HBox(
                    [
                        W.VBox([self.controls[n] for n in CONTROLLED[:4]]),
                        W.VBox([self.controls[n] for n in CONTROLLED[4:]] + [self.metric, self.x_axis]),
                        W.VBox(list(self.extra.values())),
                    ]
                ),
                self.status,
                self.figure,
            ]
        )
        self.update()

    def _build_figure(self) -> LiveFigure:
        fig = make_subplots(
            rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.1, subplot_titles=["metric", "threads"]
        )
        fig.add_scatter(
            x=[], y=[], mode="lines+markers", name="mean ± sd over repeats",
            error_y={"type": "data", "array": [], "visible": True}, line_color=plots.NEUTRAL,
        )  # fmt: skip
        fig.add_scatter(  # black, as the line: no thread's colour (the bars at the right)
            x=[], y=[], mode="markers", name="selected point",
            marker={"size": 16, "symbol": "circle-open", "color": plots.NEUTRAL, "line": {"width": 2}},
        )  # fmt: skip
        fig.add_bar(x=[], y=[], name="CPU per thread", showlegend=False, row=1, col=2)
        fig.update_layout(
            template=plots.TEMPLATE,
            height=440,
            legend={"orientation": "h", "x": 0, "y": 1.12, "yanchor": "bottom"},
            margin={"t": 90},
        )
        return LiveFigure(fig)

    def selection(self) -> dict[str, Any]:
        """The selected point: swept parameter -> value."""
        return {name: (self.controls[name] if name in self.controls else self.extra[name]).value for name in self.swept}

    def _on_change(self, change: Mapping[str, Any]) -> None:
        self.update()

    def update(self) -> None:
        """Redraw for the current selection."""
        ds, x, metric = self.ds, self.x_axis.value, self.metric.value
        point = self.selection()
        line_sel = {k: v for k, v in point.items() if k != x}
        mean, std, _ = analysis.mean_std(ds, metric)
        line, err = mean.sel(line_sel), std.sel(line_sel)
        at = mean.sel(point)
        cpu = analysis.mean_std(ds, "thread_cpu_ms")[0].sel(point)
        names, values = _source_threads(dict(zip((str(t) for t in cpu.thread.values), cpu.values, strict=True)))
        colors = plots.thread_colors(names)
        xs = [plots.format_value(x, v) for v in ds[x].values]
        ok = ds.status.sel(point)
        n_ok = int((ok == "ok").sum())
        with self.figure.batch_update():
            self.figure.data[0].x = xs
            self.figure.data[0].y = line.values
            self.figure.data[0].error_y.array = err.values
            self.figure.data[1].x = [plots.format_value(x, point[x])]
            self.figure.data[1].y = [float(at)]
            self.figure.data[2].x = names
            self.figure.data[2].y = values
            self.figure.data[2].marker.color = [colors[t] for t in names]
            self.figure.layout.xaxis.title.text = plots.label(ds, x)
            self.figure.layout.xaxis.type = "category"
            self.figure.layout.yaxis.title.text = plots.label(ds, metric)
            self.figure.layout.yaxis2.title.text = "CPU time per thread, mean over repeats (ms)"
            self.figure.layout.annotations[0].text = f"{plots.short_metric(metric)} along {_param_name(x)}"
            self.figure.layout.annotations[1].text = "CPU per thread at the selected point"
        text = ", ".join(f"{k}={plots.format_value(k, v)}" for k, v in point.items())
        self.status.value = f"selected {text}: {metric} = {float(at):.4g} ({n_ok}/{ok.size} repeats ok)"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
