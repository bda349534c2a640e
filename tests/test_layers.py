"""The import graph follows shared/DESIGN.md's flow: vocabulary -> native layer -> engine -> dataset -> runs -> views.

Every ``import`` in ``dsalab/`` (module level or deferred inside a function; ``if TYPE_CHECKING:`` blocks left
out) goes from a module to one of the layers its own layer may use, with a short list of named exceptions; and the
module-level imports have no cycle. A subprocess proves that the dataset and plotting side loads neither the
compiled module nor numba (so a stored netCDF file can be plotted while the C build is stale).
"""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dsalab"

#: layer -> modules (a name covers its submodules; the longest match wins)
LAYERS: dict[str, tuple[str, ...]] = {
    # Trial, TrialResult, thread roles, metric table, backend names, limits: import nothing heavy
    "vocab": (
        "dsalab",
        "dsalab.errors",
        "dsalab.config",
        "dsalab.units",
        "dsalab.backends",
        "dsalab.threads",
        "dsalab.metrics",
        "dsalab.validate",
        "dsalab.device_spec",
        "dsalab.buffers",
        "dsalab.trial",
        "dsalab.result",
        "dsalab.reference",
        "dsalab.caveats",
    ),
    # the compiled module, numba kernels, devices and the offload API
    "native": (
        "dsalab._binding",
        "dsalab._native",
        "dsalab._numba_kernels",
        "dsalab.kernels",
        "dsalab.discovery",
        "dsalab.devices",
        "dsalab.offload",
        "dsalab.machine",
        "dsalab.benchmarking",
        "dsalab.kernel_bench",
    ),
    # backends that turn a Trial into a TrialResult
    "engine": ("dsalab.migration", "dsalab.qemu", "dsalab.model", "dsalab.tenants"),
    # result datasets and what is computed from them: no backend, no compiled code
    "data": (
        "dsalab.schema",
        "dsalab.results",
        "dsalab.analysis",
        "dsalab.sweepfile",
        "dsalab.sweep_ranges",
        "dsalab.partial",
    ),
    # running many trials
    "runs": (
        "dsalab.sweep",
        "dsalab.tune",
        "dsalab.scenarios",
        "dsalab.explore",
        "dsalab.model.whatif",
        "dsalab.model.beside",
        "dsalab.engine_vs_qemu",
    ),
    # what people look at and type
    "views": ("dsalab.plots", "dsalab.report"),
    "ui": ("dsalab.widgets", "dsalab.cli", "dsalab.__main__"),
}
#: layer -> the layers it may import from (itself included)
MAY_IMPORT: dict[str, set[str]] = {
    "vocab": {"vocab"},
    "native": {"vocab", "native"},
    "engine": {"vocab", "native", "engine"},
    "data": {"vocab", "data"},
    "runs": {"vocab", "native", "engine", "data", "runs"},
    "views": {"vocab", "data", "views"},
    "ui": {"vocab", "native", "engine", "data", "runs", "views", "ui"},
}
#: (importer, imported) allowed against the table, each deferred inside one function, with the reason
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("dsalab", "dsalab.machine"): "dsalab.info() reports the machine, on call only",
    ("dsalab.result", "dsalab.results"): "TrialResult.to_dataset builds the one-trial dataset, on call only",
    ("dsalab.results", "dsalab.machine"): "provenance of a new file (versions, git commit), on write only",
}


def layer_of(module: str) -> str:
    best, layer = "", ""
    for name, modules in LAYERS.items():
        for m in modules:
            if (module == m or module.startswith(m + ".")) and len(m) > len(best):
                best, layer = m, name
    assert layer, f"{module} is in no layer of tests/test_layers.py: add it to LAYERS"
    return layer


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    rel = pathlib.Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def imports(path: pathlib.Path) -> list[tuple[str, int, bool]]:
    """(imported dsalab module, line, at module level) of every import outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(), str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, top) for a in child.names if a.name.startswith("dsalab"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join([*package.split(".")[: len(package.split(".")) - child.level + 1], base]).strip(".")
                if not base.startswith("dsalab"):
                    continue
                for a in child.names:  # `from dsalab import results` imports the submodule dsalab.results
                    sub = f"{base}.{a.name}"
                    out.append((sub if is_module(sub) else base, child.lineno, top))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                visit(child, False)
            else:
                visit(child, top)

    visit(tree, True)
    return out


def graph() -> dict[str, list[tuple[str, int, bool]]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_from_a_higher_layer():
    bad = []
    for module, edges in graph().items():
        mine = layer_of(module)
        for target, line, _ in edges:
            if target == module or layer_of(target) in MAY_IMPORT[mine] or (module, target) in EXCEPTIONS:
                continue
            bad.append(f"{module}:{line} ({mine}) imports {target} ({layer_of(target)})")
    assert not bad, "imports against the flow of shared/DESIGN.md:\n" + "\n".join(bad)


def test_exceptions_are_deferred_and_still_needed():
    g = graph()
    for (module, target), why in EXCEPTIONS.items():
        edges = [top for t, _, top in g.get(module, []) if t == target]
        if not edges:
            continue  # gone (e.g. repointed at merge): nothing to allow; the entry can be removed
        assert not any(edges), f"{module} -> {target} ({why}) must be deferred"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (found := dfs(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (found := dfs(n)):
            return found
    return None


def import_edges() -> dict[str, set[str]]:
    """module -> what importing it may load: its imports (deferred ones too, as they run on call) and, for a
    submodule of another subpackage, that subpackage's ``__init__``, which Python runs first (the root ``dsalab``
    and the module's own packages left out: they are loaded already)."""
    edges: dict[str, set[str]] = {}
    for module, e in graph().items():
        targets = {t for t, _, _ in e}
        for t in list(targets):
            parts = t.split(".")
            parents = {".".join(parts[:i]) for i in range(2, len(parts))}
            targets |= {p for p in parents if is_module(p) and not module.startswith(p + ".")}  # own package: loaded
        edges[module] = targets - {module, "dsalab"}
    return edges


def test_imports_have_no_cycle():
    cycle = find_cycle(import_edges())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_layer_table_covers_every_module():
    for module in graph():
        layer_of(module)  # raises naming a module that no layer lists


LIGHT = """
import json, sys
import dsalab.plots, dsalab.results, dsalab.analysis, dsalab.sweepfile, dsalab.schema
import dsalab.trial, dsalab.result, dsalab.threads, dsalab.metrics, dsalab.backends, dsalab.validate
from dsalab.migration import Trial, TrialResult  # the vocabulary through the old path
from dsalab.migration.accounting import SOURCE_THREADS, thread_order  # plots' and widgets' old imports
heavy = ["dsalab._native", "dsalab._binding", "numba", "dsalab.migration.engine", "dsalab.kernels"]
print(json.dumps([m for m in heavy if m in sys.modules]))
"""


@pytest.mark.timeout(120)
def test_dataset_and_plot_side_loads_no_compiled_module_and_no_numba():
    out = subprocess.run([sys.executable, "-c", LIGHT], capture_output=True, text=True, timeout=110, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.timeout(120)
def test_engine_still_loads_on_first_use():
    code = "import dsalab.migration as m, sys; f = m.run_trial; print('dsalab.migration.engine' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=110, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
