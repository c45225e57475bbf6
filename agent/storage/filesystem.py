"""A mounted littlefs region of the flash (:class:`Storage`), and its file API.

Every littlefs call goes through :meth:`Storage._call`, which raises what the block
device saw during it (``docs/littlefs.md``, trap 1); mounting formats only a blank
region or when asked (trap 3); commits are real ``lfs_file_sync`` calls (trap 4);
:meth:`Storage.truncate` passes its size to ``lfs_file_truncate`` (trap 6).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from littlefs import LittleFSError, lfs

from agent.errors import PowerLoss
from agent.storage.block_device import IoCounts, _FlashBlockDevice
from agent.storage.errors import NotFormatted, StorageError, _translate
from agent.storage.files import AppendFile, ReadFile, _Handle
from agent.storage.flash import Flash
from agent.storage.geometry import Geometry

_T = TypeVar("_T")
_F: Any = lfs.LFSFileFlag  # the stub declares no members

#: Bytes read from the start of every block (beyond the first two, read whole) to
#: decide that a region that littlefs cannot mount is blank and may be formatted.
BLANK_PROBE_BYTES = 256


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
