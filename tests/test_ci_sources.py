""".ci/apt-backports-source: the backports entry takes its mirror from the machine's apt sources (deb822 and
one-line formats), is not added twice, and .ci/run names no mirror itself. Every host here is a reserved
``.invalid`` name."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".ci" / "apt-backports-source"
MIRROR = "http://mirror.example.invalid/debian"
KEYRING = "/usr/share/keyrings/test-archive-keyring.gpg"

DEB822 = f"""Types: deb
# a comment inside the paragraph
URIs: {MIRROR}
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: {KEYRING}

Types: deb
URIs: http://security.example.invalid/debian-security
Suites: bookworm-security
Components: main
Signed-By: {KEYRING}
"""
ONE_LINE = f"""# deb http://old.example.invalid/debian bookworm-backports main
deb [arch=amd64 signed-by={KEYRING}] {MIRROR} bookworm main non-free-firmware
deb-src http://src.example.invalid/debian bookworm main
deb http://security.example.invalid/debian-security bookworm-security main
"""


def run(apt: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--apt-dir", str(apt), "--suite", "bookworm", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def apt_dir(tmp_path: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (apt / name).write_text(text)
    return apt


def fields(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if line and not line.startswith("#"))


@pytest.mark.parametrize(
    ("files", "components"),
    [
        ({"sources.list.d/debian.sources": DEB822}, "main contrib"),
        ({"sources.list": ONE_LINE}, "main non-free-firmware"),
        ({"sources.list.d/debian.list": ONE_LINE}, "main non-free-firmware"),
    ],
    ids=["deb822", "sources.list", "sources.list.d-list"],
)
def test_backports_entry_uses_the_mirror_that_serves_the_suite(tmp_path, files, components):
    apt = apt_dir(tmp_path, files)
    r = run(apt, "--write")
    assert r.returncode == 0, r.stderr
    out = apt / "sources.list.d" / "dsalab-backports.sources"
    assert r.stdout.strip() == f"wrote {out}"
    written = fields(out.read_text())
    assert written == {
        "Types": "deb",
        "URIs": MIRROR,
        "Suites": "bookworm-backports",
        "Components": components,
        "Signed-By": KEYRING,
    }
    again = run(apt, "--write")  # now present: nothing added twice
    assert again.returncode == 0 and again.stdout.startswith(f"present: {out}")


def test_without_write_the_entry_is_printed_and_nothing_is_written(tmp_path):
    apt = apt_dir(tmp_path, {"sources.list.d/debian.sources": DEB822})
    r = run(apt)
    assert r.returncode == 0 and fields(r.stdout)["URIs"] == MIRROR
    assert not (apt / "sources.list.d" / "dsalab-backports.sources").exists()


@pytest.mark.parametrize(
    "files",
    [
        {"sources.list.d/debian.sources": DEB822.replace("bookworm-updates", "bookworm-updates bookworm-backports")},
        {"sources.list": ONE_LINE + f"deb {MIRROR} bookworm-backports main\n"},
    ],
    ids=["deb822", "sources.list"],
)
def test_backports_already_present_is_left_alone(tmp_path, files):
    apt = apt_dir(tmp_path, files)
    r = run(apt, "--write")
    assert r.returncode == 0 and r.stdout.startswith("present: ")
    assert not (apt / "sources.list.d" / "dsalab-backports.sources").exists()


@pytest.mark.parametrize(
    "files",
    [
        {"sources.list.d/debian.sources": DEB822.replace("Types: deb\n#", "Types: deb\nEnabled: no\n#")},
        {"sources.list.d/debian.sources.disabled-by-admin": DEB822},
        {"sources.list": "deb-src http://src.example.invalid/debian bookworm main\n# deb " + MIRROR + " bookworm\n"},
        {},
    ],
    ids=["deb822-disabled", "other-extension", "only-deb-src-and-comments", "no-sources"],
)
def test_no_enabled_source_of_the_suite_writes_nothing_and_says_why(tmp_path, files):
    apt = apt_dir(tmp_path, files)
    r = run(apt, "--write")
    assert r.returncode == 1
    assert "serves bookworm: backports not added" in r.stderr
    assert not (apt / "sources.list.d" / "dsalab-backports.sources").exists()


def test_multi_line_signed_by_is_carried_over(tmp_path):
    key = "\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----"
    text = f"Types: deb\nURIs: {MIRROR}\nSuites: bookworm\nComponents: main\nSigned-By:{key}\n"
    apt = apt_dir(tmp_path, {"sources.list.d/inline.sources": text})
    r = run(apt)
    assert r.returncode == 0
    assert r.stdout.endswith(f"Signed-By: {key}\n")


def test_ci_run_writes_no_mirror_of_its_own():
    text = (ROOT / ".ci" / "run").read_text()
    assert not re.search(r"\b[a-z][a-z0-9+.-]*://", text), "a URL in .ci/run: take mirrors from the apt sources"
    assert ".ci/apt-backports-source" in text
