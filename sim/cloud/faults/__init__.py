"""Faults a blob server can inject, one per module, and the registry that names them.

:data:`FAULTS` maps a fault's name (as written in plan files) to its class; a
test walks this package and fails if a fault module is missing from it. The
modules that are not faults are listed in :data:`SUPPORT_MODULES`.
"""

from sim.cloud.faults.bad_content_range import BadContentRange
from sim.cloud.faults.bandwidth import Bandwidth
from sim.cloud.faults.corrupt import Corrupt
from sim.cloud.faults.down import Down
from sim.cloud.faults.etag_change import EtagChange
from sim.cloud.faults.fault import Fault
from sim.cloud.faults.ignore_range import IgnoreRange
from sim.cloud.faults.latency import Latency
from sim.cloud.faults.limit_data import LimitData
from sim.cloud.faults.noop import Noop
from sim.cloud.faults.reset_peer import ResetPeer
from sim.cloud.faults.short_body import ShortBody
from sim.cloud.faults.slicer import Slicer
from sim.cloud.faults.slow_close import SlowClose
from sim.cloud.faults.status import Status
from sim.cloud.faults.timeout import Timeout

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

SUPPORT_MODULES = frozenset({"chance", "exchange", "fault", "plan", "schema"})

__all__ = ["FAULTS", "SUPPORT_MODULES", "Fault"]
