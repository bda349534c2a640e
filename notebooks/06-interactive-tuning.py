# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
guest: str = "16MiB"  # guest RAM of each trial the panel runs (keep it small: one trial per slider release)
detector: str = "dsa-emulated"  # the detector the panel starts with
channels: int = 2  # multifd channels the panel starts with
results_file: str = ""  # a stored sweep (netCDF) for the explorer; empty: run a small grid here
grid_repeats: int = 2  # repeats of that small grid
save_history: str = ""  # write the panel's history here (netCDF) at the end; empty: do not save

# %% [markdown]
# # Interactive tuning
#
# Two panels, the same controls: batch size, packet size, DSA devices, channels, normal ratio, detector and
# completion mode.
#
# - The **tuning panel** runs one quick trial each time a control is *released* (sliders do not run on every
#   drag step) and adds it to a history: the left plots compare every trial so far, the right one shows the
#   per-thread CPU of the last trial. Press *Run* to repeat a setting; repeats show the noise.
# - The **sweep explorer** does the same over a stored sweep: moving a control *selects* a point instead of
#   running one.
#
# The panels need a live kernel: in JupyterLab, run the cells and use the controls. Run headless (in the test
# suite, or with papermill), the cells below drive them from code, as a click would.

# %%
from IPython.display import display

from dsalab import explore, plots
from dsalab.migration import Trial
from dsalab.widgets import SweepExplorer, TuningPanel

panel = TuningPanel(Trial(guest_bytes=guest, detector=detector, channels=channels))
panel.run_once()  # the starting point, so the figure is not empty
display(panel.widget)

# %% [markdown]
# Setting a control from code is the same as releasing it: each line below runs one trial.

# %%
panel.controls["batch_size"].value = 32
panel.controls["normal_ratio"].value = 0.0
print(f"{len(panel.history)} trials; the last: {panel.status.value}")

# %% [markdown]
# ## The history as a dataset
#
# The history has the layout of every result dataset here (one dimension per parameter that changed, a
# repeat for each run of the same setting), so every figure of `dsalab.plots` works on it, and it can be
# saved and explored later.

# %%
history = panel.history_dataset()
display(history.host_cpu_ms_per_gb.to_dataframe().dropna())
if save_history:
    print("wrote", panel.save(save_history))

# %% [markdown]
# ## The sweep explorer
#
# A stored sweep (`dsalab sweep` writes them under `data/results/`), or a small grid run here. The left plot
# follows the parameter chosen in *x axis* with the others held at the controls' values; the marked point is
# the selection.

# %%
base = Trial(guest_bytes=guest, detector=detector, channels=channels)
grid = {"normal_ratio": [0.0, 0.5, 1.0], "batch_size": [16, 128]}
sweep = explore.load_or_run_grid(results_file, base, grid, repeats=grid_repeats)
explorer = SweepExplorer(sweep)
display(explorer.widget)

# %%
explorer.x_axis.value = "normal_ratio"
print(explorer.status.value)

# %% [markdown]
# The same sweep as static figures, for sharing: `plots.export(fig, "name")` writes `name.html` (opens
# offline, plotly.js embedded), `name.png` and `name.svg`; `dsalab plot FILE` does it from the shell.

# %%
fig = plots.thread_cpu(sweep)
fig.show()
