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
from urllib.parse import unquote

import aiohttp
import pytest
from yarl import URL

from sim.cloud.blobserver import BlobServer
from sim.cloud.blobserver.sas import shared_key_string_to_sign, sign
from sim.cloud.dev_account import DEV_ACCOUNT, DEV_KEY
from sim.cloud.faults import FAULTS
from sim.cloud.faults.plan import FaultPlan, Rule

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
    # compare decoded: the client may send '/' and '=' of the base64 sig unencoded
    assert unquote(sig) not in unquote(caplog.text)
    assert unquote(sig) not in unquote(repr(server.events))


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
        assert "rule.fault: 'meteor' is not one of" in (await response.json())["error"]
    assert server.plan == FaultPlan()


def signed_for(server, name="fw.bin", permission="r"):
    return server.blob_url("firmware", name) + "?" + server.make_sas("firmware", name, permission)


async def put(session, url, data, **headers):
    headers = {"x-ms-version": "2025-01-05", "x-ms-blob-type": "BlockBlob", **headers}
    async with session.put(url, data=data, headers=headers) as response:
        return response.status, response.headers, await response.read()


async def test_response_x_ms_version_is_the_version_the_request_asked_for(server, session):
    """Versioning for the Azure Storage services: x-ms-version in the response is the
    version used to run the request, the one the client named."""
    status, headers, _ = await get(session, signed(server), **{"x-ms-version": "2021-08-06"})
    assert (status, headers["x-ms-version"]) == (200, "2021-08-06")


async def test_if_unmodified_since_equal_to_last_modified_serves_the_blob(server, session):
    """RFC 9110 §13.1.4: If-Unmodified-Since fails only when the resource was modified
    after the date; a resume that sends back Last-Modified must be served."""
    _, headers, _ = await get(session, signed(server))
    since = {"If-Unmodified-Since": headers["Last-Modified"]}
    status, _, body = await get(session, signed(server), Range="bytes=10-", **since)
    assert (status, body) == (206, IMAGE[10:])


async def test_if_modified_since_equal_to_last_modified_answers_304(server, session):
    """RFC 9110 §13.1.3: If-Modified-Since is false when the last modification is earlier
    than or equal to the date; Azure answers 304 on reads."""
    _, headers, _ = await get(session, signed(server))
    status, _, _ = await get(
        session, signed(server), **{"If-Modified-Since": headers["Last-Modified"]}
    )
    assert status == 304


async def test_if_match_present_means_if_unmodified_since_is_not_evaluated(server, session):
    """RFC 9110 §13.2.2 step 2: If-Unmodified-Since is evaluated only without If-Match."""
    _, headers, _ = await get(session, signed(server))
    conditions = {
        "If-Match": headers["ETag"],
        "If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT",
    }
    status, _, body = await get(session, signed(server), **conditions)
    assert (status, body) == (200, IMAGE)


async def test_an_invalid_if_unmodified_since_date_is_ignored(server, session):
    """RFC 9110 §13.1.4: a recipient must ignore If-Unmodified-Since with an invalid date."""
    status, _, body = await get(session, signed(server), **{"If-Unmodified-Since": "yesterday"})
    assert (status, body) == (200, IMAGE)


async def test_put_blob_with_if_match_on_an_old_etag_answers_412(server, session):
    """Put Blob supports conditional headers; a failed If-Match on a write is 412
    ConditionNotMet and the blob is unchanged."""
    status, headers, _ = await put(
        session, signed_for(server, permission="w"), b"new", **{"If-Match": '"0x8DOLD"'}
    )
    assert (status, headers["x-ms-error-code"]) == (412, "ConditionNotMet")
    assert (await get(session, signed(server)))[2] == IMAGE


async def test_put_blob_with_if_none_match_on_the_current_etag_answers_412(server, session):
    """Specifying conditional headers: a failed If-None-Match answers 304 only on reads;
    on a write it is 412 ConditionNotMet."""
    _, headers, _ = await get(session, signed(server))
    status, _, _ = await put(
        session, signed_for(server, permission="w"), b"new", **{"If-None-Match": headers["ETag"]}
    )
    assert status == 412


async def test_put_blob_with_if_none_match_star_on_an_existing_blob_answers_409(server, session):
    """Put Blob: If-None-Match: * writes only if the blob does not exist; otherwise 409
    BlobAlreadyExists."""
    status, headers, _ = await put(
        session, signed_for(server, permission="w"), b"new", **{"If-None-Match": "*"}
    )
    assert (status, headers["x-ms-error-code"]) == (409, "BlobAlreadyExists")


async def test_delete_blob_with_if_match_on_an_old_etag_answers_412(server, session):
    """Delete Blob supports conditional headers: a failed If-Match keeps the blob."""
    url = signed_for(server, permission="d")
    async with session.delete(url, headers={"If-Match": '"0x8DOLD"'}) as response:
        assert response.status == 412
    assert (await get(session, signed(server)))[0] == 200


async def test_range_content_md5_false_asks_for_nothing(server, session):
    """Get Blob: only x-ms-range-get-content-md5: true asks for a range MD5; false is
    the default and a whole-blob read is served."""
    status, _, body = await get(session, signed(server), **{"x-ms-range-get-content-md5": "false"})
    assert (status, body) == (200, IMAGE)


async def test_put_blob_without_x_ms_blob_type_answers_400(server, session):
    """Put Blob: x-ms-blob-type is required (BlockBlob here)."""
    url = signed_for(server, "new.bin", permission="cw")
    headers = {"x-ms-version": "2025-01-05"}
    async with session.put(url, data=b"x", headers=headers) as response:
        assert (response.status, response.headers["x-ms-error-code"]) == (400, "InvalidHeaderValue")


async def test_put_blob_with_a_wrong_content_md5_answers_400(server, session):
    """Put Blob: a Content-MD5 that does not match the body answers 400 Md5Mismatch."""
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    status, headers, _ = await put(
        session, signed_for(server, "new.bin", permission="cw"), b"x", **{"Content-MD5": wrong}
    )
    assert (status, headers["x-ms-error-code"]) == (400, "Md5Mismatch")


@pytest.mark.parametrize("name", ["%2Fetc%2Fpasswd", "..%5Cescape", "a%5C..%5C..%5Cx"])
async def test_absolute_and_backslash_blob_names_are_refused(server, session, name):
    """Names that are absolute or climb with Windows separators would leave the --root
    directory on some hosts: 400 InvalidResourceName."""
    url = URL(f"{server.url}/firmware/{name}?{server.make_sas('firmware', 'x')}", encoded=True)
    status, headers, _ = await get(session, url)
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidResourceName")


async def test_blob_names_longer_than_1024_characters_are_refused(server, session):
    """Naming and referencing containers, blobs and metadata: at most 1,024 characters."""
    name = "a" * 1025
    status, headers, _ = await get(session, signed(server, name))
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidResourceName")


async def test_put_into_the_root_directory_writes_the_file(tmp_path, session):
    """--root: a blob uploaded over HTTP is the file root/container/name."""
    async with BlobServer(root=tmp_path) as srv:
        srv.put_blob("firmware", "old.bin", b"x")
        status, _, _ = await put(session, signed_for(srv, "fw.bin", permission="cw"), IMAGE)
    assert status == 201
    assert (tmp_path / "firmware" / "fw.bin").read_bytes() == IMAGE


async def test_delete_from_the_root_directory_removes_the_file(tmp_path, session):
    """--root: Delete Blob removes the file."""
    async with BlobServer(root=tmp_path) as srv:
        srv.put_blob("firmware", "fw.bin", IMAGE)
        async with session.delete(signed_for(srv, permission="d")) as response:
            assert response.status == 202
    assert not (tmp_path / "firmware" / "fw.bin").exists()


async def test_an_error_body_never_contains_the_sas_signature(server, session):
    """House rule: never leak secrets; a refused SAS is explained without its sig."""
    sas = server.make_sas("firmware", "fw.bin")
    sig = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    forged = sas.replace("sp=r", "sp=rw")
    status, _, body = await get(session, server.blob_url("firmware", "fw.bin") + "?" + forged)
    assert status == 403
    assert b"<Code>AuthenticationFailed</Code>" in body
    assert unquote(sig) not in unquote(body.decode())


async def test_the_event_log_records_x_ms_range_as_asked(server, session):
    """The event log's range is the header the server used: x-ms-range over Range."""
    await get(session, signed(server), Range="bytes=0-9", **{"x-ms-range": "bytes=20-29"})
    assert (server.events[-1].range, server.events[-1].bytes_sent) == ("bytes=20-29", 10)


async def test_the_event_log_records_method_blob_and_status_of_every_request(server, session):
    """One event per request: a write, a refused read and a delete, each as it happened."""
    await put(session, signed_for(server, "new.bin", permission="cw"), b"abc")
    await get(session, signed(server, "nope.bin"))
    async with session.delete(signed_for(server, "new.bin", permission="d")):
        pass
    seen = [(e.request, e.method, e.blob, e.status) for e in server.events]
    assert seen == [
        (1, "PUT", "firmware/new.bin", 201),
        (2, "GET", "firmware/nope.bin", 404),
        (3, "DELETE", "firmware/new.bin", 202),
    ]


async def test_the_event_log_records_a_client_that_left_mid_body(server, session):
    """A client that disconnects mid-body is recorded as client-gone, not as ok (the body
    is paced at 1 MB/s so it cannot all sit in socket buffers before the client leaves)."""
    server.put_blob("firmware", "big.bin", BIG)
    server.add_rule(Rule(fault=FAULTS["bandwidth"](rate_bps=1_000_000), id="slow"))
    async with session.get(signed(server, "big.bin")) as response:
        await response.content.readexactly(64 * 1024)
        response.close()
    for _ in range(500):
        if server.events:
            break
        await asyncio.sleep(0.01)
    assert server.events[-1].outcome == "client-gone"
    assert server.events[-1].bytes_sent < len(BIG)


async def test_control_api_put_replaces_the_whole_plan(server, session):
    """PUT /_faults replaces the live plan (toxiproxy populate)."""
    server.add_rule(Rule(fault=FAULTS["down"](), id="old"))
    plan = {"rules": [{"id": "busy", "fault": "status", "params": {"status": 503}}]}
    async with session.put(server.control_url, json=plan) as response:
        assert response.status == 200
    assert [r.id for r in server.plan.rules] == ["busy"]
    assert (await get(session, signed(server)))[0] == 503


async def test_control_api_refuses_a_bad_plan_naming_the_rule(server, session):
    """PUT /_faults with a bad rule: 400 naming the rule index; the live plan is kept."""
    plan = {"rules": [{"fault": "status", "params": {"status": 200}}]}
    async with session.put(server.control_url, json=plan) as response:
        assert response.status == 400
        assert "plan.rules[0]" in (await response.json())["error"]
    assert server.plan == FaultPlan()


async def test_control_api_clears_the_event_log(server, session):
    """DELETE /_faults/events empties the log; control calls are not events."""
    await get(session, signed(server))
    async with session.delete(server.control_url + "/events") as response:
        assert response.status == 204
    assert server.events == []


async def test_a_symlink_out_of_the_root_directory_is_not_followed(tmp_path, session):
    """--root: a symlink planted in a container's directory, as a folder or as a blob's
    own file, never serves what lies outside: blob names map to one flat file each, and
    a blob's file that is a symlink is no blob (404)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"secret")
    root = tmp_path / "root"
    root.mkdir()
    async with BlobServer(root=root) as srv:
        srv.put_blob("firmware", "fw.bin", b"x")
        (root / "firmware" / "link").symlink_to(outside, target_is_directory=True)
        (root / "firmware" / "alias.bin").symlink_to(outside / "secret.bin")
        for name in ("link/secret.bin", "alias.bin"):
            status, headers, body = await get(session, signed(srv, name))
            assert (status, headers["x-ms-error-code"]) == (404, "BlobNotFound"), name
            assert body != b"secret"


async def test_shared_key_naming_another_account_is_refused(server, session):
    """Authorize with Shared Key: ``SharedKey AccountName:Signature`` must name this
    account; a signature over this account's resource does not vouch for another name."""
    headers = {"x-ms-version": "2025-01-05", "x-ms-date": "Mon, 01 Jan 2024 00:00:00 GMT"}
    path = "/" + DEV_ACCOUNT + "/firmware/fw.bin"
    to_sign = shared_key_string_to_sign("GET", headers, account=DEV_ACCOUNT, path=path, query={})
    headers["Authorization"] = f"SharedKey otheraccount:{sign(DEV_KEY, to_sign)}"
    async with session.get(server.blob_url("firmware", "fw.bin"), headers=headers) as response:
        assert (response.status, response.headers["x-ms-error-code"]) == (
            403,
            "AuthenticationFailed",
        )
    headers["Authorization"] = f"SharedKey {DEV_ACCOUNT}:{sign(DEV_KEY, to_sign)}"
    assert (await get(session, server.blob_url("firmware", "fw.bin"), **headers))[0] == 200


async def test_a_read_only_sas_cannot_write(server, session):
    """Create a service SAS: Put Blob needs w (or c for a new blob); sp=r answers 403
    AuthorizationPermissionMismatch and the blob is unchanged."""
    for name in ("fw.bin", "new.bin"):
        status, headers, _ = await put(session, signed_for(server, name, permission="r"), b"evil")
        assert (status, headers["x-ms-error-code"]) == (403, "AuthorizationPermissionMismatch")
    assert (await get(session, signed(server)))[2] == IMAGE


@pytest.mark.parametrize("container", ["Firmware", "fw", "fw--images", "-fw", "fw_images"])
async def test_container_names_outside_azure_rules_are_refused(server, session, container):
    """Naming and referencing containers: 3-63 lowercase letters, digits and single inner
    hyphens; anything else answers 400 InvalidResourceName (and never reaches --root)."""
    url = server.blob_url(container, "fw.bin") + "?" + server.make_sas(container, "fw.bin")
    status, headers, _ = await get(session, url)
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidResourceName")


@pytest.mark.parametrize("name", ["si%67", "%73ig", "%73%69%67"])
async def test_a_sas_under_a_percent_encoded_name_never_reaches_a_log(
    server, session, caplog, name
):
    """A server decodes query names (RFC 3986 2.1): ``si%67=`` is ``sig=``, so it
    authorises the request, and the signature must be redacted in the access log, the
    debug log and the events like a plain ``sig=``."""
    caplog.set_level(logging.DEBUG)
    sas = server.make_sas("firmware", "fw.bin")
    sig = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    url = URL(
        server.blob_url("firmware", "fw.bin") + "?" + sas.replace("sig=", f"{name}="),
        encoded=True,
    )
    status, _, body = await get(session, url, Range="bytes=0-9")
    assert (status, body) == (206, IMAGE[:10])
    assert "aiohttp.access" in {r.name for r in caplog.records}
    assert unquote(sig) not in unquote(caplog.text)
    assert sig not in caplog.text
    assert unquote(sig) not in unquote(repr(server.events))


async def test_a_sas_naming_a_parameter_twice_once_encoded_is_refused(server, session):
    """``sig=a&si%67=b`` names sig twice once decoded: which one a proxy or a log sees
    would differ from what is checked, so the server refuses it (403) rather than pick."""
    sas = server.make_sas("firmware", "fw.bin")
    url = URL(server.blob_url("firmware", "fw.bin") + "?" + sas + "&si%67=AAAA", encoded=True)
    status, headers, _ = await get(session, url)
    assert status == 403 and headers["x-ms-error-code"] == "AuthenticationFailed"
    url = URL(server.blob_url("firmware", "fw.bin") + "?" + sas + "&s%65=2031-01-01", encoded=True)
    status, headers, _ = await get(session, url)
    assert status == 403 and headers["x-ms-error-code"] == "AuthenticationFailed"
