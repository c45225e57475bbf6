"""The gateway's flash on an FT232H: pyftdi's ``SpiController`` configured from a rig file.

One place opens the adapter the way a bench and a gateway both need it (FT232H datasheet
4.4; pyftdi's ``SpiController``): /CS lines reserved up to the rig's, SCK and mode from
``[spi]``, the GPIO roles of ``[gpio]`` driven to supply on, WP# and HOLD# inactive before
the first transfer. :func:`hil.port.open_bench` adds the supply switch and the virtual
FT232H on top; ``python -m agent run --rig FILE`` uses this directly.
"""

from __future__ import annotations

from typing import Any

from agent.rig import Rig
from agent.spi import SpiPort


def initial_levels(rig: Rig) -> tuple[int, int]:
    """GPIO directions and levels at open: supply on, WP# and HOLD# inactive (high)."""
    direction = levels = 0
    for role, active in ((rig.power, True), (rig.wp, False), (rig.hold, False)):
        if role is not None:
            direction |= role.mask
            levels |= role.level(active)
    return direction, levels


def open_controller(rig: Rig) -> tuple[Any, SpiPort]:
    """Configure the rig's adapter; returns ``(controller, port)``. Close the controller."""
    from pyftdi.spi import SpiController  # only a gateway with an adapter needs pyftdi

    direction, levels = initial_levels(rig)
    controller = SpiController(cs_count=rig.cs_count)
    controller.configure(rig.url, frequency=rig.frequency_hz, direction=direction, initial=levels)
    try:
        if direction:
            # pyftdi ORs its own copy of the low GPIO byte into every /CS and SCK update and
            # only learns it from write_gpio(): without this write the first exchange would
            # drive the supply, WP# and HOLD# low.
            controller.write_gpio(levels)
        port = controller.get_port(rig.cs, freq=rig.frequency_hz, mode=rig.mode)
    except Exception:
        controller.close()
        raise
    return controller, port
