"""The ``dsalab`` command line (typer). Each command is thin: it parses, calls the package, prints."""

from __future__ import annotations

import json

import typer

app = typer.Typer(
    name="dsalab",
    help="Study Intel DSA zero-page offload in QEMU-style multifd live migration.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """dsalab: DSA zero-page offload, CPU baselines, multifd migration engine, sweeps and plots."""


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


@app.command()
def info(as_json: bool = typer.Option(False, "--json", help="Print the provenance dict as JSON.")) -> None:
    """Versions, CPU, memory, native build and the DSA devices and work queues of this machine."""
    from dsalab import machine

    data = machine.info()
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    flags = ", ".join(f"{f} {'yes' if data[f'cpu_has_{f}'] else 'no'}" for f in machine.RELEVANT_FLAGS)
    lines = [
        f"dsalab {data['dsalab_version']}  (git {str(data['git_commit'])[:12]}{' dirty' if data['git_dirty'] else ''})",
        f"python {data['python_version']}  numpy {data['numpy_version']}  numba {data['numba_version']}  "
        f"cffi {data['cffi_version']}",
        f"cpu     {data['cpu_model']}",
        f"        {data['cpu_count']} cores ({data['cpu_affinity']} usable), memory {_gib(int(data['memory_bytes']))}",
        f"flags   {flags}",
        f"system  {data['hostname']}, Linux {data['kernel']}",
        f"native  ABI {data['native_abi']}, build {data['native_build_id']}, kernels use {data['kernel_isa']}",
        f"        <linux/idxd.h> at build time: {'found' if data['built_with_idxd_h'] else 'not found'}",
        f"        hardware submission (ENQCMD/MOVDIR64B): "
        f"{'compiled' if data['built_with_portal_isa'] else 'not compiled'}; "
        f"UMWAIT wait: {'compiled' if data['built_with_waitpkg'] else 'not compiled'}",
    ]
    devs = data["dsa_devices"]
    queues = data["dsa_work_queues"]
    if not devs and not queues:
        lines.append("dsa     no DSA devices (/sys/bus/dsa is empty or absent): use the emulated device, 'emu'")
    else:
        lines.append(f"dsa     {len(devs)} device(s), {len(queues)} work queue(s)")
        for d in devs:
            lines.append(f"        {d['name']}: {d['state']}, max batch {d['max_batch_size']}")
        for q in queues:
            lines.append(
                f"        {q['name']} {q['path']}: {q['mode']}, size {q['size']}, priority {q['priority']}, "
                f"{q['state']}, type {q['type']}, access {q['access']}"
            )
    typer.echo("\n".join(lines))


def main() -> None:
    """Entry point of the ``dsalab`` script."""
    app()


if __name__ == "__main__":
    main()
