"""The MPSSE command engine of a virtual FT232H.

Executes the command stream a host writes to the FT232H's bulk-OUT endpoint in
MPSSE mode and returns the bytes the chip would queue on its bulk-IN endpoint.
Command encodings follow FTDI AN_108 ("Command Processor for MPSSE and MCU Host
Bus Emulation Modes"): section 3 (data shifting, opcodes 0x10-0x3F decoded from
their bit fields), 3.6 (set/read data bits, 0x80-0x83), 3.7 (loopback 0x84/0x85),
3.8 (clock divisor 0x86), 3.9/6 (send immediate 0x87, H-series clock commands
0x8A-0x8D, 0x96/0x97) and 4.2 (a bad command answers 0xFA then the opcode).

The engine only knows pins and bits; what is wired to them is an :class:`MpsseBus`.
"""

from typing import Protocol

# AN_108 section 3: bit fields of a data-shifting opcode (0x00-0x7F).
OUT_ON_NEG_EDGE = 0x01
BIT_MODE = 0x02
IN_ON_NEG_EDGE = 0x04
LSB_FIRST = 0x08
DO_WRITE = 0x10
DO_READ = 0x20
DO_TMS = 0x40

SET_BITS_LOW = 0x80
GET_BITS_LOW = 0x81
SET_BITS_HIGH = 0x82
GET_BITS_HIGH = 0x83
LOOPBACK_ON = 0x84
LOOPBACK_OFF = 0x85
SET_TCK_DIVISOR = 0x86
SEND_IMMEDIATE = 0x87
DISABLE_CLK_DIV5 = 0x8A
ENABLE_CLK_DIV5 = 0x8B
ENABLE_3PHASE = 0x8C
DISABLE_3PHASE = 0x8D
ENABLE_ADAPTIVE = 0x96
DISABLE_ADAPTIVE = 0x97
DRIVE_ZERO = 0x9E
BAD_COMMAND = 0xFA

MASTER_CLOCK_HZ = 60_000_000  # FT232H datasheet 4.4: 60 MHz MPSSE master clock
DIV5_CLOCK_HZ = MASTER_CLOCK_HZ // 5  # 12 MHz while divide-by-5 is on (reset default)

# Valid opcodes that the engine consumes but does not model, with their operand
# byte counts (AN_108 sections 3.9 to 7): wait on GPIOL1 (0x88/0x89), clock without
# data (0x8E/0x8F), clock until GPIOL1 (0x94/0x95, 0x9C/0x9D). Running one is an error.
_UNMODELLED: dict[int, int] = {
    0x88: 0,
    0x89: 0,
    0x8E: 1,
    0x8F: 2,
    0x94: 0,
    0x95: 0,
    0x9C: 2,
    0x9D: 2,
}


class UnsupportedMpsseCommand(Exception):
    """The host sent a valid MPSSE command that the virtual FT232H does not model."""


class MpsseBus(Protocol):
    """What is wired to the MPSSE pins: 16 GPIO bits, ADBUS0-7 then ACBUS0-7."""

    def drive(self, levels: int, outputs: int) -> None:
        """The pins changed: ``levels`` on the pins set in the ``outputs`` mask."""
        ...

    def sample(self) -> int:
        """Levels the outside world puts on the pins (only input pins are used)."""
        ...

    def shift(self, out: bytes, sck_hz: float) -> bytes:
        """Clock ``out`` on MOSI MSB first at ``sck_hz``; return what MISO carried."""
        ...

    def shift_bits(self, out: int, nbits: int, sck_hz: float) -> int:
        """Clock the top ``nbits`` of ``out`` MSB first; return the bits read, right-aligned."""
        ...


def _reverse(byte: int) -> int:
    return int(f"{byte:08b}"[::-1], 2)


class MpsseEngine:
    """Runs MPSSE commands against a bus, keeping incomplete commands for the next write."""

    def __init__(self, bus: MpsseBus) -> None:
        self._bus = bus
        self._pending = bytearray()
        self.reset()

    def reset(self) -> None:
        """Power-on state (AN_108 3.8, FT232H datasheet 4.4): all pins inputs, div-by-5 on."""
        self._pending.clear()
        self.levels = 0
        self.outputs = 0
        self.divisor = 0
        self.div5 = True
        self.three_phase = False
        self.adaptive = False
        self.loopback = False
        self.drive_zero = 0
        self.commands_run = 0

    @property
    def sck_hz(self) -> float:
        """The SCK frequency the current divisor gives (AN_108 3.8.2)."""
        base = DIV5_CLOCK_HZ if self.div5 else MASTER_CLOCK_HZ
        return base / ((1 + self.divisor) * 2)

    def discard_pending(self) -> None:
        """Drop a partly received command (the SIO purge of the host-to-chip buffer)."""
        self._pending.clear()

    def feed(self, data: bytes) -> bytes:
        """Execute every complete command in ``data`` (after any held-over bytes)."""
        self._pending += data
        response = bytearray()
        while self._pending:
            used = self._step(self._pending, response)
            if used == 0:
                break  # incomplete command: wait for the rest
            del self._pending[:used]
        return bytes(response)

    def _step(self, buf: bytearray, response: bytearray) -> int:
        """Run the command at the head of ``buf``; return bytes used, 0 if incomplete."""
        op = buf[0]
        if op < 0x80:
            return self._shift(op, buf, response)
        if op in (SET_BITS_LOW, SET_BITS_HIGH):
            if len(buf) < 3:
                return 0
            shift = 0 if op == SET_BITS_LOW else 8
            mask = 0xFF << shift
            self.levels = (self.levels & ~mask) | (buf[1] << shift)
            self.outputs = (self.outputs & ~mask) | (buf[2] << shift)
            self._bus.drive(self.levels & self.outputs, self.outputs)
            return self._done(3)
        if op in (GET_BITS_LOW, GET_BITS_HIGH):
            pins = (self.levels & self.outputs) | (self._bus.sample() & ~self.outputs)
            response.append((pins >> (0 if op == GET_BITS_LOW else 8)) & 0xFF)
            return self._done(1)
        if op == SET_TCK_DIVISOR:
            if len(buf) < 3:
                return 0
            self.divisor = buf[1] | (buf[2] << 8)
            return self._done(3)
        if op == DRIVE_ZERO:
            if len(buf) < 3:
                return 0
            self.drive_zero = buf[1] | (buf[2] << 8)
            return self._done(3)
        flags = {
            LOOPBACK_ON: ("loopback", True),
            LOOPBACK_OFF: ("loopback", False),
            DISABLE_CLK_DIV5: ("div5", False),
            ENABLE_CLK_DIV5: ("div5", True),
            ENABLE_3PHASE: ("three_phase", True),
            DISABLE_3PHASE: ("three_phase", False),
            ENABLE_ADAPTIVE: ("adaptive", True),
            DISABLE_ADAPTIVE: ("adaptive", False),
        }
        if op in flags:
            name, value = flags[op]
            setattr(self, name, value)
            return self._done(1)
        if op == SEND_IMMEDIATE:
            return self._done(1)  # every answer is queued at once: nothing to flush
        if op in _UNMODELLED:
            raise UnsupportedMpsseCommand(f"MPSSE command 0x{op:02X} is valid but not modelled")
        response += bytes((BAD_COMMAND, op))  # AN_108 4.2
        return 1

    def _done(self, used: int) -> int:
        self.commands_run += 1
        return used

    def _bit_time_factor(self) -> float:
        return 1.5 if self.three_phase else 1.0  # AN_108 6.1: 3-phase clocking adds half a period

    def _shift(self, op: int, buf: bytearray, response: bytearray) -> int:
        """A data-shifting command (AN_108 section 3), decoded from its bit fields."""
        writes, reads = bool(op & DO_WRITE), bool(op & DO_READ)
        if op & DO_TMS:
            raise UnsupportedMpsseCommand(f"MPSSE TMS command 0x{op:02X} is not modelled")
        if not (writes or reads):
            response += bytes((BAD_COMMAND, op))
            return 1
        lsb = bool(op & LSB_FIRST)
        sck_hz = self.sck_hz / self._bit_time_factor()
        if op & BIT_MODE:
            need = 3 if writes else 2
            if len(buf) < need:
                return 0
            nbits = buf[1] + 1
            value = buf[2] if writes else 0xFF  # MOSI idles high while only reading
            if lsb:
                value = _reverse(value)
            got = self._bus.shift_bits(value, nbits, sck_hz)
            if self.loopback:
                got = value >> (8 - nbits)
            if reads:
                # MSB first, bits enter at bit 0 and move up; LSB first, at bit 7 and move down.
                response.append(_reverse(got) if lsb else got & 0xFF)
            return self._done(need)
        if len(buf) < 3:
            return 0
        count = (buf[1] | (buf[2] << 8)) + 1
        need = 3 + (count if writes else 0)
        if len(buf) < need:
            return 0
        out = bytes(buf[3:need]) if writes else b"\xff" * count
        if lsb:
            out = bytes(_reverse(b) for b in out)
        shifted = self._bus.shift(out, sck_hz)
        if self.loopback:
            shifted = out
        if reads:
            response += bytes(_reverse(b) for b in shifted) if lsb else shifted
        return self._done(need)
