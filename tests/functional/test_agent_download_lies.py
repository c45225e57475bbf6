"""Every lie and failure the blob server can produce, one test each, end to end.

The agent must end with the published image on the MCU (or, where the server never
stops lying, an ``interrupted`` report), never with a spliced or shifted image.
Sources: Azure Blob REST "Get Blob" and "Specifying the range header"; RFC 9110
sections 13.1.1 (If-Match), 14.2 (Range may be ignored), 14.4 (Content-Range) and
10.2.3 (Retry-After); RFC 9112 section 6.3 (incomplete messages); issue 4, "Download".
"""

import base64

import pytest

from sim.cloud.faults import (
    BadContentRange,
    Bandwidth,
    Down,
    EtagChange,
    IgnoreRange,
    Latency,
    LimitData,
    ResetPeer,
    ShortBody,
    Slicer,
    Status,
    Timeout,
)
from sim.cloud.faults.plan import Rule
from sim.device import applied, settled
from tests.common.agent import (
    IMAGE_BYTES,
    make_image,
    rig,
    sha256,
    status_is,
)

pytestmark = pytest.mark.sim

CUT_AT = 40_000  # bytes of the first response before it breaks: not on a checkpoint


def stall_first():
    """The first response sends ``CUT_AT`` bytes, then nothing: the agent consumes them
    all before its low-speed limit ends the attempt, so the next request is a resume
    from exactly ``CUT_AT``. (A close or reset right after the data would let aiohttp
    discard what it had buffered but not yet handed over.)"""
    return Rule(Timeout(after_bytes=CUT_AT), requests=(1, 1))


def first(fault, *, n=1):
    """A rule applying ``fault`` to the first ``n`` requests only."""
    return Rule(fault, requests=(1, n))


def then(fault, *, at=2, n=1):
    """A rule applying ``fault`` to requests ``at`` .. ``at+n-1`` (the resumes)."""
    return Rule(fault, requests=(at, at + n - 1))


async def _ota(r, image, version=1):
    r.offer(version, image)
    result = await r.run(applied(version))
    assert result.reached, r.statuses()
    assert sha256(r.device.target.image) == sha256(image)
    return result


async def test_200_to_a_range_request_skips_the_prefix_instead_of_appending_the_body():
    """RFC 9110 14.2: a server may ignore Range and send 200 with the whole blob. The
    agent drops the bytes it already has; appending the whole body would splice."""
    image = make_image(20)
    async with rig() as r:
        r.server.add_rule(stall_first())
        r.server.add_rule(then(IgnoreRange()))
        await _ota(r, image)
        gets = r.recorder.gets()
    assert gets[1].range_start is not None and gets[1].range_start > 0
    assert r.kept_bytes() == IMAGE_BYTES  # nothing appended twice
    assert r.event(2).status == 200


async def test_wrong_content_range_start_is_refused_and_the_range_asked_again():
    """RFC 9110 14.4: Content-Range names the bytes sent; a 206 starting elsewhere than
    asked would misplace data, so its body is dropped and the request retried."""
    image = make_image(21)
    async with rig() as r:
        r.server.add_rule(stall_first())
        r.server.add_rule(then(BadContentRange(shift=512)))
        await _ota(r, image)
        gets = r.recorder.gets()
    assert gets[1].range_start == gets[2].range_start  # the lie was not kept
    assert r.kept_bytes() == IMAGE_BYTES


async def test_wrong_content_range_total_is_refused():
    """Azure "Get Blob": the total in Content-Range is the blob's size; one that differs
    from the instruction's ``size`` means another blob, never kept."""
    image = make_image(22)
    async with rig() as r:
        r.server.add_rule(stall_first())
        r.server.add_rule(then(BadContentRange(total=IMAGE_BYTES * 2)))
        await _ota(r, image)
    assert r.kept_bytes() == IMAGE_BYTES
    assert any("206 for a blob of" in e for s in r.downloads for e in s.events)


async def test_short_body_is_incomplete_and_the_rest_is_asked_for():
    """RFC 9112 6.3: a body cut short of Content-Length is incomplete: never taken as
    the image; the agent resumes from what it committed (at most what arrived)."""
    image = make_image(23)
    async with rig() as r:
        r.server.add_rule(first(ShortBody(missing=IMAGE_BYTES - CUT_AT)))
        await _ota(r, image)
        gets = r.recorder.gets()
    assert len(gets) == 2
    assert (gets[1].range_start or 0) <= CUT_AT
    assert r.kept_bytes() <= IMAGE_BYTES + CUT_AT


async def test_blob_replaced_mid_download_412_restarts_from_zero_with_the_new_blob():
    """Azure "Specifying conditional headers": If-Match on a replaced blob gives 412.
    The agent restarts from byte 0 (saying so: ``Downloaded`` falls back to 0) and the
    MCU ends with the new blob, never a splice of old prefix and new tail."""
    old, new = make_image(24), make_image(25)
    async with rig() as r:
        r.put(old)
        r.publish(1, new)  # the operator describes the new image; the old blob is served
        r.server.add_rule(stall_first())
        r.server.add_rule(then(EtagChange(content_b64=base64.b64encode(new).decode())))
        result = await r.run(applied(1))
        gets = r.recorder.gets()
    assert result.reached
    assert sha256(r.device.target.image) == sha256(new)
    assert r.event(2).status == 412
    assert gets[2].range_start is None  # restarted from 0
    downloaded = [s["Downloaded"] for s in r.reports("downloading")]
    first_progress = next(i for i, d in enumerate(downloaded) if d > 0)
    assert 0 in downloaded[first_progress:]  # the restart is reported, not hidden
    assert sum(s.restarts for s in r.downloads) == 1


async def test_etag_change_to_content_that_is_not_the_published_image_is_an_error():
    """reference-design.md weakness 2: a replaced blob is never spliced; if the new
    content is not what ``extFwInfo.sha256`` describes, verify fails and nothing is
    applied."""
    image = make_image(26)
    async with rig() as r:
        r.server.add_rule(stall_first())
        r.server.add_rule(then(EtagChange()))  # first byte flipped: same size, other hash
        r.offer(1, image)
        result = await r.run(settled(1))
    assert result.reached
    assert (r.reported["Status"], r.reported["Error"]) == ("error", "SHA256 verify fail")
    assert r.device.target.install_attempts == 0


async def test_416_is_never_taken_for_a_complete_download():
    """Azure "Get Blob": 416 InvalidRange. The agent's offset is always below the size
    it was told, so a 416 is a lie: retried, never verified as if complete."""
    image = make_image(27)
    async with rig() as r:
        r.server.add_rule(stall_first())
        r.server.add_rule(then(Status(416), n=2))
        await _ota(r, image)
    assert [s for s, _ in r.statuses()].count("error") == 0
    assert r.device.target.install_attempts == 1


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_error_status_with_retry_after_is_retried_no_sooner_than_asked(status):
    """RFC 9110 10.2.3 and Azure "ServerBusy": a 5xx or 429 with Retry-After is retried,
    after at least that many seconds (device time)."""
    image = make_image(28)
    async with rig() as r:
        r.server.add_rule(first(Status(status, retry_after_s=120)))
        await _ota(r, image)
        gets = r.recorder.gets()
    assert r.event(1).status == status
    assert gets[1].at - gets[0].at >= 120


async def test_connection_reset_mid_body_resumes_from_what_was_committed():
    """toxiproxy reset_peer: an RST mid-body; the resume starts at most where the data
    stopped, and the image is right."""
    image = make_image(29)
    async with rig() as r:
        r.server.add_rule(first(ResetPeer(after_bytes=CUT_AT)))
        await _ota(r, image)
        gets = r.recorder.gets()
    assert len(gets) == 2 and (gets[1].range_start or 0) <= CUT_AT
    assert r.kept_bytes() <= IMAGE_BYTES + CUT_AT


async def test_connection_closed_after_some_data_resumes_and_completes():
    """toxiproxy limit_data: an orderly close (FIN) short of Content-Length is a broken
    transfer, not the end of the image."""
    image = make_image(30)
    async with rig() as r:
        r.server.add_rule(first(LimitData(CUT_AT)))
        await _ota(r, image)
        gets = r.recorder.gets()
    assert len(gets) == 2 and (gets[1].range_start or 0) <= CUT_AT
    assert r.kept_bytes() <= IMAGE_BYTES + CUT_AT


async def test_stall_mid_body_is_detected_by_the_low_speed_limit():
    """Reference design: curl's low-speed limit (under 10 B/s for 30 s) aborts a stalled
    transfer; the agent's does the same on device time, then resumes."""
    image = make_image(31)
    async with rig() as r:
        r.server.add_rule(first(Timeout(after_bytes=CUT_AT)))
        await _ota(r, image)
        gets = r.recorder.gets()
    assert gets[1].at - gets[0].at >= 30
    assert gets[1].range_start == CUT_AT
    assert any("stalled" in e for s in r.downloads for e in s.events)


async def test_stall_before_the_response_headers_times_out_and_retries():
    """A server that accepts the request and never answers: the connect/response
    timeout ends the attempt (device time), and the next attempt succeeds."""
    image = make_image(32)
    async with rig() as r:
        r.server.add_rule(first(Timeout()))
        await _ota(r, image)
        gets = r.recorder.gets()
    assert gets[1].at - gets[0].at >= r.device.config.download.connect_timeout_s


async def test_stall_that_never_ends_reports_interrupted_network_timeout():
    """Reference design, "Flow": a curl timeout maps to ``interrupted`` +
    ``Network Timeout``; the agent never reports ``downloading`` forever."""
    async with rig() as r:
        r.server.add_rule(stall_first())
        r.server.add_rule(Rule(Timeout(after_bytes=0), requests=(2, None)))
        r.offer(1, make_image(33))
        result = await r.run(status_is("interrupted"))
    assert result.reached
    assert r.reported["Error"] == "Network Timeout"
    assert r.reported["Downloaded"] == CUT_AT


@pytest.mark.parametrize(
    "fault",
    [
        Latency(latency_s=0.01, jitter_s=0.005),
        Bandwidth(rate_bps=2 * 1024 * 1024),
        Slicer(average_size=700, size_variation=300, delay_s=0.0005),
    ],
    ids=["latency", "bandwidth", "slicer"],
)
async def test_slow_or_sliced_transfer_still_completes_in_one_request(fault):
    """toxiproxy latency, bandwidth and slicer: slow is not broken; one request does it.
    (Server delays are real time; the virtual clock compresses the agent's 30 s windows
    to 30 ms, so the delays here stay well below that.)"""
    image = make_image(34)
    async with rig() as r:
        r.server.add_rule(Rule(fault))
        await _ota(r, image)
    assert len(r.recorder.gets()) == 1


async def test_server_down_then_up_completes_after_backoff():
    """Issue 4: failures are retried with capped exponential backoff; a server that is
    down for three requests and then up gets the image applied. (aiohttp itself may
    repeat a GET once on a dropped connection, so the server's log is what counts.)"""
    image = make_image(35)
    async with rig() as r:
        r.server.add_rule(first(Down(), n=3))
        await _ota(r, image)
    outcomes = [r.event(n).outcome for n in (1, 2, 3, 4)]
    assert outcomes == ["dropped", "dropped", "dropped", "ok"]
    assert sum(s.retries for s in r.downloads) >= 1
