"""littlefs on the SPI NOR flash: the agent's file system, honest about power cuts.

The real C littlefs (littlefs-python) runs over the flash driver through a block
device that maps littlefs blocks to flash addresses. The traps of the binding
(``docs/littlefs.md``) are handled here, once:

1. Exceptions raised in a block-device callback are swallowed by the binding, so the
   callbacks never raise. A :class:`~agent.errors.PowerLoss` from the driver is
   remembered and returned to littlefs as ``LFS_ERR_IO`` (-5); every :class:`Storage`
   method checks after each littlefs call and re-raises it. From the cut on, every
   callback fails at once: nothing reaches a chip that has no power.
2. A failed read of a data block comes back from littlefs as 0xFF data with no error;
   because of (1) the caller gets :class:`PowerLoss`, never those bytes.
3. Mounting never formats by itself: only a blank region, or when asked.
4. Commits are real ``lfs_file_sync`` calls on raw littlefs handles (no buffering).
5. Closing marks a handle closed whatever happens, so a failed close cannot be
   retried by a finaliser into littlefs's ``lfs_mlist_isopen`` assertion.
6. :meth:`Storage.truncate` calls ``lfs_file_truncate`` with the size it is given.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import littlefs
from littlefs import LittleFSError, lfs

from agent.errors import PowerLoss
from agent.w25q128jv import PAGE, SECTOR, SECTORS

__all__ = [
    "AppendFile",
    "Flash",
    "Geometry",
    "IoCounts",
    "NotFormatted",
    "ReadFile",
    "Storage",
    "StorageError",
    "StorageFull",
]

_T = TypeVar("_T")
_F: Any = lfs.LFSFileFlag  # the stub declares no members
_ERR_IO = -5  # LFS_ERR_IO
_ERR_NOENT = LittleFSError.Error.LFS_ERR_NOENT
_ERR_EXIST = LittleFSError.Error.LFS_ERR_EXIST
_ERR_NOSPC = LittleFSError.Error.LFS_ERR_NOSPC

#: Bytes read from the start of every block (beyond the first two, read whole) to
#: decide that a region that littlefs cannot mount is blank and may be formatted.
BLANK_PROBE_BYTES = 256


class Flash(Protocol):
    """What the storage needs from the flash driver (:class:`agent.flash.SpiFlash`)."""

    @property
    def size(self) -> int: ...

    @property
    def sector_size(self) -> int: ...

    def read(self, addr: int, n: int) -> bytes: ...

    def program(self, addr: int, data: bytes) -> None: ...

    def erase(self, addr: int, length: int) -> None: ...


class StorageError(Exception):
    """The file system or the flash under it failed (not a power loss).

    ``code`` is the littlefs error code when littlefs reported one, else ``None``
    (a flash driver fault, whose exception is the ``__cause__``).
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class StorageFull(StorageError):
    """littlefs has no free block left (LFS_ERR_NOSPC)."""


class NotFormatted(StorageError):
    """The region is not blank and littlefs cannot mount it; it was left untouched."""


@dataclass(frozen=True)
class Geometry:
    """The littlefs configuration and where its region lies on the chip.

    Defaults are the reference design's (its ``lfs_config``): 4 KiB blocks over the
    whole 16 MiB W25Q128JV, 16-byte reads, 256-byte programs (one page), 256-byte
    caches, a 16-byte lookahead and wear levelling every 500 erase cycles.
    Checked here against littlefs's own ``lfs_init`` assertions, which would abort
    the interpreter rather than return an error.
    """

    block_size: int = SECTOR
    block_count: int = SECTORS
    read_size: int = 16
    prog_size: int = PAGE
    cache_size: int = 256
    lookahead_size: int = 16
    block_cycles: int = 500
    offset: int = 0  # byte offset of the region on the chip

    def __post_init__(self) -> None:
        for name in (
            "block_size",
            "block_count",
            "read_size",
            "prog_size",
            "cache_size",
            "lookahead_size",
            "block_cycles",
            "offset",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"Geometry.{name} must be an int, got {value!r}")
        for name in ("read_size", "prog_size", "cache_size", "lookahead_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Geometry.{name} must be positive, got {getattr(self, name)}")
        if self.block_size < 128:
            raise ValueError(f"Geometry.block_size must be at least 128, got {self.block_size}")
        if self.block_count < 2:
            raise ValueError(f"Geometry.block_count must be at least 2, got {self.block_count}")
        if self.offset < 0:
            raise ValueError(f"Geometry.offset must not be negative, got {self.offset}")
        for name in ("read_size", "prog_size"):
            if self.cache_size % getattr(self, name):
                raise ValueError(
                    f"Geometry.cache_size ({self.cache_size}) must be a multiple of "
                    f"{name} ({getattr(self, name)})"
                )
        if self.block_size % self.cache_size:
            raise ValueError(
                f"Geometry.block_size ({self.block_size}) must be a multiple of "
                f"cache_size ({self.cache_size})"
            )
        if self.lookahead_size % 8:
            raise ValueError(
                f"Geometry.lookahead_size must be a multiple of 8, got {self.lookahead_size}"
            )
        if self.block_cycles == 0 or self.block_cycles < -1:
            raise ValueError(
                f"Geometry.block_cycles must be positive, or -1 to disable wear levelling, "
                f"got {self.block_cycles}"
            )

    @property
    def region_size(self) -> int:
        """Bytes of flash the file system occupies."""
        return self.block_size * self.block_count

    def check_fits(self, flash: Flash) -> None:
        """Raise ``ValueError`` unless this region lies on ``flash`` on erase boundaries."""
        sector = flash.sector_size
        if self.block_size % sector:
            raise ValueError(
                f"Geometry.block_size ({self.block_size}) must be a multiple of the "
                f"flash's erase sector ({sector})"
            )
        if self.offset % sector:
            raise ValueError(
                f"Geometry.offset ({self.offset:#x}) must lie on an erase sector "
                f"boundary ({sector})"
            )
        if self.offset + self.region_size > flash.size:
            raise ValueError(
                f"Geometry region {self.offset:#x}+{self.region_size:#x} runs past the end "
                f"of the flash ({flash.size:#x} bytes): lower block_count or offset"
            )

    def _lfs_config(self) -> dict[str, int]:
        return {
            "block_size": self.block_size,
            "block_count": self.block_count,
            "read_size": self.read_size,
            "prog_size": self.prog_size,
            "cache_size": self.cache_size,
            "lookahead_size": self.lookahead_size,
            "block_cycles": self.block_cycles,
        }


@dataclass(frozen=True)
class IoCounts:
    """Block-device operations littlefs has asked for since mount."""

    reads: int
    progs: int
    erases: int


class _FlashBlockDevice(littlefs.UserContext):
    """littlefs blocks on flash addresses; never raises into the binding (trap 1).

    Overrides every method of ``UserContext`` (whose own build a debug string of
    every call's data) and does not call its ``__init__`` (which wants a buffer).
    """

    def __init__(self, flash: Flash, geometry: Geometry) -> None:
        self._flash = flash
        self._base = geometry.offset
        self._block_size = geometry.block_size
        self.lost: PowerLoss | None = None
        self.fault: tuple[str, BaseException] | None = None
        self.reads = self.progs = self.erases = 0

    def _fail(self, what: str, exc: Exception) -> None:
        if isinstance(exc, PowerLoss):
            self.lost = exc
        elif self.fault is None:
            self.fault = (what, exc)

    def read(self, cfg: Any, block: int, off: int, size: int) -> bytes:  # type: ignore[override]
        # The binding needs bytes back even on failure; they are never used (trap 2).
        if self.lost is not None:
            return b"\xff" * size
        self.reads += 1
        try:
            return self._flash.read(self._base + block * self._block_size + off, size)
        except Exception as exc:
            self._fail(f"read of block {block} offset {off} ({size} bytes)", exc)
            return b"\xff" * size

    def prog(self, cfg: Any, block: int, off: int, data: bytes) -> int:
        if self.lost is not None:
            return _ERR_IO
        self.progs += 1
        try:
            self._flash.program(self._base + block * self._block_size + off, data)
        except Exception as exc:
            self._fail(f"program of block {block} offset {off} ({len(data)} bytes)", exc)
            return _ERR_IO
        return 0

    def erase(self, cfg: Any, block: int) -> int:
        if self.lost is not None:
            return _ERR_IO
        self.erases += 1
        try:
            self._flash.erase(self._base + block * self._block_size, self._block_size)
        except Exception as exc:
            self._fail(f"erase of block {block}", exc)
            return _ERR_IO
        return 0

    def sync(self, cfg: Any) -> int:
        # The driver waits for every program and erase to finish: nothing to flush.
        return _ERR_IO if self.lost is not None else 0


class Storage:
    """A mounted littlefs region of the flash, with a small, explicit file API.

    Every method raises :class:`PowerLoss` if the power went during it or before it
    (the instance is then dead: mount a new one after power returns),
    :class:`StorageError` for a file-system or flash fault, ``FileNotFoundError``
    and ``FileExistsError`` for what their names say. Paths are littlefs paths
    (``"ota.bin"``, ``"/dir/x"``).
    """

    def __init__(self, _fs: Any, _cfg: Any, _dev: _FlashBlockDevice, geometry: Geometry) -> None:
        """Internal: use :meth:`Storage.mount`."""
        self._fs = _fs
        self._cfg = _cfg
        self._dev = _dev
        self.geometry = geometry
        self.formatted = False  # True when this mount formatted the region
        self._mounted = False
        self._open: set[_Handle] = set()

    # -- mounting -----------------------------------------------------------------

    @classmethod
    def mount(
        cls,
        flash: Flash,
        geometry: Geometry | None = None,
        *,
        format_blank: bool = True,
        force_format: bool = False,
    ) -> Storage:
        """Mount littlefs on ``flash``, formatting only a blank region or when forced.

        Never ``LittleFS(mount=True)``, which formats whatever it cannot mount (trap 3).
        When mounting fails, the region is formatted only if ``format_blank``, it holds
        no complete littlefs of another layout (a superblock that mounts with the block
        count read from disk: a bigger file system whose data lies past our region),
        and it reads blank outside the superblock pair: the first :data:`BLANK_PROBE_BYTES`
        of every block from 2 on are 0xFF (data of any kind, a file system's or an
        image's, starts at a block's first bytes). Blocks 0 and 1 are not judged:
        ``lfs_format`` writes only them, so a power cut during the first format
        leaves them torn, and refusing that chip would brick the device on its next
        boot. The price: a foreign image of at most two blocks at the region start
        is not recognised as data. Otherwise :class:`NotFormatted` is raised and
        nothing is written. ``force_format`` wipes the region whatever it holds.
        """
        geometry = Geometry() if geometry is None else geometry
        geometry.check_fits(flash)
        dev = _FlashBlockDevice(flash, geometry)
        cfg = lfs.LFSConfig(context=dev, **geometry._lfs_config())
        self = cls(lfs.LFSFilesystem(), cfg, dev, geometry)
        if force_format:
            self._format()
        try:
            self._call("mount", lfs.mount, self._fs, self._cfg)
        except StorageError as exc:
            if exc.code is None or force_format:
                raise  # a flash fault, or a mount failing right after format
            foreign = self._foreign_layout()
            if foreign is not None:
                raise NotFormatted(
                    f"flash region {geometry.offset:#x}+{geometry.region_size:#x} holds a "
                    f"littlefs of another layout ({foreign}); refusing to format: pass "
                    "force_format=True to wipe it",
                    exc.code,
                ) from exc
            if not (format_blank and self._region_is_blank(flash)):
                raise NotFormatted(
                    f"flash region {geometry.offset:#x}+{geometry.region_size:#x} is not "
                    f"blank and littlefs cannot mount it (error {exc.code}); refusing to "
                    "format: pass force_format=True to wipe it",
                    exc.code,
                ) from exc
            self._format()
            self._call("mount", lfs.mount, self._fs, self._cfg)
        self._mounted = True
        return self

    def _format(self) -> None:
        self._call("format", lfs.format, self._fs, self._cfg)
        self.formatted = True

    def _foreign_layout(self) -> str | None:
        """The layout of a complete littlefs at the region start that is not ours
        (``lfs_mount`` with ``block_count = 0`` takes it from the superblock), or None.
        Read-only; a flash fault or power loss during it is raised, never ignored."""
        g = self.geometry
        dev = _FlashBlockDevice(self._dev._flash, g)
        cfg = lfs.LFSConfig(context=dev, **{**g._lfs_config(), "block_count": 0})
        fs = lfs.LFSFilesystem()
        try:
            lfs.mount(fs, cfg)
        except LittleFSError:
            found = None
        else:
            stat = lfs.fs_stat(fs)
            found = f"{stat.block_count} blocks of {stat.block_size} bytes"
            with contextlib.suppress(LittleFSError):
                lfs.unmount(fs)
        if dev.lost is not None:
            self._dev.lost = dev.lost
        elif dev.fault is not None:
            self._dev.fault = dev.fault
        self._raise_device_fault("probe for a foreign littlefs")
        return found

    def _region_is_blank(self, flash: Flash) -> bool:
        """True if every block past the superblock pair starts blank (see mount)."""
        g = self.geometry
        probe = min(BLANK_PROBE_BYTES, g.block_size)
        blank = b"\xff" * probe
        return all(
            flash.read(g.offset + block * g.block_size, probe) == blank
            for block in range(2, g.block_count)
        )

    def unmount(self) -> None:
        """Close any open file (committing it) and unmount. Idempotent."""
        if not self._mounted:
            return
        try:
            for handle in list(self._open):
                handle._close_handle()
            self._call("unmount", lfs.unmount, self._fs)
        finally:
            self._mounted = False

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._dev.lost is None:
            self.unmount()

    # -- state --------------------------------------------------------------------

    @property
    def power_lost(self) -> bool:
        """True once a power loss has been seen: this instance is then dead."""
        return self._dev.lost is not None

    @property
    def io_counts(self) -> IoCounts:
        """Block-device reads, programs and erases since this instance was created."""
        return IoCounts(self._dev.reads, self._dev.progs, self._dev.erases)

    def fs_stat(self) -> Any:
        """littlefs's ``lfs_fs_stat``: disk version, limits, block size and count."""
        return self._call("fs_stat", lfs.fs_stat, self._fs)

    def used_bytes(self) -> int:
        """Bytes in blocks littlefs has in use (``lfs_fs_size`` blocks x block size)."""
        return self._call("fs_size", lfs.fs_size, self._fs) * self.geometry.block_size

    def free_bytes(self) -> int:
        """Bytes in blocks littlefs has not in use (an upper bound on what fits)."""
        return self.geometry.region_size - self.used_bytes()

    # -- files --------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        """True if ``path`` names a file or directory."""
        try:
            self._call(f"stat {path!r}", lfs.stat, self._fs, path)
        except FileNotFoundError:
            return False
        return True

    def size(self, path: str) -> int:
        """The committed size of the file at ``path``."""
        return int(self._call(f"stat {path!r}", lfs.stat, self._fs, path).size)

    def listdir(self, path: str = "/") -> list[str]:
        """Names in the directory ``path``, without ``.`` and ``..``."""
        dh = self._call(f"opendir {path!r}", lfs.dir_open, self._fs, path)
        names: list[str] = []
        try:
            while True:
                info = self._call(f"readdir {path!r}", lfs.dir_read, self._fs, dh)
                if not info:
                    return names
                if info.name not in (".", ".."):
                    names.append(info.name)
        finally:
            if self._dev.lost is None:
                self._call(f"closedir {path!r}", lfs.dir_close, self._fs, dh)

    def makedirs(self, path: str) -> None:
        """Create directory ``path`` and its parents; existing ones are fine."""
        current = ""
        for part in (p for p in path.split("/") if p):
            current += "/" + part
            with contextlib.suppress(FileExistsError):
                self._call(f"mkdir {current!r}", lfs.mkdir, self._fs, current)

    def read_file(self, path: str) -> bytes:
        """The whole file at ``path``."""
        with self.open_read(path) as f:
            return f.read_at(0, f.size)

    def read_range(self, path: str, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes of ``path`` from ``offset`` (fewer at the end of the file)."""
        if offset < 0 or n < 0:
            raise ValueError(f"read_range offset and n must not be negative, got {offset}, {n}")
        with self.open_read(path) as f:
            return f.read_at(offset, n)

    def open_read(self, path: str) -> ReadFile:
        """A binary reader over ``path`` (an ``io.RawIOBase``: wrap it, seek it)."""
        fh = self._call(f"open {path!r}", lfs.file_open, self._fs, path, _F.rdonly)
        return ReadFile(self, path, fh)

    def open_append(self, path: str, *, create: bool = True) -> AppendFile:
        """A writer appending to ``path``; data is committed only by ``sync`` or ``close``."""
        flags = _F.wronly | _F.append | (_F.creat if create else 0)
        fh = self._call(f"open {path!r}", lfs.file_open, self._fs, path, flags)
        return AppendFile(self, path, fh)

    def write_atomic(self, path: str, data: bytes) -> None:
        """Replace ``path`` by ``data`` so that a cut leaves the old or the new content.

        Writes ``path + ".tmp"``, commits it, then renames it over ``path``: littlefs
        commits a rename in one metadata commit (littlefs DESIGN.md, "Metadata pairs").
        """
        tmp = path + ".tmp"
        fh = self._call(
            f"open {tmp!r}", lfs.file_open, self._fs, tmp, _F.wronly | _F.creat | _F.trunc
        )
        try:
            with AppendFile(self, tmp, fh) as f:
                f.write(data)
                f.sync()
        except StorageError:
            self.remove(tmp)  # do not leave a half-written copy holding blocks
            raise
        self.rename(tmp, path)

    def rename(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst`` atomically, replacing ``dst`` if it exists."""
        self._call(f"rename {src!r} to {dst!r}", lfs.rename, self._fs, src, dst)

    def remove(self, path: str, *, missing_ok: bool = True) -> None:
        """Delete the file (or empty directory) at ``path``."""
        try:
            self._call(f"remove {path!r}", lfs.remove, self._fs, path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def truncate(self, path: str, size: int) -> None:
        """Cut (or zero-extend) ``path`` to ``size`` bytes and commit.

        Calls ``lfs_file_truncate`` directly: littlefs-python's ``FileHandle.truncate``
        ignores its size argument (trap 6).
        """
        if size < 0:
            raise ValueError(f"truncate size must not be negative, got {size}")
        fh = self._call(f"open {path!r}", lfs.file_open, self._fs, path, _F.wronly)
        with AppendFile(self, path, fh) as f:
            self._call(f"truncate {path!r}", lfs.file_truncate, self._fs, fh, size)
            f.sync()

    # -- the one way into littlefs --------------------------------------------------

    def _call(self, op: str, fn: Callable[..., _T], *args: Any) -> _T:
        """Run one littlefs call, then report what the flash did during it."""
        if self._dev.lost is not None:
            raise PowerLoss(f"{op}: the power was lost earlier; remount after power returns")
        if fn is not lfs.mount and fn is not lfs.format and not self._mounted:
            raise StorageError(f"{op}: the file system is not mounted")
        try:
            result = fn(*args)
        except LittleFSError as exc:
            self._raise_device_fault(op)
            raise _translate(op, exc) from exc
        self._raise_device_fault(op)
        return result

    def _raise_device_fault(self, op: str) -> None:
        dev = self._dev
        if dev.lost is not None:
            raise PowerLoss(f"{op}: power lost") from dev.lost
        if dev.fault is not None:
            what, exc = dev.fault
            dev.fault = None  # reported once: the next call may succeed
            raise StorageError(f"{op}: flash {what} failed: {exc}") from exc


def _translate(op: str, exc: LittleFSError) -> Exception:
    message = f"{op}: littlefs error {exc.code} ({exc.name})"
    if exc.code == _ERR_NOENT:
        return FileNotFoundError(message)
    if exc.code == _ERR_EXIST:
        return FileExistsError(message)
    if exc.code == _ERR_NOSPC:
        return StorageFull(message, exc.code)
    return StorageError(message, exc.code)


class _Handle:
    """An open raw littlefs file whose close can run only once (trap 5)."""

    def __init__(self, storage: Storage, path: str, fh: Any) -> None:
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

    def __init__(self, storage: Storage, path: str, fh: Any) -> None:
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
