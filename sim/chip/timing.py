"""The W25Q128JV's busy times (datasheet section 9.6, AC Electrical Characteristics).

Every program, erase and non-volatile status write keeps BUSY=1 for a time drawn
from this table: the typical figure, the maximum, or (``"random"``) a seeded draw
between them. The figures marked "(check)" in ``docs/w25q128jv.md`` ("Timing") are the
model's reading of Winbond W25Q128JV Rev H/I, not yet confirmed against the AC table.
"""

import random
from dataclasses import dataclass, fields

MODES = ("typical", "max", "random")


@dataclass(frozen=True)
class OpTime:
    """One row of the AC table: typical and maximum duration in seconds."""

    typical_s: float
    max_s: float

    def __post_init__(self) -> None:
        if not 0 <= self.typical_s <= self.max_s:
            raise ValueError(
                f"typical_s must lie in [0, max_s], got typical_s={self.typical_s}, "
                f"max_s={self.max_s}"
            )


@dataclass(frozen=True)
class Timing:
    """The busy times of the W25Q128JV (datasheet 9.6), by operation.

    ``duration(op, mode, rng)`` picks the time one operation takes: ``typical``,
    ``max``, or ``random``: a triangular draw on [typical, max] with its mode at the
    typical figure (real parts cluster near typical and rarely approach the maximum).
    """

    write_status: OpTime = OpTime(10e-3, 15e-3)  # tW
    page_program: OpTime = OpTime(0.4e-3, 3e-3)  # tPP (256 bytes)
    sector_erase: OpTime = OpTime(45e-3, 400e-3)  # tSE, 4 KiB
    block32_erase: OpTime = OpTime(120e-3, 1.6)  # tBE1, 32 KiB
    block64_erase: OpTime = OpTime(150e-3, 2.0)  # tBE2, 64 KiB
    chip_erase: OpTime = OpTime(40.0, 200.0)  # tCE
    suspend: OpTime = OpTime(20e-6, 20e-6)  # tSUS, latency to BUSY=0 after 75h
    power_down: OpTime = OpTime(3e-6, 3e-6)  # tDP
    release_power_down: OpTime = OpTime(3e-6, 3e-6)  # tRES1
    reset: OpTime = OpTime(30e-6, 30e-6)  # tRST

    def duration(self, op: str, mode: str, rng: random.Random) -> float:
        """Seconds that operation ``op`` (a field name) lasts in ``mode``."""
        row: OpTime = getattr(self, op)
        if mode == "typical":
            return row.typical_s
        if mode == "max":
            return row.max_s
        if mode == "random":
            return rng.triangular(row.typical_s, row.max_s, row.typical_s)
        raise ValueError(f"timing mode must be one of {MODES}, got {mode!r}")

    def rows(self) -> list[tuple[str, OpTime]]:
        """The table as (operation, OpTime) pairs, in datasheet order."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


DATASHEET = Timing()
