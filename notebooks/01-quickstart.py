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
guest: str = "64MiB"  # guest RAM of each trial (the seed migrated 100 GB; keep it small here)
normal_ratio: float = 0.5  # fraction of guest pages that are normal (non-zero)
channels: int = 2  # multifd channels (sender threads and TCP connections)
cpu_detector: str = "cpu-numba"  # the baseline: zero pages found by a CPU kernel
dsa_detector: str = "dsa-emulated"  # the offload: dsa-emulated here, dsa-hardware with real DSA work queues
repeats: int = 3  # runs per detector for the figure

# %% [markdown]
# # Quickstart: DSA zero-page offload in multifd live migration
#
# **Live migration** copies a running VM's memory to another host while the VM keeps running. QEMU's
# *multifd* migration splits guest RAM into packets (512 KiB by default) and sends them over several TCP
# channels, one sender thread (`multifdsend_<i>`) each, coordinated by the `live_migration` thread.
#
# Before sending a page, the sender checks whether it is all zero: a zero page is sent as a flag in the
# packet header instead of 4 KiB of data. For a guest with much untouched memory this saves network
# bandwidth, but the check itself reads every byte of every normal page, and the first bytes of every zero
# page, on the host CPU.
#
# **Intel DSA** (Data Streaming Accelerator, Sapphire Rapids and later) can do that check: a *compare with
# pattern* descriptor per page, many of them grouped in a *batch descriptor*, submitted to a work queue; the
# CPU then only waits for the completion record (a `dsa_completion` thread here, as in the seed series).
# The seed series (QEMU patches, v5) reports less host CPU with DSA in both of its scenarios.
#
# This notebook runs one trial of our engine (the same data path on loopback TCP, per-thread CPU measured
# from `/proc`), prints the seed-style table, then compares CPU detection with DSA offload.

# %%
from IPython.display import display

from dsalab import explore, plots
from dsalab.migration import Trial, run_trial

base = Trial(guest_bytes=guest, normal_ratio=normal_ratio, channels=channels, detector=cpu_detector)
display(base)

# %% [markdown]
# ## One trial, one table
#
# `run_trial` migrates the guest's memory over loopback TCP, verifies that the destination equals the source
# byte for byte, and reports statistics named as in QEMU's `query-migrate`, with the CPU time of each thread
# laid out like the cover letter's tables. The total counts the source side only (`live_migration`,
# `multifdsend_*`, `dsa_completion`), as the seed does.

# %%
result = run_trial(base)
print(result.table())

# %% [markdown]
# ## CPU detection against DSA offload
#
# The same trial with each detector, a few repeats each (the first call of a numba kernel compiles, so
# `run_grid` warms up first and throws that run away). The bars are the mean per-thread CPU, per GB of guest
# RAM so that they sit beside the seed's published figures (a 100 GB guest on two 192-CPU hosts).
#
# With `dsa-emulated`, the device is a software model: its engine threads (`dsa_engine_*`) do the checks
# on this machine's CPU, but they are *device time* and are not counted as host CPU, just as a real
# device's work would not be.

# %%
ds = explore.run_grid(base, {"detector": [cpu_detector, dsa_detector]}, repeats=repeats)
display(ds[["host_cpu_ms", "host_cpu_ms_per_gb", "total_time_ms", "throughput_mbps"]].mean("repeat").to_dataframe())

# %%
fig = plots.thread_cpu(ds, reference=True)
fig.show()

# %% [markdown]
# ## What DSA saved
#
# The question of the notebook, in one figure: host CPU per GB (top) and total time (bottom) of CPU detection
# minus DSA offload, trial by trial: repeat *r* of both detectors migrates the same guest memory, so each repeat
# gives one paired difference. A bar is the mean of those differences, its error bar their standard deviation;
# above zero, DSA saved. The label is the saving in percent, the number `dsalab summary` prints.

# %%
fig = plots.saved_by_dsa(ds)
fig.show()

# %% [markdown]
# ## What to look at next
#
# - `02-cpu-baselines`: how fast the CPU kernels are against the memory-read bandwidth limit.
# - `03-batch-and-packet-size` and `04-devices-and-channels`: the DSA settings that matter.
# - `05-seed-scenarios`: the cover letter's two scenarios, ours beside theirs, and the break-even ratio.
# - `06-interactive-tuning`: sliders that run a trial on every change.
