"""``dsalab info`` and ``dsalab devices``: this machine, its native build and its DSA work queues."""

from __future__ import annotations

import json

import typer

from dsalab.cli._app import app, fail
from dsalab.units import format_bytes


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
        f"        {data['cpu_count']} cores ({data['cpu_affinity']} usable), "
        f"memory {format_bytes(int(data['memory_bytes']))}",
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


@app.command()
def devices(
    suggest_config: str = typer.Option(None, "--suggest-config", help="Write an accel-config JSON here."),
    device: list[str] = typer.Option(None, "--device", help="Devices to configure (dsa0, ...); default: those found."),
    sysfs_root: str = typer.Option("/sys/bus/dsa/devices", help="Where the idxd driver shows devices."),
    dev_root: str = typer.Option("/dev/dsa", help="Where the work queues' character devices are."),
) -> None:
    """DSA work queues of this machine (mode, size, priority, max batch, portal or write()), and a suggested
    accel-config setup."""
    import pathlib

    from dsalab import devices as dv

    queues = dv.discover(pathlib.Path(sysfs_root), pathlib.Path(dev_root))
    if not queues:
        typer.echo(f"no DSA work queues under {sysfs_root}: dsalab uses the emulated device ('emu').")
    for q in queues:
        typer.echo(
            f"{q.name}  {q.path}  mode {q.mode}, size {q.size}, priority {q.priority}, max batch "
            f"{q.max_batch_size}, {q.state}, type {q.type}, name {q.wq_name or '-'}\n    access: {q.access}: {q.advice}"
        )
    if suggest_config:
        try:
            config = dv.suggest_accel_config(device or None, sysfs_root=pathlib.Path(sysfs_root))
        except ValueError as exc:
            fail(str(exc))
        pathlib.Path(suggest_config).write_text(json.dumps(config, indent=2) + "\n")
        names = ", ".join(c["dev"] for c in config)
        typer.echo(
            f"wrote {suggest_config}: one shared user queue 'dsalab' of 128 descriptors on {names}.\n"
            f"load it as root with: accel-config load-config -c {suggest_config} -e"
        )
