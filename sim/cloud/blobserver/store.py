"""Where blobs live: in memory (the default) or in a directory (``--root DIR``).

In a directory each blob is the file ``DIR/container/name``; its ETag comes from
the file's identity (inode, size, mtime), so replacing the file between two
requests (as a build that uploads every version under one name does) gives the
next request a new ETag, as Azure gives one on every write. Names are checked
first: Azure's container naming rules ("Naming and referencing containers, blobs
and metadata"), and no blob name may escape its container.
"""

import hashlib
import itertools
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sim.cloud.blobserver.errors import BlobError

_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_MAX_BLOB_NAME = 1024


@dataclass(frozen=True)
class StoredBlob:
    """One committed block blob, immutable: a write makes a new one with a new ETag."""

    container: str
    name: str
    data: bytes = field(repr=False)
    etag: str
    """Quoted, as sent in the ETag header."""
    last_modified: datetime
    """Whole seconds, UTC (HTTP dates carry no more)."""
    created: datetime
    content_type: str = "application/octet-stream"
    content_md5: bytes | None = None


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


class BlobStore(Protocol):
    """The storage the server's handlers use; both stores hold staged blocks in memory."""

    def create_container(self, container: str) -> bool: ...
    def has_container(self, container: str) -> bool: ...
    def delete_container(self, container: str) -> bool: ...
    def get(self, container: str, name: str) -> StoredBlob | None: ...
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
    def stage_block(self, container: str, name: str, block_id: str, data: bytes) -> None: ...
    def staged(self, container: str, name: str) -> dict[str, bytes]: ...
    def clear_staged(self, container: str, name: str) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class _StagedBlocks:
    """Put Block's uncommitted blocks, per blob, until Put Block List commits them."""

    def __init__(self) -> None:
        self._blocks: dict[tuple[str, str], dict[str, bytes]] = {}

    def stage_block(self, container: str, name: str, block_id: str, data: bytes) -> None:
        self._blocks.setdefault((container, name), {})[block_id] = data

    def staged(self, container: str, name: str) -> dict[str, bytes]:
        return dict(self._blocks.get((container, name), {}))

    def clear_staged(self, container: str, name: str) -> None:
        self._blocks.pop((container, name), None)


class MemoryStore(_StagedBlocks):
    """Blobs in a dict; ETags from a counter, so every write gets a new one."""

    def __init__(self) -> None:
        super().__init__()
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

    def put(
        self,
        container: str,
        name: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        content_md5: bytes | None = None,
    ) -> StoredBlob:
        check_blob_name(name)
        blobs = self._containers.get(container)
        if blobs is None:
            raise BlobError(404, "ContainerNotFound")
        old = blobs.get(name)
        now = _now()
        blob = StoredBlob(
            container=container,
            name=name,
            data=bytes(data),
            etag=f'"0x8D{next(self._counter):014X}"',
            last_modified=now,
            created=old.created if old else now,
            content_type=content_type,
            content_md5=content_md5,
        )
        blobs[name] = blob
        return blob

    def delete(self, container: str, name: str) -> bool:
        return self._containers.get(container, {}).pop(name, None) is not None

    def list(self, container: str, prefix: str = "") -> list[StoredBlob]:
        blobs = self._containers.get(container, {})
        return [blobs[n] for n in sorted(blobs) if n.startswith(prefix)]


class DirectoryStore(_StagedBlocks):
    """Blobs as files under ``root``; reads are cached by file identity."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__()
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ValueError(f"root {str(self.root)!r} is not a directory")
        self._cache: dict[Path, tuple[tuple[int, int, int], StoredBlob]] = {}

    def _container_dir(self, container: str) -> Path:
        check_container_name(container)
        return self.root / container

    def _path(self, container: str, name: str) -> Path:
        check_blob_name(name)
        base = self._container_dir(container)
        path = (base / name).resolve()
        if not path.is_relative_to(base.resolve()):
            raise BlobError(400, "InvalidResourceName", detail={"ResourceName": name[:128]})
        return path

    def create_container(self, container: str) -> bool:
        path = self._container_dir(container)
        if path.is_dir():
            return False
        path.mkdir()
        return True

    def has_container(self, container: str) -> bool:
        return self._container_dir(container).is_dir()

    def delete_container(self, container: str) -> bool:
        path = self._container_dir(container)
        if not path.is_dir():
            return False
        for child in sorted(path.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() else child.unlink()
        path.rmdir()
        return True

    def get(self, container: str, name: str) -> StoredBlob | None:
        path = self._path(container, name)
        try:
            st = path.stat()
        except OSError:
            return None
        if not path.is_file():
            return None
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == identity:
            return cached[1]
        data = path.read_bytes()
        tag = hashlib.sha256(repr(identity).encode()).hexdigest()[:14].upper()
        modified = datetime.fromtimestamp(st.st_mtime_ns // 1_000_000_000, UTC)
        blob = StoredBlob(
            container=container,
            name=name,
            data=data,
            etag=f'"0x8D{tag}"',
            last_modified=modified,
            created=modified,
        )
        self._cache[path] = (identity, blob)
        return blob

    def put(
        self,
        container: str,
        name: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        content_md5: bytes | None = None,
    ) -> StoredBlob:
        path = self._path(container, name)
        if not self.has_container(container):
            raise BlobError(404, "ContainerNotFound")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a new inode: the next read sees a new ETag
        blob = self.get(container, name)
        assert blob is not None  # just written
        return blob

    def delete(self, container: str, name: str) -> bool:
        path = self._path(container, name)
        try:
            path.unlink()
        except OSError:
            return False
        self._cache.pop(path, None)
        return True

    def list(self, container: str, prefix: str = "") -> list[StoredBlob]:
        base = self._container_dir(container)
        if not base.is_dir():
            return []
        names = sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
        found = (self.get(container, n) for n in names if n.startswith(prefix))
        return [b for b in found if b is not None]
