"""The W25Q128JV's control instructions, as a part of the chip model: suspend and resume
the operation in flight (75h, 7Ah), power-down and its release (B9h, ABh), and the reset
pair (66h then 99h), which tears an operation in flight as a power cut does (a deviation:
``docs/w25q128jv.md``, "Deviations"). :class:`ControlCommands` is mixed into
:class:`sim.chip.w25q128.W25Q128`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.chip.array import ERASES
from sim.chip.state import Operation
from sim.chip.timing import Timing
from sim.clock import VirtualClock

# Page Program and the sector/block erases; chip erase, status and security writes are not
SUSPENDABLE = frozenset(("page_program", *(kind for _, kind in ERASES.values())))


class ControlCommands:
    """75h/7Ah, B9h/ABh, 66h/99h; the chip's state they change."""

    clock: VirtualClock
    table: Timing
    counters: Any
    _op: Operation | None
    _suspended: Operation | None
    _pd: bool
    _reset_enabled: bool
    _reschedule: Callable[[], None]
    _power_on_state: Callable[[], None]

    def _suspend(self) -> None:
        """75h: during Page Program or a sector/block erase only; BUSY clears after tSUS."""
        op = self._op
        if op is None or self._suspended is not None or op.suspend_at is not None:
            return
        if op.kind in SUSPENDABLE:
            op.suspend_at = self.clock.monotonic() + self.table.suspend.max_s
            self.counters.ops["suspend"] += 1
            self._reschedule()

    def _resume(self) -> None:
        """7Ah: continue the suspended operation for the rest of its time (8.2.21)."""
        op = self._suspended
        if op is None or self._op is not None:
            return
        now = self.clock.monotonic()
        op.resumed_at, op.end = now, now + op.duration - op.done_s
        self._op, self._suspended = op, None
        self.counters.ops["resume"] += 1
        self._reschedule()

    def _power_down(self) -> None:
        self._pd = True

    def _release(self) -> None:
        self._pd = False

    def _enable_reset(self) -> None:
        self._reset_enabled = True

    def _reset(self) -> None:
        """66h then 99h: the power-on state; tears an operation in flight (8.2.43)."""
        if not self._reset_enabled:
            return
        now = self.clock.monotonic()
        for op, running in ((self._op, True), (self._suspended, False)):
            if op is not None:
                op.fn(*op.args, op.progress(now, running))
        self.counters.ops["reset"] += 1
        self._power_on_state()
