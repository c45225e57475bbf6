"""The downloader's low-speed window on a clock far from zero (agent/download.py).

A virtual clock that has run for an hour cannot advance by the last few ulps of a
30 s window (4087.5017 + 30 - 4087.5017 < 30 in floating point): the window must
still close, or a stall is never detected. A fault-plan property test found such a
run spinning forever.
"""

import asyncio
import hashlib

import aiohttp
import pytest

from agent.download import Downloader, DownloadPolicy, Stalled
from agent.instruction import Instruction
from sim.clock import VirtualClock
from sim.cloud.blobserver import BlobServer
from sim.cloud.faults.plan import FaultPlan

pytestmark = pytest.mark.sim

IMAGE = bytes(range(256)) * 64  # 16 KiB
FAR_FROM_ZERO_S = 4087.501721194127  # (t + 30) - t == 29.999999999999545


class ExactClock(VirtualClock):
    """A virtual clock on which only timeouts take time, so the test fixes every value
    the downloader reads: a completed read takes none, a timeout exactly its length."""

    async def wait_for(self, aw, timeout):
        try:
            return await asyncio.wait_for(aw, timeout * self.io_time_scale)
        except TimeoutError:
            self.advance(timeout)
            raise


class MemoryStaging:
    """The :class:`agent.download.Staging` protocol over a bytearray."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.committed = 0
        self.etag: str | None = None

    def begin(self, etag: str) -> None:
        self.etag = etag

    def write(self, data: bytes) -> None:
        self.data += data

    def commit(self) -> None:
        self.committed = len(self.data)

    def restart(self) -> None:
        self.data.clear()
        self.committed, self.etag = 0, None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("start_s", [0.0, FAR_FROM_ZERO_S])
async def test_a_stall_is_detected_whatever_the_clock_reads(start_s):
    """curl's low-speed limit as the original set it (10 B/s for 30 s): a body that
    stops after its first bytes ends the attempt as Stalled, at any clock value."""
    assert (start_s + 30.0) - start_s <= 30.0
    rules = [
        {"fault": "timeout", "params": {"timeout_s": 0, "after_bytes": 1011}, "requests": [1, 1]},
        {"fault": "timeout", "params": {"timeout_s": 0}, "requests": [2, None]},
    ]
    async with BlobServer(plan=FaultPlan.from_dict({"rules": rules})) as server:
        server.put_blob("ota", "fw.bin", IMAGE)
        instruction = Instruction(
            version=1,
            size=len(IMAGE),
            url=server.blob_url("ota", "fw.bin"),
            sas=server.make_sas("ota"),
            sha256=hashlib.sha256(IMAGE).digest(),
        )
        clock = ExactClock(start_s)
        policy = DownloadPolicy(max_attempts=2, backoff_base_s=0.0)
        staging = MemoryStaging()
        async with aiohttp.ClientSession() as session:
            with pytest.raises(Stalled):
                await Downloader(session, clock, policy=policy).download(instruction, staging)
    assert staging.committed == 1011  # what did arrive is kept
