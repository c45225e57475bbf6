"""Versions, supersede, redelivery and the kept image, end to end.

Reference design, "Cloud contract": versions start at 0 and only increase; rollback is
refused. Issue 4, "The state machine": a newer instruction mid-download supersedes the
old one cleanly, the same instruction delivered again continues where it was, the last
applied image is kept until a new one is verified and applied, and if both cannot fit
the agent says so rather than destroy the good one.
"""

import asyncio

import pytest

from agent.hosts import LOOPBACK_HOSTS
from agent.staging import CURRENT_PATH, STAGED_PATH
from agent.storage import Geometry
from sim.cloud.faults import Bandwidth, Corrupt
from sim.cloud.faults.plan import Rule
from sim.device import applied, reported_status, settled
from tests.common.agent import (
    CHECKPOINT_BYTES,
    IMAGE_BYTES,
    config,
    make_image,
    mounted,
    rig,
    sha256,
    status_is,
)

pytestmark = pytest.mark.sim

SLOW_BPS = 1024 * 1024  # real bytes/s: a 128 KiB download lasts ~0.12 s of wall time


def downloaded_at_least(n):
    return lambda rep: (
        reported_status(rep).get("Status") == "downloading"
        and (reported_status(rep).get("Downloaded") or 0) >= n
    )


async def test_factory_version_is_0_and_version_0_is_refused():
    """Reference design: version > 0; a device starts at 0, so 1 is the first update."""
    async with rig() as r:
        r.offer(0, make_image(50))
        result = await r.run(status_is("invalid"))
    assert result.reached
    assert "extFwInfo.version" in r.reported["Detail"]
    assert r.device.target.current_version() == 0
    assert r.device.target.install_attempts == 0


async def test_older_version_is_refused_and_never_applied():
    """Reference design: rollback is refused: the MCU keeps the newer image."""
    new, old = make_image(51), make_image(52)
    async with rig() as r:
        r.offer(2, new)
        await r.run(applied(2))
        r.offer(1, old, blob="old.bin")
        result = await r.run(status_is("invalid", Error="Version not newer"))
    assert result.reached
    assert r.device.target.install_attempts == 1
    assert sha256(r.device.target.image) == sha256(new)
    assert r.recorder.gets("old.bin") == []


async def test_equal_version_with_another_image_is_refused_and_never_applied():
    """Versions only increase: the same version number for a different image is not an
    update (and reporting it ``applied`` would tell the operator a lie)."""
    first, other = make_image(53), make_image(54)
    async with rig() as r:
        r.offer(2, first)
        await r.run(applied(2))
        r.offer(2, other, blob="other.bin")
        result = await r.run(status_is("invalid", Error="Version not newer"))
    assert result.reached
    assert r.device.target.install_attempts == 1
    assert sha256(r.device.target.image) == sha256(first)


async def test_same_instruction_delivered_again_is_reported_applied_not_reinstalled():
    """Reference design weakness 8: the original re-applies on every twin delivery. The
    full twin is redelivered on each reconnect and each boot; none installs again."""
    image = make_image(55)
    async with rig() as r:
        r.offer(1, image)
        await r.run(applied(1))
        for _ in range(3):
            await r.device.twin.reconnect()
        r.device.power_cycle()
        result = await r.run(applied(1))
    assert result.reached and result.boots == 2
    assert r.device.target.install_attempts == 1
    assert r.recorder.gets() and len(r.recorder.gets()) == 1


async def test_newer_instruction_mid_download_supersedes_the_old_one():
    """Issue 4: a newer instruction arriving mid-download supersedes the job in hand:
    the old image is abandoned (never installed, never fetched again) and the new one
    applied."""
    old, new = make_image(56), make_image(57)
    async with rig() as r:
        r.server.add_rule(Rule(Bandwidth(SLOW_BPS), blob="ota/old.bin"))
        r.offer(1, old, blob="old.bin")
        r.put(new, blob="new.bin")

        async def operator():
            await r.device.twin.wait_reported(downloaded_at_least(CHECKPOINT_BYTES))
            r.publish(2, new, blob="new.bin")

        task = asyncio.ensure_future(operator())
        result = await r.run(applied(2))
        task.cancel()
        files = r.files()
    assert result.reached
    assert [i.version for i in r.device.target.installs] == [2]
    assert sha256(r.device.target.image) == sha256(new)
    assert len(r.recorder.gets("old.bin")) == 1
    assert files[CURRENT_PATH] == new and files[STAGED_PATH] is None


async def test_a_different_instruction_supersedes_even_with_a_lower_version():
    """Issue 4: a *different* instruction supersedes the job in hand, whatever its
    version; only the installed version bounds it (reference design: versions only
    increase past what is installed). The operator replacing a v3 still downloading
    with a v2 gets v2 applied, and v3 is never installed."""
    three, two = make_image(65), make_image(66)
    async with rig() as r:
        r.server.add_rule(Rule(Bandwidth(SLOW_BPS), blob="ota/three.bin"))
        r.offer(3, three, blob="three.bin")
        r.put(two, blob="two.bin")

        async def operator():
            await r.device.twin.wait_reported(downloaded_at_least(CHECKPOINT_BYTES))
            r.publish(2, two, blob="two.bin")

        task = asyncio.ensure_future(operator())
        result = await r.run(applied(2), real_timeout_s=15.0)
        task.cancel()
    assert result.reached
    assert [i.version for i in r.device.target.installs] == [2]
    assert sha256(r.device.target.image) == sha256(two)
    assert len(r.recorder.gets("three.bin")) == 1


async def test_an_invalid_patch_mid_download_does_not_abandon_the_job_in_hand():
    """Weakness 3 and issue 4: a malformed instruction is reported ``invalid``, never a
    crash, and it is not a newer instruction: the valid job in hand is not superseded
    by it but runs on to ``applied``, and the malformed one is then reported."""
    image = make_image(67)
    async with rig() as r:
        r.server.add_rule(Rule(Bandwidth(SLOW_BPS)))
        r.offer(1, image)

        async def operator():
            await r.device.twin.wait_reported(downloaded_at_least(CHECKPOINT_BYTES))
            r.device.twin.patch_desired({"extFwInfo": {"sha256": None}})

        task = asyncio.ensure_future(operator())
        result = await r.run(status_is("invalid"), real_timeout_s=15.0)
        task.cancel()
    assert result.reached
    assert [i.version for i in r.device.target.installs] == [1]
    assert sha256(r.device.target.image) == sha256(image)
    assert len(r.recorder.gets()) == 1
    assert "extFwInfo.sha256" in r.reported["Detail"]


async def test_same_instruction_redelivered_mid_download_continues_where_it_was():
    """Issue 4: the same instruction delivered again (a reconnect redelivers the whole
    desired section; the SAS may have been rotated) continues the download in hand."""
    image = make_image(58)
    async with rig() as r:
        r.server.add_rule(Rule(Bandwidth(SLOW_BPS)))
        r.offer(1, image)

        async def reconnect():
            await r.device.twin.wait_reported(downloaded_at_least(CHECKPOINT_BYTES))
            r.publish(1, image)  # a rotated SAS: the same job
            await r.device.twin.reconnect()

        task = asyncio.ensure_future(reconnect())
        result = await r.run(applied(1))
        task.cancel()
    assert result.reached
    assert len(r.recorder.gets()) == 1
    assert r.kept_bytes() == IMAGE_BYTES


async def test_last_applied_image_is_kept_until_the_next_one_is_applied():
    """Issue 4 (the original keeps an image backup): ``ota/current.bin`` holds the last
    applied image through a later download, cuts included, and is replaced only when
    the new image is applied."""
    v1, v2 = make_image(59), make_image(60)
    seen_current = []

    def look(device):
        with mounted(device) as fs:
            seen_current.append(fs.read_file(CURRENT_PATH))

    async with rig() as r:
        r.offer(1, v1)
        await r.run(applied(1))
        assert r.files()[CURRENT_PATH] == v1
        r.offer(2, v2, blob="v2.bin")
        r.device.chip.schedule_cut(after_ops=300, fraction=0.5)
        result = await r.run(applied(2), on_boot=look)
        files = r.files()
    assert result.reached and result.cuts == 1
    assert seen_current == [v1, v1]
    assert files[CURRENT_PATH] == v2


async def test_image_that_cannot_fit_beside_the_kept_one_is_refused_and_the_good_one_survives():
    """Issue 4: "if both cannot fit, say so with a clear error rather than destroy the
    good one". A 384 KiB file system holds the 160 KiB image applied; 200 KiB more plus
    headroom does not fit beside it."""
    small = config()
    small = type(small)(
        allow_http_loopback=True,
        storage_hosts=LOOPBACK_HOSTS,
        download=small.download,
        geometry=Geometry(block_count=96),
    )
    v1, v2 = make_image(61, 160 * 1024), make_image(62, 200 * 1024)
    async with rig(agent_config=small) as r:
        r.offer(1, v1)
        await r.run(applied(1))
        r.offer(2, v2, blob="v2.bin")
        result = await r.run(status_is("invalid", TargetVersion=2))
        files = r.files()
    assert result.reached
    assert r.reported["Error"] == "Insufficient space"
    assert "kept" in r.reported["Detail"]
    assert files[CURRENT_PATH] == v1
    assert r.device.target.current_version() == 1
    assert r.recorder.gets("v2.bin") == []


async def test_newer_instruction_supersedes_even_while_data_keeps_arriving():
    """Issue 4 supersede, on a healthy network: the cancel of the old job must land even
    when it races a body read that has just completed (on Python 3.11 asyncio.wait_for
    can swallow such a cancel: CPython gh-86296), or the old image runs to the end and
    is installed first."""
    old, new = make_image(63, 512 * 1024), make_image(64)
    async with rig() as r:
        r.offer(1, old, blob="old.bin")
        r.put(new, blob="new.bin")

        async def operator():
            await r.device.twin.wait_reported(downloaded_at_least(CHECKPOINT_BYTES))
            r.publish(2, new, blob="new.bin")

        task = asyncio.ensure_future(operator())
        result = await r.run(applied(2))
        task.cancel()
    assert result.reached
    assert [i.version for i in r.device.target.installs] == [2]
    assert r.kept_bytes() < len(old) // 2 + IMAGE_BYTES


async def test_mcu_updated_behind_the_agents_back_still_refuses_an_older_version():
    """Reference design: rollback is refused. The installed version is the newer of the
    record's and the MCU's own: an MCU reflashed at the bench to 5 after the agent
    applied 1 must not be downgraded to 3 because the record still says 1."""
    bench = make_image(58)
    async with rig() as r:
        r.offer(1, make_image(57))
        await r.run(applied(1))
        r.device.target.set_state(5, bench)
        r.offer(3, make_image(59), blob="three.bin")
        result = await r.run(status_is("invalid", Error="Version not newer"))
    assert result.reached
    assert r.device.target.current_version() == 5
    assert sha256(r.device.target.image) == sha256(bench)


async def test_a_new_job_records_the_version_the_mcu_runs_not_a_stale_one():
    """The record's ``installed_version`` is what the agent knows to be installed
    (agent/record.py): a job begun after the MCU was reflashed at the bench to 5 starts
    from 5, not from the 1 the agent last applied, so the record never claims the MCU
    runs less than it does (a job that then fails keeps that knowledge on flash)."""
    async with rig() as r:
        r.offer(1, make_image(60))
        await r.run(applied(1))
        r.device.target.set_state(5, make_image(61))
        r.server.add_rule(Rule(Corrupt(offsets=(IMAGE_BYTES // 2,))))
        r.offer(6, make_image(62), blob="six.bin")
        result = await r.run(settled(6))
    assert result.reached
    assert (r.reported["Status"], r.reported["Error"]) == ("error", "SHA256 verify fail")
    record = r.record()
    assert record is not None and record.job is not None
    assert (record.job.version, record.installed_version) == (6, 5)
