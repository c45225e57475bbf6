"""Every state the agent reports, end to end: real HTTP blob server, chip model, agent.

The vocabulary is the original's cloud contract (docs/reference-design.md,
"Cloud contract"): ``extFwInfo.Status`` in downloading, interrupted, applying, applied,
error, invalid, with ``Error`` text and ``Version`` after applied; ``Progress`` and
``Downloaded`` are ours (issue 4, "The state machine").
"""

import dataclasses
import itertools

import pytest

from agent.engine import AgentConfig
from agent.staging import STAGED_PATH
from sim.cloud.faults import Corrupt, Down, Status, Timeout
from sim.cloud.faults.plan import Rule
from sim.device import applied, settled
from tests.common.agent import (
    BLOB,
    CONTAINER,
    IMAGE_BYTES,
    config,
    make_image,
    rig,
    sha256,
    status_is,
)

pytestmark = pytest.mark.sim


async def test_download_reports_progress_and_bytes_rising_to_the_image_size():
    """Issue 4: ``downloading`` carries ``Progress`` (percent) and ``Downloaded`` (bytes
    committed), both rising, ending at 100 and the image size."""
    image = make_image(1)
    async with rig() as r:
        r.offer(1, image)
        result = await r.run(applied(1))
    assert result.reached
    downloading = r.reports("downloading")
    progress = [s["Progress"] for s in downloading]
    downloaded = [s["Downloaded"] for s in downloading]
    assert progress == sorted(progress) and progress[0] == 0 and progress[-1] == 100
    assert downloaded == sorted(downloaded) and downloaded[-1] == IMAGE_BYTES
    assert all(s["TargetVersion"] == 1 and s["Error"] == "None" for s in downloading)


async def test_reports_are_sent_on_change_not_in_a_busy_loop():
    """Reference design, "Cloud contract": reported properties are sent when the state
    changes. With 5 % progress steps a whole OTA sends at most ~20 progress reports."""
    image = make_image(2)
    async with rig() as r:
        r.offer(1, image)
        await r.run(applied(1))
    log = r.device.twin.reported_log
    assert len(log) <= 100 // r.device.config.progress_step_percent + 4
    assert all(a != b for a, b in itertools.pairwise(log))


async def test_progress_is_reported_per_step_not_per_checkpoint():
    """Reference design, "Cloud contract": report on change, in ``progress_step_percent``
    steps. With 1 KiB checkpoints (128 in the image) a download still sends at most one
    ``downloading`` report per 5 % step, plus the first at 0 %."""
    async with rig(agent_config=config(checkpoint_bytes=1024)) as r:
        r.offer(1, make_image(12))
        result = await r.run(applied(1))
    assert result.reached
    step = r.device.config.progress_step_percent
    progress = [s["Progress"] for s in r.reports("downloading")]
    assert progress[-1] == 100
    assert len(progress) <= 100 // step + 1
    assert len({p // step for p in progress}) == len(progress)


async def test_the_last_downloading_report_is_100_even_off_the_progress_step():
    """Issue 4: ``downloading`` ends at ``Progress`` 100 and the image size. With a 60 %
    step, 100 % falls in the same step as 60-99 %; it is still reported, so the cloud never
    sees a finished download stuck short of 100 %."""
    agent_config = dataclasses.replace(config(), progress_step_percent=60)
    async with rig(agent_config=agent_config) as r:
        r.offer(1, make_image(13))
        result = await r.run(applied(1))
    assert result.reached
    last = r.reports("downloading")[-1]
    assert (last["Progress"], last["Downloaded"]) == (100, IMAGE_BYTES)


async def test_applying_names_the_version_being_applied():
    """Issue 4: every report about a job carries its ``TargetVersion``; ``applying``
    says which version the MCU is being given, at ``Progress`` 100."""
    async with rig() as r:
        r.offer(4, make_image(14))
        result = await r.run(applied(4))
    assert result.reached
    applying = r.reports("applying")
    assert applying and all((s["TargetVersion"], s["Progress"]) == (4, 100) for s in applying)


async def test_applying_precedes_applied_which_reports_the_version():
    """Reference design: ``applying``, then ``applied`` with ``{"Version": N}``; the MCU
    then runs exactly the published image."""
    image = make_image(3)
    async with rig() as r:
        r.offer(7, image)
        await r.run(applied(7))
    statuses = [s for s, _ in r.statuses()]
    assert statuses.index("applying") < statuses.index("applied")
    assert r.reported["Version"] == 7 and r.reported["Error"] == "None"
    assert sha256(r.device.target.image) == sha256(image)
    assert r.device.target.current_version() == 7


async def test_unreachable_server_reports_interrupted_network_timeout():
    """Reference design, "Flow": a network failure maps to ``interrupted`` +
    ``Network Timeout`` (here after the downloader's bounded retries)."""
    async with rig() as r:
        r.server.add_rule(Rule(Down()))
        r.offer(1, make_image(4))
        result = await r.run(status_is("interrupted"))
    assert result.reached
    assert r.reported["Error"] == "Network Timeout"
    assert r.reported["TargetVersion"] == 1
    assert r.device.target.install_attempts == 0


async def test_http_error_status_reports_interrupted_http_response_over_400():
    """Reference design, "Flow": HTTP errors map to ``interrupted`` +
    ``Http Response > 400`` (here after bounded retries with backoff)."""
    async with rig() as r:
        r.server.add_rule(Rule(Status(403)))
        r.offer(1, make_image(5))
        result = await r.run(status_is("interrupted"))
    assert result.reached
    assert r.reported["Error"] == "Http Response > 400"
    assert "403" in r.reported["Detail"]


async def test_interrupted_reports_the_progress_and_bytes_kept_on_flash():
    """Issue 4: ``interrupted`` says how far the job got, ``Progress`` and ``Downloaded``
    as in ``downloading``, so the cloud knows what a resume will not fetch again. The
    first response stalls after 40 000 bytes and every retry stalls at once."""
    kept = 40_000
    async with rig() as r:
        r.server.add_rule(Rule(Timeout(after_bytes=kept), requests=(1, 1)))
        r.server.add_rule(Rule(Timeout(after_bytes=0), requests=(2, None)))
        r.offer(1, make_image(15))
        result = await r.run(status_is("interrupted"))
    assert result.reached
    assert r.reported["Downloaded"] == kept
    assert r.reported["Progress"] == kept * 100 // IMAGE_BYTES


async def test_interrupted_download_resumes_on_its_own_once_the_server_is_back():
    """Issue 4: after ``interrupted`` the agent tries again by itself (jittered retry
    interval), resuming, so a server that comes back gets the image applied. One boot,
    no redelivery: the server comes back while the same agent keeps running, and the
    twin sends nothing after the first delivery (a reboot re-reads the twin, which
    would make the agent try again for another reason)."""
    image = make_image(6)
    async with rig() as r:
        rule = r.server.add_rule(Rule(Down()))
        r.offer(1, image)
        healed = []

        def heal_then_applied(reported):
            if not healed and status_is("interrupted")(reported):
                r.server.remove_rule(rule)  # the server is back; the agent is not told
                healed.append(len(r.device.twin.delivered_log))
            return applied(1)(reported)

        result = await r.run(heal_then_applied)
    assert result.reached and healed
    assert result.boots == 1 and r.device.twin.connect_count == 1
    assert len(r.device.twin.delivered_log) == healed[0]  # no patch after the outage
    assert sha256(r.device.target.image) == sha256(image)


async def test_the_engines_retry_after_interrupted_is_jittered_across_devices():
    """Weakness 6 for the engine's own retry, not only the downloader's backoff: after
    ``interrupted`` the next attempt comes ``retry_interval_s`` x uniform(0.5, 1) later,
    so devices that failed together spread out (seed to seed) and one device does not
    tick at a fixed period either."""
    interval = 20.0
    agent_config = dataclasses.replace(
        config(max_attempts=1, backoff_base_s=0.0), retry_interval_s=interval
    )
    gaps_by_seed = []
    for seed in range(4):
        async with rig(seed=seed, agent_config=agent_config) as r:
            r.server.add_rule(Rule(Down()))
            r.offer(1, make_image(40))
            await r.run(lambda reported: False, max_device_time_s=5 * interval)
        times = [g.at for g in r.recorder.gets()]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(gaps) >= 4, times
        assert all(0.5 * interval <= gap <= interval + 1.0 for gap in gaps), gaps
        assert max(gaps) - min(gaps) > 0.05 * interval, f"a fixed period: {gaps}"
        gaps_by_seed.append(tuple(round(gap, 3) for gap in gaps[:4]))
    assert len(set(gaps_by_seed)) == len(gaps_by_seed), gaps_by_seed


async def test_the_downloaders_backoff_is_jittered_across_devices():
    """The downloader's own retries (full jitter, weakness 6) on a device: the agent
    hands each boot's random source to its downloader, so devices answered 503 together
    wait different times before each retry, all below the exponential ceiling."""
    base = 8.0
    agent_config = config(max_attempts=5, backoff_base_s=base, backoff_cap_s=1000.0)
    gaps_by_seed = []
    for seed in range(4):
        async with rig(seed=seed, agent_config=agent_config) as r:
            r.server.add_rule(Rule(Status(503)))
            r.offer(1, make_image(42))
            assert (await r.run(status_is("interrupted"))).reached
        times = [g.at for g in r.recorder.gets()][:5]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(gaps) == 4, times
        for n, gap in enumerate(gaps, start=1):
            assert gap <= base * 2 ** (n - 1) + 1.0, gaps
        gaps_by_seed.append(tuple(round(gap, 3) for gap in gaps))
    assert len(set(gaps_by_seed)) == len(gaps_by_seed), gaps_by_seed


async def test_corrupted_image_reports_error_sha256_verify_fail_and_is_never_applied():
    """Reference design, "Flow": verify SHA-256; on mismatch delete the image and report
    ``error`` / ``SHA256 verify fail``. The transfer itself is intact (``corrupt``)."""
    image = make_image(7)
    async with rig() as r:
        r.server.add_rule(Rule(Corrupt(offsets=(IMAGE_BYTES // 2,))))
        r.offer(1, image)
        result = await r.run(settled(1))
    assert result.reached
    assert (r.reported["Status"], r.reported["Error"]) == ("error", "SHA256 verify fail")
    assert r.device.target.install_attempts == 0
    assert r.files()[STAGED_PATH] is None


async def test_a_failed_job_redelivered_is_reported_again_never_downloaded_again():
    """After ``SHA256 verify fail`` the agent "waits for a new instruction" (issue 4): the
    same instruction delivered again (a reconnect) gets the same ``error`` from the
    record after a reboot, with no new download and no install."""
    image = make_image(9)
    async with rig() as r:
        r.server.add_rule(Rule(Corrupt(offsets=(IMAGE_BYTES // 2,))))
        r.offer(1, image)
        assert (await r.run(settled(1))).reached
        downloads = len(r.downloads)
        requests = len(r.server.events)
        seen = len(r.device.twin.reported_log)
        await r.device.twin.reconnect(redeliver=True)  # a reboot after it, as run() boots

        def reported_again(reported):
            return len(r.device.twin.reported_log) > seen and settled(1)(reported)

        result = await r.run(reported_again)
    assert result.reached
    assert (r.reported["Status"], r.reported["Error"]) == ("error", "SHA256 verify fail")
    assert len(r.server.events) == requests
    assert sum(stats.requests for stats in r.downloads[downloads:]) == 0
    assert r.device.target.install_attempts == 0


async def test_mcu_refusing_the_image_reports_error_mcu_download_fail():
    """Reference design: ``error`` / ``MCU Download fail`` when the apply step fails; the
    MCU keeps its old version."""
    async with rig() as r:
        r.device.target.fail_next_install = "bootloader said no"
        r.offer(1, make_image(8))
        result = await r.run(settled(1))
    assert result.reached
    assert (r.reported["Status"], r.reported["Error"]) == ("error", "MCU Download fail")
    assert r.device.target.current_version() == 0


async def test_malformed_twin_reports_invalid_naming_the_field():
    """Reference design, weakness 3 and issue 4: a malformed ``extFwInfo`` is ``invalid``
    with a reason naming the field, never a crash."""
    async with rig() as r:
        r.device.twin.patch_desired(
            {"extFwInfo": {"version": 1, "size": 10, "url": "http://127.0.0.1/a/b", "sas": "x"}}
        )
        result = await r.run(status_is("invalid"))
    assert result.reached
    assert r.reported["Error"] == "Invalid instruction"
    assert "extFwInfo.sha256" in r.reported["Detail"]


async def test_instruction_not_newer_than_the_installed_version_reports_invalid():
    """Reference design: versions only increase; rollback is refused and reported."""
    image = make_image(9)
    async with rig() as r:
        r.offer(3, image)
        await r.run(applied(3))
        r.publish(2, image)
        result = await r.run(status_is("invalid"))
    assert result.reached
    assert r.reported["Error"] == "Version not newer"
    assert r.reported["TargetVersion"] == 2


async def test_image_larger_than_the_flash_reports_invalid():
    """Issue 4: a size larger than the flash can hold is an invalid instruction, refused
    before a byte is downloaded."""
    async with rig() as r:
        r.put(make_image(10))
        info = {
            "version": 1,
            "size": 32 * 1024 * 1024,
            "url": r.server.blob_url("ota", "mcu.bin"),
            "sas": r.server.make_sas("ota"),
            "sha256": "AB" * 32,
        }
        r.device.twin.patch_desired({"extFwInfo": info})
        result = await r.run(status_is("invalid"))
    assert result.reached
    assert "extFwInfo.size" in r.reported["Detail"]
    assert r.recorder.gets() == []


async def test_an_image_on_a_host_outside_the_allow_list_is_invalid_and_never_fetched():
    """Issue 14: the agent downloads only from ``AgentConfig.storage_hosts`` (default
    Azure Blob's endpoints, as the original's manifest names its hosts). A device left
    on the default refuses the loopback server's URL as ``invalid``, naming it, and
    sends it no request."""
    async with rig(agent_config=AgentConfig(allow_http_loopback=True)) as r:
        r.offer(1, make_image(41))
        result = await r.run(settled(1))
    assert result.reached
    assert (r.reported["Status"], r.reported["Error"]) == ("invalid", "Invalid instruction")
    assert r.server.blob_url(CONTAINER, BLOB) in r.reported["Detail"]
    assert "*.blob.core.windows.net" in r.reported["Detail"]
    assert r.server.events == []
