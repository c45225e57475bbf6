"""Records of the W25Q128JV model: cut plans, counters, snapshots, seeded bit masks and the
operation in flight.

Kept apart from :mod:`sim.chip.w25q128` (the command machine) so the records others build
on read at a glance.
"""

import math
import random
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.w25q128jv import SECTORS


@dataclass(frozen=True)
class ChipCut:
    """When a scheduled power cut lands.

    Either ``after_ops=N``: during the Nth state-changing operation (page program,
    any erase, non-volatile status write, security-register program/erase) latched
    after the plan was scheduled, ``fraction`` of the way through it (0.0 = as it
    starts, nothing written; 1.0 = just after it completes); or ``at_time=T``: at
    virtual time T, tearing whatever operation is then in flight at its progress.
    """

    after_ops: int | None = None
    fraction: float = 1.0
    at_time: float | None = None

    def __post_init__(self) -> None:
        if (self.after_ops is None) == (self.at_time is None):
            raise ValueError("ChipCut needs exactly one of after_ops or at_time")
        if self.after_ops is not None and (
            isinstance(self.after_ops, bool) or not isinstance(self.after_ops, int)
        ):
            raise ValueError(f"after_ops must be an int >= 1, got {self.after_ops!r}")
        if self.after_ops is not None and self.after_ops < 1:
            raise ValueError(f"after_ops must be >= 1, got {self.after_ops}")
        if not (isinstance(self.fraction, int | float) and 0.0 <= self.fraction <= 1.0):
            raise ValueError(f"fraction must lie in [0, 1], got {self.fraction!r}")
        if self.at_time is not None and not (
            isinstance(self.at_time, int | float) and math.isfinite(self.at_time)
        ):
            raise ValueError(f"at_time must be a finite number of seconds, got {self.at_time!r}")
        if self.at_time is not None and self.after_ops is None and self.fraction != 1.0:
            raise ValueError("fraction applies to after_ops plans only; at_time sets its own")


@dataclass
class ChipCounters:
    """What the chip has done since it was built (statistics; snapshots leave them alone).

    ``ops`` counts latched operations by kind (``page_program``, ``sector_erase``,
    ``block32_erase``, ``block64_erase``, ``chip_erase``, ``write_status``,
    ``write_status_volatile``, ``security_program``, ``security_erase``, ``suspend``,
    ``resume``, ``reset``, ``read``...); ``sector_erases`` counts erases per 4 KiB sector
    (a 64 KiB erase adds one to each of its 16 sectors); ``busy_time_s`` sums the virtual
    time spent BUSY; ``state_changes`` counts the operations a :class:`ChipCut`
    counts; ``power_cuts`` counts power losses with the chip powered.
    """

    ops: Counter[str] = field(default_factory=Counter)
    bytes_programmed: int = 0
    sector_erases: list[int] = field(default_factory=lambda: [0] * SECTORS, repr=False)
    busy_time_s: float = 0.0
    state_changes: int = 0
    power_cuts: int = 0


@dataclass(frozen=True)
class ChipSnapshot:
    """The chip's whole non-volatile state; sectors are shared between snapshots.

    ``sectors`` holds one immutable 4 KiB ``bytes`` per sector, so a snapshot costs a
    tuple of 4,096 references plus a copy of each sector changed since the last one.
    """

    sectors: tuple[bytes, ...]
    status_nv: tuple[int, int, int]
    security: tuple[bytes, bytes, bytes]
    wear: array
    stuck: tuple[tuple[int, tuple[tuple[int, int], ...]], ...]
    unique_id: bytes


def bernoulli_mask(rng: random.Random, nbits: int, p: float) -> int:
    """An ``nbits``-bit int whose bits are independently 1 with probability ``p``.

    Exact to 1/65536: the binary expansion of ``p`` is folded in with OR (bit 1) or AND
    (bit 0) of uniform random words, 16 big-int operations whatever ``nbits`` is.
    """
    k = round(p * 65536)
    if k <= 0 or nbits <= 0:
        return 0
    if k >= 65536:
        return (1 << nbits) - 1
    mask = 0
    for i in range(16):
        word = rng.getrandbits(nbits)
        mask = (mask | word) if (k >> i) & 1 else (mask & word)
    return mask


class Operation:
    """One program/erase/status write in flight: its timing and its effect ``fn(*args, f)``."""

    __slots__ = (
        "args",
        "done_s",
        "duration",
        "end",
        "fn",
        "kind",
        "resumed_at",
        "suspend_at",
        "unit",
    )

    def __init__(
        self,
        kind: str,
        now: float,
        duration: float,
        fn: Callable[..., None],
        args: tuple[Any, ...],
        unit: tuple[int, int],
    ) -> None:
        self.kind, self.duration, self.fn, self.args, self.unit = kind, duration, fn, args, unit
        self.done_s, self.resumed_at, self.end = 0.0, now, now + duration
        self.suspend_at: float | None = None

    def progress(self, now: float, running: bool) -> float:
        done = self.done_s + (now - self.resumed_at if running else 0.0)
        return 1.0 if self.duration <= 0 else min(1.0, max(0.0, done / self.duration))
