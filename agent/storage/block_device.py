"""littlefs blocks on flash addresses: the block device littlefs calls back.

littlefs-python swallows an exception raised in a callback (``docs/littlefs.md``,
trap 1), so no callback raises: a :class:`~agent.errors.PowerLoss` or a driver fault
is remembered for :class:`agent.storage.Storage` to raise after the littlefs call,
and a failed read returns 0xFF bytes that are never used (trap 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import littlefs

from agent.errors import PowerLoss
from agent.storage.flash import Flash
from agent.storage.geometry import Geometry

_ERR_IO = -5  # LFS_ERR_IO


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
        self._read = flash.read  # bound once: littlefs calls read thousands of times a mount
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
            return self._read(self._base + block * self._block_size + off, size)
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
