"""deploy/setup_resources.sh and clean_resources.sh: their --dry-run prints every az
command, all names come from the one env file, and clean deletes what setup creates."""

import itertools
import shlex
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.sim

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAME_OPTIONS = ("--name", "--dps-name", "--hub-name", "--account-name", "--certificate-name",
                "--linked-hub", "--resource-group")  # fmt: skip


def _dry_run(script: str, env_file: Path) -> list[list[str]]:
    done = subprocess.run(
        ["bash", str(DEPLOY / script), "--dry-run", "--env", str(env_file)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return [shlex.split(line) for line in done.stdout.splitlines()]


def _names(commands: list[list[str]]) -> set[tuple[str, str]]:
    """(resource kind, name): the az group + the option naming a resource."""
    found = set()
    for argv in commands:
        for option, value in itertools.pairwise(argv):
            if option in NAME_OPTIONS:
                found.add((option, value))
    return found


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    text = (DEPLOY / "resources.env").read_text().replace("ota-hil", "test-7")
    path = tmp_path / "mine.env"
    path.write_text(text.replace("otahilstorage", "test7storage"))
    return path


def test_dry_runs_print_only_az_commands_named_from_the_env_file(env_file):
    setup = _dry_run("setup_resources.sh", env_file)
    clean = _dry_run("clean_resources.sh", env_file)
    assert setup and clean and all(argv[0] == "az" for argv in setup + clean)
    text = " ".join(" ".join(a) for a in setup + clean)
    assert "ota-hil" not in text and "test-7-hub" in text and "test7storage" in text
    assert setup[0][:3] == ["az", "group", "create"]
    assert clean[-1][:3] == ["az", "group", "delete"]
    kinds = {tuple(argv[1:3]) for argv in setup}
    for needed in (
        ("iot", "hub"),
        ("iot", "dps"),
        ("storage", "account"),
        ("storage", "container"),
    ):
        assert needed in kinds
    assert any(a[1:4] == ["iot", "dps", "certificate"] and "--verified" in a for a in setup)
    assert any("StorageV2" in a for a in setup)


def test_clean_names_exactly_the_resources_setup_makes(env_file):
    """The original's clean script left resources behind; here both read one env file."""
    setup = _names(_dry_run("setup_resources.sh", env_file))
    clean = _names(_dry_run("clean_resources.sh", env_file))
    values = lambda names: {v for _, v in names}  # noqa: E731
    assert values(setup) == values(clean)


def test_a_missing_name_is_a_usage_error(tmp_path):
    path = tmp_path / "bad.env"
    path.write_text("OTA_LOCATION=westeurope\n")
    done = subprocess.run(
        ["bash", str(DEPLOY / "setup_resources.sh"), "--dry-run", "--env", str(path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2 and "OTA_RESOURCE_GROUP is not set" in done.stderr
    assert done.stdout == ""
