"""Blobs as files in a directory (``--root DIR``): names, atomic writes, ETags.

Each blob is one file in ``DIR/container/``, named by :func:`file_name`: the blob
name percent-encoded (UTF-8; letters, digits, ``-``, ``_`` and an inner ``.`` kept),
so every valid name maps to a distinct, safe file, ``a``
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
read opens it (:meth:`~sim.cloud.blobserver.store.StoredBlob.open`). Put Block's
uncommitted blocks are kept in memory, bounded as Azure bounds them
(:class:`~sim.cloud.blobserver.staged_blocks.StagedBlocks`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

from sim.cloud.blobserver.errors import BlobError
from sim.cloud.blobserver.staged_blocks import StagedBlocks
from sim.cloud.blobserver.store import (
    BlobChanged,
    BlobView,
    BlobWriter,
    PutByWriter,
    StoredBlob,
    check_blob_name,
    check_container_name,
)

MAX_FILE_NAME = 200  # bytes; file systems allow 255 (NAME_MAX), leave room for suffixes
_SAFE = "-_."
_ENCODED = re.compile(r"(?:[A-Za-z0-9_.-]|%[0-9A-F]{2})+")
_HASHED = re.compile(r"~[0-9a-f]{64}")
_PARTIAL = re.compile(r"#[0-9a-f]{16}\.partial")


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


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


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


class DirectoryStore(PutByWriter):
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
