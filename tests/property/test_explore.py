"""A deterministic slice of each power-loss schedule, as littlefs's runner and MCUboot's
simulator do it (``docs/peers.md``), plus cuts inside operations.

The correct agent must keep all six invariants (:mod:`sim.explore.invariants`) after every cut.
"""

import pytest

from sim.cloud.blobserver import BlobServer
from sim.explore.explorers import Explorer, cut_points
from sim.explore.scenario import Scenario

pytestmark = pytest.mark.sim

SCENARIO = Scenario(image_size=64 * 1024, checkpoint_bytes=16 * 1024)


@pytest.fixture
async def explorer():
    async with BlobServer() as server:
        yield Explorer(SCENARIO, server)


def test_log_schedule_doubles_and_ends_at_the_last_operation():
    """littlefs's runner: the ``log`` schedule cuts after 1, 2, 4, 8... operations."""
    assert cut_points("log", 20) == [1, 2, 4, 8, 16, 20]
    assert cut_points("linear", 5, stride=2) == [1, 3, 5]


async def test_linear_sweep_with_stride_keeps_every_invariant(explorer):
    """MCUboot sim: a cut after operation i, then an uninterrupted boot, for each i."""
    found = await explorer.explore("linear", stride=17)
    assert found.runs >= 15
    assert found.findings == [], [str(f) for f in found.findings]


async def test_log_sweep_keeps_every_invariant(explorer):
    """littlefs runner ``log`` schedule."""
    found = await explorer.explore("log")
    assert found.runs >= 8
    assert found.findings == [], [str(f) for f in found.findings]


async def test_torn_operations_keep_every_invariant(explorer):
    """Cuts inside a page program or erase (datasheet 8.2.13, 8.2.15): torn bits."""
    found = await explorer.explore("torn", stride=41, fractions=(0.1, 0.5, 0.9))
    assert found.runs >= 20
    assert found.findings == [], [str(f) for f in found.findings]


async def test_exhaustive_pairs_keep_every_invariant(explorer):
    """littlefs runner ``exhaustive`` to depth 2: a second cut in the next boot."""
    found = await explorer.explore("exhaustive", stride=97, max_runs=8)
    assert found.runs == 8
    assert found.findings == [], [str(f) for f in found.findings]
