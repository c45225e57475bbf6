"""pyftdi's ``SpiPort`` interface onto the simulated W25Q128JV (the seam in :mod:`agent.spi`).

``start``/``stop`` drive /CS (``chip.select()`` / ``chip.deselect()``). A half-duplex
``exchange`` sends ``out`` and then clocks ``readlen`` more bytes with MOSI held high
(0xFF: the FT232H's MPSSE read-only command leaves the data line at its idle level,
and 0xFF is the value a flash ignores: programming it changes nothing); it returns
those ``readlen`` bytes only. ``duplex=True`` returns what the chip sent during
``out``. Every exchange advances the chip's virtual clock by ``8 * bytes / frequency``
before the chip sees the bytes, so BUSY and cuts are judged at the end of the transfer.

With ``log=True`` every /CS-framed transaction is recorded as a :class:`SpiTransaction`,
with up to ``log_bytes`` bytes each way as they were on the wire (MOSI including the 0xFF
a half-duplex read clocks out, MISO including what the chip drove while the command went
in); :mod:`sim.ports.trace` writes such a log as a VCD that sigrok and PulseView decode.
"""

from dataclasses import dataclass

from agent.w25q128jv import ADDRESSED
from sim.chip.w25q128 import W25Q128
from sim.ports.wrapper import ExchangePort

_FILL = b"\xff" * 65536
LOG_BYTES = 4096  # data bytes kept per transaction and direction: a page program's 260 and more


@dataclass(frozen=True)
class SpiTransaction:
    """One /CS-framed transaction: when it started, opcode, 24-bit address, bytes each way.

    ``mosi`` and ``miso`` are the first bytes clocked each way (at most the port's
    ``log_bytes``; ``clocked`` counts them all), at ``sck_hz``.
    """

    time_s: float
    opcode: int | None
    address: int | None
    out_len: int
    in_len: int
    mosi: bytes = b""
    miso: bytes = b""
    clocked: int = 0
    sck_hz: float = 0.0

    @property
    def truncated(self) -> bool:
        """True when more bytes were clocked than the log kept."""
        return self.clocked > len(self.mosi)


class SimSpiPort(ExchangePort):
    """An SPI port (pyftdi ``SpiPort`` interface) wired to a :class:`W25Q128`."""

    def __init__(
        self,
        chip: W25Q128,
        *,
        frequency: float = 30e6,
        log: bool = False,
        log_bytes: int = LOG_BYTES,
    ) -> None:
        if not isinstance(chip, W25Q128):
            raise TypeError(f"chip must be a W25Q128, got {type(chip).__name__}")
        if isinstance(log_bytes, bool) or not isinstance(log_bytes, int) or log_bytes < 0:
            raise ValueError(f"log_bytes must be an int >= 0, got {log_bytes!r}")
        self.log_bytes = log_bytes
        self.chip = chip
        self._frequency = 0.0
        self.set_frequency(frequency)
        self.log: list[SpiTransaction] | None = [] if log else None
        # [time, head, out_len, in_len, mosi, miso, clocked] while /CS is low
        self._open: list | None = None

    @property
    def frequency(self) -> float:
        """The SCK frequency in Hz."""
        return self._frequency

    def set_frequency(self, frequency: float) -> None:
        """Set SCK; refuses zero, negative or non-numeric values."""
        if isinstance(frequency, bool) or not isinstance(frequency, int | float) or frequency <= 0:
            raise ValueError(f"frequency must be a positive number of Hz, got {frequency!r}")
        self._frequency = float(frequency)
        self._s_per_byte = 8.0 / self._frequency

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        """Send ``out`` then read ``readlen`` bytes (or, duplex, read while sending)."""
        if start and stop and out and not duplex and self.log is None and not droptail:
            if readlen < 0:
                raise ValueError(f"readlen and droptail must be >= 0, got {readlen}, {droptail}")
            # one whole transaction, the driver's every call: no fill buffer, no slicing
            chip = self.chip
            chip.clock.advance((len(out) + readlen) * self._s_per_byte)
            return chip.transact(out, readlen)
        if readlen < 0 or droptail < 0:
            raise ValueError(f"readlen and droptail must be >= 0, got {readlen}, {droptail}")
        if droptail:
            raise ValueError("droptail (partial last byte) is not supported: /CS rises on bytes")
        if duplex:
            data = out
        elif readlen:
            fill = _FILL[:readlen] if readlen <= len(_FILL) else b"\xff" * readlen
            data = out + fill if out else fill
        else:
            data = out
        chip = self.chip
        if self.log is not None and start:
            self._open = [chip.clock.monotonic(), bytearray(), 0, 0, bytearray(), bytearray(), 0]
        chip.clock.advance(len(data) * self._s_per_byte)
        got = chip.exchange(data, start, stop)
        if self.log is not None:
            self._record(data, got, len(out), len(out) if duplex else readlen, stop)
        if duplex or not out:
            return got
        return got[len(out) :]

    def _record(
        self, data: bytes | bytearray, got: bytes, out_len: int, in_len: int, stop: bool
    ) -> None:
        entry = self._open
        if entry is None:
            return
        head: bytearray = entry[1]
        if len(head) < 4:
            head += data[: 4 - len(head)]
        entry[2] += out_len
        entry[3] += in_len
        room = self.log_bytes - len(entry[4])
        if room > 0:
            entry[4] += data[:room]
            entry[5] += got[:room]
        entry[6] += len(data)
        if stop:
            self._open = None
            opcode = head[0] if head else None
            address = None
            if opcode in ADDRESSED and len(head) >= 4:
                address = head[1] << 16 | head[2] << 8 | head[3]
            assert self.log is not None
            self.log.append(
                SpiTransaction(
                    entry[0],
                    opcode,
                    address,
                    entry[2],
                    entry[3],
                    bytes(entry[4]),
                    bytes(entry[5]),
                    entry[6],
                    self._frequency,
                )
            )
