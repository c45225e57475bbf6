"""The Blob REST API on aiohttp, with the live fault plan applied to every request.

Path-style addressing as Azurite uses it: ``/{account}/{container}/{blob}``.
Operations (learn.microsoft.com/rest/api/storageservices/blob-service-rest-api):
Create/Delete Container, Get Container Properties, List Blobs, Put Blob, Put Block,
Put Block List, Get Blob, Get Blob Properties, Delete Blob.

Each request gets a number; the plan's rules that select it edit an
:class:`~sim.cloud.faults.exchange.Exchange`; connection-level faults (down, latency,
stall, status) act before authorization, as a front end or a network would;
the rest shape the Get Blob response. One :class:`~sim.cloud.blobserver.events.Event`
per request is appended to :attr:`BlobService.events`.
"""

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from agent.redact import redact
from sim.cloud.blobserver.conditions import check_conditions
from sim.cloud.blobserver.errors import MESSAGES, BlobError, error_body
from sim.cloud.blobserver.events import Event
from sim.cloud.blobserver.listing import list_blobs_xml, parse_block_list
from sim.cloud.blobserver.ranges import requested_range
from sim.cloud.blobserver.sas import (
    CREATE,
    DELETE,
    LIST,
    READ,
    WRITE,
    Operation,
    check_sas,
    check_shared_key,
    single_sas_params,
)
from sim.cloud.blobserver.shaping import (
    FLUSH_POLL_S,
    Progress,
    client_gone,
    close_connection,
    reset_connection,
    send_body,
)
from sim.cloud.blobserver.store import (
    BlobChanged,
    BlobStore,
    BlobView,
    BlobWriter,
    DirectoryStore,
    StoredBlob,
    check_blob_name,
    check_container_name,
)
from sim.cloud.faults.chance import rng_for
from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.plan import FaultPlan, RequestInfo
from sim.loopback import VirtualNetwork

DEFAULT_VERSION = "2025-01-05"
MD5_RANGE_LIMIT = 4 * 1024 * 1024  # 4 MiB, Get Blob: x-ms-range-get-content-md5
MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # what the memory store holds of one blob
MAX_BLOCK_ID_BYTES = 64  # Put Block: blockid decodes to at most 64 bytes
MAX_BLOCK_LIST_BYTES = 8 * 1024 * 1024  # 50,000 block ids in XML, with room
EVENT_LOG_SIZE = 10_000  # events kept (a ring buffer): ~2 MB
BODY_TIMEOUT_S = 30.0  # a request body that sends nothing for this long is dropped
MiB = 1024 * 1024
# "Put Blob" and "Put Block": the largest body by x-ms-version (service version).
_PUT_LIMITS = (  # (from version, Put Blob max, Put Block max)
    ("2019-12-12", 5000 * MiB, 4000 * MiB),
    ("2016-05-31", 256 * MiB, 100 * MiB),
    ("", 64 * MiB, 4 * MiB),
)
SERVER_HEADER = "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"

MESSAGES.setdefault(
    "BlobAlreadyExists", "The specified blob already exists."
)  # Put Blob with If-None-Match: * on an existing blob answers 409

log = logging.getLogger("sim.cloud.blobserver")


@dataclass(frozen=True)
class Target:
    """The resource a path names: account, container (or None), blob (or None)."""

    account: str
    container: str | None
    blob: str | None

    @property
    def label(self) -> str:
        if self.container is None:
            return ""
        return self.container if self.blob is None else f"{self.container}/{self.blob}"


def parse_target(path: str) -> Target:
    """Split a decoded request path ``/{account}/{container}/{blob}``."""
    parts = path.split("/", 3)
    account = parts[1] if len(parts) > 1 else ""
    container = parts[2] if len(parts) > 2 and parts[2] else None
    blob = parts[3] if len(parts) > 3 and parts[3] else None
    return Target(account=account, container=container, blob=blob)


@dataclass
class _Record:
    number: int = 0
    range: str | None = None
    status: int | None = None
    faults: list[str] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)


class BlobService:
    """The state behind the handlers: storage, credentials, the live plan, the event log."""

    def __init__(
        self,
        *,
        store: BlobStore,
        account: str,
        key: str,
        plan: FaultPlan,
        seed: int,
        event_log_size: int = EVENT_LOG_SIZE,
        body_timeout_s: float = BODY_TIMEOUT_S,
    ) -> None:
        if isinstance(event_log_size, bool) or not isinstance(event_log_size, int):
            raise ValueError(f"event_log_size must be an integer, got {event_log_size!r}")
        if event_log_size < 1:
            raise ValueError(f"event_log_size must be at least 1, got {event_log_size}")
        if not body_timeout_s > 0:
            raise ValueError(f"body_timeout_s must be > 0, got {body_timeout_s!r}")
        self.store = store
        self.account = account
        self.key = key
        self.plan = plan
        self.seed = seed
        # the last event_log_size events: a server left running must not grow forever
        self.events: deque[Event] = deque(maxlen=event_log_size)
        self.body_timeout_s = body_timeout_s
        self._count = 0
        self._closing = asyncio.Event()
        # set by a simulation: pauses and stalls in its virtual time (sim/loopback.py)
        self.network: VirtualNetwork | None = None

    @property
    def requests_received(self) -> int:
        """Requests received so far (numbered 1, 2, ... as they arrive)."""
        return self._count

    def stop(self) -> None:
        """End every pause and stall at once (the server is shutting down)."""
        self._closing.set()
        if self.network is not None:
            self.network.release_all()

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` of real time (the server is a real network peer), or of the
        simulation's virtual time, or until stop."""
        if seconds <= 0:
            return
        if self.network is not None and not self._closing.is_set():
            await self.network.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def hold(self, request: web.BaseRequest, seconds: float) -> None:
        """Send nothing for ``seconds`` (0 = forever) or until the client leaves or stop."""
        if self.network is not None:
            await self.network.hold(seconds, lambda: self._closing.is_set() or client_gone(request))
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds if seconds > 0 else None
        while not self._closing.is_set() and not client_gone(request):
            step = 0.01 if deadline is None else min(0.01, deadline - loop.time())
            if step <= 0:
                break
            await asyncio.sleep(step)  # aiohttp offers no disconnect future to await

    # --- one request ----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self._count += 1
        number = self._count
        record = _Record(
            number=number, range=request.headers.get("x-ms-range") or request.headers.get("Range")
        )
        target = parse_target(request.path)
        try:
            return await self._handle(request, number, target, record)
        finally:
            event = Event(
                request=number,
                method=request.method,
                blob=target.label,
                range=record.range,
                status=record.status,
                bytes_sent=record.progress.bytes_sent,
                faults=tuple(record.faults),
                outcome=record.progress.outcome,
            )
            self.events.append(event)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s", redact(request.raw_path), event)

    async def _handle(
        self, request: web.Request, number: int, target: Target, record: _Record
    ) -> web.StreamResponse:
        request_id = str(uuid.UUID(int=rng_for(self.seed, "request-id", number).getrandbits(128)))
        blob = self._peek(target)
        info = RequestInfo(number, request.method, target.label, self._span(request, blob))
        exchange = Exchange()
        for rule, rng in self.plan.select(self.seed, info):
            rule.fault.apply(exchange, rng)
            record.faults.append(f"{rule.id}:{rule.fault.name}")
        if exchange.rewrite is not None and blob is not None:
            # The blob is replaced as the request arrives, however it is then answered
            # (an error, a stall or a dropped connection): the upload is the operator's.
            self.store.put(
                blob.container,
                blob.name,
                exchange.rewrite(blob.data),
                content_type=blob.content_type,
            )
            blob = self._peek(target)
        if exchange.drop:
            record.progress.outcome = "dropped"
            reset_connection(request)
            return web.Response(status=503)  # never sent: the connection is gone
        await self.pause(exchange.delay_s)
        if exchange.stall_s is not None and exchange.stall_after_bytes is None:
            record.progress.outcome = "stalled"
            await self.hold(request, exchange.stall_s)
            close_connection(request)
            return web.Response(status=503)  # never sent
        try:
            if exchange.status is not None:
                extra = {}
                if exchange.retry_after_s is not None:
                    extra["Retry-After"] = str(exchange.retry_after_s)
                raise BlobError(
                    exchange.status, exchange.error_code or "InternalError", headers=extra
                )
            return await self._dispatch(request, target, exchange, record, request_id)
        except BodyTimedOut:
            return web.Response(status=408)  # never sent: the connection is closed
        except BlobError as error:
            record.status = error.status
            return self._error(request, error, request_id)

    def _peek(self, target: Target) -> StoredBlob | None:
        if target.container is None or target.blob is None:
            return None
        try:
            return self.store.get(target.container, target.blob)
        except BlobError:
            return None

    @staticmethod
    def _span(request: web.Request, blob: StoredBlob | None) -> tuple[int, int] | None:
        if request.method != "GET" or blob is None or not blob.size:
            return None
        try:
            asked = requested_range(request.headers)
            return asked.resolve(blob.size) if asked else (0, blob.size - 1)
        except BlobError:
            return None

    def _common(self, request: web.Request, request_id: str) -> dict[str, str]:
        return {
            "x-ms-request-id": request_id,
            "x-ms-version": request.headers.get("x-ms-version")
            or request.query.get("sv")
            or DEFAULT_VERSION,
            "Server": SERVER_HEADER,
        }

    def _error(self, request: web.Request, error: BlobError, request_id: str) -> web.Response:
        headers = self._common(request, request_id)
        headers["x-ms-error-code"] = error.code
        headers.update(error.headers)
        if error.status == 304 or request.method == "HEAD":
            response = web.Response(status=error.status, headers=headers)
        else:
            headers["Content-Type"] = "application/xml"
            body = error_body(error.code, request_id, error.detail)
            response = web.Response(status=error.status, headers=headers, body=body)
        if request.body_exists and not request.content.at_eof():
            response.force_close()  # a body refused unread (413) is not read to its end
        return response

    # --- authorization ----------------------------------------------------------------

    def _authorize(self, request: web.Request, operation: Operation) -> None:
        authorization = request.headers.get("Authorization")
        if authorization:
            check_shared_key(
                authorization,
                request.method,
                request.headers,
                account=self.account,
                key=self.key,
                path=request.raw_path.split("?", 1)[0],
                query=request.query,
            )
        elif "sig" in request.query:
            check_sas(
                single_sas_params(request.query.items()),
                account=self.account,
                key=self.key,
                operation=operation,
                client_ip=request.remote,
            )
        else:
            # Azure hides private resources from anonymous callers.
            raise BlobError(404, "ResourceNotFound")

    # --- operations -------------------------------------------------------------------

    async def _dispatch(
        self,
        request: web.Request,
        target: Target,
        exchange: Exchange,
        record: _Record,
        request_id: str,
    ) -> web.StreamResponse:
        if target.account != self.account:
            raise BlobError(404, "ResourceNotFound")
        if target.container is None:
            raise BlobError(
                400, "InvalidQueryParameterValue", detail={"QueryParameterName": "restype"}
            )
        check_container_name(target.container)
        common = self._common(request, request_id)
        method = request.method
        if target.blob is None:
            return await self._container_op(request, target.container, common, record)
        check_blob_name(target.blob)
        container, name = target.container, target.blob
        existing = self.store.get(container, name)
        if method in ("GET", "HEAD"):
            self._authorize(request, Operation(container, name, READ))
            blob = self._existing(container, name)
            check_conditions(
                request.headers, etag=blob.etag, last_modified=blob.last_modified, read=True
            )
            if method == "HEAD":
                return await self._properties(request, blob, common, record)
            return await self._get(request, blob, common, exchange, record)
        if method == "PUT":
            wanted = WRITE if existing else WRITE + CREATE
            self._authorize(request, Operation(container, name, wanted))
            if not self.store.has_container(container):
                raise BlobError(404, "ContainerNotFound")
            return await self._put(request, container, name, existing, common, record)
        if method == "DELETE":
            self._authorize(request, Operation(container, name, DELETE))
            blob = self._existing(container, name)
            check_conditions(
                request.headers, etag=blob.etag, last_modified=blob.last_modified, read=False
            )
            self.store.delete(container, name)
            record.status = 202
            return web.Response(
                status=202, headers={**common, "x-ms-delete-type-permanent": "true"}
            )
        raise BlobError(405, "UnsupportedHttpVerb")

    def _existing(self, container: str, name: str) -> StoredBlob:
        blob = self.store.get(container, name)
        if blob is None:
            if not self.store.has_container(container):
                raise BlobError(404, "ContainerNotFound")
            raise BlobError(404, "BlobNotFound")
        return blob

    async def _container_op(
        self, request: web.Request, container: str, common: dict[str, str], record: _Record
    ) -> web.StreamResponse:
        query = request.query
        if query.get("restype") != "container":
            raise BlobError(
                400, "InvalidQueryParameterValue", detail={"QueryParameterName": "restype"}
            )
        method, comp = request.method, query.get("comp")
        stamp = {
            "ETag": '"0x8D000000000000"',
            "Last-Modified": format_datetime(_epoch(), usegmt=True),
        }
        if method == "PUT" and comp is None:
            self._authorize(request, Operation(container, None, ""))
            if not self.store.create_container(container):
                raise BlobError(409, "ContainerAlreadyExists")
            record.status = 201
            return web.Response(status=201, headers={**common, **stamp})
        if method == "DELETE" and comp is None:
            self._authorize(request, Operation(container, None, ""))
            if not self.store.delete_container(container):
                raise BlobError(404, "ContainerNotFound")
            record.status = 202
            return web.Response(status=202, headers=common)
        if method in ("GET", "HEAD") and comp is None:
            self._authorize(request, Operation(container, None, READ))
            if not self.store.has_container(container):
                raise BlobError(404, "ContainerNotFound")
            record.status = 200
            return web.Response(
                status=200,
                headers={
                    **common,
                    **stamp,
                    "x-ms-lease-state": "available",
                    "x-ms-lease-status": "unlocked",
                    "x-ms-has-immutability-policy": "false",
                    "x-ms-has-legal-hold": "false",
                },
            )
        if method == "GET" and comp == "list":
            self._authorize(request, Operation(container, None, LIST))
            if not self.store.has_container(container):
                raise BlobError(404, "ContainerNotFound")
            prefix = query.get("prefix", "")
            body = list_blobs_xml(
                f"http://{request.host}/{self.account}",
                container,
                prefix,
                self.store.list(container, prefix),
            )
            record.status = 200
            return web.Response(
                status=200, body=body, headers={**common, "Content-Type": "application/xml"}
            )
        raise BlobError(400, "InvalidQueryParameterValue", detail={"QueryParameterName": "comp"})

    def _blob_headers(self, blob: StoredBlob) -> dict[str, str]:
        headers = {
            "ETag": blob.etag,
            "Last-Modified": format_datetime(blob.last_modified, usegmt=True),
            "Content-Type": blob.content_type,
            "Accept-Ranges": "bytes",
            "x-ms-blob-type": "BlockBlob",
            "x-ms-creation-time": format_datetime(blob.created, usegmt=True),
            "x-ms-lease-state": "available",
            "x-ms-lease-status": "unlocked",
            "x-ms-server-encrypted": "true",
        }
        return headers

    async def _properties(
        self, request: web.Request, blob: StoredBlob, common: dict[str, str], record: _Record
    ) -> web.StreamResponse:
        headers = {
            **common,
            **self._blob_headers(blob),
            "x-ms-access-tier": "Hot",
            "x-ms-access-tier-inferred": "true",
        }
        if blob.content_md5:
            headers["Content-MD5"] = base64.b64encode(blob.content_md5).decode()
        response = web.StreamResponse(status=200, headers=headers)
        response.content_length = blob.size
        record.status = 200
        await response.prepare(request)
        return response

    async def _get(
        self,
        request: web.Request,
        blob: StoredBlob,
        common: dict[str, str],
        exchange: Exchange,
        record: _Record,
    ) -> web.StreamResponse:
        length = blob.size
        asked = None if exchange.ignore_range else requested_range(request.headers)
        want_md5 = request.headers.get("x-ms-range-get-content-md5", "").lower() == "true"
        if asked is not None:
            first, last = asked.resolve(length)
        else:
            first, last = 0, length - 1
        size = last - first + 1
        if want_md5 and not exchange.ignore_range and (asked is None or size > MD5_RANGE_LIMIT):
            raise BlobError(
                400,
                "InvalidHeaderValue",
                detail={"HeaderName": "x-ms-range-get-content-md5", "HeaderValue": "true"},
            )
        try:
            with blob.open(first, last) as view:
                return await self._send(
                    request,
                    blob,
                    view,
                    first,
                    last,
                    asked is not None,
                    want_md5,
                    common,
                    exchange,
                    record,
                )
        except BlobChanged:
            # the file was replaced between the lookup and the open: the client retries
            raise BlobError(503, "ServerBusy") from None

    async def _send(
        self,
        request: web.Request,
        blob: StoredBlob,
        view: BlobView,
        first: int,
        last: int,
        ranged: bool,
        want_md5: bool,
        common: dict[str, str],
        exchange: Exchange,
        record: _Record,
    ) -> web.StreamResponse:
        size = last - first + 1
        headers = {**common, **self._blob_headers(blob)}
        if ranged:
            status = 206
            shift = exchange.content_range_shift
            total = (
                blob.size if exchange.content_range_total is None else exchange.content_range_total
            )
            headers["Content-Range"] = f"bytes {first + shift}-{last + shift}/{total}"
            if want_md5:
                digest = hashlib.md5(view[0:size]).digest()
                headers["Content-MD5"] = base64.b64encode(digest).decode()
            if blob.content_md5:
                headers["x-ms-blob-content-md5"] = base64.b64encode(blob.content_md5).decode()
        else:
            status = 200
            if blob.content_md5:
                headers["Content-MD5"] = base64.b64encode(blob.content_md5).decode()
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = size
        if (
            exchange.stop_after is not None
            or exchange.missing_bytes
            or exchange.close_delay_s
            or (exchange.stall_s is not None)
        ):
            response.force_close()
        record.status = status
        await response.prepare(request)
        await send_body(
            request,
            response,
            view,
            first=first,
            exchange=exchange,
            rng=rng_for(self.seed, "body", record.number),
            pause=self.pause,
            hold=lambda s: self.hold(request, s),
            flush_poll_s=0.0 if self.network is not None else FLUSH_POLL_S,
            progress=record.progress,
        )
        return response

    async def _put(
        self,
        request: web.Request,
        container: str,
        name: str,
        existing: StoredBlob | None,
        common: dict[str, str],
        record: _Record,
    ) -> web.StreamResponse:
        query = request.query
        comp = query.get("comp")
        if comp not in (None, "block", "blocklist"):
            raise BlobError(
                400, "InvalidQueryParameterValue", detail={"QueryParameterName": "comp"}
            )
        length = self._body_length(request, comp)
        headers = request.headers
        if comp == "block":
            block_id = _block_id(query.get("blockid"))
            body = await self._read_body(request, length, record)
            _check_content_md5(headers, hashlib.md5(body).digest())
            self.store.staged_blocks.stage_block(container, name, block_id, body)
            record.status = 201
            return web.Response(
                status=201,
                headers={
                    **common,
                    "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
                    "x-ms-request-server-encrypted": "true",
                },
            )
        self._check_overwrite(headers, existing)
        md5 = _b64_header(headers, "x-ms-blob-content-md5")
        content_type = headers.get("x-ms-blob-content-type", "application/octet-stream")
        if comp == "blocklist":
            body = await self._read_body(request, length, record)
            _check_content_md5(headers, hashlib.md5(body).digest())
            staged = self.store.staged_blocks.staged(container, name)
            parts = []
            for kind, block_id in parse_block_list(body):
                if kind == "Committed" or block_id not in staged:
                    raise BlobError(400, "InvalidBlockList")
                parts.append(staged[block_id])
            writer = self.store.writer(container, name)
            try:
                for part in parts:
                    writer.write(part)
            except BaseException:
                writer.abort()
                raise
            blob = writer.commit(content_type=content_type, content_md5=md5)
            self.store.staged_blocks.clear_staged(container, name)
        else:
            blob_type = headers.get("x-ms-blob-type")
            if blob_type != "BlockBlob":
                raise BlobError(
                    400,
                    "InvalidHeaderValue",
                    detail={"HeaderName": "x-ms-blob-type", "HeaderValue": str(blob_type)[:32]},
                )
            writer = self.store.writer(container, name)
            await self._stream_body(request, length, writer, record)
            try:
                _check_content_md5(headers, writer.md5)
            except BlobError:
                writer.abort()
                raise
            # Put Blob computes the MD5; Put Block List does not
            blob = writer.commit(content_type=content_type, content_md5=md5 or writer.md5)
        out = {
            **common,
            "ETag": blob.etag,
            "Last-Modified": format_datetime(blob.last_modified, usegmt=True),
            "x-ms-request-server-encrypted": "true",
        }
        if comp is None and blob.content_md5:
            out["Content-MD5"] = base64.b64encode(blob.content_md5).decode()
        record.status = 201
        return web.Response(status=201, headers=out)

    def _body_length(self, request: web.Request, comp: str | None) -> int:
        """The announced body length, refused up front (413, before a byte is read) when
        over what this operation takes at the request's version (Put Blob, Put Block)."""
        raw = request.headers.get("Content-Length")
        if raw is None or not raw.isascii() or not raw.isdigit():
            if request.headers.get("Transfer-Encoding") or raw is not None:
                raise BlobError(411, "MissingContentLengthHeader")
            return 0
        length = int(raw)
        version = request.headers.get("x-ms-version") or request.query.get("sv") or ""
        _, blob_max, block_max = next(row for row in _PUT_LIMITS if version >= row[0])
        if comp == "blocklist":
            limit = MAX_BLOCK_LIST_BYTES
        elif comp == "block":
            limit = min(block_max, self.store.staged_blocks.max_bytes)
        else:
            limit = blob_max
            if not isinstance(self.store, DirectoryStore):
                limit = min(limit, MAX_UPLOAD_BYTES)  # held in memory
        if length > limit:
            raise BlobError(413, "RequestBodyTooLarge", detail={"MaxLimit": str(limit)})
        return length

    async def _chunks(
        self, request: web.Request, length: int, record: _Record
    ) -> AsyncIterator[bytes]:
        """The body as it arrives; a body idle ``body_timeout_s`` drops the connection."""
        received = 0
        while received < length:
            try:
                chunk = await asyncio.wait_for(request.content.readany(), self.body_timeout_s)
            except TimeoutError:
                record.progress.outcome = "timed-out"
                close_connection(request)
                raise BodyTimedOut from None
            if not chunk:
                break
            received += len(chunk)
            yield chunk
        if received != length:
            raise BlobError(400, "InvalidInput")

    async def _read_body(self, request: web.Request, length: int, record: _Record) -> bytes:
        body = bytearray()
        async for chunk in self._chunks(request, length, record):
            body += chunk
        return bytes(body)

    async def _stream_body(
        self, request: web.Request, length: int, writer: BlobWriter, record: _Record
    ) -> None:
        try:
            async for chunk in self._chunks(request, length, record):
                writer.write(chunk)
        except BaseException:
            writer.abort()  # never leave a partial file behind
            raise

    @staticmethod
    def _check_overwrite(headers: Mapping[str, str], existing: StoredBlob | None) -> None:
        if headers.get("If-None-Match", "").strip() == "*" and existing is not None:
            raise BlobError(409, "BlobAlreadyExists")
        check_conditions(
            {k: v for k, v in headers.items() if not (k.lower() == "if-none-match" and v == "*")},
            etag=existing.etag if existing else None,
            last_modified=existing.last_modified if existing else None,
            read=False,
        )


def _epoch() -> datetime:
    """Containers carry a fixed stamp: they are not versioned here."""
    return datetime(2024, 1, 1, tzinfo=UTC)


def _b64_header(headers: Mapping[str, str], name: str) -> bytes | None:
    value = headers.get(name)
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BlobError(
            400, "InvalidHeaderValue", detail={"HeaderName": name, "HeaderValue": value[:64]}
        ) from None


def _check_content_md5(headers: Mapping[str, str], digest: bytes) -> None:
    expected = _b64_header(headers, "Content-MD5")
    if expected is not None and expected != digest:
        raise BlobError(400, "Md5Mismatch")


class BodyTimedOut(Exception):
    """The request body stopped arriving: the connection was closed, nothing is sent."""


def _block_id(value: str | None) -> str:
    try:
        decoded = base64.b64decode(value or "", validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded or len(decoded) > MAX_BLOCK_ID_BYTES:
        raise BlobError(400, "InvalidQueryParameterValue", detail={"QueryParameterName": "blockid"})
    return str(value)


class RedactingAccessLogger(AbstractAccessLogger):
    """aiohttp's access log, with SAS ``sig`` and Shared Key signatures redacted."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(
                '%s "%s %s" %s %.3fs',
                request.remote,
                request.method,
                redact(request.raw_path),
                response.status,
                time,
            )


__all__ = ["BlobService", "RedactingAccessLogger", "Target", "parse_target"]
