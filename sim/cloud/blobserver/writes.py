"""Put Blob, Put Block and Put Block List, as a part of the blob service.

The body is refused up front when its announced length passes what the operation
takes at the request's version (413), then read as it arrives, a body idle
``body_timeout_s`` dropping the connection; Put Blob streams into the store's writer
(nothing partial is left behind), Put Block stages in memory, Put Block List commits
the staged blocks (learn.microsoft.com/rest/api/storageservices/put-blob, put-block,
put-block-list). :class:`BlobWrites` is mixed into
:class:`sim.cloud.blobserver.app.BlobService`, whose dispatch calls it once the
request is authorized and the container exists.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import AsyncIterator, Mapping
from email.utils import format_datetime

from aiohttp import web

from sim.cloud.blobserver.conditions import check_conditions
from sim.cloud.blobserver.directory_store import DirectoryStore
from sim.cloud.blobserver.errors import MESSAGES, BlobError
from sim.cloud.blobserver.events import ServedRequest
from sim.cloud.blobserver.listing import parse_block_list
from sim.cloud.blobserver.shaping import close_connection
from sim.cloud.blobserver.store import BlobStore, BlobWriter, StoredBlob

MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # what the memory store holds of one blob
MAX_BLOCK_ID_BYTES = 64  # Put Block: blockid decodes to at most 64 bytes
MAX_BLOCK_LIST_BYTES = 8 * 1024 * 1024  # 50,000 block ids in XML, with room
MiB = 1024 * 1024
# "Put Blob" and "Put Block": the largest body by x-ms-version (service version).
_PUT_LIMITS = (  # (from version, Put Blob max, Put Block max)
    ("2019-12-12", 5000 * MiB, 4000 * MiB),
    ("2016-05-31", 256 * MiB, 100 * MiB),
    ("", 64 * MiB, 4 * MiB),
)

MESSAGES.setdefault(
    "BlobAlreadyExists", "The specified blob already exists."
)  # Put Blob with If-None-Match: * on an existing blob answers 409


class BlobWrites:
    """Put Blob, Put Block and Put Block List; the service state they use."""

    store: BlobStore
    body_timeout_s: float

    async def _put(
        self,
        request: web.Request,
        container: str,
        name: str,
        existing: StoredBlob | None,
        common: dict[str, str],
        record: ServedRequest,
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
        self, request: web.Request, length: int, record: ServedRequest
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

    async def _read_body(self, request: web.Request, length: int, record: ServedRequest) -> bytes:
        body = bytearray()
        async for chunk in self._chunks(request, length, record):
            body += chunk
        return bytes(body)

    async def _stream_body(
        self, request: web.Request, length: int, writer: BlobWriter, record: ServedRequest
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
