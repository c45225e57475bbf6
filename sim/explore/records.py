"""The progress record as each boot after a power cut finds it (the hardening issue's
"the progress record is readable after every cut").

:func:`look` asks :func:`agent.staging.record_on_flash` about what the flash holds when
a boot begins, on a read-only view of the chip's array or of the memory flash
(:class:`sim.ports.view.ArrayView`): no SPI transaction, so the device's time and the
chip's counters stay as they were, and nothing is written. The runner looks at the
first boot of a run and at every boot that follows a cut; the invariant
(:func:`sim.explore.invariants.record_readable`) wants every look readable, and no
record missing once one has been seen (before the run or at an earlier look).
"""

from __future__ import annotations

from agent.staging import record_on_flash
from agent.storage import Geometry
from sim.chip.sectors import SectorArray
from sim.explore.result import RecordCheck
from sim.ports.view import ArrayView


def look(
    boot: int,
    *,
    array: SectorArray | None = None,
    sectors: tuple[bytes, ...] | None = None,
    geometry: Geometry | None = None,
) -> RecordCheck:
    """What a boot would find: a live ``array`` or frozen ``sectors``, at ``geometry``."""
    found = record_on_flash(ArrayView(array, sectors=sectors), geometry)
    return RecordCheck(boot, found.readable, found.record is not None, found.problem)
