"""What the server's handlers need of a blob store, and the names Azure accepts.

The :class:`BlobStore` protocol, the committed blob (:class:`StoredBlob`, whose bytes
are read through a :class:`BlobView`), the writer a Put streams into
(:class:`BlobWriter`), and the checks on container and blob names ("Naming and
referencing containers, blobs and metadata"). Two stores implement it: in memory, the
default (:mod:`sim.cloud.blobserver.memory_store`), and in a directory, ``--root DIR``
(:mod:`sim.cloud.blobserver.directory_store`); both keep Put Block's uncommitted
blocks in memory (:mod:`sim.cloud.blobserver.staged_blocks`).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sim.cloud.blobserver.errors import BlobError
from sim.cloud.blobserver.staged_blocks import StagedBlocks

_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_MAX_BLOB_NAME = 1024


class BlobView(Protocol):
    """Bytes of a blob, sliceable without holding the whole blob: ``view[a:b]``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice, /) -> bytes | memoryview: ...


class _Source(Protocol):
    def open(self, first: int, last: int) -> contextlib.AbstractContextManager[BlobView]: ...


@dataclass(frozen=True)
class StoredBlob:
    """One committed block blob, immutable: a write makes a new one with a new ETag."""

    container: str
    name: str
    size: int
    etag: str
    """Quoted, as sent in the ETag header."""
    last_modified: datetime
    """Whole seconds, UTC (HTTP dates carry no more)."""
    created: datetime
    content_type: str = "application/octet-stream"
    content_md5: bytes | None = None
    source: _Source | None = field(default=None, repr=False, compare=False)

    def open(
        self, first: int = 0, last: int | None = None
    ) -> contextlib.AbstractContextManager[BlobView]:
        """The bytes ``first..last`` (inclusive; default the whole blob) as a view."""
        assert self.source is not None
        return self.source.open(first, self.size - 1 if last is None else last)

    @property
    def data(self) -> bytes:
        """The whole content (read from disk for a directory store: for small blobs)."""
        if self.size == 0:
            return b""
        with self.open() as view:
            return bytes(view[0 : len(view)])


class BlobChanged(Exception):
    """The file was replaced between looking it up and opening it: look it up again."""


def check_container_name(container: str) -> None:
    """3-63 lowercase letters, digits and single inner hyphens; 400 otherwise."""
    if not _CONTAINER.fullmatch(container):
        raise BlobError(400, "InvalidResourceName", detail={"ResourceName": container[:64]})


def check_blob_name(name: str) -> None:
    """Refuse names that are empty, too long, absolute, or escape the container."""
    parts = name.replace("\\", "/").split("/")
    if (
        not name
        or len(name) > _MAX_BLOB_NAME
        or "\x00" in name
        or name.startswith(("/", "\\"))
        or any(part in (".", "..") for part in parts)
    ):
        raise BlobError(400, "InvalidResourceName", detail={"ResourceName": name[:128]})


class BlobWriter(Protocol):
    """One blob being written: ``write`` chunks, then ``commit`` (or ``abort``)."""

    def write(self, chunk: bytes) -> None: ...

    @property
    def md5(self) -> bytes: ...

    def commit(
        self, *, content_type: str = "application/octet-stream", content_md5: bytes | None = None
    ) -> StoredBlob: ...

    def abort(self) -> None: ...


class PutByWriter:
    """``put`` as one write through the store's own :meth:`writer` (both stores' way)."""

    def writer(self, container: str, name: str) -> BlobWriter:
        raise NotImplementedError

    def put(
        self,
        container: str,
        name: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        content_md5: bytes | None = None,
    ) -> StoredBlob:
        """Store ``data`` whole as ``name`` (a Put Blob), replacing what was there."""
        writer = self.writer(container, name)
        writer.write(bytes(data))
        return writer.commit(content_type=content_type, content_md5=content_md5)


class BlobStore(Protocol):
    """The storage the server's handlers use; both stores hold staged blocks in memory."""

    staged_blocks: StagedBlocks

    def create_container(self, container: str) -> bool: ...
    def has_container(self, container: str) -> bool: ...
    def delete_container(self, container: str) -> bool: ...
    def get(self, container: str, name: str) -> StoredBlob | None: ...
    def writer(self, container: str, name: str) -> BlobWriter: ...
    def put(
        self,
        container: str,
        name: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        content_md5: bytes | None = None,
    ) -> StoredBlob: ...
    def delete(self, container: str, name: str) -> bool: ...
    def list(self, container: str, prefix: str = "") -> list[StoredBlob]: ...
