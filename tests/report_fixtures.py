"""Small real result datasets for the report and the "saved by DSA" figure: a sweep file run by the engine (CPU
against emulated DSA, the seed's two guests) and the same file predicted by the model; text with HTML in it."""

from __future__ import annotations

import pathlib

from dsalab import sweep, sweepfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: the published profile (a file of the repository, so the test does not depend on this machine)
PROFILE = ROOT / "data" / "hardware" / "spr-8457c-dsa.toml"
#: HTML in a dataset's text: the report must show it as text, never run it
NASTY = "<script>alert(1)</script> & <b>bold</b> 'quoted'"
SWEEP = """# the report's test sweep: {nasty}
name = "{name}"
description = "cpu vs dsa, {nasty}"
runner = "{runner}"
{hardware}
repeats = {repeats}
warmups = 0
seed = 3

[base]
guest_bytes = "4MiB"
normal_ratio = 0.0
channels = 2
packet_bytes = "64KiB"
devices = 1

[sweep]
detector = ["cpu-numba", "{dsa}"]
force_normal_ratio = [0.5, 0.0]
"""


def sweep_text(name: str, runner: str = "engine", repeats: int = 3) -> str:
    """The text of the test sweep file: engine (dsa-emulated) or model (dsa-hardware on the published profile)."""
    model = runner == "model"
    return SWEEP.format(
        nasty=NASTY,
        name=name,
        runner=runner,
        hardware=f'hardware = "{PROFILE}"' if model else "",
        repeats=repeats,
        dsa="dsa-hardware" if model else "dsa-emulated",
    )


def run_sweep_file(folder: pathlib.Path, name: str, runner: str = "engine", repeats: int = 3):
    """Write the test sweep file under ``folder``, run it and return (dataset, sweep file text)."""
    path = folder / f"{name}.toml"
    path.write_text(sweep_text(name, runner, repeats))
    spec = sweepfile.load(path)
    ds = sweep.run_sweep(spec, partial=folder / f"{name}.partial.jsonl", progress=False)
    return ds, path.read_text()
