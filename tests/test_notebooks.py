"""The notebooks: paired with their percent scripts, committed without outputs, a papermill `parameters` cell
first, and every one runs end to end (papermill, small parameters)."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAMES = [
    "01-quickstart",
    "02-cpu-baselines",
    "03-batch-and-packet-size",
    "04-devices-and-channels",
    "05-seed-scenarios",
    "06-interactive-tuning",
    "07-what-if",
    "08-many-vms",
    "09-engine-vs-qemu",
]
#: the detector the notebooks offload with in these tests
DSA = "dsa-emulated"
PARAM_LINE = re.compile(r"^[a-z_][a-z0-9_]*: (str|int|float|bool|list) = .+  # .+$")


def params(name: str, tmp_path: pathlib.Path) -> dict:
    dsa = DSA  # no fallback: a notebook test of the DSA path must fail when that path fails
    return {
        "01-quickstart": {"guest": "8MiB", "dsa_detector": dsa, "repeats": 2},
        "02-cpu-baselines": {"size_mib": 8, "repeats": 2, "threads": [1]},
        "03-batch-and-packet-size": {
            "guest": "8MiB",
            "detector": dsa,
            "batch_sizes": [16, 64],
            "packet_sizes_kib": [64, 256],
            "repeats": 2,
        },
        "04-devices-and-channels": {
            "guest": "8MiB",
            "detector": dsa,
            "devices": [1, 2],
            "channels": [1, 2],
            "repeats": 2,
        },
        "05-seed-scenarios": {
            "guest": "8MiB",
            "channels": 2,
            "dsa_detector": dsa,
            "ratios": [0.0, 0.5, 1.0],
            "repeats": 2,
        },
        "06-interactive-tuning": {
            "guest": "4MiB",
            "detector": dsa,
            "grid_repeats": 1,
            "save_history": str(tmp_path / "history.nc"),
        },
        "07-what-if": {
            "machine_profile": str(_model_profile(tmp_path)),
            "guest": "8MiB",
            "repeats": 1,
            "ratios": [0.0, 1.0],
            "channel_counts": [1],
            "packets_kib": [128],
        },
        "08-many-vms": {
            "hardware": str(_tenants_profile(tmp_path)),
            "vms": 12,
            "guest": "16MiB",
            "devices": 2,
            "vm_counts": [4, 12],
            "device_counts": [1, 2, 4],
            "figures_dir": str(tmp_path / "figures"),
            "figure_formats": ["html"],
        },
        "09-engine-vs-qemu": {
            "guest": "32MiB",
            "repeats": 2,
            "figures_dir": str(tmp_path / "figures"),
            "figure_formats": ["html"],
        },
    }[name]


def _model_profile(tmp_path: pathlib.Path) -> pathlib.Path:
    """The model tests' profile, as a file (the notebook's default is this machine's calibrated profile)."""
    from model_fixtures import test_profile

    path = tmp_path / "model-test.toml"
    test_profile().save(path)
    return path


def _tenants_profile(tmp_path: pathlib.Path) -> pathlib.Path:
    """The tenant tests' profile, as a file (the notebook's default is the seed hosts' profile)."""
    import tenants_support

    return tenants_support.profile_file(tmp_path)


def test_every_notebook_is_listed():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == NAMES
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.py")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_paired_stripped_and_parameterised(name):
    import jupytext

    nb = jupytext.read(NOTEBOOKS / f"{name}.ipynb")
    script = jupytext.read(NOTEBOOKS / f"{name}.py")
    assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert [(c.cell_type, c.source) for c in nb.cells] == [(c.cell_type, c.source) for c in script.cells], (
        f"{name}.ipynb and {name}.py differ: run `jupytext --sync notebooks/{name}.py`"
    )
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: commit notebooks without outputs"
    first = nb.cells[0]
    assert first.cell_type == "code" and "parameters" in first.metadata.get("tags", [])
    lines = first.source.splitlines()
    bad = [line for line in lines if not PARAM_LINE.match(line)]
    assert lines and not bad, f"{name}: parameter lines must read `name: type = value  # help`: {bad}"
    assert any(c.cell_type == "markdown" and c.source.startswith("# ") for c in nb.cells[1:3]), "a title first"


def test_notebook_parameters_used_by_the_tests_exist(tmp_path):
    import jupytext

    for name in NAMES:
        first = jupytext.read(NOTEBOOKS / f"{name}.py").cells[0].source
        declared = {line.split(":", 1)[0] for line in first.splitlines()}
        assert set(params(name, tmp_path)) <= declared, name


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, tmp_path):
    if name == "09-engine-vs-qemu":
        from dsalab import qemu

        version = qemu.qemu_version()
        if version is None or version < (9, 0, 0):
            pytest.skip(f"QEMU >= 9.0 not installed ({version})")
    import nbformat
    import papermill

    out = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(out),
        parameters=params(name, tmp_path),
        cwd=str(NOTEBOOKS),
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=300,
    )
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    # a failed trial is recorded, not raised (run_grid warns "... trials failed", a panel's status says so)
    assert "failed" not in text, f"{name}: a trial failed:\n{text[-3000:]}"
    shown = "\n".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    if name in ("01-quickstart", "05-seed-scenarios"):
        assert DSA in text + shown, f"{name} never showed a {DSA} result"
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    if name == "01-quickstart":
        assert "CPU usage" in text and "verified yes" in text
    if name == "05-seed-scenarios":
        assert "seed" in text and "crosses zero at normal ratio" in text
    if name == "07-what-if":
        assert "predicted vs" in text and "published" in text and "break-even" in text
        assert "predicted by the model" not in text or "verified n/a" in text
    if name == "08-many-vms":
        assert "model" in text + shown and "worst" in text
        assert (tmp_path / "figures" / "devices-needed.html").is_file()
    if name == "09-engine-vs-qemu":
        assert text.count("page counts equal GuestMemory's truth: engine yes, qemu yes") == 2
        assert re.search(r"QEMU \d+\.\d+\.\d+, accel (kvm|tcg)", text) and "engine/QEMU, paired by repeat" in text
        assert (tmp_path / "figures" / "cpu-by-role.html").is_file()
    if name == "06-interactive-tuning":
        assert (tmp_path / "history.nc").is_file()
        assert "3 trials" in text  # the first run, then two controls set from code (batch size, normal ratio)
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    if name != "06-interactive-tuning":
        assert figures, f"{name} showed no plotly figure"
