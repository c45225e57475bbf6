"""Faults a blob server can inject, one per module, and the registry that names them.

:data:`FAULTS` maps a fault's name (as written in plan files) to its class; a
test walks this package and fails if a fault module is missing from it. The
modules that are not faults are listed in :data:`SUPPORT_MODULES`.
"""

from sim.faults.bad_content_range import BadContentRange
from sim.faults.bandwidth import Bandwidth
from sim.faults.corrupt import Corrupt
from sim.faults.down import Down
from sim.faults.etag_change import EtagChange
from sim.faults.fault import Fault
from sim.faults.ignore_range import IgnoreRange
from sim.faults.latency import Latency
from sim.faults.limit_data import LimitData
from sim.faults.noop import Noop
from sim.faults.reset_peer import ResetPeer
from sim.faults.short_body import ShortBody
from sim.faults.slicer import Slicer
from sim.faults.slow_close import SlowClose
from sim.faults.status import Status
from sim.faults.timeout import Timeout

FAULTS: dict[str, type[Fault]] = {
    cls.name: cls
    for cls in (
        Noop,
        Latency,
        Bandwidth,
        Slicer,
        LimitData,
        ResetPeer,
        Timeout,
        SlowClose,
        Down,
        Status,
        IgnoreRange,
        BadContentRange,
        ShortBody,
        Corrupt,
        EtagChange,
    )
}

SUPPORT_MODULES = frozenset({"chance", "exchange", "fault", "plan"})

__all__ = ["FAULTS", "SUPPORT_MODULES", "Fault"]
