"""Get Blob and Get Blob Properties, as a part of the blob service.

Properties (HEAD), whole and ranged reads (``Range``/``x-ms-range``, 206 with
``Content-Range``), ``x-ms-range-get-content-md5`` (learn.microsoft.com/rest/api/
storageservices/get-blob, get-blob-properties), and the body sent the way the
request's :class:`~sim.cloud.faults.exchange.Exchange` shapes it
(:mod:`sim.cloud.blobserver.shaping`). :class:`BlobReads` is mixed into
:class:`sim.cloud.blobserver.app.BlobService`, whose dispatch calls it once the
request is authorized and its conditions hold.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from email.utils import format_datetime
from typing import TYPE_CHECKING

from aiohttp import web

from sim.cloud.blobserver.errors import BlobError
from sim.cloud.blobserver.events import ServedRequest
from sim.cloud.blobserver.ranges import requested_range
from sim.cloud.blobserver.shaping import FLUSH_POLL_S, send_body
from sim.cloud.blobserver.store import BlobChanged, BlobView, StoredBlob
from sim.cloud.faults.chance import rng_for
from sim.cloud.faults.exchange import Exchange

if TYPE_CHECKING:
    from sim.loopback import VirtualNetwork

MD5_RANGE_LIMIT = 4 * 1024 * 1024  # 4 MiB, Get Blob: x-ms-range-get-content-md5


class BlobReads:
    """Get Blob and Get Blob Properties; the service state they use."""

    seed: int
    network: VirtualNetwork | None
    pause: Callable[[float], Awaitable[None]]
    hold: Callable[[web.BaseRequest, float], Awaitable[None]]

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
        self, request: web.Request, blob: StoredBlob, common: dict[str, str], record: ServedRequest
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
        record: ServedRequest,
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
        record: ServedRequest,
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
