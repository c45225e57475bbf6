"""What the virtual FT232H's pins are wired to: an SPI NOR chip model and its supply.

The same wiring as a real bench (see ``fixtures/rigs/ft232h-example.toml``): AD0 SCK,
AD1 MOSI (chip DI), AD2 MISO (chip DO), AD3 + cs /CS, and optional GPIOs driving a
load switch on the chip's VCC, WP# and HOLD#/RESET#. /CS edges become
``select()``/``deselect()``, clocked bytes become ``transfer()``, and the chip's
virtual clock advances by the SCK time of every byte (8 clocks per byte).
"""

from dataclasses import dataclass
from typing import Protocol

SCK, MOSI, MISO = 0x01, 0x02, 0x04  # AD0..AD2, fixed by the MPSSE (AN_108 section 2.1)
CS0_BIT = 3  # AD3 is /CS of port 0, AD4 of port 1... (pyftdi SpiController)


class AdvancingClock(Protocol):
    def advance(self, seconds: float) -> None: ...


class SpiChip(Protocol):
    """The chip model's pins, as :class:`sim.chip.w25q128.W25Q128` presents them."""

    def select(self) -> None: ...
    def deselect(self) -> None: ...
    def transfer(self, data: bytes) -> bytes: ...
    def power_off(self) -> None: ...
    def power_on(self) -> None: ...

    @property
    def powered(self) -> bool: ...


@dataclass(frozen=True)
class FlashPins:
    """Which FT232H GPIO bit (0-15: AD0-7 then AC0-7) carries which chip signal."""

    cs: int = CS0_BIT
    power: int | None = None
    power_active_high: bool = True
    wp: int | None = None
    hold: int | None = None

    def __post_init__(self) -> None:
        used: dict[int, str] = {0: "SCK", 1: "MOSI", 2: "MISO"}
        for name in ("cs", "power", "wp", "hold"):
            pin = getattr(self, name)
            if pin is None:
                continue
            if not 0 <= pin <= 15:
                raise ValueError(f"{name}: pin {pin} is not an FT232H GPIO (0-15)")
            if pin in used:
                raise ValueError(f"{name}: pin {pin} is already {used[pin]}")
            used[pin] = name


class FlashWiring:
    """Implements :class:`hil.virtual_ftdi.mpsse.MpsseBus` for one SPI NOR chip."""

    def __init__(self, chip: SpiChip, clock: AdvancingClock, pins: FlashPins | None = None):
        self.chip = chip
        self.clock = clock
        self.pins = pins or FlashPins()
        self.selected = False
        self._cs_low = False
        self.levels = 0
        self.outputs = 0
        self.bytes_clocked = 0
        self.partial_bits = 0
        self.power_cycles = 0

    def _high(self, pin: int, *, pulled_up: bool) -> bool:
        """Level of ``pin``: driven if an output, else what its pull resistor gives."""
        if self.outputs >> pin & 1:
            return bool(self.levels >> pin & 1)
        return pulled_up

    def supply_on(self) -> bool:
        """Whether the load switch feeds the chip (always, without a power pin)."""
        if self.pins.power is None:
            return True
        # An undriven enable is pulled to its off level, as a load switch's EN pin is.
        high = self._high(self.pins.power, pulled_up=not self.pins.power_active_high)
        return high == self.pins.power_active_high

    def drive(self, levels: int, outputs: int) -> None:
        self.levels, self.outputs = levels, outputs
        if self.supply_on() != self.chip.powered:
            if self.chip.powered:
                self.selected = False
                self.chip.power_off()
            else:
                self.chip.power_on()
                self.power_cycles += 1
        if self.pins.wp is not None and hasattr(self.chip, "wp"):
            self.chip.wp = self._high(self.pins.wp, pulled_up=True)  # /WP level (datasheet 4.3)
        cs_low = not self._high(self.pins.cs, pulled_up=True)
        if cs_low and not self._cs_low and self.chip.powered:
            self.chip.select()  # a falling /CS edge starts an instruction (datasheet 8.1)
            self.selected = True
        elif self.selected and not cs_low:
            self.chip.deselect()
            self.selected = False
        self._cs_low = cs_low

    def sample(self) -> int:
        """Inputs read high (MISO released by an idle chip, pull-ups elsewhere)."""
        return 0xFFFF

    def shift(self, out: bytes, sck_hz: float) -> bytes:
        live = self.selected and self.chip.powered
        got = self.chip.transfer(out) if live else b"\xff" * len(out)
        self.bytes_clocked += len(out)
        self.clock.advance(len(out) * 8 / sck_hz)
        return got

    def shift_bits(self, out: int, nbits: int, sck_hz: float) -> int:
        """Whole bytes only reach the byte-level model; a partial byte is counted, not sent.

        The W25Q128 ignores a program or erase whose /CS rises off a byte boundary
        (datasheet 8.2.x), which a byte-level model cannot see: ``partial_bits`` records it.
        """
        if nbits == 8:
            return self.shift(bytes((out,)), sck_hz)[0]
        self.clock.advance(nbits / sck_hz)
        self.partial_bits += nbits
        return (1 << nbits) - 1
