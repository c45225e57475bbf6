"""Container operations of the Blob REST API, as a part of the blob service.

Create Container, Delete Container, Get Container Properties and List Blobs
(learn.microsoft.com/rest/api/storageservices/blob-service-rest-api, "Operations on
containers"). :class:`ContainerOperations` is mixed into
:class:`sim.cloud.blobserver.app.BlobService`, whose dispatch calls it for a path that
names a container and no blob.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

from aiohttp import web

from sim.cloud.blobserver.errors import BlobError
from sim.cloud.blobserver.events import ServedRequest
from sim.cloud.blobserver.listing import list_blobs_xml
from sim.cloud.blobserver.sas import LIST, READ, Operation
from sim.cloud.blobserver.store import BlobStore


class ContainerOperations:
    """The operations on a container; the service state they use."""

    store: BlobStore
    account: str
    _authorize: Callable[[web.Request, Operation], None]

    async def _container_op(
        self, request: web.Request, container: str, common: dict[str, str], record: ServedRequest
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


def _epoch() -> datetime:
    """Containers carry a fixed stamp: they are not versioned here."""
    return datetime(2024, 1, 1, tzinfo=UTC)
