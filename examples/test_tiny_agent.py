"""Testing one's own agent with the ota_hil pytest plugin (README, "Test your own agent").

Nothing here comes from ota-hil's own tests: the fixtures come from the plugin, which
pytest loads because the package is installed. Overriding ``agent_factory`` puts the tiny
agent behind ``sim_device`` and ``explorer``.
"""

import asyncio
import random

import pytest
import tiny_agent

from sim.cloud.twin import publish_ota
from sim.device import applied

pytestmark = pytest.mark.sim


@pytest.fixture
def agent_factory():
    return tiny_agent.factory


def test_the_tiny_agent_applies_an_update(sim_device, blob_server):
    image = random.Random(1).randbytes(50_000)
    blob_server.put_blob("ota", "fw.bin", image)
    url, sas = blob_server.blob_url("ota", "fw.bin"), blob_server.make_sas("ota")
    publish_ota(sim_device.twin, version=1, image=image, url=url, sas=sas)
    done = asyncio.run(sim_device.run_until(applied(1)))
    assert done.reached and bytes(sim_device.target.image) == image


def test_the_explorer_finds_no_violation_in_the_tiny_agent(explorer):
    """A power cut after every 2nd flash operation of an update: all six invariants hold."""
    found = asyncio.run(
        explorer(image_size=16384, checkpoint_bytes=4096).explore("linear", stride=2)
    )
    assert found.runs > 30
    assert found.findings == []


@pytest.mark.parametrize("agent_factory", [tiny_agent.buggy_factory])
def test_the_explorer_catches_the_bug_behind_the_flag(explorer):
    """With ``sync=False`` a cut mid-download loses every byte downloaded so far."""
    found = asyncio.run(explorer(image_size=32768, checkpoint_bytes=4096).explore("log"))
    broken = {v.invariant for f in found.findings for v in f.violations}
    assert broken == {"resume-efficiency"}
