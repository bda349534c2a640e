"""How fast the what-if model is: predictions per second of ``dsalab.model.predict`` alone (issue 11 asks for
>= 10,000/s), where its time goes (cProfile, top functions), and a 1,000-point sweep on the model end to end
(sweep + partial file + netCDF, in this process and as ``dsalab sweep`` in a fresh one).

    python benchmarks/bench_predict.py [--hardware FILE] [--predictions 20000] [--points 1000] [--repeats 3]
                                       [--out data/bench/predict.json]

The profile defaults to data/hardware/spr-8457c-dsa.toml, else this host's data/hardware/<hostname>.toml.
Prints a table and writes data/bench/predict.json (with machine metadata).
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pathlib
import pstats
import socket
import subprocess
import sys
import tempfile
import time

from dsalab import benchmarking, results, sweepfile
from dsalab import sweep as sw
from dsalab.errors import DsalabError
from dsalab.model import HardwareProfile, predict
from dsalab.model.profile import find
from dsalab.trial import Trial

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: the issue's target, predictions per second
TARGET = 10_000
#: the sweep grid, points = 2 detectors x 5 batch sizes x 5 packet sizes x N normal ratios (a multiple of 50)
GRID = {
    "detector": ["cpu-numba", "dsa-hardware"],
    "batch_size": [16, 32, 64, 128, 256],
    "packet_bytes": ["128KiB", "256KiB", "512KiB", "1MiB", "2MiB"],
}


def default_profile() -> pathlib.Path:
    """The spr-8457c-dsa profile when shipped, else this host's."""
    for path in (ROOT / "data/hardware/spr-8457c-dsa.toml", ROOT / f"data/hardware/{socket.gethostname()}.toml"):
        if path.is_file():
            return path
    raise SystemExit("no hardware profile found in data/hardware/: pass --hardware FILE (or run dsalab calibrate)")


def trials(n: int) -> dict[str, list[Trial]]:
    """``n`` varied trials per case: no dirty rate (two rounds) and a dirty rate (pre-copy iterations)."""
    combos = list(
        itertools.product(
            ["cpu-numba", "cpu-native", "dsa-hardware"],
            [0.0, 0.25, 0.5, 1.0],
            [1, 2, 8],
            [16, 128, 1024],
            ["thread", "poll"],
        )
    )
    base = [
        Trial(
            guest_bytes=1 << 30,
            detector=d,
            normal_ratio=r,
            channels=c,
            batch_size=b,
            completion=m,
            packet_bytes=512 << 10,
        )
        for d, r, c, b, m in combos
    ]
    picked = [base[i % len(base)] for i in range(n)]
    return {
        "no dirty rate": picked,
        "dirty rate 1 GiB/s": [t.replace(dirty_rate_bytes_per_s=1 << 30) for t in picked],
    }


def rate(profile: HardwareProfile, batch: list[Trial], repeats: int) -> dict:
    """Predictions per second over ``batch`` (median of ``repeats`` passes after one warm-up pass)."""

    def run() -> None:
        for t in batch:
            predict(t, profile)

    timing = benchmarking.time_call(run, repeats=repeats, warmups=1)
    return {"predictions": len(batch), "seconds": timing.seconds, "per_s": len(batch) / timing.median}


def hot_spots(profile: HardwareProfile, batch: list[Trial], top: int = 8) -> list[dict]:
    """The functions predict() spends its own time in (cProfile ``tottime``), as shares of the whole."""
    prof = cProfile.Profile()
    prof.enable()
    for t in batch:
        predict(t, profile)
    prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (calls, primitive calls, tottime, cumtime, callers)
    total = sum(v[2] for v in stats.values()) or 1.0
    rows = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return [
        {"function": f"{pathlib.Path(f).name}:{line}({name})", "calls": v[0], "share_pct": 100.0 * v[2] / total}
        for (f, line, name), v in rows
    ]


def sweep_text(hardware: pathlib.Path, points: int) -> str:
    ratios = max(1, points // 50)
    lines = ['name = "bench-predict"', 'runner = "model"', f'hardware = "{hardware}"', "[base]", 'guest_bytes = "1GiB"']
    lines += ["[sweep]", *(f"{k} = {v!r}".replace("'", '"') for k, v in GRID.items())]
    lines.append(f"normal_ratio = {[round(i / ratios, 6) for i in range(ratios)]}")
    return "\n".join(lines) + "\n"


def sweep_end_to_end(hardware: pathlib.Path, points: int) -> list[dict]:
    """Wall time of a model sweep of ``points`` points: in this process (load, sweep with the partial file,
    netCDF) and as the ``dsalab sweep`` command in a fresh interpreter (imports included)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "bench-predict.toml"
        path.write_text(sweep_text(hardware.resolve(), points))
        t0 = time.perf_counter()
        spec = sweepfile.load(path)
        t1 = time.perf_counter()
        ds = sw.run_sweep(spec, partial=pathlib.Path(tmp) / "p.jsonl", progress=False)
        t2 = time.perf_counter()
        results.write(ds, pathlib.Path(tmp) / "in-process.nc")
        t3 = time.perf_counter()
        out = pathlib.Path(tmp) / "cli.nc"
        cmd = [sys.executable, "-m", "dsalab.cli", "sweep", str(path), "--out", str(out), "--quiet", "--no-summary"]
        t4 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        t5 = time.perf_counter()
        if proc.returncode != 0:
            raise SystemExit(f"dsalab sweep failed: {proc.stderr.strip()}")
        failed = int(ds.attrs["trials_failed"])
    n = spec.n_points
    return [
        {"case": "load + check", "points": n, "seconds": t1 - t0},
        {"case": "sweep (predict + partial file + dataset)", "points": n, "seconds": t2 - t1, "failed": failed},
        {"case": "netCDF write", "points": n, "seconds": t3 - t2},
        {"case": "in process, total", "points": n, "seconds": t3 - t0},
        {"case": "dsalab sweep command (fresh process)", "points": n, "seconds": t5 - t4},
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hardware", default=None, help="hardware profile: a TOML path or a name in data/hardware")
    ap.add_argument("--predictions", type=int, default=20_000, help="predictions per timed pass, per case")
    ap.add_argument("--points", type=int, default=1000, help="points of the model sweep (rounded to a multiple of 50)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per case (median reported)")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "data/bench/predict.json")
    args = ap.parse_args(argv)
    if args.predictions < 1 or args.points < 1 or args.repeats < 1:
        ap.error("--predictions, --points and --repeats must be >= 1")
    hardware = find(args.hardware) if args.hardware else default_profile()
    try:
        profile = HardwareProfile.load(hardware)
    except DsalabError as exc:
        raise SystemExit(f"--hardware: {exc}") from None
    cases = trials(args.predictions)
    speed = [{"case": name} | rate(profile, batch, args.repeats) for name, batch in cases.items()]
    print(f"predict() on hardware profile {profile.name} ({hardware}):")
    print(
        benchmarking.table(
            speed, [("case", "case", "<22"), ("predictions", "trials", ">8"), ("per_s", "per s", ">10,.0f")]
        )
    )
    slowest = min(r["per_s"] for r in speed)
    verdict = "meets" if slowest >= TARGET else "misses"
    print(f"slowest case {slowest:,.0f}/s {verdict} the target of {TARGET:,}/s")
    spots = hot_spots(profile, cases["no dirty rate"][: min(args.predictions, 5000)])
    print("where predict() spends its time (cProfile, own time):")
    print(
        benchmarking.table(
            spots, [("function", "function", "<44"), ("calls", "calls", ">8"), ("share_pct", "%", ">6.1f")]
        )
    )
    end = sweep_end_to_end(hardware, args.points)
    print(f"a {end[0]['points']}-point sweep on the model:")
    print(benchmarking.table(end, [("case", "phase", "<42"), ("seconds", "seconds", ">8.2f")]))
    params = {
        "hardware": str(hardware),
        "profile": profile.name,
        "predictions": args.predictions,
        "points": end[0]["points"],
        "repeats": args.repeats,
        "target_per_s": TARGET,
    }
    path = benchmarking.write_json(args.out, "predict", params, {"predict": speed, "hot_spots": spots, "sweep": end})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
