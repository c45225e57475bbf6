"""Every storage decision the agent takes at boot, one deterministic test each.

``Agent.boot`` opens the chip and mounts littlefs (agent/storage/, ``Storage.mount``):
a blank region is formatted (first boot), as is one whose only non-blank blocks are the
superblock pair (a cut during the first format); anything else that littlefs cannot
mount (foreign data, a littlefs of another layout, a region whose reads fail) is
refused and reported, and nothing is written. These decisions were pinned only by
random property tests; here each has its own test on the chip model.
"""

import asyncio
import random

import pytest

from agent.engine import Agent, AgentConfig
from agent.flash import FlashError, SpiFlash
from agent.record import Record, save_record
from agent.staging import OTA_DIR, RECORD_PATH
from agent.storage import Geometry, NotFormatted, StorageError
from sim.cloud.twin import InProcessTwin
from sim.mcu import SimMcuTarget
from tests.common.storage import SMALL, Rig

pytestmark = pytest.mark.sim


@pytest.fixture
def rig():
    return Rig()


def agent(rig: Rig, *, flash=None, **config) -> Agent:
    return Agent(
        flash=flash or rig.flash,
        twin=InProcessTwin(),
        target=SimMcuTarget(rig.clock),
        clock=rig.clock,
        config=AgentConfig(geometry=SMALL, **config),
        rng=random.Random(0),
    )


def test_a_blank_region_is_formatted_and_starts_from_the_target(rig):
    a = agent(rig)
    a.boot()
    assert a.storage is not None and a.storage.formatted
    assert a.storage.exists(OTA_DIR)
    assert a.journal is not None and a.journal.record == Record(installed_version=0)


def test_a_region_with_only_torn_superblocks_is_formatted(rig):
    """A cut during the first format leaves blocks 0 and 1 torn and the rest blank: a
    device refusing that would never boot again (Storage.mount's documented price)."""
    rig.chip.array[0:100] = bytes(100)
    rig.chip.array[4096 : 4096 + 100] = bytes(100)
    a = agent(rig)
    a.boot()
    assert a.storage is not None and a.storage.formatted


def test_a_formatted_region_is_mounted_not_formatted_and_its_record_read(rig):
    st = rig.mount()
    st.makedirs(OTA_DIR)
    save_record(st, Record(installed_version=7), RECORD_PATH)
    st.unmount()
    a = agent(rig)
    a.boot()
    assert a.storage is not None and not a.storage.formatted
    assert a.journal is not None and a.journal.record.installed_version == 7


@pytest.mark.parametrize("where", [2 * 4096, 17 * 4096 + 5, 63 * 4096])
def test_a_region_with_foreign_data_is_refused_and_left_untouched(rig, where):
    rig.chip.array[where : where + 4] = b"\x12\x34\x56\x78"
    before, ops = bytes(rig.chip.array), rig.ops
    with pytest.raises(NotFormatted, match="refusing to format"):
        agent(rig).boot()
    assert bytes(rig.chip.array) == before and rig.ops == ops


@pytest.mark.parametrize(
    "layout",
    [
        Geometry(block_count=64, block_size=8192, cache_size=256),
        Geometry(block_count=128),
        Geometry(block_count=32),
    ],
    ids=["block-size-8k", "more-blocks", "fewer-blocks"],
)
def test_a_littlefs_of_another_layout_is_refused_and_left_untouched(rig, layout):
    """A littlefs written with other geometry is somebody's data, not ours to format."""
    theirs = rig.mount(layout)
    theirs.write_atomic("theirs.bin", random.Random(1).randbytes(30_000))
    theirs.unmount()
    before, ops = bytes(rig.chip.array), rig.ops
    with pytest.raises(NotFormatted):
        agent(rig).boot()
    assert bytes(rig.chip.array) == before and rig.ops == ops


class UnreadableFlash:
    """The real driver, whose reads fail from ``fail_from`` on (a flash fault)."""

    def __init__(self, flash: SpiFlash, fail_from: int = 0) -> None:
        self._flash = flash
        self._left = fail_from
        self.size, self.sector_size = flash.size, flash.sector_size
        self.writes = 0

    def read(self, addr: int, n: int) -> bytes:
        if self._left <= 0:
            raise FlashError(f"read at 0x{addr:06x} failed")
        self._left -= 1
        return self._flash.read(addr, n)

    def program(self, addr: int, data: bytes) -> None:
        self.writes += 1
        self._flash.program(addr, data)

    def erase(self, addr: int, length: int) -> None:
        self.writes += 1
        self._flash.erase(addr, length)


@pytest.mark.parametrize("fail_from", [0, 1, 3, 40])
def test_a_region_whose_reads_fail_is_refused_never_formatted(rig, fail_from):
    """A blank region read through a failing driver: whichever read fails (littlefs's
    own, or the blank probe's), the boot fails and nothing is programmed or erased."""
    flash = UnreadableFlash(rig.flash, fail_from)
    with pytest.raises((StorageError, FlashError)):
        agent(rig, flash=flash).boot()
    assert flash.writes == 0 and rig.ops == 0


def test_a_blank_region_is_refused_when_formatting_is_off(rig):
    with pytest.raises(NotFormatted):
        agent(rig, format_blank=False).boot()
    assert rig.ops == 0


async def test_a_refused_boot_is_reported_as_error_with_the_reason(rig):
    """The decision reaches the twin: ``error`` / ``Flash unusable``, ``Detail`` naming
    the cause; the agent is still running (it retries), nothing written."""
    rig.chip.array[5 * 4096 : 5 * 4096 + 4] = b"\x12\x34\x56\x78"
    a = agent(rig)
    task = asyncio.ensure_future(a.run())
    try:
        reported = await asyncio.wait_for(
            a.twin.wait_reported(lambda r: "extFwInfo" in r), timeout=10
        )
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    section = reported["extFwInfo"]
    assert (section["Status"], section["Error"]) == ("error", "Flash unusable")
    assert "not blank" in section["Detail"] and rig.ops == 0
