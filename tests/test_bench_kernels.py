"""The kernel benchmark script runs end to end on a small buffer and writes its JSON (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

from dsalab import kernel_bench
from dsalab.errors import DsalabError

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_kernels_small(tmp_path, capsys):
    bench = load("bench_kernels")
    out = tmp_path / "kernels.json"
    assert bench.main(["--size-mib", "4", "--repeats", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "x reference" in text and "hot-1MiB" in text
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "kernels" and doc["machine"]["cpu_model"]
    kinds = {(r["case"], r["kernel"], r["threads"]) for r in doc["results"]}
    for case in ("all-zero", "half-random", "half-last-byte", "hot-1MiB"):
        assert (case, "reference", 1) in kinds and (case, "native", 2) in kinds and (case, "numba", 1) in kinds
    assert all(r["gbps"] > 0 and len(r["seconds"]) == 2 for r in doc["results"])


def test_script_is_a_thin_cli_over_the_package():
    """The measuring code lives in dsalab.kernel_bench (explore and the notebook use it without the script)."""
    bench = load("bench_kernels")
    assert not hasattr(bench, "run") and not hasattr(bench, "make_cases")
    assert kernel_bench.run.__module__ == "dsalab.kernel_bench"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((4096, 1, [1]), r"size=4096 is not allowed"),
        ((5000, 1, [1]), r"size=5000 is not allowed"),
        ((1 << 20, 0, [1]), r"repeats=0 is not allowed"),
        ((1 << 20, 1, []), r"threads=\[\] is not allowed"),
        ((1 << 20, 1, [0]), r"threads=0 is not allowed"),
    ],
)
def test_kernel_bench_refuses_what_it_cannot_measure(args, message):
    with pytest.raises(DsalabError, match=message):
        kernel_bench.run(*args, seed=1)
