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
size_mib: int = 256  # buffer size of the DRAM cases, MiB (larger than the last-level cache)
repeats: int = 5  # timed repeats per point (the median is reported)
threads: list = [1, 2]  # thread counts to scan with
results_json: str = ""  # a data/bench/kernels.json written by `make bench` to show instead of measuring

# %% [markdown]
# # CPU baselines: zero-page kernels against the memory-bandwidth limit
#
# Offloading the zero-page check only pays if the CPU check is expensive. How expensive can it be made? A
# page is zero when all of its 4096 bytes are zero, so a kernel can stop at the first non-zero byte of a
# normal page (cheap when data starts early) but must read every byte of a zero page. Reading every byte is
# bounded by **memory-read bandwidth**: no CPU kernel can check zero pages faster than the memory can deliver
# them.
#
# The benchmark (`benchmarks/bench_kernels.py`; `make bench` runs it) times each kernel of
# `dsalab.kernels`:
#
# - `numpy`: one `.any()` per page, the slow, obviously right reference;
# - `numba`: a jitted loop over 64-bit words with early exit, called from the native multifd sender through
#   a C function pointer (detector `cpu-numba`);
# - `native`: C with AVX-512 or AVX2 where the CPU has them (detector `cpu-native`);
#
# beside **the reference**: a native loop that ORs every byte of the buffer with no early exit, the memory
# read bandwidth of this machine for that buffer. Four cases: all zero pages, half zero and half random
# (early exit helps), half zero and half non-zero *in the last byte only* (the worst case: every byte read),
# and a small buffer that stays in cache.

# %%
from IPython.display import display

from dsalab import explore, plots

rows = explore.kernel_benchmark(size_mib=size_mib, repeats=repeats, threads=threads, stored=results_json)
display(rows[["case", "kernel", "threads", "gbps", "ratio_ref", "ratio_numpy"]].round(2))

# %%
fig = plots.kernel_bandwidth(rows)
fig.show()

# %% [markdown]
# ## Reading the figure
#
# - Where a kernel's bar reaches the reference, it is **memory bound**: a faster instruction set cannot help,
#   only fewer bytes read (early exit) or another engine reading them (DSA).
# - `ratio_ref` is the kernel's speed as a fraction of the reference measured right beside it (the machine is
#   shared, so absolute GB/s move between runs; ratios of neighbours in time move less).
# - At zero pages every kernel reads everything: that is the case DSA offload targets. Each GB of zero pages
#   checked on the CPU costs at least 1 / (read bandwidth) seconds of a core; the seed's scenario 2 (all
#   pages zero) is where it saved the largest share of the sender threads' CPU.
# - The multifd sender calls these kernels once per page from C, so the cost per GB in a migration also
#   includes building packets and `sendmsg`: see the `detect_cpu_ms` and `send_cpu_ms` metrics of a trial.
