"""Commands a person enjoys (issue 13): --help shows defaults and choices; a missing file or
folder, a missing adapter or a bad rig is one line and status 2, never a traceback."""

import subprocess
import sys

import pytest

from sim.explore.mutants import MUTANTS

pytestmark = pytest.mark.sim


def command(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], capture_output=True, text=True, timeout=120
    )


def test_fuzz_help_lists_every_mutant_and_the_defaults():
    out = command("sim", "fuzz", "--help").stdout
    assert all(name in out for name in MUTANTS)
    assert "{campaign,linear,log,exhaustive,torn,random}" in out and "(default: campaign)" in out


def test_demo_help_says_the_minimum_image_size_and_the_default():
    out = command("sim", "demo", "--help").stdout
    assert "at least 800000" in out and "(default: 1048576)" in out


@pytest.mark.parametrize(
    "argv, says",
    [
        (
            ("sim", "serprog", "--image", "/nonexistent/chip.bin", "--listen", "127.0.0.1:0"),
            "folder '/nonexistent' does not exist",
        ),
        (("sim", "replay", "/nonexistent/finding.json"), "/nonexistent/finding.json: no such file"),
        (("sim", "fuzz", "--mutant", "nope"), "invalid choice: 'nope'"),
        (
            ("hil", "probe", "--rig", "fixtures/rigs/ft232h-example.toml"),
            "FTDI adapter not available: No USB device matches URL ftdi://ftdi:232h/1",
        ),
        (("hil", "diff", "--rig", "/nonexistent.toml"), "/nonexistent.toml: cannot read rig file"),
        (
            ("agent", "run", "--rig", "fixtures/rigs/ft232h-example.toml", "--link", "127.0.0.1:9"),
            "not available",
        ),
    ],
)
def test_bad_input_is_one_line_with_status_2(argv, says):
    proc = command(*argv)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert says in lines[-1], lines
    assert sum("error" in line for line in lines) <= 1  # after argparse's usage, if any
