"""The main job, ``python -m sim demo``: its scripted faults all land and it still ends verified."""

import io

import pytest

from sim.tools.console import EventConsole
from sim.tools.demo import Scenario, run

pytestmark = pytest.mark.sim


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
