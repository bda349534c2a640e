"""``dsalab tenants``: many VMs migrating at once on few DSA devices (the tenant contention model)."""

from __future__ import annotations

import typer

from dsalab.cli._app import app, close_dask, fail, open_dask

#: the profile of the seed's hosts (written by the model's integrator)
DEFAULT_HARDWARE = "data/hardware/spr-8457c-dsa.toml"


@app.command()
def tenants(
    count: int = typer.Option(100, "--tenants", help="VMs migrating at once."),
    guest: str = typer.Option("1GiB", "--guest", help="Guest RAM of each VM (e.g. 1GiB)."),
    devices: int = typer.Option(8, "--devices", help="DSA devices the VMs share."),
    hardware: str = typer.Option(DEFAULT_HARDWARE, "--hardware", help="Hardware profile (TOML)."),
    policy: str = typer.Option("fifo", "--policy", help="fifo, priority, dedicated or quota."),
    normal_ratio: float = typer.Option(0.0, "--normal-ratio", help="Fraction of normal pages of each guest."),
    channels: int = typer.Option(2, "--channels", help="multifd channels of each VM."),
    packet: str = typer.Option("512KiB", "--packet", help="Bytes of guest pages per packet."),
    batch_size: int = typer.Option(128, "--batch-size", help="Pages per DSA batch."),
    arrival: str = typer.Option("together", "--arrival", help="together, staggered or poisson."),
    interval_ms: float = typer.Option(0.0, "--interval-ms", help="Start interval (staggered) or its mean (poisson)."),
    priorities: str = typer.Option("8", "--priorities", help="Priorities 1-15 given to VMs in turn, e.g. 15,1."),
    wq_size: int = typer.Option(0, "--wq-size", help="Work-queue entries per device (0: the profile's)."),
    wq_mode: str = typer.Option("", "--wq-mode", help="shared or dedicated (default: the policy's)."),
    max_retries: int = typer.Option(32, "--max-retries", help="Retries of a full queue before the CPU does a batch."),
    out: str = typer.Option(None, "--out", help="Write the dataset (netCDF) here."),
    sweep: str = typer.Option(None, "--sweep", help="Run a tenants sweep file (data/sweeps/tenants/*.toml)."),
    local_workers: int = typer.Option(None, "--local-workers", help="--sweep on a local Dask cluster of N workers."),
    scheduler: str = typer.Option(None, "--scheduler", help="--sweep on a Dask scheduler: tcp://HOST:PORT."),
) -> None:
    """Simulate VMs migrating at once on shared DSA devices; print average and worst case per metric.

    With --sweep FILE: every point of a tenants sweep file (tenants, devices, queue size and mode, policy...),
    serially or on Dask; prints the average and worst migration time, host CPU and fallback share per point."""
    import time

    from dsalab.errors import DsalabError
    from dsalab.model import tenants as model
    from dsalab.model.profile import HardwareProfile

    if sweep:
        sweep_file(sweep, out, local_workers, scheduler)
        return

    try:
        prios = [int(p) for p in priorities.split(",") if p.strip()]
    except ValueError:
        fail(f"--priorities={priorities!r} is not allowed; allowed: comma-separated ints from 1 to 15")
    try:
        profile = HardwareProfile.load(hardware)
        sc = model.scenario(
            count, guest, devices, profile=profile, policy=policy, normal_ratio=normal_ratio, channels=channels,
            packet=packet, batch_size=batch_size, arrival=arrival, interval_ms=interval_ms, priorities=prios,
            wq_size=wq_size, wq_mode=wq_mode, max_retries=max_retries,
        )  # fmt: skip
        start = time.perf_counter()
        ds = model.run(sc, profile)
        took = time.perf_counter() - start
    except DsalabError as exc:
        fail(str(exc))
    queues = ", ".join(f"{q.size}x{q.mode}/p{q.priority}" for q in sc.devices[0].work_queues)
    typer.echo(
        f"model (simulated, not measured): {count} VMs x {guest} on {devices} DSA devices of {profile.name} "
        f"({queues} per device), policy {policy}, {channels} channels each; "
        f"{ds.attrs['events']:,} events in {took:.2f} s"
    )
    typer.echo(model.format_summary(ds))
    if out:
        typer.echo(f"wrote {model.write(ds, out)}")


def sweep_file(path: str, out: str | None, local_workers: int | None, scheduler: str | None) -> None:
    import re

    from dsalab.errors import DsalabError
    from dsalab.model import tenants_data, tenants_sweep

    if scheduler and not re.fullmatch(r"tcp://(127\.0\.0\.1|localhost|\[::1\]):\d{1,5}", scheduler):
        fail(f"--scheduler {scheduler!r} is not allowed: give a loopback Dask scheduler tcp://127.0.0.1:PORT")
    if local_workers is not None and not 1 <= local_workers <= 256:
        fail(f"--local-workers {local_workers} is not allowed: an int from 1 to 256")
    client, cluster, _ = open_dask(scheduler, local_workers)
    try:
        profile, params, base, attrs = tenants_sweep.read_file(path)
        ds = tenants_sweep.grid(profile, params, base=base, client=client, attrs=attrs)
    except (DsalabError, OSError, TimeoutError) as exc:
        fail(str(exc))
    finally:
        close_dask(client, cluster)
    typer.echo(f"model (simulated, not measured): tenants sweep {attrs['sweep_name']} on {profile.name}")
    frame = ds[["migration_time_ms_mean", "migration_time_ms_worst", "host_cpu_ms_mean", "fallback_share"]]
    typer.echo(frame.to_dataframe().round(4).to_string())
    failed = ds.attrs["points_failed"]
    if failed:
        typer.echo(f"{failed} points failed: see the error variable", err=True)
    if out:
        typer.echo(f"wrote {tenants_data.write(ds, out)}")
