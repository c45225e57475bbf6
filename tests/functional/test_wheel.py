"""The package as another team installs it (issue 13, "Packaging"): the built wheel in a
fresh virtual environment, used from a directory outside the checkout.

One bounded test (a minute or so; pip resolves the base dependencies from the package
index, its cache makes repeats quick): the console scripts and the demo run, a fuzz run
with a known mutant reports its violation, ``pytest`` runs ``examples/`` (which imports
nothing from this repository's tests) and a bench test on the packaged virtual rig, the
plugin coming from the wheel's ``pytest11`` entry point.
"""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.sim

REPO = Path(__file__).resolve().parents[2]
STEP_TIMEOUT_S = 300
HIL_TEST = """
import pytest


@pytest.mark.needs_power_cut
def test_the_virtual_rig_answers_its_identity(flash_port):
    assert flash_port.exchange(b"\\x9f", 3) == b"\\xef\\x40\\x18"
"""


# nothing of the checkout may leak in: no PYTHONPATH, no rig from the environment
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OTA_HIL_RIG")}
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "node_modules",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    ".tox",
    "reports",
    "fuzz-findings",
)


def run(*argv: object, cwd: Path, expect: int = 0) -> str:
    proc = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == expect, f"{argv} exited {proc.returncode}:\n{out[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout (and pytest) installed."""
    pytest.importorskip("build", reason="the wheel test needs 'build' (the test extra)")
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(REPO, source, symlinks=True, ignore=NOT_SOURCE)
    run(sys.executable, "-m", "build", "--wheel", "--outdir", root / "dist", source, cwd=root)
    (wheel,) = (root / "dist").glob("ota_hil-*.whl")
    venv.EnvBuilder(with_pip=True, clear=True).create(root / "venv")
    bin_dir = root / "venv" / "bin"
    pip = subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "-q", wheel, "pytest"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=STEP_TIMEOUT_S,
    )
    if pip.returncode != 0 and not os.environ.get("CI"):
        pytest.skip(f"pip could not install the wheel's dependencies: {pip.stderr[-300:]}")
    assert pip.returncode == 0, pip.stderr[-3000:]
    return bin_dir


def test_the_installed_package_works_from_outside_the_checkout(installed, tmp_path):
    here = tmp_path / "elsewhere"
    (here / "examples").mkdir(parents=True)
    for example in (REPO / "examples").glob("*.py"):
        shutil.copy(example, here / "examples" / example.name)
    (here / "test_rig.py").write_text(HIL_TEST)

    for script in ("ota-sim", "ota-hil", "ota-agent", "ota"):
        run(installed / script, "--help", cwd=here)
    demo = run(installed / "ota-sim", "demo", cwd=here)
    assert "image verified        yes" in demo
    fuzz = run(
        *(installed / "ota-sim", "fuzz", "--schedule", "log", "--image-size", "65536"),
        *("--mutant", "record_before_sync", "--out", here / "findings"),
        cwd=here,
        expect=1,
    )
    assert "VIOLATION" in fuzz and "resume-efficiency" in fuzz
    examples = run(
        installed / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples", cwd=here
    )
    assert "3 passed" in examples
    bench = run(
        *(installed / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "hil"),
        *("--rig", "virtual", "test_rig.py"),
        cwd=here,
    )
    assert "1 passed" in bench
