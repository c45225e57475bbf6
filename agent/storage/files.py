"""Open littlefs files: :class:`AppendFile` (written, committed by ``sync``) and
:class:`ReadFile` (a raw binary stream).

Commits are explicit ``lfs_file_sync`` calls on raw handles, nothing is buffered in
Python (``docs/littlefs.md``, trap 4); a handle is marked closed before littlefs is
asked to close it, so a failed close is never retried by a finaliser into littlefs's
``lfs_mlist_isopen`` assertion (trap 5).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from littlefs import lfs

_T = TypeVar("_T")


class FileOwner(Protocol):
    """What a handle needs of the :class:`agent.storage.Storage` that opened it: its
    littlefs, its block device, the set of open handles, and the guarded call."""

    _fs: Any
    _dev: Any
    _mounted: bool
    _open: set[Any]

    def _call(self, op: str, fn: Callable[..., _T], *args: Any) -> _T: ...


class _Handle:
    """An open raw littlefs file whose close can run only once (trap 5)."""

    def __init__(self, storage: FileOwner, path: str, fh: Any) -> None:
        self._storage = storage
        self._fh = fh
        self.path = path
        self._is_closed = False
        storage._open.add(self)

    def _close_handle(self) -> None:
        """Close (committing pending data); marked closed before littlefs is asked.

        After an earlier power loss it only forgets the handle: the data went with
        the power, and the caller has been told already.
        """
        if self._is_closed:
            return
        self._is_closed = True
        storage = self._storage
        storage._open.discard(self)
        if storage._dev.lost is not None or not storage._mounted:
            return
        storage._call(f"close {self.path!r}", lfs.file_close, storage._fs, self._fh)

    def _do(self, op: str, fn: Callable[..., _T], *args: Any) -> _T:
        if self._is_closed:
            raise ValueError(f"{op} {self.path!r}: file is closed")
        return self._storage._call(f"{op} {self.path!r}", fn, self._storage._fs, self._fh, *args)


class AppendFile(_Handle):
    """A file open for appending. ``sync`` is the commit point (``lfs_file_sync``)."""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data`` (not yet committed); returns the byte count."""
        return int(self._do("write", lfs.file_write, bytes(data)))

    def sync(self) -> None:
        """Commit everything written so far: it survives a power cut from here on."""
        self._do("sync", lfs.file_sync)

    @property
    def size(self) -> int:
        """The file's size including data not yet committed."""
        return int(self._do("size", lfs.file_size))

    @property
    def closed(self) -> bool:
        return self._is_closed

    def close(self) -> None:
        """Commit and close; the handle is closed afterwards even if this raises."""
        self._close_handle()

    def __enter__(self) -> AppendFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReadFile(_Handle, io.RawIOBase):
    """A read-only file as a raw binary stream (``read``, ``readinto``, ``seek``)."""

    def __init__(self, storage: FileOwner, path: str, fh: Any) -> None:
        io.RawIOBase.__init__(self)
        _Handle.__init__(self, storage, path, fh)

    @property
    def size(self) -> int:
        return int(self._do("size", lfs.file_size))

    def readable(self) -> bool:
        return not self._is_closed

    def seekable(self) -> bool:
        return not self._is_closed

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._do("seek", lfs.file_seek, offset, whence))

    def tell(self) -> int:
        return int(self._do("tell", lfs.file_tell))

    def readinto(self, buffer: Any) -> int:
        data = self._do("read", lfs.file_read, len(buffer))
        n = len(data)
        memoryview(buffer).cast("B")[:n] = data
        return n

    def readall(self) -> bytes:
        return self.read_at(self.tell(), max(0, self.size - self.tell()))

    def read_at(self, offset: int, n: int) -> bytes:
        """``n`` bytes from ``offset`` (fewer at the end of the file)."""
        self.seek(offset)
        return bytes(self._do("read", lfs.file_read, n))

    @property
    def closed(self) -> bool:
        return self._is_closed

    def close(self) -> None:
        """Close; closed afterwards even if this raises, and safe from a finaliser."""
        self._close_handle()

    def __enter__(self) -> ReadFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
