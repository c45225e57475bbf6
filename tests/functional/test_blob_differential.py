"""Differential tests: our blob server against Azurite, the official emulator, request by request.

Both servers hold the same seeded blobs; the same raw requests (aiohttp, SDK-made SAS
tokens) go to both, and the fields a downloader relies on are compared: status,
Content-Length, Content-Range, ETag and Last-Modified shape, Accept-Ranges,
x-ms-blob-type, Content-MD5, the body, the error code. Where our server follows the
cloud's documented behaviour and Azurite does not, ``DELIBERATE_DIFFERENCES`` says so
and why, and the test asserts the difference is exactly that one, so a change on
either side fails.

Sources (learn.microsoft.com/rest/api/storageservices/...): ``get-blob``,
``get-blob-properties``, ``specifying-the-range-header-for-blob-service-operations``,
``specifying-conditional-headers-for-blob-service-operations``, ``create-service-sas``,
``blob-service-error-codes``; docs/azure.md for Azurite's own deviations.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import hashlib
import random
import re
from base64 import b64encode
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from yarl import URL

from sim.cloud.azurite import AZURITE_KEY, Azurite, find_azurite

_AZURITE, _WHY_NOT = find_azurite()
if _AZURITE is None:
    pytest.skip(f"Azurite cannot run: {_WHY_NOT}", allow_module_level=True)

from azure.storage.blob import BlobServiceClient, generate_blob_sas  # noqa: E402

from sim.cloud.blobserver import DEV_KEY, BlobServer  # noqa: E402

pytestmark = pytest.mark.sim

CONTAINER = "firmware"
SMALL = "fw-1mib.bin"
BIG = "fw-5mib.bin"  # above the 4 MiB limit of x-ms-range-get-content-md5
SIZE = 1 << 20
BIG_SIZE = 5 << 20
MD5_LIMIT = 4 << 20  # 4 MiB, get-blob: x-ms-range-get-content-md5
BLOBS = {
    SMALL: random.Random(0x0F1).randbytes(SIZE),
    BIG: random.Random(0x0F5).randbytes(BIG_SIZE),
}
API_VERSION = "2021-08-06"  # any version >= 2011-08-18 allows open-ended ranges
OTHER_ETAG = '"0x8DC0000000000AB"'  # well formed, matches no blob
PAST = "Mon, 01 Jan 2001 00:00:00 GMT"
FUTURE = "Mon, 01 Jan 2035 00:00:00 GMT"
WRONG_KEY = b64encode(random.Random(7).randbytes(64)).decode()


# --- what is compared ----------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """The parts of a response a downloader relies on; shapes where values are per server."""

    status: int
    content_length: str | None  # None on errors: the XML message text differs by server
    content_range: str | None
    etag: str | None  # shape: "0x-hex" (Azure's form), "quoted", or the raw value
    last_modified: str | None  # shape: "rfc1123" or the raw value
    accept_ranges: str | None
    blob_type: str | None
    content_md5: str | None
    body: str | None  # "blob[a:b]", "empty", or a digest; None on errors
    error_code: str | None  # the x-ms-error-code header
    xml_code: str | None  # <Code> of the XML error body


def _etag_shape(value: str | None) -> str | None:
    if value is None:
        return None
    if re.fullmatch(r'"0x[0-9A-F]{15,16}"', value):
        return "0x-hex"
    return "quoted" if re.fullmatch(r'"[^"]+"', value) else value


def _date_shape(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return value
    return "rfc1123" if value.endswith(" GMT") else value


def _body_shape(body: bytes, content_range: str | None, data: bytes) -> str:
    """``blob[a:b]`` when the body is the slice Content-Range claims (the whole blob without
    one); otherwise its length and digest."""
    if not body:
        return "empty"
    start, stop = 0, len(data)
    claimed = re.fullmatch(r"bytes (\d+)-(\d+)/\d+", content_range or "")
    if claimed:
        start, stop = int(claimed[1]), int(claimed[2]) + 1
    if body == data[start:stop]:
        return f"blob[{start}:{stop}]"
    return f"{len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()[:16]}"


def _view(status: int, headers: CIMultiDictProxy[str], body: bytes, data: bytes) -> View:
    error = status >= 400
    code = re.search(rb"<Code>([^<]*)</Code>", body) if error else None
    return View(
        status=status,
        content_length=None if error else headers.get("Content-Length"),
        content_range=headers.get("Content-Range"),
        etag=_etag_shape(headers.get("ETag")),
        last_modified=_date_shape(headers.get("Last-Modified")),
        accept_ranges=headers.get("Accept-Ranges"),
        blob_type=headers.get("x-ms-blob-type"),
        content_md5=headers.get("Content-MD5"),
        body=None if error else _body_shape(body, headers.get("Content-Range"), data),
        error_code=headers.get("x-ms-error-code"),
        xml_code=code.group(1).decode() if code else None,
    )


def view_diff(ours: View, azurite: View) -> dict[str, tuple[object, object]]:
    """``{field: (ours, azurite)}`` for every field where the two answers differ."""
    a, b = dataclasses.asdict(ours), dataclasses.asdict(azurite)
    return {name: (a[name], b[name]) for name in a if a[name] != b[name]}


# --- the requests --------------------------------------------------------------------------


def _sas(key: str, *, blob: str, permission: str = "r", start_h: float = -1, expiry_h: float = 1):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return generate_blob_sas(
        "devstoreaccount1",
        CONTAINER,
        blob,
        account_key=key,
        permission=permission,
        start=now + dt.timedelta(hours=start_h),
        expiry=now + dt.timedelta(hours=expiry_h),
    )


SAS_KINDS: dict[str, Callable[[str, str], str]] = {
    "read": lambda key, blob: _sas(key, blob=blob),
    "forged": lambda key, blob: _sas(WRONG_KEY, blob=blob),
    "expired": lambda key, blob: _sas(key, blob=blob, start_h=-2, expiry_h=-1),
    "not yet valid": lambda key, blob: _sas(key, blob=blob, start_h=1, expiry_h=2),
    "write only": lambda key, blob: _sas(key, blob=blob, permission="w"),
    "other blob": lambda key, blob: _sas(key, blob=SMALL if blob != SMALL else BIG),
}


@dataclass(frozen=True)
class Case:
    """One request, and what the cloud documents for it."""

    name: str
    headers: Callable[[str], dict[str, str]]  # given the blob's ETag on that server
    status: int | None  # the cloud's documented status; None where the docs say nothing
    body: tuple[int, int] | None = None  # the slice of the blob the cloud answers with
    method: str = "GET"
    blob: str = SMALL
    sas: str = "read"
    source: str = "get-blob"


def _range(value: str) -> Callable[[str], dict[str, str]]:
    return lambda _etag: {"Range": value}


def _none(_etag: str) -> dict[str, str]:
    return {}


N = SIZE
CASES = [
    Case("whole_blob_without_range", _none, 200, (0, N)),
    Case("range_at_start", _range("bytes=0-65535"), 206, (0, 65536)),
    Case("range_in_middle", _range("bytes=300000-365535"), 206, (300000, 365536)),
    Case("range_at_end", _range(f"bytes={N - 65536}-{N - 1}"), 206, (N - 65536, N)),
    Case("range_over_end_is_clamped", _range(f"bytes={N - 100}-{N + 100}"), 206, (N - 100, N)),
    Case("range_past_end_is_416", _range(f"bytes={N + 10}-{N + 20}"), 416),
    Case("open_range_at_end_is_416", _range(f"bytes={N}-"), 416),
    Case("closed_range_at_end_is_416", _range(f"bytes={N}-{N + 10}"), 416),
    Case("open_ended_range", _range("bytes=1000-"), 206, (1000, N)),
    Case("last_byte_open_ended", _range(f"bytes={N - 1}-"), 206, (N - 1, N)),
    Case("suffix_range", _range("bytes=-500"), None),
    Case("malformed_range_not_a_number", _range("bytes=abc"), None),
    Case("malformed_range_reversed", _range("bytes=500-100"), None),
    Case("multiple_ranges", _range("bytes=0-1,5-9"), None),
    Case(
        "x_ms_range_wins_over_range",
        lambda _: {"Range": "bytes=0-99", "x-ms-range": "bytes=100-199"},
        206,
        (100, 200),
        source="specifying-the-range-header-for-blob-service-operations",
    ),
    Case("x_ms_range_alone", lambda _: {"x-ms-range": "bytes=10-19"}, 206, (10, 20)),
    Case("if_match_current_etag", lambda etag: {"If-Match": etag}, 200, (0, N)),
    Case("if_match_other_etag_is_412", lambda _: {"If-Match": OTHER_ETAG}, 412),
    Case("if_match_any", lambda _: {"If-Match": "*"}, 200, (0, N)),
    Case(
        "resume_with_if_match_current_etag",
        lambda etag: {"If-Match": etag, "x-ms-range": "bytes=65536-131071"},
        206,
        (65536, 131072),
    ),
    Case(
        "resume_with_if_match_other_etag_is_412",
        lambda _: {"If-Match": OTHER_ETAG, "x-ms-range": "bytes=65536-131071"},
        412,
    ),
    Case("if_none_match_current_etag_is_304", lambda etag: {"If-None-Match": etag}, 304),
    Case("if_none_match_other_etag", lambda _: {"If-None-Match": OTHER_ETAG}, 200, (0, N)),
    Case("if_unmodified_since_past_is_412", lambda _: {"If-Unmodified-Since": PAST}, 412),
    Case("if_unmodified_since_future", lambda _: {"If-Unmodified-Since": FUTURE}, 200, (0, N)),
    Case("if_modified_since_future_is_304", lambda _: {"If-Modified-Since": FUTURE}, 304),
    Case("head_properties", _none, 200, method="HEAD", source="get-blob-properties"),
    Case("head_missing_blob_is_404", _none, 404, method="HEAD", blob="missing.bin"),
    Case("missing_blob_is_404", _none, 404, blob="missing.bin"),
    Case("forged_sas_is_403", _none, 403, sas="forged", source="create-service-sas"),
    Case("expired_sas_is_403", _none, 403, sas="expired", source="create-service-sas"),
    Case("not_yet_valid_sas_is_403", _none, 403, sas="not yet valid", source="create-service-sas"),
    Case("sas_without_read_is_403", _none, 403, sas="write only", source="create-service-sas"),
    Case("sas_for_another_blob_is_403", _none, 403, sas="other blob", source="create-service-sas"),
    Case(
        "range_md5_within_4mib",
        lambda _: {"x-ms-range": f"bytes=0-{SIZE - 1}", "x-ms-range-get-content-md5": "true"},
        206,
        (0, SIZE),
        blob=BIG,
    ),
    Case(
        "range_md5_at_exactly_4mib",
        lambda _: {"x-ms-range": f"bytes=0-{MD5_LIMIT - 1}", "x-ms-range-get-content-md5": "true"},
        206,
        (0, MD5_LIMIT),
        blob=BIG,
    ),
    Case(
        "range_md5_above_4mib_is_400",
        lambda _: {"x-ms-range": f"bytes=0-{MD5_LIMIT}", "x-ms-range-get-content-md5": "true"},
        400,
        blob=BIG,
    ),
    Case(
        "range_md5_without_range_is_400",
        lambda _: {"x-ms-range-get-content-md5": "true"},
        400,
        blob=BIG,
    ),
]
CASES_BY_NAME = {case.name: case for case in CASES}


# --- where we follow the cloud and Azurite does not ---------------------------------------


@dataclass(frozen=True)
class Difference:
    """Our answer (the cloud's documented one) and Azurite's, as View fields, and why."""

    ours: dict[str, object]
    azurite: dict[str, object]
    reason: str

    def expected(self) -> dict[str, tuple[object, object]]:
        """The ``view_diff`` this difference predicts."""
        return {
            name: (self.ours[name], self.azurite[name])
            for name in self.ours
            if self.ours[name] != self.azurite[name]
        }


def _error(status: int, code: str | None, content_range: str | None = None) -> dict[str, object]:
    """The View fields of an error answer (XML body with ``code``, or none at all)."""
    return {
        "status": status,
        "content_length": None,
        "content_range": content_range,
        "etag": None,
        "last_modified": None,
        "accept_ranges": None,
        "blob_type": None,
        "content_md5": None,
        "body": None,
        "error_code": code,
        "xml_code": code,
    }


def _served(
    status: int, start: int, stop: int, total: int, *, md5: str | None = None
) -> dict[str, object]:
    """The View fields of a 200/206 answer carrying ``blob[start:stop]``."""
    return {
        "status": status,
        "content_length": str(stop - start),
        "content_range": f"bytes {start}-{stop - 1}/{total}" if status == 206 else None,
        "etag": "0x-hex",
        "last_modified": "rfc1123",
        "accept_ranges": "bytes",
        "blob_type": "BlockBlob",
        "content_md5": md5,
        "body": f"blob[{start}:{stop}]" if stop > start else "empty",
        "error_code": None,
        "xml_code": None,
    }


def _md5(data: bytes) -> str:
    return b64encode(hashlib.md5(data).digest()).decode()


_AT_END = Difference(
    ours=_error(416, "InvalidRange", f"bytes */{N}"),
    azurite=_served(206, N, N, N),
    reason="specifying-the-range-header: the cloud answers 416 when the start is not within "
    "the blob; Azurite answers 416 only for start > length, and an empty 206 for start == length",
)
_MALFORMED_CRASH = Difference(
    ours=_error(400, "InvalidHeaderValue"),
    azurite=_error(500, None),
    reason="the cloud accepts only bytes=N- and bytes=N-M (specifying-the-range-header); our "
    "server refuses other forms with 400 InvalidHeaderValue naming the header (what the cloud "
    "answers is undocumented); Azurite 3.35 parses a non-numeric start as NaN and fails with an "
    "empty 500 (docs/azure.md says 'ignored', true only for the forms below)",
)
_MALFORMED_IGNORED = Difference(
    ours=_error(400, "InvalidHeaderValue"),
    azurite=_served(200, 0, N, N, md5=_md5(BLOBS[SMALL])),
    reason="a form the cloud does not document (end before start, several ranges): our server "
    "refuses it with 400 InvalidHeaderValue; Azurite ignores the header (RFC 9110 §14.2) and "
    "serves the whole blob",
)
_AUTHENTICATION = Difference(
    ours=_error(403, "AuthenticationFailed"),
    azurite=_error(403, "AuthorizationFailure"),
    reason="the cloud answers a SAS whose signature does not match, or used outside its "
    "st..se window, with 403 AuthenticationFailed (and an AuthenticationErrorDetail such as "
    "'Signature not valid in the specified time frame'); Azurite answers AuthorizationFailure",
)
_MD5_REFUSED = Difference(
    ours=_error(400, "InvalidHeaderValue"),
    azurite=_served(206, 0, MD5_LIMIT + 1, BIG_SIZE),
    reason="get-blob: x-ms-range-get-content-md5 with a range above 4 MiB answers 400; Azurite "
    "has no limit: it serves the range and silently leaves Content-MD5 out",
)
_MD5_WITHOUT_RANGE = Difference(
    ours=_error(400, "InvalidHeaderValue"),
    azurite=_served(200, 0, BIG_SIZE, BIG_SIZE, md5=_md5(BLOBS[BIG])),
    reason="get-blob: x-ms-range-get-content-md5 without a Range answers 400; Azurite ignores "
    "it and serves the whole blob with its stored Content-MD5",
)

DELIBERATE_DIFFERENCES: dict[str, Difference] = {
    "open_range_at_end_is_416": _AT_END,
    "closed_range_at_end_is_416": _AT_END,
    "suffix_range": _MALFORMED_CRASH,
    "malformed_range_not_a_number": _MALFORMED_CRASH,
    "malformed_range_reversed": _MALFORMED_IGNORED,
    "multiple_ranges": _MALFORMED_IGNORED,
    "forged_sas_is_403": _AUTHENTICATION,
    "expired_sas_is_403": _AUTHENTICATION,
    "not_yet_valid_sas_is_403": _AUTHENTICATION,
    "sas_for_another_blob_is_403": _AUTHENTICATION,
    "range_md5_above_4mib_is_400": _MD5_REFUSED,
    "range_md5_without_range_is_400": _MD5_WITHOUT_RANGE,
}


# --- fixtures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One server holding the blobs: its account URL, key and each blob's ETag."""

    url: str
    key: str
    etags: dict[str, str]


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """Azurite, started once for the module, holding the blobs uploaded with the real SDK."""
    with Azurite(Path(tmp_path_factory.mktemp("azurite"))) as server:
        with BlobServiceClient.from_connection_string(server.connection_string) as service:
            service.create_container(CONTAINER)
            etags = {
                name: service.get_blob_client(CONTAINER, name).upload_blob(data)["etag"]
                for name, data in BLOBS.items()
            }
        yield Endpoint(server.url, AZURITE_KEY, etags)


@pytest.fixture
async def ours() -> AsyncIterator[Endpoint]:
    """Our blob server, per test (it starts in milliseconds), holding the same blobs."""
    async with BlobServer(host="127.0.0.1", port=0, root=None, plan=None, seed=0) as server:
        etags = {name: server.put_blob(CONTAINER, name, data) for name, data in BLOBS.items()}
        yield Endpoint(server.url, DEV_KEY, etags)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        yield client


async def send(session: aiohttp.ClientSession, server: Endpoint, case: Case) -> View:
    """Send ``case`` to ``server`` as a raw request and reduce the answer to a View."""
    query = SAS_KINDS[case.sas](server.key, case.blob)
    url = URL(f"{server.url}/{CONTAINER}/{case.blob}?{query}", encoded=True)
    etag = server.etags.get(case.blob, OTHER_ETAG)
    headers = {"x-ms-version": API_VERSION, **case.headers(etag)}
    async with session.request(case.method, url, headers=headers) as response:
        body = await response.read()
        return _view(response.status, response.headers, body, BLOBS.get(case.blob, b""))


# --- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in CASES if c.status is not None], ids=lambda c: c.name)
async def test_ours_answers_as_the_cloud_documents(
    case: Case, ours: Endpoint, session: aiohttp.ClientSession
) -> None:
    """Our status and body are those the cloud documents for the request (see ``case.source``)."""
    view = await send(session, ours, case)
    assert view.status == case.status, case.source
    if case.body is not None:
        assert view.body == f"blob[{case.body[0]}:{case.body[1]}]"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_ours_answers_like_azurite_except_where_documented(
    case: Case, ours: Endpoint, azurite: Endpoint, session: aiohttp.ClientSession
) -> None:
    """Same request to both servers: every compared field is equal, or differs exactly as
    ``DELIBERATE_DIFFERENCES`` records (the cloud's documented behaviour against Azurite's)."""
    diff = view_diff(await send(session, ours, case), await send(session, azurite, case))
    documented = DELIBERATE_DIFFERENCES.get(case.name)
    assert diff == (documented.expected() if documented else {})


def test_every_deliberate_difference_names_a_case_and_a_reason() -> None:
    """The table of differences stays in step with the cases it explains."""
    fields = {f.name for f in dataclasses.fields(View)}
    for name, difference in DELIBERATE_DIFFERENCES.items():
        assert name in CASES_BY_NAME, name
        assert difference.reason.strip(), name
        assert difference.ours.keys() == difference.azurite.keys() == fields, name
        assert difference.expected(), f"{name}: documents no difference"
