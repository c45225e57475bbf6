"""The seam under the file system: what littlefs needs from the flash driver.

Implemented by the SPI NOR driver (:class:`agent.flash.SpiFlash`) on the gateway, and
by the simulator's in-memory flash (``docs/architecture.md``, "Seams"); what littlefs
asks of it is in ``docs/littlefs.md``.
"""

from __future__ import annotations

from typing import Protocol


class Flash(Protocol):
    """What the storage needs from the flash driver (:class:`agent.flash.SpiFlash`)."""

    @property
    def size(self) -> int: ...

    @property
    def sector_size(self) -> int: ...

    def read(self, addr: int, n: int) -> bytes: ...

    def program(self, addr: int, data: bytes) -> None: ...

    def erase(self, addr: int, length: int) -> None: ...
