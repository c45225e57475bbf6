"""Power cuts anywhere in an OTA: the device always ends with the right image applied.

The chip model tears the operation in flight (W25Q128JV datasheet 8.2.14-8.2.19: a
page program or erase cut part-way leaves its bytes undefined) and the device boots a
fresh agent after every cut. Issue 4: "data is committed (file sync) and the record
updated every checkpoint interval, so a power cut costs at most one interval of
re-download"; "a cut anywhere, including during apply and during the record's rename,
resumes correctly".
"""

import asyncio

import pytest

from agent.record import State
from sim.device import applied, reported_status
from tests.common.agent import (
    CHECKPOINT_BYTES,
    IMAGE_BYTES,
    READ_CHUNK_BYTES,
    make_image,
    rig,
    sha256,
)

pytestmark = pytest.mark.sim

# A 128 KiB OTA on a blank chip latches about 650 state-changing operations (format,
# record saves, ~600 page programs, ~60 sector erases); cut across all of them.
CUT_POINTS = [(n, 0.5 if i % 2 else 1.0) for i, n in enumerate(range(1, 600, 41))]


def _assert_redownload_bounded(r, cuts):
    """At most one checkpoint interval of image bytes written again per cut, and at
    most that plus one read chunk taken off the wire."""
    assert r.kept_bytes() - IMAGE_BYTES <= cuts * CHECKPOINT_BYTES
    assert r.wire_bytes() - IMAGE_BYTES <= cuts * (CHECKPOINT_BYTES + READ_CHUNK_BYTES)


@pytest.mark.parametrize(("after_ops", "fraction"), CUT_POINTS)
async def test_cut_at_any_flash_operation_ends_applied_with_the_right_image(after_ops, fraction):
    """A cut during (``fraction`` 0.5: inside a page program or erase) or right after the
    Nth flash operation of an OTA: the next boot resumes and applies the published
    image, re-downloading at most one checkpoint interval."""
    image = make_image(40)
    async with rig() as r:
        r.device.chip.schedule_cut(after_ops=after_ops, fraction=fraction)
        r.offer(1, image)
        result = await r.run(applied(1))
    assert result.reached and result.cuts == 1
    assert sha256(r.device.target.image) == sha256(image)
    assert len(r.device.target.installs) == 1
    _assert_redownload_bounded(r, result.cuts)


async def test_five_cuts_in_one_download_cost_at_most_five_checkpoint_intervals():
    """Issue 4, "Tests and figures": with k cuts, re-downloaded bytes are at most k
    times the checkpoint interval."""
    image = make_image(41)
    cuts_left = [5]

    def cut_again(device):
        if cuts_left[0]:
            cuts_left[0] -= 1
            device.chip.schedule_cut(after_ops=90, fraction=0.5)

    async with rig() as r:
        r.offer(1, image)
        result = await r.run(applied(1), on_boot=cut_again)
    assert result.reached and result.cuts == 5
    assert sha256(r.device.target.image) == sha256(image)
    _assert_redownload_bounded(r, 5)


async def test_cut_during_verify_verifies_again_without_downloading_again():
    """Issue 4: the image is verified by reading it back from flash; a cut while doing
    so leaves a complete staged image, which the next boot verifies and applies."""
    image = make_image(42)
    async with rig() as r:
        state_at_cut = []

        async def cut_when_downloaded():
            await r.device.twin.wait_reported(
                lambda rep: reported_status(rep).get("Downloaded") == IMAGE_BYTES
            )
            state_at_cut.append(r.device.agent.journal.record.state)
            r.device.power_cycle()

        cutter = asyncio.ensure_future(cut_when_downloaded())
        r.offer(1, image)
        result = await r.run(applied(1))
        cutter.cancel()
    assert state_at_cut == [State.DOWNLOADING]  # complete on flash, not yet verified
    assert result.reached and result.cuts == 1
    assert sha256(r.device.target.image) == sha256(image)
    assert len(r.recorder.gets()) == 1


async def test_complete_download_cut_before_verify_is_applied_at_boot_even_if_withdrawn():
    """A staged image as long as its job, cut before the verify, is verified and applied
    at boot from flash alone (agent/engine.py ``_recover``; issue 4: "a cut anywhere
    ... resumes correctly"): the operator withdrawing the instruction while the device
    is down neither strands the verified download nor fetches it again."""
    image = make_image(45)
    async with rig() as r:
        state_at_cut = []

        async def cut_when_downloaded():
            await r.device.twin.wait_reported(
                lambda rep: reported_status(rep).get("Downloaded") == IMAGE_BYTES
            )
            state_at_cut.append(r.device.agent.journal.record.state)
            r.device.power_cycle()

        boots = []

        def withdraw_on_reboot(device):
            boots.append(device)
            if len(boots) == 2:
                device.twin.patch_desired({"extFwInfo": None})

        cutter = asyncio.ensure_future(cut_when_downloaded())
        r.offer(1, image)
        result = await r.run(applied(1), on_boot=withdraw_on_reboot, real_timeout_s=15.0)
        cutter.cancel()
    assert state_at_cut == [State.DOWNLOADING]  # complete on flash, not yet verified
    assert result.reached and result.cuts == 1
    assert [i.version for i in r.device.target.installs] == [1]
    assert sha256(r.device.target.image) == sha256(image)
    assert len(r.recorder.gets()) == 1


async def test_cut_during_mcu_install_installs_again_after_boot():
    """Issue 4: apply is idempotent and runs while the target's version is below the
    staged one; a cut half-way through the MCU install (torn image, old version)
    installs again from the staged image, with no new download."""
    image = make_image(43)
    async with rig() as r:
        r.device.target.cut_after_bytes = IMAGE_BYTES // 2
        r.offer(1, image)
        result = await r.run(applied(1))
    assert result.reached and result.cuts == 1
    assert r.device.target.install_attempts == 2
    assert [i.version for i in r.device.target.installs] == [1]
    assert sha256(r.device.target.image) == sha256(image)
    assert len(r.recorder.gets()) == 1


async def test_cut_during_mcu_install_is_finished_at_boot_even_if_the_instruction_is_withdrawn():
    """An apply in hand is finished from flash alone at boot (agent/engine.py
    ``_recover``; issue 4: ``applying`` is followed by ``applied`` or ``error``): the
    operator withdrawing the instruction while the device is down does not leave the
    MCU torn."""
    image = make_image(44)
    async with rig() as r:
        r.device.target.cut_after_bytes = IMAGE_BYTES // 2
        r.offer(1, image)
        boots = []

        def withdraw_on_reboot(device):
            boots.append(device)
            if len(boots) == 2:
                device.twin.patch_desired({"extFwInfo": None})

        result = await r.run(applied(1), on_boot=withdraw_on_reboot)
    assert result.reached and result.cuts == 1
    assert [i.version for i in r.device.target.installs] == [1]
    assert sha256(r.device.target.image) == sha256(image)


async def _ops_after_download(seed):
    """Flash operations latched after the download completed, in an uncut OTA."""
    async with rig() as r:
        marks = []

        async def mark():
            await r.device.twin.wait_reported(
                lambda rep: reported_status(rep).get("Downloaded") == IMAGE_BYTES
            )
            marks.append(r.device.chip.counters.state_changes)

        watcher = asyncio.ensure_future(mark())
        r.offer(1, make_image(seed))
        await r.run(applied(1))
        watcher.cancel()
        return r.device.chip.counters.state_changes - marks[0]


async def test_cut_at_every_operation_after_the_download_never_downloads_again():
    """Issue 4: a cut during the record's rename (the verified, applying and applied
    records are each written to a copy and renamed over: littlefs DESIGN.md, "Metadata
    pairs"), during the install or the final rename of the image resumes from flash
    alone: applied once, never downloaded again."""
    tail = await _ops_after_download(44)
    assert tail >= 5  # records and the image rename all latch flash operations
    image = make_image(44)
    cut = []
    for back in range(tail, 0, -1):
        async with rig() as r:

            async def cut_near_the_end(back=back, r=r):
                await r.device.twin.wait_reported(
                    lambda rep: reported_status(rep).get("Downloaded") == IMAGE_BYTES
                )
                r.device.chip.schedule_cut(after_ops=tail - back + 1, fraction=0.5)

            arm = asyncio.ensure_future(cut_near_the_end())
            r.offer(1, image)
            result = await r.run(applied(1))
            arm.cancel()
        assert result.reached, back
        assert sha256(r.device.target.image) == sha256(image), back
        assert [i.version for i in r.device.target.installs] == [1], back
        assert len(r.recorder.gets()) == 1, back
        cut.append(result.cuts)
    assert sum(cut) >= tail - 1, cut  # (the last operation may land after the report)
