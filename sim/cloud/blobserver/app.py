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

This module is the service core: the request's number and faults, authorization
(Shared Key, service SAS), errors and dispatch. The operations live in its parts:
containers :mod:`sim.cloud.blobserver.containers`, Get Blob
:mod:`sim.cloud.blobserver.reads`, Put Blob / Put Block / Put Block List
:mod:`sim.cloud.blobserver.writes`.
"""

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from dataclasses import dataclass

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from agent.redact import redact
from sim.cloud.blobserver.conditions import check_conditions
from sim.cloud.blobserver.containers import ContainerOperations
from sim.cloud.blobserver.errors import BlobError, error_body
from sim.cloud.blobserver.events import Event, ServedRequest
from sim.cloud.blobserver.ranges import requested_range
from sim.cloud.blobserver.reads import BlobReads
from sim.cloud.blobserver.sas import (
    CREATE,
    DELETE,
    READ,
    WRITE,
    Operation,
    check_sas,
    check_shared_key,
    single_sas_params,
)
from sim.cloud.blobserver.shaping import client_gone, close_connection, reset_connection
from sim.cloud.blobserver.store import BlobStore, StoredBlob, check_blob_name, check_container_name
from sim.cloud.blobserver.writes import BlobWrites, BodyTimedOut
from sim.cloud.faults.chance import rng_for
from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.plan import FaultPlan, RequestInfo
from sim.loopback import VirtualNetwork

DEFAULT_VERSION = "2025-01-05"
EVENT_LOG_SIZE = 10_000  # events kept (a ring buffer): ~2 MB
BODY_TIMEOUT_S = 30.0  # a request body that sends nothing for this long is dropped
SERVER_HEADER = "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"

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


class BlobService(ContainerOperations, BlobReads, BlobWrites):
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
        record = ServedRequest(
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
        self, request: web.Request, number: int, target: Target, record: ServedRequest
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
        record: ServedRequest,
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
