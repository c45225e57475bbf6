"""One test per weakness of the original design (docs/reference-design.md,
"Weaknesses an agent under test may have"), each asserting what the original gets wrong.
"""

import asyncio
import base64
import itertools
import pathlib
import re
import statistics

import pytest

from agent.azure import AzureConnectionConfig
from agent.instruction import FIELDS
from agent.record import State, load_record
from agent.staging import RECORD_PATH, STAGED_PATH
from sim.cloud.faults import BadContentRange, EtagChange, IgnoreRange, Status, Timeout
from sim.cloud.faults.plan import Rule
from sim.cloud.twin import ota_desired_patch
from sim.device import applied
from tests.common.agent import (
    CHECKPOINT_BYTES,
    make_image,
    mounted,
    rig,
    sha256,
    status_is,
)

pytestmark = pytest.mark.sim

CUT_AT = 40_000
AGENT_DIR = pathlib.Path(__file__).resolve().parents[2] / "agent"


def stall_first():
    """The first response sends ``CUT_AT`` bytes, then nothing (a resume follows)."""
    return Rule(Timeout(after_bytes=CUT_AT), requests=(1, 1))


async def test_weakness_1_cut_mid_download_resumes_from_the_last_checkpoint_not_zero():
    """Weakness 1: littlefs commits data only on sync or close, so without syncs a cut
    loses the whole download. The agent syncs every checkpoint: the resume after a cut
    starts at most one checkpoint before what had been written."""
    image = make_image(70)
    async with rig() as r:
        r.device.chip.schedule_cut(after_ops=400, fraction=0.5)
        r.offer(1, image)
        result = await r.run(applied(1))
    assert result.reached and result.cuts == 1
    written_before_cut = sum(s.kept_bytes for s in r.agents[0].downloads)
    resume = r.recorder.gets()[1].range_start
    assert written_before_cut > 2 * CHECKPOINT_BYTES
    assert resume is not None and resume >= written_before_cut - CHECKPOINT_BYTES
    assert sha256(r.device.target.image) == sha256(image)


async def test_weakness_2_blob_replaced_between_requests_is_never_spliced():
    """Weakness 2: resuming by file size alone splices two blobs. Every resume carries
    If-Match with the ETag first seen; the replaced blob answers 412 and the agent
    restarts from 0, so the MCU gets the new blob whole."""
    old, new = make_image(71), make_image(72)
    async with rig() as r:
        etag = r.put(old)
        r.publish(1, new)
        r.server.add_rule(stall_first())
        r.server.add_rule(Rule(EtagChange(content_b64=_b64(new)), requests=(2, 2)))
        result = await r.run(applied(1))
        gets = r.recorder.gets()
    assert result.reached
    assert gets[1].headers.get("If-Match") == etag and gets[1].range_start == CUT_AT
    assert r.event(2).status == 412
    assert gets[2].range_start is None and gets[2].headers.get("If-Match") is None
    assert sha256(r.device.target.image) == sha256(new)


@pytest.mark.parametrize("missing", FIELDS)
async def test_weakness_3_twin_patch_missing_a_key_is_invalid_and_the_agent_survives(missing):
    """Weakness 3: a patch missing a key crashed the original. Here it is reported
    ``invalid`` naming the key, and the next good instruction is applied."""
    image = make_image(73)
    async with rig() as r:
        r.put(image)
        patch = ota_desired_patch(
            version=1,
            image=image,
            url=r.server.blob_url("ota", "mcu.bin"),
            sas=r.server.make_sas("ota"),
        )
        del patch["extFwInfo"][missing]
        r.device.twin.set_desired(patch)
        assert (await r.run(status_is("invalid"))).reached
        assert f"extFwInfo.{missing}" in r.reported["Detail"]
        r.publish(1, image)
        result = await r.run(applied(1))
    assert result.reached and result.boots == 2
    assert r.device.twin.handler_errors == []


async def test_weakness_4_server_that_ignores_range_does_not_leave_the_device_downloading():
    """Weakness 4: curl fails with error 33 on a 200 to a Range request and the original
    reports ``downloading`` forever. The agent skips the prefix it has and finishes."""
    image = make_image(74)
    async with rig() as r:
        r.server.add_rule(stall_first())
        r.server.add_rule(Rule(IgnoreRange(), requests=(2, None)))
        r.offer(1, image)
        result = await r.run(applied(1))
    assert result.reached
    assert sha256(r.device.target.image) == sha256(image)


async def test_weakness_4_wrong_content_range_forever_ends_interrupted_not_downloading():
    """Weakness 4: a wrong Content-Range on every resume cannot be used; after bounded
    retries the agent reports ``interrupted`` (``Http Response > 400``)."""
    async with rig() as r:
        r.server.add_rule(stall_first())
        r.server.add_rule(Rule(BadContentRange(shift=100), requests=(2, None)))
        r.offer(1, make_image(75))
        result = await r.run(status_is("interrupted"))
    assert result.reached
    assert r.reported["Error"] == "Http Response > 400"
    assert r.reported["Downloaded"] == CUT_AT


async def test_weakness_5_416_on_resume_is_not_taken_as_complete():
    """Weakness 5: newer libcurl treats a 416 as success and the original verifies
    without checking the length. The agent never verifies or applies a short image."""
    async with rig() as r:
        r.server.add_rule(stall_first())
        r.server.add_rule(Rule(Status(416), requests=(2, None)))
        r.offer(1, make_image(76))
        result = await r.run(status_is("interrupted"))
        record = r.record()
    assert result.reached
    assert "416" in r.reported["Detail"]
    assert [s for s, _ in r.statuses()].count("applying") == 0
    assert r.device.target.install_attempts == 0
    assert record.state is State.DOWNLOADING and record.committed == CUT_AT


async def test_weakness_6_http_errors_are_retried_with_jittered_backoff():
    """Weakness 6: the original never retries HTTP errors, and nothing de-synchronises a
    fleet. Two devices facing the same 503s retry (capped exponential backoff, full
    jitter: AWS architecture blog 2015) at different times, and both finish."""
    image = make_image(77)
    gaps = []
    for seed in (1, 2):
        async with rig(seed=seed) as r:
            r.server.add_rule(Rule(Status(503), requests=(1, 4)))
            r.offer(1, image)
            result = await r.run(applied(1))
            assert result.reached
            times = [g.at for g in r.recorder.gets()]
        assert len(times) == 5
        gaps.append([b - a for a, b in itertools.pairwise(times)])
    policy = r.device.config.download
    for device_gaps in gaps:
        for k, gap in enumerate(device_gaps, start=1):
            assert gap <= policy.backoff_base_s * 2 ** (k - 1) + 0.5  # + request time
    assert gaps[0] != gaps[1]
    assert statistics.pstdev(a - b for a, b in zip(gaps[0], gaps[1], strict=True)) > 0.01


async def test_weakness_7_record_and_image_never_disagree_after_a_cut():
    """Weakness 7: the original keeps its record outside the file system, so after a
    cut it can claim bytes or a version the file does not hold. Here, at every boot
    after a cut anywhere, the record's claims hold on flash."""
    image = make_image(78)
    checked = []

    def check(device):
        if device.boots == 1:
            return  # a blank chip: the agent formats it
        with mounted(device) as fs:
            record = load_record(fs, RECORD_PATH)
            staged = fs.read_file(STAGED_PATH) if fs.exists(STAGED_PATH) else b""
        if record is None:
            return
        if record.state is State.DOWNLOADING:
            assert len(staged) >= record.committed
            assert staged[: record.committed] == image[: record.committed]
            assert record.committed == 0 or record.job.etag is not None
        elif record.state in (State.VERIFIED, State.APPLYING):
            assert sha256(staged) == record.job.sha256.lower()
        checked.append(record.state)

    for after_ops in range(35, 650, 61):
        async with rig() as r:
            r.device.chip.schedule_cut(after_ops=after_ops, fraction=0.5)
            r.offer(1, image)
            result = await r.run(applied(1), on_boot=check)
        assert result.reached and result.cuts == 1, after_ops
    assert State.DOWNLOADING in checked


async def test_weakness_8_apply_is_not_repeated_by_redeliveries_or_reboots():
    """Weakness 8: the original re-applies on every twin delivery. Deliveries and
    reboots after ``applied`` install nothing."""
    image = make_image(79)
    async with rig() as r:
        r.offer(1, image)
        await r.run(applied(1))
        await r.device.twin.reconnect()
        r.publish(1, image)
        r.device.power_cycle()
        result = await r.run(applied(1))
    assert result.reached
    assert r.device.target.install_attempts == 1


async def test_weakness_9_a_burst_of_patches_overflows_nothing_and_the_latest_wins():
    """Weakness 9: a bounded queue with no overflow check. Fifty patches delivered at
    once to a connected agent: no handler error, only the latest is applied."""
    images = {v: make_image(80 + v, 64 * 1024) for v in range(1, 51)}
    async with rig() as r:
        r.offer(1, images[1], blob="v1.bin")
        await r.run(applied(1))

        async def burst():
            await asyncio.sleep(0)
            for v in range(2, 51):
                r.offer(v, images[v], blob=f"v{v}.bin")

        task = asyncio.ensure_future(burst())
        result = await r.run(applied(50))
        await task
    assert result.reached
    assert r.device.twin.handler_errors == []
    assert [i.version for i in r.device.target.installs] == [1, 50]
    assert sha256(r.device.target.image) == sha256(images[50])


def test_weakness_10_tls_root_is_configuration_not_code(tmp_path):
    """Weakness 10: the original pins Baltimore CyberTrust Root (expired May 2025) in
    code. The root is a PEM file named in AzureConnectionConfig, and no certificate
    is embedded anywhere in agent/."""
    pem = "-----BEGIN CERTIFICATE-----\nTUlJQ2V4YW1wbGU=\n-----END CERTIFICATE-----\n"
    root = tmp_path / "root.pem"
    root.write_text(pem, encoding="ascii")
    cfg = AzureConnectionConfig(
        connection_string="HostName=h.example;DeviceId=d;SharedAccessKey=a2V5",
        server_verification_cert=str(root),
    )
    assert cfg.tls_kwargs()["server_verification_cert"] == pem
    embedded = re.compile(r"-----BEGIN CERTIFICATE-----\s*[A-Za-z0-9+/=]{16}")
    for source in AGENT_DIR.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert not embedded.search(text), source.name
        assert not re.search(r"\.(pem|crt|cer)[\"']", text), source.name


def _b64(data):
    return base64.b64encode(data).decode()


def test_weakness_tests_cover_all_ten():
    """The notes list ten weaknesses; each has a test here named for it."""
    names = {n for n in globals() if n.startswith("test_weakness_")}
    numbers = {int(re.match(r"test_weakness_(\d+)_", n).group(1)) for n in names if n[14].isdigit()}
    assert numbers == set(range(1, 11))
