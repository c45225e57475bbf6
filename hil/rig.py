"""The rig file, for the bench: defined in :mod:`agent.rig` (the gateway agent reads the
same file to find its adapter), re-exported here where the bench tools import it."""

from agent.rig import CAPABILITIES, FT232H_MAX_SCK_HZ, TIMINGS, GpioRole, Rig, RigError

__all__ = ["CAPABILITIES", "FT232H_MAX_SCK_HZ", "TIMINGS", "GpioRole", "Rig", "RigError"]
