"""Power to the W25Q128JV model, and losing it: the model's reason to exist.

A cut is scheduled (:class:`sim.chip.state.ChipCut`: during the Nth state-changing
operation, a fraction of the way through, or at a virtual time) or made at once
(:meth:`PowerSupply.power_off`). Losing power tears the operation in flight, and a
suspended one, at its progress (the distributions are in :mod:`sim.chip.w25q128`'s
docstring; datasheet 9.1 power-up timing, 8.2 program and erase); every exchange then
fails with :class:`agent.errors.PowerLoss` until :meth:`PowerSupply.power_on`, which
resets the volatile state. :class:`PowerSupply` is mixed into
:class:`sim.chip.w25q128.W25Q128`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.chip.state import ChipCut, Operation
from sim.chip.store import NvStore
from sim.clock import VirtualClock

INF = float("inf")


class PowerSupply:
    """Power on, power off, scheduled cuts; the chip's state they use."""

    clock: VirtualClock
    counters: Any
    _store: NvStore
    _powered: bool
    _cs: bool
    _op: Operation | None
    _suspended: Operation | None
    _plan: ChipCut | None
    _plan_count: int
    _cut_time: float
    _settle: Callable[[], None]
    _reschedule: Callable[[], None]
    _power_on_state: Callable[[], None]

    def power_off(self) -> None:
        """Cut power now: the operation in flight is torn at its progress."""
        self._settle()
        if self._powered:
            self._lose_power(self.clock.monotonic())
        self._store.flush()

    def power_on(self) -> None:
        """Restore power: volatile state resets (WEL, SUS, power-down, volatile SR bits)."""
        self._settle()
        if not self._powered:
            self._powered = True
            self._power_on_state()

    def schedule_cut(
        self,
        plan: ChipCut | None = None,
        *,
        after_ops: int | None = None,
        fraction: float = 1.0,
        at_time: float | None = None,
    ) -> ChipCut:
        """Arm one power cut, replacing any armed one; see :class:`ChipCut`."""
        if plan is None:
            plan = ChipCut(after_ops=after_ops, fraction=fraction, at_time=at_time)
        elif not isinstance(plan, ChipCut):
            raise TypeError(f"plan must be a ChipCut, got {type(plan).__name__}")
        self._settle()
        self._plan, self._plan_count = plan, 0
        self._cut_time = INF if plan.at_time is None else float(plan.at_time)
        self._reschedule()
        return plan

    def cancel_cut(self) -> None:
        """Disarm the scheduled cut, if any."""
        self._plan, self._cut_time = None, INF
        self._reschedule()

    @property
    def cut_pending(self) -> bool:
        self._settle()
        return self._plan is not None

    def _lose_power(self, when: float) -> None:
        for op, running in ((self._op, True), (self._suspended, False)):
            if op is not None:
                fraction = op.progress(when, running)
                op.fn(*op.args, fraction)
                self.counters.busy_time_s += fraction * op.duration
        self._op = self._suspended = None
        self._powered = self._cs = False
        self._plan, self._cut_time = None, INF
        self.counters.power_cuts += 1
        self._reschedule()
