"""Bench power cuts: cut the flash's supply at a chosen program or erase.

:class:`BenchCutPort` wraps the rig's SPI port. It counts the non-volatile writes
the driver sends (page program, erases, security-register program/erase, status
register writes: datasheet 8.2; each starts when /CS rises, datasheet 8.2.1), and
after the ``after_op``-th it waits ``delay_s`` into the operation, then drives the
supply switch off. From then on every exchange raises :class:`agent.errors.PowerLoss`,
as a simulated port does, until :meth:`BenchCutPort.restore` powers the chip again
(after the rig's ``off_time_s``); the test then boots a fresh agent on the port.
"""

from dataclasses import dataclass

from agent.clock import Clock
from agent.errors import PowerLoss
from agent.spi import SpiPort
from agent.w25q128jv import ERASE_UNITS, STATE_CHANGING
from sim.device import Power

DEFAULT_OFF_TIME_S = 0.1  # how long a cut holds the supply off when the rig does not say

SECTOR_ERASES = frozenset(ERASE_UNITS)  # 4, 32 and 64 KiB erases: long enough to tear


@dataclass(frozen=True)
class BenchCut:
    """Cut power ``delay_s`` after the ``after_op``-th program/erase command (1-based).

    ``opcodes`` narrows what is counted, e.g. :data:`SECTOR_ERASES` to land in an erase
    (tSE 45 ms typical, datasheet 9.6): long enough to tear on a real rig, where the
    USB round trip to the supply GPIO can outlast a 0.4 ms page program.
    """

    after_op: int
    delay_s: float = 0.0
    opcodes: frozenset[int] = STATE_CHANGING

    def __post_init__(self) -> None:
        if isinstance(self.after_op, bool) or not isinstance(self.after_op, int):
            raise ValueError(f"after_op must be an int, got {self.after_op!r}")
        if self.after_op < 1:
            raise ValueError(
                f"after_op must be >= 1 (the first program/erase), got {self.after_op}"
            )
        if not 0 <= self.delay_s <= 300:
            raise ValueError(f"delay_s must be in [0, 300] s, got {self.delay_s}")
        if not isinstance(self.opcodes, frozenset) or not self.opcodes:
            raise ValueError(f"opcodes must be a non-empty frozenset, got {self.opcodes!r}")
        if not self.opcodes <= STATE_CHANGING:
            others = sorted(self.opcodes - STATE_CHANGING, key=repr)
            raise ValueError(f"opcodes must be program/erase instructions (8.1), not {others!r}")


class BenchCutPort:
    """An :class:`agent.spi.SpiPort` that cuts the supply as its :class:`BenchCut` says."""

    def __init__(
        self,
        port: SpiPort,
        supply: Power,
        clock: Clock,
        plan: BenchCut,
        *,
        off_time_s: float = DEFAULT_OFF_TIME_S,
    ) -> None:
        if off_time_s < 0:
            raise ValueError(f"off_time_s must be >= 0, got {off_time_s}")
        self._port = port
        self._supply = supply
        self.off_time_s = off_time_s
        self._clock = clock
        self.plan = plan
        self.ops_sent = 0
        self.cut_at: float | None = None  # clock time of the cut
        self.cuts = 0  # a plan cuts once; make a new port for the next cut
        self._opcode: int | None = None

    @property
    def powered(self) -> bool:
        return self.cut_at is None

    @property
    def frequency(self) -> float:
        return self._port.frequency

    def set_frequency(self, frequency: float) -> None:
        self._port.set_frequency(frequency)

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        if not self.powered:
            raise PowerLoss(f"flash supply cut after program/erase #{self.ops_sent}")
        if start:
            self._opcode = out[0] if out else None
        data = self._port.exchange(out, readlen, start, stop, duplex, droptail)
        if stop:
            self._after_transaction()
        return bytes(data)

    def read(self, readlen: int = 0, start: bool = True, stop: bool = True) -> bytes:
        return self.exchange(b"", readlen, start, stop)

    def write(self, out: bytes | bytearray, start: bool = True, stop: bool = True) -> None:
        self.exchange(out, 0, start, stop)

    def _after_transaction(self) -> None:
        opcode, self._opcode = self._opcode, None
        if opcode not in self.plan.opcodes:
            return
        self.ops_sent += 1
        if self.ops_sent == self.plan.after_op and self.cuts == 0:
            self.cuts += 1
            self._clock.sleep(self.plan.delay_s)
            self._supply.power_off()
            self.cut_at = self._clock.monotonic()

    def restore(self) -> None:
        """Hold the supply off for the rig's ``off_time_s``, then power the chip again."""
        if self.powered:
            raise RuntimeError("restore() without a cut: the supply was never cut")
        self._clock.sleep(self.off_time_s)
        self._supply.power_on()
        self.cut_at = None
