"""``python -m agent run``: bad input is one line and status 2, never a traceback."""

import subprocess
import sys

import pytest

from agent.engine import AgentConfig
from agent.run import EXIT_USAGE, config_from_dict, config_to_dict, main

pytestmark = pytest.mark.sim


EXAMPLE = "fixtures/rigs/ft232h-example.toml"


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--spi", "http://x:1", "--link", "127.0.0.1:9"], "--spi: 'http://x:1' is not serprog"),
        (["--rig", "missing.toml", "--link", "127.0.0.1:9"], "missing.toml: cannot read rig file"),
        (["--rig", "fixtures/rigs/virtual.toml"], "a virtual rig has no adapter"),
        (["--rig", EXAMPLE, "--clock", "bus"], "--clock bus needs"),
        (["--spi", "serprog://127.0.0.1:1", "--link", "x"], "cannot connect"),
        (
            ["--rig", EXAMPLE, "--config-json", "{"],
            "--config: not JSON",
        ),
        (
            ["--rig", EXAMPLE, "--config-json", '{"nope": 1}'],
            "--config: ",
        ),
    ],
)
def test_bad_input_is_one_line(argv, says, capsys):
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err


def test_no_adapter_is_one_line_naming_the_url(capsys):
    """The example rig's FT232H is not plugged in here: pyftdi finds no device."""
    assert main(["--rig", EXAMPLE, "--link", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "FTDI adapter ftdi://" in err and "not available" in err and "\n" not in err


def test_the_module_and_its_help_list_the_choices():
    out = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "{real,bus}" in out and "(default: 8000000.0)" in out


def test_the_configuration_round_trips_through_json():
    config = AgentConfig(allow_http_loopback=True, progress_step_percent=10)
    assert config_from_dict(config_to_dict(config)) == config
