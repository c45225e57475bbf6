"""Each fault of the blob server, observed from a real client over loopback HTTP.

Issue 3: "each fault observed from a real HTTP client (aiohttp's): the bytes
received, the status, the headers, the connection reset or stall, exactly as
planned; determinism from the seed". Raw sockets are used where aiohttp would
hide the difference between a clean close (FIN) and a reset (RST).
"""

import asyncio
import contextlib
import random

import aiohttp
import pytest

from sim.cloud.blobserver import BlobServer
from sim.cloud.faults import FAULTS
from sim.cloud.faults.plan import FaultPlan, Rule

pytestmark = pytest.mark.sim

IMAGE = random.Random(3).randbytes(256 * 1024)
CONTAINER, NAME = "firmware", "fw.bin"


def plan_of(name, requests=(1, None), **params):
    return FaultPlan(rules=(Rule(fault=FAULTS[name](**params), id="f", requests=requests),))


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


async def serve(plan, seed=0):
    server = BlobServer(plan=plan, seed=seed)
    await server.start()
    server.put_blob(CONTAINER, NAME, IMAGE)
    return server


@pytest.fixture
async def make_server():
    started = []

    async def make(plan, seed=0):
        server = await serve(plan, seed)
        started.append(server)
        return server

    yield make
    for server in started:
        await server.close()


def url_of(server):
    return server.blob_url(CONTAINER, NAME) + "?" + server.make_sas(CONTAINER, NAME)


async def fetch(session, server, headers=None):
    """GET the blob; returns (status, headers, bytes received, chunks, error class name)."""
    body, chunks, error = bytearray(), 0, None
    async with session.get(url_of(server), headers=headers or {}) as response:
        try:
            async for chunk in response.content.iter_any():
                body += chunk
                chunks += 1
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            error = type(exc).__name__
        return response.status, response.headers, bytes(body), chunks, error


async def raw_get(server, headers="", read_timeout=2.0):
    """One GET over a raw socket: (bytes received, how it ended: eof | reset | silent)."""
    path = url_of(server).split(f":{server.port}", 1)[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-ms-version: 2025-01-05\r\n"
        f"{headers}\r\n".encode()
    )
    received, ending = bytearray(), "eof"
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), read_timeout)
            if not chunk:
                break
            received += chunk
    except ConnectionResetError:
        ending = "reset"
    except TimeoutError:
        ending = "silent"
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return bytes(received), ending


def split_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


async def until(condition, limit_s=5.0):
    """Wait (bounded) for the server to finish handling: no assertion on how long."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.005)
    return condition()


async def test_noop_serves_the_blob_and_is_recorded(session, make_server):
    """The reference fault changes nothing but appears in the event log."""
    server = await make_server(plan_of("noop"))
    status, _, body, _, error = await fetch(session, server)
    assert (status, body, error) == (200, IMAGE, None)
    assert server.events[-1].faults == ("f:noop",)


async def test_latency_delays_the_status_line_past_a_client_timeout(session, make_server):
    """toxiproxy latency: nothing arrives before the delay; a short read timeout fires."""
    server = await make_server(plan_of("latency", latency_s=0.5))
    with pytest.raises(asyncio.TimeoutError):
        await session.get(url_of(server), timeout=aiohttp.ClientTimeout(sock_read=0.05))
    assert await until(lambda: len(server.events) == 1)
    assert server.events[0].faults == ("f:latency",)


async def test_bandwidth_paces_the_body_in_many_small_writes(session, make_server):
    """toxiproxy bandwidth: the body arrives whole but in rate-sized pieces."""
    server = await make_server(plan_of("bandwidth", rate_bps=400_000))
    status, _, body, chunks, _ = await fetch(session, server, {"Range": "bytes=0-39999"})
    assert (status, body) == (206, IMAGE[:40_000])
    assert chunks >= 5  # 4000-byte writes 10 ms apart
    assert server.events[-1].faults == ("f:bandwidth",)


async def test_slicer_splits_the_body_into_delayed_writes(session, make_server):
    """toxiproxy slicer: average_size-byte writes with a delay between them."""
    server = await make_server(
        plan_of("slicer", average_size=1000, size_variation=200, delay_s=0.002)
    )
    status, _, body, chunks, _ = await fetch(session, server, {"Range": "bytes=0-9999"})
    assert (status, body) == (206, IMAGE[:10_000])
    assert chunks >= 6


async def test_limit_data_closes_cleanly_after_n_body_bytes(make_server):
    """limit_data: exactly N body bytes, then FIN, though Content-Length promised more."""
    server = await make_server(plan_of("limit_data", bytes=1000))
    raw, ending = await raw_get(server, "Range: bytes=100-\r\n")
    status, headers, body = split_response(raw)
    assert (status, ending) == (206, "eof")
    assert headers["Content-Length"] == str(len(IMAGE) - 100)
    assert body == IMAGE[100:1100]
    assert server.events[-1].bytes_sent == 1000
    assert server.events[-1].outcome == "closed"


async def test_limit_data_is_a_payload_error_for_aiohttp(session, make_server):
    """A resuming downloader sees the cut as an incomplete body, with the bytes before it."""
    server = await make_server(plan_of("limit_data", bytes=4096))
    status, _, body, _, error = await fetch(session, server)
    assert (status, body, error) == (200, IMAGE[:4096], "ClientPayloadError")


async def test_reset_peer_sends_rst_after_n_body_bytes(make_server):
    """reset_peer: SO_LINGER 0 then close; the client's read fails with ECONNRESET."""
    server = await make_server(plan_of("reset_peer", after_bytes=2000))
    raw, ending = await raw_get(server)
    status, _, body = split_response(raw)
    assert (status, ending, body) == (200, "reset", IMAGE[:2000])
    assert server.events[-1].outcome == "reset"


async def test_timeout_before_headers_holds_the_connection_silent(make_server):
    """timeout (0 = until the client leaves): not one byte, the connection stays open."""
    server = await make_server(plan_of("timeout", timeout_s=0))
    raw, ending = await raw_get(server, read_timeout=0.1)
    assert (raw, ending) == (b"", "silent")
    assert await until(lambda: len(server.events) == 1)  # the client left: the stall ends
    assert (server.events[0].status, server.events[0].outcome) == (None, "stalled")


async def test_timeout_for_a_time_then_closes_without_a_response(make_server):
    """timeout{timeout}: after the time the server closes having sent nothing."""
    server = await make_server(plan_of("timeout", timeout_s=0.02))
    raw, ending = await raw_get(server)
    assert (raw, ending) == (b"", "eof")


async def test_timeout_after_bytes_stalls_mid_body(make_server):
    """A stall after the headers and N body bytes: what a read timeout must catch."""
    server = await make_server(plan_of("timeout", timeout_s=0, after_bytes=3000))
    raw, ending = await raw_get(server, read_timeout=0.1)
    status, _, body = split_response(raw)
    assert (status, ending, body) == (200, "silent", IMAGE[:3000])


async def test_slow_close_sends_the_whole_response_then_closes(make_server):
    """slow_close: a complete response marked Connection: close, then FIN after the delay."""
    server = await make_server(plan_of("slow_close", delay_s=0.02))
    raw, ending = await raw_get(server, "Range: bytes=0-99\r\n")
    status, headers, body = split_response(raw)
    assert (status, ending, body) == (206, "eof", IMAGE[:100])
    assert headers["Connection"] == "close"
    assert server.events[-1].faults == ("f:slow_close",)


async def test_down_drops_the_connection_without_a_byte(session, make_server):
    """down: the client gets no response at all."""
    server = await make_server(plan_of("down"))
    raw, ending = await raw_get(server)
    assert raw == b"" and ending in ("reset", "eof")
    with pytest.raises(aiohttp.ClientConnectionError):
        await fetch(session, server)
    assert server.events[-1].outcome == "dropped"


async def test_status_503_carries_retry_after_and_azure_error_body(session, make_server):
    """503 ServerBusy with Retry-After: how Azure Storage throttles."""
    server = await make_server(plan_of("status", status=503, retry_after_s=7))
    status, headers, body, _, _ = await fetch(session, server)
    assert status == 503
    assert headers["Retry-After"] == "7"
    assert headers["x-ms-error-code"] == "ServerBusy"
    assert b"<Code>ServerBusy</Code>" in body


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (500, "InternalError"),
        (403, "AuthenticationFailed"),
        (404, "BlobNotFound"),
        (412, "ConditionNotMet"),
        (429, "TooManyRequests"),
    ],
)
async def test_status_answers_the_planned_error(session, make_server, code, error):
    """status: the planned code with Azure's error code for it, instead of the blob."""
    server = await make_server(plan_of("status", status=code))
    status, headers, body, _, _ = await fetch(session, server)
    assert (status, headers["x-ms-error-code"]) == (code, error)
    assert f"<Code>{error}</Code>".encode() in body


async def test_status_only_on_the_selected_requests(session, make_server):
    """A rule's request window: request 2 fails, 1 and 3 succeed."""
    server = await make_server(plan_of("status", requests=(2, 2), status=500))
    statuses = [(await fetch(session, server))[0] for _ in range(3)]
    assert statuses == [200, 500, 200]


async def test_ignore_range_answers_200_with_the_whole_blob(session, make_server):
    """ignore_range: a resume asked from 1000 gets the blob from byte 0."""
    server = await make_server(plan_of("ignore_range"))
    status, headers, body, _, _ = await fetch(session, server, {"Range": "bytes=1000-"})
    assert (status, body) == (200, IMAGE)
    assert "Content-Range" not in headers


async def test_bad_content_range_shifts_the_announced_start(session, make_server):
    """bad_content_range: the header lies, the body is the bytes asked for."""
    server = await make_server(plan_of("bad_content_range", shift=512))
    status, headers, body, _, _ = await fetch(session, server, {"Range": "bytes=1000-1999"})
    assert status == 206
    assert headers["Content-Range"] == f"bytes 1512-2511/{len(IMAGE)}"
    assert body == IMAGE[1000:2000]


async def test_bad_content_range_announces_a_wrong_total(session, make_server):
    server = await make_server(plan_of("bad_content_range", total=7))
    _, headers, _, _, _ = await fetch(session, server, {"Range": "bytes=0-99"})
    assert headers["Content-Range"] == "bytes 0-99/7"


async def test_short_body_sends_less_than_content_length_then_closes(make_server):
    """short_body: Content-Length is the truth, the last bytes never come, then FIN."""
    server = await make_server(plan_of("short_body", missing=100))
    raw, ending = await raw_get(server, "Range: bytes=0-999\r\n")
    status, headers, body = split_response(raw)
    assert (status, ending, headers["Content-Length"]) == (206, "eof", "1000")
    assert body == IMAGE[:900]


async def test_corrupt_flips_the_bytes_at_the_given_blob_offsets(session, make_server):
    """corrupt: only the planned blob offsets differ, even inside a range."""
    server = await make_server(plan_of("corrupt", offsets=[5, 1000, 5000]))
    status, _, body, _, _ = await fetch(session, server, {"Range": "bytes=900-1999"})
    assert status == 206
    differing = [
        900 + i for i, (a, b) in enumerate(zip(body, IMAGE[900:2000], strict=True)) if a != b
    ]
    assert differing == [1000]
    assert body[100] == IMAGE[1000] ^ 0xFF


async def test_etag_change_replaces_the_blob_from_request_n(session, make_server):
    """etag_change: the resume with If-Match on the first ETag answers 412 ConditionNotMet."""
    server = await make_server(plan_of("etag_change", requests=(2, 2)))
    status, headers, _, _, _ = await fetch(session, server, {"Range": "bytes=0-99"})
    first_etag = headers["ETag"]
    status, headers, body, _, _ = await fetch(
        session, server, {"Range": "bytes=100-", "If-Match": first_etag}
    )
    assert status == 412
    assert headers["x-ms-error-code"] == "ConditionNotMet"
    status, headers, body, _, _ = await fetch(session, server)
    assert status == 200 and headers["ETag"] != first_etag
    assert len(body) == len(IMAGE) and body != IMAGE


async def test_etag_change_replaces_the_blob_even_when_that_request_gets_an_error(
    session, make_server
):
    """etag_change is the operator's upload: it lands when the selected request arrives,
    even if a status fault answers that request with an error."""
    plan = FaultPlan(
        rules=(
            Rule(fault=FAULTS["etag_change"](), id="upload", requests=(1, 1)),
            Rule(fault=FAULTS["status"](status=500), id="busy", requests=(1, 1)),
        )
    )
    server = await make_server(plan)
    status, _, _, _, _ = await fetch(session, server)
    assert status == 500
    status, _, body, _, _ = await fetch(session, server)
    assert status == 200 and len(body) == len(IMAGE) and body != IMAGE


async def test_faults_compose_on_one_request(make_server):
    """Rules combine: a corrupted byte inside a body that is then cut short by RST."""
    plan = FaultPlan(
        rules=(
            Rule(fault=FAULTS["corrupt"](offsets=(10,)), id="flip"),
            Rule(fault=FAULTS["reset_peer"](after_bytes=50), id="rst"),
        )
    )
    server = await make_server(plan)
    raw, ending = await raw_get(server)
    _, _, body = split_response(raw)
    assert ending == "reset" and len(body) == 50 and body[10] == IMAGE[10] ^ 0xFF
    assert server.events[-1].faults == ("flip:corrupt", "rst:reset_peer")


async def _run_sequence(session, make_server, seed):
    plan = FaultPlan(
        rules=(
            Rule(fault=FAULTS["limit_data"](bytes=777), id="cut", probability=0.4),
            Rule(fault=FAULTS["status"](status=503), id="busy", probability=0.2),
        )
    )
    server = await make_server(plan, seed)
    seen = []
    for _ in range(16):
        status, _, body, _, _ = await fetch(session, server, {"Range": "bytes=0-9999"})
        seen.append((status, len(body)))
    return seen, [e.faults for e in server.events]


async def test_same_plan_and_seed_give_the_same_faults(session, make_server):
    """Determinism (issue 3): the same plan and seed on the same requests replay exactly."""
    first = await _run_sequence(session, make_server, seed=5)
    second = await _run_sequence(session, make_server, seed=5)
    other = await _run_sequence(session, make_server, seed=6)
    assert first == second
    assert first != other
    assert {n for _, n in first[0]} >= {777, 10_000}


async def test_reset_peer_waits_its_delay_before_the_rst(make_server):
    """toxiproxy reset_peer{timeout}: the RST comes after the delay, so a reader that
    gives up sooner sees the bytes and then silence, not a reset."""
    server = await make_server(plan_of("reset_peer", after_bytes=2000, delay_s=30))
    raw, ending = await raw_get(server, read_timeout=0.3)
    status, _, body = split_response(raw)
    assert (status, ending, body) == (200, "silent", IMAGE[:2000])


async def test_slow_close_keeps_the_connection_open_after_the_body(make_server):
    """toxiproxy slow_close{delay}: the whole response arrives, then the socket stays
    open for the delay; a reader that waits less sees silence, not the close."""
    server = await make_server(plan_of("slow_close", delay_s=30))
    raw, ending = await raw_get(server, "Range: bytes=0-99\r\n", read_timeout=0.3)
    status, _, body = split_response(raw)
    assert (status, ending, body) == (206, "silent", IMAGE[:100])


async def test_status_answers_the_planned_error_code(session, make_server):
    """status{code}: the planned Azure error code replaces the default for the status."""
    server = await make_server(plan_of("status", status=403, code="AuthorizationFailure"))
    status, headers, body, _, _ = await fetch(session, server)
    assert (status, headers["x-ms-error-code"]) == (403, "AuthorizationFailure")
    assert b"<Code>AuthorizationFailure</Code>" in body


async def test_corrupt_xors_the_byte_with_its_mask(session, make_server):
    """corrupt{mask}: the served byte is the blob byte XOR mask (a single bit flip here)."""
    server = await make_server(plan_of("corrupt", offsets=[7], mask=0x01))
    _, _, body, _, _ = await fetch(session, server, {"Range": "bytes=0-15"})
    assert body == IMAGE[:7] + bytes([IMAGE[7] ^ 0x01]) + IMAGE[8:16]


async def test_etag_change_serves_the_planned_new_content(session, make_server):
    """etag_change{content_b64}: from the selected request on, the blob is that content."""
    server = await make_server(plan_of("etag_change", requests=(2, 2), content_b64="djI="))
    _, first, _, _, _ = await fetch(session, server)
    status, headers, body, _, _ = await fetch(session, server)
    assert (status, body) == (200, b"v2")
    assert headers["ETag"] != first["ETag"]


async def test_offset_window_selects_responses_that_carry_those_blob_bytes(session, make_server):
    """A rule's offsets [lo, hi) pick a response whose served blob range overlaps it: a
    range before the window is untouched; one inside it, and a whole-blob read, are cut."""
    rule = Rule(fault=FAULTS["limit_data"](bytes=10), id="f", offsets=(1000, 2000))
    server = await make_server(FaultPlan(rules=(rule,)))
    before = await fetch(session, server, {"Range": "bytes=0-99"})
    inside = await fetch(session, server, {"Range": "bytes=1500-1599"})
    whole = await fetch(session, server)
    assert (before[2], inside[2], whole[2]) == (IMAGE[:100], IMAGE[1500:1510], IMAGE[:10])
    assert [e.faults for e in server.events] == [(), ("f:limit_data",), ("f:limit_data",)]
