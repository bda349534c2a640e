"""Fuzzing the sweep layer's inputs: sweep-file TOML, partial-file lines and result files. Whatever the bytes, each
ends in a result or a :class:`~dsalab.errors.DsalabError` (one line), never a crash or another exception type."""

from __future__ import annotations

import json
import math
import pathlib
import string
import warnings

import numpy as np
import pytest
import xarray as xr
from fuzzing import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsalab import results, sweepfile
from dsalab import sweep as sw
from dsalab.errors import DsalabError
from dsalab.migration import Trial, run_trial
from dsalab.results import TrialRecord

pytestmark = pytest.mark.timeout(300)
#: examples per property (``DSALAB_FUZZ_EXAMPLES=2000`` for a longer hunt); files are written per example, so
#: the netCDF properties take a quarter of it
EXAMPLES = examples(120)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
FUZZ_NC = settings(FUZZ, max_examples=max(10, EXAMPLES // 4))

# ---------------------------------------------------------------- TOML values and a small writer for them

FIELDS = [*sweepfile.SWEEPABLE, "seed", "colour", ""]
NUMBERS = st.one_of(
    st.integers(-(2**64), 2**64),
    st.sampled_from([0, 1, 2, 4096, 2**31, 2**63 - 1, 2**63, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 0.5, 1e308, 5e-324, 1.0000000000000002]),
)
SCALARS = st.one_of(
    NUMBERS,
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["4MiB", "64KiB", "9e999KiB", "1 TiB", "", "cpu-numba", "dsa-emulated", "emu", "thread"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
EDGES = st.sampled_from([math.nan, math.inf, -math.inf, 0, 1, 2, 0.5, -1, 1e300, 1e-300, 2**63, 1.0000000000000002])
RANGE_NUMBERS = st.one_of(EDGES, NUMBERS, st.sampled_from(["64KiB", "1MiB", "9e999KiB", "x"]), st.booleans())
RANGES = st.one_of(
    st.fixed_dictionaries({"start": RANGE_NUMBERS, "stop": RANGE_NUMBERS, "step": RANGE_NUMBERS}),
    st.fixed_dictionaries({"start": RANGE_NUMBERS, "stop": RANGE_NUMBERS, "factor": RANGE_NUMBERS}),
    st.dictionaries(st.sampled_from(["start", "stop", "step", "factor", "stride"]), RANGE_NUMBERS, max_size=4),
)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string (surrogate escapes make invalid TOML: also worth trying)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"


@st.composite
def sweep_files(draw) -> str:
    top = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "name": st.one_of(st.just("f"), SCALARS),
                "description": SCALARS,
                "runner": st.one_of(st.sampled_from(["engine", "qemu", "model"]), SCALARS),
                "repeats": st.one_of(st.integers(0, 3), NUMBERS),
                "warmups": st.one_of(st.integers(0, 2), NUMBERS),
                "seed": NUMBERS,
                "extra": VALUES,
            },
        )
    )
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in top.items()]
    base = draw(st.dictionaries(st.sampled_from(FIELDS), st.one_of(SCALARS, VALUES), max_size=3))
    sweep = draw(
        st.dictionaries(
            st.sampled_from(FIELDS),
            st.one_of(st.lists(SCALARS, max_size=4), RANGES, SCALARS),
            max_size=3,
        )
    )
    if draw(st.booleans()) or base:
        lines += ["[base]", *(f"{json.dumps(k)} = {toml_value(v)}" for k, v in base.items())]
    if draw(st.booleans()) or sweep:
        lines += ["[sweep]", *(f"{json.dumps(k)} = {toml_value(v)}" for k, v in sweep.items())]
    return "\n".join(lines) + "\n"


def check_loads(text: str) -> None:
    try:
        spec = sweepfile.loads(text, "fuzz.toml")
    except DsalabError as exc:
        assert "\n" not in str(exc), str(exc)
        return
    assert 1 <= spec.n_points <= sweepfile.MAX_POINTS
    assert all(1 <= len(v) <= sweepfile.MAX_VALUES for v in spec.params.values())
    for point in spec.points():
        assert isinstance(spec.trial(point, 0), Trial)


@FUZZ
@given(sweep_files())
def test_sweep_file_from_random_tables_is_a_spec_or_a_sweep_file_error(text):
    check_loads(text)


@FUZZ
@given(st.sampled_from(list(sweepfile.SWEEPABLE)), RANGES)
def test_random_ranges_of_every_field(field, table):
    check_loads(f'name = "r"\n[sweep]\n{field} = {toml_value(table)}\n')


@FUZZ
@given(st.text(alphabet=string.printable + "=[]{}\"'#.\u00e9\u2603", max_size=200))
def test_sweep_file_from_random_text(text):
    check_loads(text)


# ---------------------------------------------------------------- partial files


@pytest.fixture(scope="module")
def partial_base(tmp_path_factory):
    """A real partial file of a small sweep (header and two trials) and its spec."""
    tmp = tmp_path_factory.mktemp("fuzz-partial")
    spec = sweepfile.loads(
        'name = "fz"\nseed = 1\n[base]\nguest_bytes = "4MiB"\n[sweep]\ndetector = ["cpu-numba", "cpu-native"]\n',
        "fz.toml",
    )
    path = tmp / "p.jsonl"
    sw.run_sweep(spec, partial=path, progress=False)
    return spec, path.read_bytes()


JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8))
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=10,
)


@st.composite
def mutated_record(draw, line: bytes) -> bytes:
    """A real trial line with one field (top level, in the result or in its trial) replaced, added or removed."""
    obj = json.loads(line)
    where = draw(st.sampled_from(["top", "result", "trial"]))
    target = obj if where == "top" else obj["result"] if where == "result" else obj["result"]["trial"]
    name = draw(st.one_of(st.sampled_from(sorted(target)), st.text(max_size=6)))
    if draw(st.booleans()) and name in target:
        del target[name]
    else:
        target[name] = draw(JSON_VALUES)
    return json.dumps(obj).encode()


@st.composite
def partial_files(draw, base: bytes) -> bytes:
    lines = base.split(b"\n")[:-1]
    kind = draw(st.sampled_from(["bytes", "json", "record", "tail"]))
    if kind == "tail":  # random bytes after the last complete line (a crash or power cut mid-write)
        return base + draw(st.binary(max_size=80)).replace(b"\n", b"")
    if kind == "bytes":
        new = draw(st.binary(max_size=80)).replace(b"\n", b"")
    elif kind == "json":
        new = json.dumps(draw(JSON_VALUES)).encode()
    else:
        new = draw(mutated_record(lines[draw(st.integers(1, len(lines) - 1))]))
    at = draw(st.integers(0, len(lines)))
    if draw(st.booleans()) and at < len(lines):
        lines[at] = new
    else:
        lines.insert(at, new)
    return b"\n".join(lines) + (b"\n" if draw(st.booleans()) else b"")


@FUZZ
@given(data=st.data())
def test_partial_file_lines_load_or_fail_with_a_sweep_file_error(partial_base, tmp_path_factory, data):
    spec, base = partial_base
    content = data.draw(partial_files(base))
    path = tmp_path_factory.mktemp("p") / "p.jsonl"
    path.write_bytes(content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = sw.PartialFile(path, spec, resume=True)
        except DsalabError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(f"partial file {path}")
            return
    loaded.close()
    assert all(issubclass(w.category, sw.PartialFileWarning) for w in caught), [str(w.message) for w in caught]
    # what was accepted builds a valid dataset, and the file is valid JSON lines again
    tasks = [t for t in sw.tasks(spec) if t.key in loaded.records]
    records = [TrialRecord(t.point, t.repeat, *loaded.records[t.key]) for t in tasks]
    results.validate(results.build_dataset(records, spec.params, spec.repeats))
    for line in path.read_bytes().split(b"\n")[:-1]:
        json.loads(line)
    assert path.read_bytes().endswith(b"\n")


# ---------------------------------------------------------------- result files


@pytest.fixture(scope="module")
def result_file(tmp_path_factory):
    """A real small result file (one trial) and its dataset."""
    ds = run_trial(Trial(guest_bytes="4MiB", detector="cpu-native")).to_dataset()
    path = tmp_path_factory.mktemp("fuzz-results") / "good.nc"
    results.write(ds, path)
    return path, ds


def check_open(path: pathlib.Path) -> None:
    try:
        ds = results.open(path)
    except DsalabError as exc:
        assert "\n" not in str(exc), str(exc)
        return
    results.validate(ds)


@FUZZ
@given(st.binary(max_size=600))
def test_open_random_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("r") / "x.nc"
    path.write_bytes(data)
    check_open(path)


@FUZZ
@given(data=st.data())
def test_open_truncated_or_damaged_result_files(result_file, tmp_path_factory, data):
    good = result_file[0].read_bytes()
    content = bytearray(good[: data.draw(st.integers(0, len(good)))])
    for _ in range(data.draw(st.integers(0, 4))):
        if content:
            content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.mktemp("r") / "x.nc"
    path.write_bytes(bytes(content))
    check_open(path)


MUTATIONS = st.sampled_from(["drop", "astype", "attr", "rename", "unattr", "scalar", "global"])


@FUZZ_NC
@given(data=st.data())
def test_open_netcdf_files_without_our_schema(result_file, tmp_path_factory, data):
    _, good = result_file
    ds = good.copy(deep=True)
    for _ in range(data.draw(st.integers(1, 3))):
        how = data.draw(MUTATIONS)
        name = data.draw(st.sampled_from(sorted(map(str, ds.data_vars)) or ["status"]))
        if name not in ds:
            continue
        if how == "drop":
            ds = ds.drop_vars(name)
        elif how == "astype":
            kind = data.draw(st.sampled_from(["float32", "int8", "int64", "float64", "bool"]))
            if ds[name].dtype != object:
                ds[name] = ds[name].astype(kind)
            else:
                ds[name] = ds[name].copy(data=np.zeros(ds[name].shape, dtype=kind))
        elif how == "attr":
            ds[name].attrs[data.draw(st.sampled_from(["units", "long_name"]))] = data.draw(
                st.one_of(st.text(max_size=5), st.integers(-5, 5), st.floats(allow_nan=False))
            )
        elif how == "rename":
            new = data.draw(st.text(string.ascii_lowercase, min_size=1, max_size=6))
            if new not in ds.variables and new not in ds.dims:
                ds = ds.rename({name: new})
        elif how == "unattr":
            ds[name].attrs = {}
        elif how == "scalar":
            ds[name] = xr.DataArray(np.int64(data.draw(st.integers(-5, 5))))
        else:
            ds.attrs[data.draw(st.sampled_from(["schema_version", "backend", "x"]))] = data.draw(
                st.one_of(st.integers(-5, 5), st.text(max_size=4), st.floats(allow_nan=False))
            )
    path = tmp_path_factory.mktemp("r") / "x.nc"
    try:
        ds.to_netcdf(path, engine="h5netcdf")
    except (ValueError, TypeError):  # xarray itself refuses some of these; nothing to open then
        return
    check_open(path)
