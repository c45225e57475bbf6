"""Where blobs live: in memory (the default) or in a directory (``--root DIR``).

In a directory each blob is one file in ``DIR/container/``, named by
:func:`file_name`: the blob name percent-encoded (UTF-8; letters, digits, ``-``, ``_``
and an inner ``.`` kept), so every valid name maps to a distinct, safe file, ``a``
beside ``a/b`` and ``al/b`` beside ``al//b`` as Azure keeps them ("Naming and
referencing containers, blobs and metadata"), whatever its length: a name whose
encoding would pass :data:`MAX_FILE_NAME` bytes becomes ``~`` + its SHA-256 with a
``.name`` companion holding it. A flat name such as ``fw.bin`` is its own file, so a
file dropped into ``DIR/container/`` is served. A write goes to a ``#...partial`` file
first and is renamed over the blob when complete (removed if the write fails), so a
reader sees the old blob or the new one. A blob's ETag comes from the file's identity
(inode, size, mtime), so replacing the file between two requests gives the next
request a new ETag, as Azure gives one on every write.

Contents are never held whole by a directory store: a write streams to its file and a
read opens it (:meth:`StoredBlob.open`). Put Block's uncommitted blocks are kept in
memory, bounded as Azure bounds them (:class:`StagedBlocks`).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote

from sim.cloud.blobserver.errors import BlobError

_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_MAX_BLOB_NAME = 1024
MAX_FILE_NAME = 200  # bytes; file systems allow 255 (NAME_MAX), leave room for suffixes
_SAFE = "-_."
_ENCODED = re.compile(r"(?:[A-Za-z0-9_.-]|%[0-9A-F]{2})+")
_HASHED = re.compile(r"~[0-9a-f]{64}")
_PARTIAL = re.compile(r"#[0-9a-f]{16}\.partial")

# Put Block: "a blob can have up to 100,000 uncommitted blocks"; uncommitted blocks are
# discarded when no Put Block or Put Block List touches the blob for a week.
MAX_UNCOMMITTED_BLOCKS = 100_000
UNCOMMITTED_TTL_S = 7 * 24 * 3600.0
MAX_UNCOMMITTED_BYTES = 256 * 1024 * 1024  # this server's memory bound over all blobs


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


class _Memory:
    def __init__(self, data: bytes) -> None:
        self._data = data

    @contextlib.contextmanager
    def open(self, first: int, last: int) -> Iterator[BlobView]:
        yield memoryview(self._data)[first : last + 1]


class FileView:
    """``length`` bytes of an open file from ``start``, read on demand (``os.pread``)."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        self._fd, self._start, self._length = fd, start, length

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: slice, /) -> bytes:
        first, stop, step = index.indices(self._length)
        if step != 1:
            raise ValueError("a FileView slices with step 1 only")
        return os.pread(self._fd, max(0, stop - first), self._start + first)


class _File:
    def __init__(self, path: Path, identity: tuple[int, int, int]) -> None:
        self._path, self._identity = path, identity

    @contextlib.contextmanager
    def open(self, first: int, last: int) -> Iterator[BlobView]:
        fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            if _identity(os.fstat(fd)) != self._identity:
                raise BlobChanged(str(self._path))
            yield FileView(fd, first, last - first + 1)
        finally:
            os.close(fd)


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


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class _Staged:
    blocks: dict[str, bytes] = field(default_factory=dict)
    touched: float = 0.0


class StagedBlocks:
    """Put Block's uncommitted blocks, per blob, until Put Block List commits them.

    Bounded as Azure bounds them: at most ``max_blocks`` per blob (409
    ``BlockCountExceedsLimit``), discarded ``ttl_s`` after the last Put Block or Put
    Block List on the blob; and, this server holding them in memory, at most
    ``max_bytes`` over all blobs (413 ``RequestBodyTooLarge``).
    """

    def __init__(
        self,
        *,
        max_blocks: int = MAX_UNCOMMITTED_BLOCKS,
        max_bytes: int = MAX_UNCOMMITTED_BYTES,
        ttl_s: float = UNCOMMITTED_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("max_blocks", max_blocks), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")
        self.max_blocks, self.max_bytes, self.ttl_s = max_blocks, max_bytes, ttl_s
        self._clock = clock
        self._blobs: dict[tuple[str, str], _Staged] = {}

    @property
    def total_bytes(self) -> int:
        self._expire()
        return sum(len(b) for s in self._blobs.values() for b in s.blocks.values())

    def stage_block(self, container: str, name: str, block_id: str, data: bytes) -> None:
        self._expire()
        staged = self._blobs.setdefault((container, name), _Staged())
        old = staged.blocks.get(block_id)
        if old is None and len(staged.blocks) >= self.max_blocks:
            raise BlobError(
                409,
                "BlockCountExceedsLimit",
                detail={"MaxLimit": str(self.max_blocks)},
            )
        room = self.max_bytes - self.total_bytes + (len(old) if old is not None else 0)
        if len(data) > room:
            raise BlobError(413, "RequestBodyTooLarge", detail={"MaxLimit": str(max(0, room))})
        staged.blocks[block_id] = data
        staged.touched = self._clock()

    def staged(self, container: str, name: str) -> dict[str, bytes]:
        self._expire()
        staged = self._blobs.get((container, name))
        if staged is None:
            return {}
        staged.touched = self._clock()
        return dict(staged.blocks)

    def clear_staged(self, container: str, name: str) -> None:
        self._blobs.pop((container, name), None)

    def _expire(self) -> None:
        cutoff = self._clock() - self.ttl_s
        for key in [k for k, s in self._blobs.items() if s.touched <= cutoff]:
            del self._blobs[key]


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


class MemoryStore:
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

    def put(
        self,
        container: str,
        name: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        content_md5: bytes | None = None,
    ) -> StoredBlob:
        writer = self.writer(container, name)
        writer.write(bytes(data))
        return writer.commit(content_type=content_type, content_md5=content_md5)

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


def file_name(name: str) -> str:
    """The file that holds blob ``name`` in its container's directory (see module doc)."""
    encoded = quote(name, safe=_SAFE).replace("~", "%7E")  # "~" starts hashed names only
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]  # never ".", "..", nor a hidden file
    if len(encoded) <= MAX_FILE_NAME:
        return encoded
    return "~" + hashlib.sha256(name.encode("utf-8")).hexdigest()


def blob_name(directory: Path, entry: str) -> str | None:
    """The blob name a file in a container's directory holds, None if it holds none."""
    if _HASHED.fullmatch(entry):
        try:
            name = (directory / (entry + ".name")).read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        return name if file_name(name) == entry else None
    if not _ENCODED.fullmatch(entry):
        return None
    try:
        name = unquote(entry, errors="strict")
    except UnicodeDecodeError:
        return None
    return name if file_name(name) == entry else None


class _FileWriter:
    def __init__(self, store: DirectoryStore, container: str, name: str, base: Path) -> None:
        self._store, self._container, self._name = store, container, name
        self._base = base
        self._tmp = base / f"#{secrets.token_hex(8)}.partial"
        self._file = self._tmp.open("xb")
        self._md5 = hashlib.md5()

    def write(self, chunk: bytes) -> None:
        try:
            self._file.write(chunk)
        except BaseException:
            self.abort()
            raise
        self._md5.update(chunk)

    @property
    def md5(self) -> bytes:
        return self._md5.digest()

    def commit(
        self, *, content_type: str = "application/octet-stream", content_md5: bytes | None = None
    ) -> StoredBlob:
        target = self._base / file_name(self._name)
        try:
            self._file.close()
            if target.name.startswith("~"):
                (self._base / (target.name + ".name")).write_bytes(self._name.encode("utf-8"))
            os.replace(self._tmp, target)  # a new inode: the next read sees a new ETag
        except BaseException:
            self.abort()
            raise
        blob = self._store.get(self._container, self._name)
        assert blob is not None  # just written
        return blob

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink()


class DirectoryStore:
    """Blobs as files under ``root`` (see the module doc); metadata cached by identity."""

    def __init__(
        self, root: str | os.PathLike[str], staged_blocks: StagedBlocks | None = None
    ) -> None:
        self.staged_blocks = staged_blocks or StagedBlocks()
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ValueError(f"root {str(self.root)!r} is not a directory")
        self._cache: dict[Path, tuple[tuple[int, int, int], StoredBlob]] = {}
        for stale in self.root.glob("*/#*.partial"):  # left by a server that was killed
            if _PARTIAL.fullmatch(stale.name):
                with contextlib.suppress(OSError):
                    stale.unlink()

    def _container_dir(self, container: str) -> Path:
        check_container_name(container)
        return self.root / container

    def _path(self, container: str, name: str) -> Path:
        check_blob_name(name)
        return self._container_dir(container) / file_name(name)

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
            child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink()
        path.rmdir()
        return True

    def get(self, container: str, name: str) -> StoredBlob | None:
        path = self._path(container, name)
        try:
            st = path.lstat()
        except OSError:
            return None
        if not path.is_file() or path.is_symlink():
            return None
        identity = _identity(st)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == identity:
            return cached[1]
        tag = hashlib.sha256(repr(identity).encode()).hexdigest()[:14].upper()
        modified = datetime.fromtimestamp(st.st_mtime_ns // 1_000_000_000, UTC)
        blob = StoredBlob(
            container=container,
            name=name,
            size=st.st_size,
            etag=f'"0x8D{tag}"',
            last_modified=modified,
            created=modified,
            source=_File(path, identity),
        )
        self._cache[path] = (identity, blob)
        return blob

    def writer(self, container: str, name: str) -> BlobWriter:
        check_blob_name(name)
        if not self.has_container(container):
            raise BlobError(404, "ContainerNotFound")
        return _FileWriter(self, container, name, self._container_dir(container))

    def put(
        self,
        container: str,
        name: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        content_md5: bytes | None = None,
    ) -> StoredBlob:
        writer = self.writer(container, name)
        writer.write(bytes(data))
        return writer.commit(content_type=content_type, content_md5=content_md5)

    def delete(self, container: str, name: str) -> bool:
        path = self._path(container, name)
        try:
            path.unlink()
        except OSError:
            return False
        self._cache.pop(path, None)
        if path.name.startswith("~"):
            with contextlib.suppress(OSError):
                (path.parent / (path.name + ".name")).unlink()
        return True

    def list(self, container: str, prefix: str = "") -> list[StoredBlob]:
        base = self._container_dir(container)
        if not base.is_dir():
            return []
        names = sorted(
            name
            for entry in os.listdir(base)
            if (name := blob_name(base, entry)) is not None and name.startswith(prefix)
        )
        found = (self.get(container, n) for n in names)
        return [b for b in found if b is not None]
