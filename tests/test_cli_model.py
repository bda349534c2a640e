"""dsalab what-if and dsalab seed-check."""

from __future__ import annotations

from model_fixtures import test_profile
from typer.testing import CliRunner

from dsalab.cli import app
from dsalab.model import seed


def test_what_if_prints_the_saving_break_even_and_best_sizes(tmp_path):
    path = tmp_path / "p.toml"
    test_profile().save(path)
    out = CliRunner().invoke(app, ["what-if", "--hardware", str(path), "--guest", "100GiB", "--normal-ratio", "0"])
    assert out.exit_code == 0, out.output
    assert "nothing was migrated" in out.output and "% saved" in out.output
    assert "break-even normal ratio" in out.output and "batch_size" in out.output


def test_what_if_names_a_missing_profile():
    out = CliRunner().invoke(app, ["what-if", "--hardware", "/nonexistent/p.toml"])
    assert out.exit_code == 2 and "/nonexistent/p.toml" in out.output


def test_seed_check_prints_every_published_row(tmp_path):
    path = tmp_path / "spr.toml"
    seed.spr_profile(test_profile()).save(path)
    out = CliRunner().invoke(app, ["seed-check", "--hardware", str(path)])
    assert out.exit_code == 0, out.output
    assert out.output.count("host CPU saved") == 4 and "dsa_completion" in out.output
