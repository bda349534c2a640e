"""Zero-page kernels vs the memory-read bandwidth reference, measured side by side in one run.

The command line over :mod:`dsalab.kernel_bench` (which says what is measured): prints GB/s and ratios, checks the
targets, writes data/bench/kernels.json.

    python benchmarks/bench_kernels.py [--size-mib 1024] [--repeats 7] [--out data/bench/kernels.json]
"""

from __future__ import annotations

import argparse
import pathlib

from dsalab import benchmarking, kernel_bench

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024, help="buffer size of the DRAM cases, MiB")
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats per point (median reported)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "data/bench/kernels.json")
    args = ap.parse_args(argv)
    results = kernel_bench.run(args.size_mib << 20, args.repeats, args.threads, args.seed)
    print(kernel_bench.format_table(results))
    print("\n".join(kernel_bench.verdicts(results, args.threads)))
    params = vars(args) | {"out": str(args.out), "page_size": kernel_bench.PAGE}
    path = benchmarking.write_json(args.out, "kernels", params, results)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
