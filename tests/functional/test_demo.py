"""The main job, ``python -m sim demo``: its scripted faults all land and it still ends verified."""

import io

import pytest

from sim.tools.demo import Scenario, _Console, run

pytestmark = pytest.mark.sim


async def test_demo_survives_every_scripted_fault_and_verifies_the_image():
    """Issue 4, "The main job": at least two power cuts (one inside a page program), a
    connection reset, a 503 with Retry-After, an ignored Range and a replaced blob, and
    the MCU ends with the exact image."""
    out = io.StringIO()
    assert await run(Scenario(), _Console(out)) == 0
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
