"""Open a rig: pyftdi's own SpiPort, the supply switch, and the clock to use with them.

``open_bench(rig)`` configures ``SpiController(cs_count=...)`` on the rig's URL
(through the virtual FT232H when the rig says ``virtual = true``), drives WP# and
HOLD# inactive and the supply on, and yields a :class:`Bench`. A real rig runs on
:class:`agent.clock.MonotonicClock`; the virtual rig on the chip model's virtual
clock, which the SCK time of every clocked byte advances.
"""

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from pyftdi.spi import SpiController

from agent.clock import Clock, MonotonicClock
from agent.ftdi import open_controller
from agent.spi import SpiPort

from .rig import GpioRole, Rig

ChipFactory = Callable[[Rig], tuple[Any, Any]]
"""Builds ``(chip, virtual_clock)`` for a virtual rig; the default is the W25Q128 model."""


class PowerSwitch:
    """The GPIO that drives the load switch on the flash's VCC."""

    def __init__(self, controller: SpiController, role: GpioRole, clock: Clock, rig: Rig):
        self._controller = controller
        self._role = role
        self._clock = clock
        self._rig = rig

    def _drive(self, on: bool) -> None:
        gpio_out = self._controller.direction & self._controller.gpio_pins
        levels = self._controller.read_gpio(with_output=True) & gpio_out
        self._controller.write_gpio((levels & ~self._role.mask) | self._role.level(on))

    @property
    def powered(self) -> bool:
        level = self._controller.read_gpio(with_output=True) & self._role.mask
        return bool(level) == self._role.active_high

    @property
    def off_time_s(self) -> float:
        """How long a cut holds the supply off (rig ``[power] off_time_s``)."""
        return self._rig.off_time_s

    def power_off(self) -> None:
        """Cut the supply now."""
        self._drive(False)

    def power_on(self) -> None:
        """Restore the supply and wait tPUW before the chip may be written (datasheet 9.1)."""
        self._drive(True)
        self._clock.sleep(self._rig.settle_time_s)

    def cycle(self) -> None:
        """Off, held off for the rig's ``off_time_s``, then on again."""
        self.power_off()
        self._clock.sleep(self._rig.off_time_s)
        self.power_on()


@dataclass
class Bench:
    """An open rig: the port the driver uses, its clock, and the supply switch."""

    rig: Rig
    controller: SpiController
    port: SpiPort
    clock: Clock
    power: PowerSwitch | None
    chip: Any = None  # the model behind a virtual rig, for tests of the rig itself
    device: Any = None  # the virtual FT232H, likewise


def _model_chip(rig: Rig) -> tuple[Any, Any]:
    from sim.chip.w25q128 import W25Q128
    from sim.clock import VirtualClock  # only a virtual rig needs the simulator

    clock = VirtualClock()
    return W25Q128(clock=clock, seed=rig.seed, timing=rig.timing), clock


@contextmanager
def open_bench(rig: Rig, *, chip_factory: ChipFactory | None = None) -> Iterator[Bench]:
    """Configure the rig's adapter and yield a :class:`Bench`; close it on exit."""
    with ExitStack() as stack:
        chip = device = None
        clock: Clock = MonotonicClock()
        if rig.virtual:
            from .virtual_ftdi import FlashPins, FlashWiring, VirtualFt232h, plugged

            chip, model_clock = (chip_factory or _model_chip)(rig)
            clock = model_clock  # the bench sleeps on the model's virtual clock
            pins = FlashPins(
                cs=3 + rig.cs,
                power=rig.power.pin if rig.power else None,
                power_active_high=rig.power.active_high if rig.power else True,
                wp=rig.wp.pin if rig.wp else None,
                hold=rig.hold.pin if rig.hold else None,
            )
            device = VirtualFt232h(FlashWiring(chip, model_clock, pins))
            stack.enter_context(plugged(device))
        controller, port = open_controller(rig)
        stack.callback(controller.close)
        power = PowerSwitch(controller, rig.power, clock, rig) if rig.power else None
        if power is not None:
            clock.sleep(rig.settle_time_s)
        yield Bench(rig, controller, port, clock, power, chip, device)
