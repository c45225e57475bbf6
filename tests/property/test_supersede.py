"""A newer version published mid-download supersedes the job in hand (agent/engine.py:
"a different one supersedes the job in hand cleanly"): the older image is abandoned,
never installed, and the newer one applied."""

import dataclasses

import pytest

from sim.explore.invariants import check_all
from sim.explore.runner import run_scenario
from sim.explore.scenario import Scenario

pytestmark = pytest.mark.sim

KIB = 1024
IMAGE = Scenario(image_size=256 * KIB, checkpoint_bytes=16 * KIB, newer_at_bytes=40 * KIB)
STALL_AFTER_40_KIB = {
    "rules": [
        {
            "fault": "timeout",
            "params": {"timeout_s": 0, "after_bytes": 40 * KIB},
            "blob": "ota/fw-v2.bin",
            "requests": [1, 1],
        }
    ]
}


def _installed(result) -> list[int]:
    return [inst.version for inst in result.installs[1:]]  # after the base (version 1)


async def test_newer_version_during_a_stalled_download_is_the_only_one_installed():
    """The supersede lands while the agent waits for data that does not come."""
    result = await run_scenario(dataclasses.replace(IMAGE, fault_plan=STALL_AFTER_40_KIB))
    assert result.newer_published
    assert _installed(result) == [3]
    assert check_all(result) == []


async def test_newer_version_while_data_keeps_arriving_is_the_only_one_installed():
    """The same supersede with a healthy network: 40 KiB into a 256 KiB download (on
    Python 3.11 asyncio.wait_for could swallow the cancel, CPython gh-86296)."""
    result = await run_scenario(IMAGE)
    assert result.newer_published
    assert _installed(result) == [3]


async def test_newer_version_during_apply_does_not_abandon_a_reported_apply():
    """Reference design "Cloud contract": ``applying`` is followed by ``applied`` or
    ``error`` for that version (sim/explore/invariants.py honest reporting)."""
    scenario = Scenario(image_size=255, newer_at_bytes=61)
    result = await run_scenario(scenario)
    statuses = [r.get("Status") for r in result.reports]
    assert statuses.count("applying") == statuses.count("applied") - 1  # the base's applied
    assert check_all(result) == []
