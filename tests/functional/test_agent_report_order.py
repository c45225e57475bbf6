"""Reports reach the cloud in the order the agent made them, once each (agent/engine.py).

IoT Hub keeps the last reported value, so a report overtaken by an older one leaves
the cloud with a stale state (sim/explore/invariants.py, honest reporting). A twin whose
reports take time lets several queue up behind one another.
"""

import asyncio
import random

import pytest

from agent.download import DownloadPolicy
from agent.engine import AgentConfig
from agent.hosts import LOOPBACK_HOSTS
from sim.cloud.blobserver import BlobServer
from sim.cloud.twin import InProcessTwin, publish_ota
from sim.device import SimDevice, applied

pytestmark = pytest.mark.sim


class SlowTwin(InProcessTwin):
    """A twin whose reported patches take 5 ms of real time each to be acknowledged."""

    async def report(self, patch):
        await asyncio.sleep(0.005)
        await super().report(patch)


async def test_reports_queued_behind_a_slow_cloud_arrive_in_order_and_once():
    image = random.Random(11).randbytes(128 * 1024)
    config = AgentConfig(
        allow_http_loopback=True,
        storage_hosts=LOOPBACK_HOSTS,
        progress_step_percent=1,
        download=DownloadPolicy(checkpoint_bytes=4 * 1024, read_chunk_bytes=4 * 1024),
    )
    async with BlobServer() as server:
        server.put_blob("ota", "mcu.bin", image)
        device = SimDevice(seed=11, config=config, twin=SlowTwin())
        publish_ota(
            device.twin,
            version=1,
            image=image,
            url=server.blob_url("ota", "mcu.bin"),
            sas=server.make_sas("ota"),
        )
        result = await device.run_until(applied(1))
    assert result.reached
    sent = [patch["extFwInfo"] for patch in device.twin.reported_log]
    made = device.agents[-1].reports
    assert len(made) > 10  # enough reports to queue behind the slow twin
    assert [s["Status"] for s in sent] == [r.status.value for r in made]
    progress = [s["Progress"] for s in sent if s["Status"] == "downloading"]
    assert progress == sorted(set(progress))  # in order, and no report sent twice
    assert sent[-1]["Status"] == "applied"


async def test_a_redelivered_instruction_sends_no_report_when_nothing_changed():
    """Issue 4, "Report on change, not in a busy loop": after ``applied``, the same
    instruction delivered again (a reconnect) changes nothing, so nothing is sent."""
    image = random.Random(12).randbytes(32 * 1024)
    async with BlobServer() as server:
        server.put_blob("ota", "mcu.bin", image)
        device = SimDevice(seed=12)
        publish_ota(
            device.twin,
            version=1,
            image=image,
            url=server.blob_url("ota", "mcu.bin"),
            sas=server.make_sas("ota"),
        )
        runner = asyncio.ensure_future(device.run_until(lambda reported: False, max_wall_s=30))
        await asyncio.wait_for(device.twin.wait_reported(applied(1)), 30)
        sent = len(device.twin.reported_log)
        for _ in range(3):
            await device.twin.reconnect(redeliver=True)
            await asyncio.sleep(0.1)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert len(device.twin.delivered_log) >= 3  # the agent did receive the redeliveries
    assert len(device.twin.reported_log) == sent
