# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
guest: str = "64MiB"  # guest RAM of each trial
detector: str = "dsa-emulated"  # the detector to tune (dsa-emulated, dsa-hardware; a cpu-* one as a baseline)
cpu_detector: str = "cpu-numba"  # the CPU detection the saving is measured against ("" for none)
normal_ratio: float = 0.5  # fraction of normal (non-zero) pages
channels: int = 2  # multifd channels
batch_sizes: list = [8, 32, 128, 512]  # pages per DSA batch descriptor
packet_sizes_kib: list = [64, 512, 2048]  # multifd packet sizes, KiB (the seed's default is 512)
repeats: int = 3  # runs per point
results_file: str = ""  # a stored sweep (netCDF) to plot instead of running the grid

# %% [markdown]
# # Batch size and packet size
#
# Two settings decide how the zero-page work reaches the DSA device:
#
# - **packet size** (`multifd-packet-size` in the seed): the pages a sender thread handles at once. Each
#   packet is one detection request, so larger packets mean fewer submissions, fewer waits on a completion
#   record, fewer headers, but more memory in flight per channel.
# - **batch size**: the pages per DSA *batch descriptor*. A packet of 128 pages with batch size 32 becomes
#   four batch descriptors. Larger batches amortise the submission (one `ENQCMD`/`MOVDIR64B` per batch) but
#   a batch only completes when its slowest page does, and a page fault stops the rest of it (the CPU then
#   finishes what the device did not).
#
# The grid below runs every combination a few times, with the DSA detector and with CPU detection, and plots
# host CPU per GB and throughput, with error bars of one standard deviation over repeats. For a CPU detector the
# batch size does nothing: that is a useful control, a flat line there says the noise level.

# %%
from IPython.display import display

from dsalab import explore, plots
from dsalab.migration import Trial

base = Trial(guest_bytes=guest, detector=detector, normal_ratio=normal_ratio, channels=channels)
detectors = list(dict.fromkeys(d for d in (cpu_detector, detector) if d))
grid = {"detector": detectors, "batch_size": batch_sizes, "packet_bytes": [k << 10 for k in packet_sizes_kib]}
ds = explore.load_or_run_grid(results_file, base, grid, repeats=repeats)
display(ds.host_cpu_ms_per_gb.mean("repeat").to_series().unstack("batch_size").round(1))

# %%
fig = plots.batch_and_packet(ds)
fig.show()

# %% [markdown]
# ## The same as a heatmap
#
# Each cell is the mean over repeats, with its standard deviation. Look for the region where host CPU per
# GB stops falling: beyond it, larger batches or packets only add latency and memory.

# %%
fig = plots.heatmap(ds, "host_cpu_ms_per_gb", x="batch_size", y="packet_bytes")
fig.show()

# %%
fig = plots.heatmap(ds, "throughput_mbps", x="batch_size", y="packet_bytes")
fig.show()

# %% [markdown]
# ## What DSA saved at each point
#
# Each DSA point against its CPU-detection twin (the same batch size and packet size, the same repeat, so the
# same guest memory): host CPU per GB and total time of the CPU detector minus those of DSA, mean over the repeat
# pairs ± their standard deviation. Above zero, DSA saved; the label is the saving in percent. The batch size
# does nothing to the CPU detector, so its twins differ only by noise.

# %%
if plots.REGISTRY["saved"].applies(ds):
    fig = plots.saved_by_dsa(ds)
    fig.show()
else:
    print("the grid has no CPU detector beside a DSA one: nothing to compare (set cpu_detector)")

# %% [markdown]
# ## Caveats
#
# - Small guests finish in milliseconds: thread start-up and the first packets weigh more than in a 100 GB
#   migration. Compare points with each other, not with the seed's absolute times.
# - With `dsa-emulated`, the device's speed is a timing model; batch-size effects on the *host* side
#   (submissions, waits, fallbacks) are real, device-side ones are modelled.
# - `fallback_pages` and `queue_full_retries` in the dataset say when the device could not keep up.
