"""The main job, ``python -m sim demo``: its scripted faults all land and it still ends verified."""

import io

import pytest

from sim.tools import demo
from sim.tools.console import EventConsole
from sim.tools.demo import Scenario, run
from tests.common.iothub import PAHO_RECONNECT_LEAK

# the hub path's SDK client is discarded at every power cut, as the gateway's process is
pytestmark = [pytest.mark.sim, PAHO_RECONNECT_LEAK]


async def test_demo_survives_every_scripted_fault_and_verifies_the_image():
    """Issue 4, "The main job": at least two power cuts (one inside a page program), a
    connection reset, a 503 with Retry-After, an ignored Range and a replaced blob, and
    the MCU ends with the exact image."""
    out = io.StringIO()
    assert await run(Scenario(), EventConsole(out)) == 0
    text = out.getvalue()
    for evidence in (
        "POWER CUT inside page program",
        "POWER CUT inside sector erase",
        "fault=connection-reset",
        "status=503",
        "fault=range-ignored",
        "status=412",
        "'Status': 'applied'",
    ):
        assert evidence in text, f"demo output lacks {evidence!r}"


async def test_each_power_cut_is_told_before_the_boot_it_caused():
    """Events appear in the order they happened: "POWER CUT" precedes the next "boot"."""
    out = io.StringIO()
    assert await run(Scenario(), EventConsole(out)) == 0
    lines = [
        line for line in out.getvalue().splitlines() if "POWER CUT" in line or "] boot #" in line
    ]
    assert [line.split("] ", 1)[1][:9] for line in lines] == [
        "boot #1",
        "POWER CUT",
        "boot #2",
        "POWER CUT",
        "boot #3",
    ]


async def test_the_demo_takes_the_real_cloud_path_by_default_and_says_so(capsys):
    """Issue 10: the main job runs deploy tool -> local hub configuration -> DPS and
    MQTT/TLS with the real device SDK -> blob server, and its output names that path."""
    out = io.StringIO()
    assert Scenario().cloud == "hub"
    assert await run(Scenario(), EventConsole(out)) == 0
    text = out.getvalue()
    for evidence in (
        "cloud path: local IoT Hub",
        "deploy tool uploaded ota/mcu-v1-",
        "created configuration ota_v1 for tags.productType='washer'",
        "gw-demo provisioned through DPS, connected over MQTT/TLS (connection #1)",
        "configuration ota_v1 written to gw-demo's desired properties",
        "connected over MQTT/TLS (connection #3)",  # each boot connects again
        "'Status': 'applied'",
    ):
        assert evidence in text, f"demo output lacks {evidence!r}"
    assert "sig=" not in text  # the SAS never printed
    summary = capsys.readouterr().out
    assert "cloud path            deploy tool, local IoT Hub + DPS, MQTT/TLS" in summary


async def test_the_in_process_twin_path_is_kept_and_named(capsys):
    out = io.StringIO()
    assert await run(Scenario(cloud="in-process"), EventConsole(out)) == 0
    text = out.getvalue()
    assert "cloud path: in-process twin" in text and "POWER CUT inside sector erase" in text
    assert "MQTT" not in text
    assert "cloud path            in-process twin (--in-process-twin)" in capsys.readouterr().out


def test_the_command_line_chooses_the_path(monkeypatch):
    chosen = []

    async def fake_run(scenario, console):
        chosen.append(scenario.cloud)
        return 0

    monkeypatch.setattr(demo, "run", fake_run)
    assert demo.main([]) == 0 and demo.main(["--in-process-twin"]) == 0
    assert chosen == ["hub", "in-process"]
    with pytest.raises(ValueError, match="cloud must be one of"):
        Scenario(cloud="azure")
