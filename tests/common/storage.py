"""One simulated device's flash for the storage tests: chip model, SPI port, real driver."""

from agent.flash import SpiFlash
from agent.storage import Geometry, Storage
from sim.chip.w25q128 import W25Q128
from sim.clock import VirtualClock
from sim.ports.model import SimSpiPort

SMALL = Geometry(block_count=64)  # 256 KiB: room for the tests, quick to format


class Rig:
    """One simulated device's flash: the W25Q128JV model, its SPI port, the real driver.

    ``flash`` is a fresh :class:`SpiFlash` (as a rebooted agent builds one); ``ops`` counts
    the chip's state-changing operations (programs, erases: ``ChipCounters``).
    """

    def __init__(self, seed: int = 0) -> None:
        self.clock = VirtualClock()
        self.chip = W25Q128(clock=self.clock, seed=seed)
        self.port = SimSpiPort(self.chip)

    @property
    def flash(self) -> SpiFlash:
        return SpiFlash(self.port, self.clock)

    @property
    def ops(self) -> int:
        return self.chip.counters.state_changes

    @property
    def transactions(self) -> int:
        return sum(self.chip.counters.ops.values())

    def mount(self, geometry: Geometry = SMALL, **options) -> Storage:
        return Storage.mount(self.flash, geometry, **options)

    def cut_after(self, n: int, *, torn: bool = False) -> None:
        """Power goes once ``n`` more operations have completed; ``torn``: halfway
        through the next one instead (W25Q128 model: bits half programmed or erased)."""
        if torn:
            self.chip.schedule_cut(after_ops=n + 1, fraction=0.5)
        elif n == 0:
            self.chip.schedule_cut(after_ops=1, fraction=0.0)
        else:
            self.chip.schedule_cut(after_ops=n, fraction=1.0)

    def reboot(self, geometry: Geometry = SMALL) -> Storage:
        """Power off and on (tearing whatever runs), then mount as a booting agent does."""
        self.chip.cancel_cut()
        self.chip.power_off()
        self.chip.power_on()
        return self.mount(geometry, format_blank=False)
