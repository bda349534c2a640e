"""``dsalab what-if`` (what DSA would save for a trial on a hardware profile) and ``dsalab seed-check`` (the
model of the seed's hosts against the seed's published rows)."""

from __future__ import annotations

import typer

from dsalab.cli._app import app, fail
from dsalab.cli.trial_options import with_trial_options

HARDWARE_HELP = "A hardware profile: a path, or the name of one in data/hardware (e.g. spr-8457c-dsa)."


def _profile(hardware: str):
    from dsalab.errors import DsalabError
    from dsalab.model.profile import load

    try:
        return load(hardware)
    except (DsalabError, OSError) as exc:
        fail(str(exc))


@app.command("what-if")
@with_trial_options
def what_if(
    fields: dict,
    hardware: str = typer.Option("spr-8457c-dsa", "--hardware", help=HARDWARE_HELP),
    baseline: str = typer.Option("cpu-native", help="The CPU detector DSA is compared with."),
) -> None:
    """Predict (dsalab.model) what DSA would save for this trial on a profile's hardware: host CPU and total time
    against the CPU twin, the break-even normal ratio, and the cheapest batch and packet sizes. Nothing runs."""
    import pandas as pd

    from dsalab.model import whatif
    from dsalab.trial import Trial

    profile = _profile(hardware)
    try:
        trial = Trial(**fields)
        s = whatif.saving(trial, profile, baseline=baseline)
        curve = whatif.break_even(trial, profile, baseline=baseline)
        best = whatif.best_batch_packet(
            trial, profile, [16, 32, 64, 128, 256, 512, 1024], [k << 10 for k in (128, 256, 512, 1024, 2048, 4096)]
        )
    except (ValueError, TypeError) as exc:
        fail(str(exc))
    typer.echo(f"model of {profile.name} (predicted by dsalab.model; nothing was migrated)")
    typer.echo(
        f"host CPU: {s['dsa_host_cpu_ms']:.1f} ms with DSA vs {s['cpu_host_cpu_ms']:.1f} ms with {baseline}: "
        f"{s['host_cpu_saved_pct']:+.1f}% saved"
    )
    typer.echo(
        f"total time: {s['dsa_total_time_ms']:.1f} ms vs {s['cpu_total_time_ms']:.1f} ms: "
        f"{s['time_saved_pct']:+.1f}% saved"
    )
    even = ", ".join(f"{x:.3f}" for x in curve.attrs["break_even"]) or "none in 0..1"
    typer.echo(f"break-even normal ratio (host CPU): {even}")
    with pd.option_context("display.width", 160):
        typer.echo("cheapest batch and packet sizes with DSA:")
        typer.echo(best.head(5).round(2).to_string(index=False))


@app.command("seed-check")
def seed_check(hardware: str = typer.Option("spr-8457c-dsa", "--hardware", help=HARDWARE_HELP)) -> None:
    """The model of the seed's hosts beside the seed's published rows: CPU-mode rows (fitted) and DSA-mode rows
    (predicted from published device figures), for both readings of whether forced pages were zero-checked."""
    import pandas as pd

    from dsalab.model import seed

    table = seed.check(_profile(hardware))
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        typer.echo(table.round(3).to_string(index=False))
    for _, row in table[(table["mode"] == "dsa") & (table["quantity"] == "saving_pct")].iterrows():
        typer.echo(
            f"scenario {row['scenario']}, forced pages {row['reading']}: host CPU saved {row['predicted']:.1f}% "
            f"predicted, {row['published']:.1f}% published ({row['error']:+.1f} points)"
        )
