"""Where littlefs lies on the chip and how it is configured (``docs/littlefs.md``,
"Configuration"), checked before littlefs sees it: its ``lfs_init`` assertions abort
the interpreter instead of returning an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.storage.flash import Flash
from agent.w25q128jv import PAGE, SECTOR, SECTORS


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
