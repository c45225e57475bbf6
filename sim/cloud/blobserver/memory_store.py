"""Blobs in memory, the server's default store: a dict per container.

Every write makes a new :class:`~sim.cloud.blobserver.store.StoredBlob` whose ETag
comes from a counter, so every write gets a new one, as on Azure.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime

from sim.cloud.blobserver.errors import BlobError
from sim.cloud.blobserver.staged_blocks import StagedBlocks
from sim.cloud.blobserver.store import (
    BlobView,
    BlobWriter,
    PutByWriter,
    StoredBlob,
    check_blob_name,
    check_container_name,
)


class _Memory:
    def __init__(self, data: bytes) -> None:
        self._data = data

    @contextlib.contextmanager
    def open(self, first: int, last: int) -> Iterator[BlobView]:
        yield memoryview(self._data)[first : last + 1]


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class _MemoryWriter:
    def __init__(self, store: MemoryStore, container: str, name: str) -> None:
        self._store, self._container, self._name = store, container, name
        self._buffer = bytearray()
        self._md5 = hashlib.md5()

    def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        self._md5.update(chunk)

    @property
    def md5(self) -> bytes:
        return self._md5.digest()

    def commit(
        self, *, content_type: str = "application/octet-stream", content_md5: bytes | None = None
    ) -> StoredBlob:
        data, self._buffer = bytes(self._buffer), bytearray()
        return self._store._commit(self._container, self._name, data, content_type, content_md5)

    def abort(self) -> None:
        self._buffer = bytearray()


class MemoryStore(PutByWriter):
    """Blobs in a dict; ETags from a counter, so every write gets a new one."""

    def __init__(self, staged_blocks: StagedBlocks | None = None) -> None:
        self.staged_blocks = staged_blocks or StagedBlocks()
        self._containers: dict[str, dict[str, StoredBlob]] = {}
        self._counter = itertools.count(1)

    def create_container(self, container: str) -> bool:
        check_container_name(container)
        if container in self._containers:
            return False
        self._containers[container] = {}
        return True

    def has_container(self, container: str) -> bool:
        return container in self._containers

    def delete_container(self, container: str) -> bool:
        return self._containers.pop(container, None) is not None

    def get(self, container: str, name: str) -> StoredBlob | None:
        return self._containers.get(container, {}).get(name)

    def writer(self, container: str, name: str) -> BlobWriter:
        check_blob_name(name)
        if container not in self._containers:
            raise BlobError(404, "ContainerNotFound")
        return _MemoryWriter(self, container, name)

    def _commit(
        self,
        container: str,
        name: str,
        data: bytes,
        content_type: str,
        content_md5: bytes | None,
    ) -> StoredBlob:
        blobs = self._containers.get(container)
        if blobs is None:
            raise BlobError(404, "ContainerNotFound")
        old = blobs.get(name)
        now = _now()
        blob = StoredBlob(
            container=container,
            name=name,
            size=len(data),
            etag=f'"0x8D{next(self._counter):014X}"',
            last_modified=now,
            created=old.created if old else now,
            content_type=content_type,
            content_md5=content_md5,
            source=_Memory(data),
        )
        blobs[name] = blob
        return blob

    def delete(self, container: str, name: str) -> bool:
        return self._containers.get(container, {}).pop(name, None) is not None

    def list(self, container: str, prefix: str = "") -> list[StoredBlob]:
        blobs = self._containers.get(container, {})
        return [blobs[n] for n in sorted(blobs) if n.startswith(prefix)]
