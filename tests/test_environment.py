"""environment.yml (conda) describes the same environment as the pinned pip requirements."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: conda-forge names of PyPI packages whose names differ
CONDA_NAMES = {"kaleido": "python-kaleido"}
#: conda-only entries with no PyPI counterpart
CONDA_ONLY = {"python", "pip", "c-compiler"}


def pinned(path: pathlib.Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            out.update(pinned(path.parent / line[3:].strip()))
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        assert m, f"{path.name}: {line!r} is not pinned with =="
        out[re.sub(r"\[.*\]", "", m.group(1)).lower()] = m.group(2)
    return out


def conda_env() -> tuple[dict[str, str], dict[str, str]]:
    import yaml

    doc = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = {}, {}
    for dep in doc["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                name, _, ver = line.partition("==")
                pip[name.lower()] = ver
            continue
        name, _, ver = dep.partition("=")
        conda[name.lower()] = ver
    return conda, pip


def test_every_requirement_is_pinned():
    reqs = pinned(ROOT / "requirements-dev.txt")
    assert {"numba", "cffi", "xarray", "h5netcdf", "h5py", "dask", "distributed", "pytest"} <= reqs.keys()


def test_environment_yml_matches_requirements():
    reqs = pinned(ROOT / "requirements-dev.txt")
    conda, pip = conda_env()
    assert conda.get("python") == "3.11"
    listed = {}
    for name, ver in conda.items():
        if name in CONDA_ONLY:
            continue
        pypi = {v: k for k, v in CONDA_NAMES.items()}.get(name, name)
        listed[pypi] = ver
    listed.update(pip)
    assert listed == reqs


@pytest.mark.parametrize("name", ["pyproject.toml", "setup.py", "Makefile", ".ci/run", "environment.yml"])
def test_layout_files_exist(name):
    assert (ROOT / name).is_file()


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci/run").read_text()
