"""Get Blob as a downloader sees it: ranges, conditions, headers, names, robustness.

Sources: "Get Blob", "Specifying the range header for Blob service operations",
"Specifying conditional headers for Blob service operations" (Azure Storage REST
docs), RFC 9110 for what they defer to.
"""

import asyncio
import base64
import hashlib
import logging
import random

import aiohttp
import pytest
from yarl import URL

from sim.blobserver import BlobServer
from sim.faults import FAULTS
from sim.faults.plan import FaultPlan, Rule

pytestmark = pytest.mark.sim

IMAGE = random.Random(5).randbytes(64 * 1024)
BIG = random.Random(6).randbytes(5 * 1024 * 1024)


@pytest.fixture
async def server():
    async with BlobServer() as srv:
        srv.put_blob("firmware", "fw.bin", IMAGE)
        yield srv


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


def signed(server, name="fw.bin"):
    return server.blob_url("firmware", name) + "?" + server.make_sas("firmware", name)


async def get(session, url, **headers):
    async with session.get(url, headers={"x-ms-version": "2025-01-05", **headers}) as response:
        return response.status, response.headers, await response.read()


async def test_get_blob_carries_the_headers_a_downloader_needs(server, session):
    """Get Blob response headers: ETag (quoted), Last-Modified, Content-Length, x-ms-version,
    x-ms-blob-type, Accept-Ranges, x-ms-request-id, Date."""
    status, headers, body = await get(session, signed(server))
    assert (status, body) == (200, IMAGE)
    assert headers["ETag"].startswith('"') and headers["ETag"].endswith('"')
    assert headers["Content-Length"] == str(len(IMAGE))
    assert headers["x-ms-version"] == "2025-01-05"
    assert headers["x-ms-blob-type"] == "BlockBlob"
    assert headers["Accept-Ranges"] == "bytes"
    for name in ("Last-Modified", "x-ms-request-id", "Date"):
        assert headers[name]


async def test_open_ended_range_answers_206_to_the_end(server, session):
    """bytes=N- (version 2011-08-18 and later): 206, Content-Range bytes N-(len-1)/len."""
    status, headers, body = await get(session, signed(server), Range="bytes=1000-")
    assert (status, body) == (206, IMAGE[1000:])
    assert headers["Content-Range"] == f"bytes 1000-{len(IMAGE) - 1}/{len(IMAGE)}"


async def test_x_ms_range_wins_over_range(server, session):
    """ "If x-ms-range is specified, the service uses it; otherwise Range"."""
    headers = {"Range": "bytes=0-9", "x-ms-range": "bytes=10-19"}
    status, _, body = await get(session, signed(server), **headers)
    assert (status, body) == (206, IMAGE[10:20])


async def test_range_end_past_the_blob_is_clipped(server, session):
    status, headers, body = await get(session, signed(server), Range="bytes=65000-99999999")
    assert (status, body) == (206, IMAGE[65000:])
    assert headers["Content-Range"] == f"bytes 65000-{len(IMAGE) - 1}/{len(IMAGE)}"


async def test_huge_range_is_served_as_the_whole_blob(server, session):
    status, _, body = await get(session, signed(server), Range="bytes=0-9999999999999999999")
    assert (status, body) == (206, IMAGE)


@pytest.mark.parametrize("start", [len(IMAGE), len(IMAGE) + 1, 10**15])
async def test_range_starting_at_or_past_the_end_answers_416(server, session, start):
    """416 InvalidRange with Content-Range bytes */LEN (Azure; Azurite differs at start==len)."""
    status, headers, body = await get(session, signed(server), Range=f"bytes={start}-")
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(IMAGE)}"
    assert b"<Code>InvalidRange</Code>" in body


@pytest.mark.parametrize(
    "value", ["bytes=abc", "bytes=-100", "bytes=5-1", "bytes=0-1,4-5", "items=0-1", "bytes=", ""]
)
async def test_malformed_range_answers_400_naming_the_header(server, session, value):
    """Only bytes=a-b and bytes=a- are accepted; anything else is InvalidHeaderValue."""
    status, headers, body = await get(session, signed(server), **{"x-ms-range": value})
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidHeaderValue")
    assert b"<HeaderName>x-ms-range</HeaderName>" in body


async def test_if_match_with_another_etag_answers_412(server, session):
    status, headers, _ = await get(session, signed(server), **{"If-Match": '"0x8DOLD"'})
    assert (status, headers["x-ms-error-code"]) == (412, "ConditionNotMet")


async def test_if_match_with_the_current_etag_serves_the_range(server, session):
    _, headers, _ = await get(session, signed(server))
    status, _, body = await get(
        session, signed(server), Range="bytes=5-", **{"If-Match": headers["ETag"]}
    )
    assert (status, body) == (206, IMAGE[5:])


async def test_if_none_match_with_the_current_etag_answers_304(server, session):
    """Azure answers 304 Not Modified (not 412) to a failed If-None-Match on a read."""
    _, headers, _ = await get(session, signed(server))
    status, _, body = await get(session, signed(server), **{"If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")


async def test_if_unmodified_since_before_the_write_answers_412(server, session):
    status, _, _ = await get(
        session, signed(server), **{"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert status == 412


async def test_if_modified_since_after_the_write_answers_304(server, session):
    status, _, _ = await get(
        session, signed(server), **{"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}
    )
    assert status == 304


async def test_range_content_md5_is_the_md5_of_the_range(server, session):
    """x-ms-range-get-content-md5: true with a range up to 4 MiB returns its Content-MD5."""
    status, headers, body = await get(
        session, signed(server), Range="bytes=100-4195", **{"x-ms-range-get-content-md5": "true"}
    )
    assert status == 206
    assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(body).digest()).decode()


async def test_range_content_md5_above_4_mib_answers_400(server, session):
    server.put_blob("firmware", "big.bin", BIG)
    status, _, _ = await get(
        session,
        signed(server, "big.bin"),
        Range="bytes=0-",
        **{"x-ms-range-get-content-md5": "true"},
    )
    assert status == 400


async def test_range_content_md5_without_a_range_answers_400(server, session):
    status, _, _ = await get(session, signed(server), **{"x-ms-range-get-content-md5": "true"})
    assert status == 400


async def test_missing_blob_and_container_answer_404_with_their_codes(server, session):
    url = server.blob_url("firmware", "nope.bin") + "?" + server.make_sas("firmware", "nope.bin")
    status, headers, _ = await get(session, url)
    assert (status, headers["x-ms-error-code"]) == (404, "BlobNotFound")
    url = server.blob_url("nothere", "x.bin") + "?" + server.make_sas("nothere", "x.bin")
    status, headers, _ = await get(session, url)
    assert (status, headers["x-ms-error-code"]) == (404, "ContainerNotFound")


async def test_anonymous_read_of_a_private_blob_answers_404(server, session):
    """Azure hides private resources from anonymous callers (ResourceNotFound)."""
    status, headers, _ = await get(session, server.blob_url("firmware", "fw.bin"))
    assert (status, headers["x-ms-error-code"]) == (404, "ResourceNotFound")


@pytest.mark.parametrize("name", ["..%2Fescape", "%2E%2E/x", "a/../../x", "a/./b"])
async def test_blob_names_that_escape_the_container_are_refused(server, session, name):
    """Dot segments would leave the container (and the --root directory): 400."""
    sas = server.make_sas("firmware", name)
    url = URL(f"{server.url}/firmware/{name}?{sas}", encoded=True)
    status, headers, _ = await get(session, url)
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidResourceName")


async def test_put_cannot_write_outside_the_root_directory(tmp_path, session):
    root = tmp_path / "root"
    root.mkdir()
    async with BlobServer(root=root) as srv:
        srv.put_blob("firmware", "fw.bin", b"x")
        sas = srv.make_sas("firmware", "../../pwned", permission="w")
        url = URL(f"{srv.url}/firmware/..%2F..%2Fpwned?{sas}", encoded=True)
        async with session.put(url, data=b"evil", headers={"x-ms-blob-type": "BlockBlob"}) as r:
            assert r.status == 400
    assert not (tmp_path / "pwned").exists()


async def test_directory_store_gives_a_new_etag_when_the_file_is_replaced(tmp_path, session):
    """--root: a blob replaced between two requests (a new upload) gets a new ETag."""
    async with BlobServer(root=tmp_path) as srv:
        srv.put_blob("firmware", "fw.bin", b"version 1")
        _, first, _ = await get(session, signed(srv))
        (tmp_path / "firmware" / "fw.bin.new").write_bytes(b"version 2")
        (tmp_path / "firmware" / "fw.bin.new").replace(tmp_path / "firmware" / "fw.bin")
        status, second, body = await get(session, signed(srv))
    assert (status, body) == (200, b"version 2")
    assert first["ETag"] != second["ETag"]


async def test_twenty_concurrent_downloads_all_complete(server, session):
    server.put_blob("firmware", "big.bin", BIG)
    url = signed(server, "big.bin")
    results = await asyncio.gather(*(get(session, url) for _ in range(20)))
    assert all(status == 200 and body == BIG for status, _, body in results)


async def test_server_keeps_serving_after_a_client_disconnects_mid_body(server, session):
    server.put_blob("firmware", "big.bin", BIG)
    async with session.get(signed(server, "big.bin")) as response:
        await response.content.readexactly(64 * 1024)
        response.close()  # drop the connection with most of the body unsent
    status, _, body = await get(session, signed(server))
    assert (status, body) == (200, IMAGE)


async def test_logs_and_events_never_contain_the_sas_signature(server, session, caplog):
    """House rule: never log secrets; sig is redacted in the access and debug logs."""
    caplog.set_level(logging.DEBUG)
    server.add_rule(Rule(fault=FAULTS["status"](status=503), id="busy", requests=(2, 2)))
    sas = server.make_sas("firmware", "fw.bin")
    sig = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    for _ in range(2):
        await get(session, server.blob_url("firmware", "fw.bin") + "?" + sas)
    await get(session, server.blob_url("firmware", "fw.bin") + "?" + sas.replace("sig=", "sig=x"))
    assert "sig=REDACTED" in caplog.text
    assert sig not in caplog.text and sig.replace("%2B", "+") not in caplog.text
    assert sig not in repr(server.events)


async def test_control_api_adds_lists_and_deletes_rules(server, session):
    """toxiproxy-style control under /_faults: POST a rule, GET the plan, DELETE by id."""
    rule = {"id": "busy", "fault": "status", "params": {"status": 503}, "requests": [1, None]}
    async with session.post(server.control_url, json=rule) as response:
        assert response.status == 201
        assert (await response.json())["id"] == "busy"
    assert (await get(session, signed(server)))[0] == 503
    async with session.get(server.control_url) as response:
        assert [r["id"] for r in (await response.json())["rules"]] == ["busy"]
    async with session.delete(server.control_url + "/busy") as response:
        assert response.status == 204
    assert (await get(session, signed(server)))[0] == 200
    async with session.delete(server.control_url + "/busy") as response:
        assert response.status == 404


async def test_control_api_reset_clears_every_rule(server, session):
    server.plan = FaultPlan(rules=(Rule(fault=FAULTS["down"]()),))
    async with session.post(server.control_url + "/reset") as response:
        assert response.status == 204
    assert server.plan == FaultPlan()
    assert (await get(session, signed(server)))[0] == 200


async def test_control_api_serves_the_event_log(server, session):
    await get(session, signed(server), Range="bytes=0-9")
    async with session.get(server.control_url + "/events") as response:
        events = await response.json()
    assert events == [
        {
            "request": 1,
            "method": "GET",
            "blob": "firmware/fw.bin",
            "range": "bytes=0-9",
            "status": 206,
            "bytes_sent": 10,
            "faults": [],
            "outcome": "ok",
        }
    ]


async def test_control_api_refuses_a_bad_rule_naming_the_problem(server, session):
    async with session.post(server.control_url, json={"fault": "meteor"}) as response:
        assert response.status == 400
        assert "unknown fault 'meteor'" in (await response.json())["error"]
    assert server.plan == FaultPlan()
