"""One serprog connection's protocol state, over any byte stream.

Reads each command's parameters, acts on the SPI port and answers (specification
v1; :mod:`sim.tools.serprog.protocol`). ``O_SPIOP`` is one ``port.exchange`` in one
/CS assertion; the operation buffer holds delays only, spent on the injected clock
at ``O_EXEC``, and each ``O_SPIOP`` costs ``turnaround_s`` on it.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

from agent.clock import Clock
from agent.errors import PowerLoss
from agent.spi import SpiPort
from sim.tools.serprog.protocol import (
    _NAMES,
    ACK,
    BUS_SPI,
    DEFAULT_NAME,
    IFACE_VERSION,
    MAX_READ_N,
    MAX_WRITE_N,
    NAK,
    NOP,
    O_DELAY,
    O_EXEC,
    O_INIT,
    O_SPIOP,
    OPBUF_SIZE,
    Q_BUSTYPE,
    Q_CMDMAP,
    Q_IFACE,
    Q_OPBUF,
    Q_PGMNAME,
    Q_RDNMAXLEN,
    Q_SERBUF,
    Q_WRNMAXLEN,
    S_BUSTYPE,
    S_PIN_STATE,
    S_SPI_FREQ,
    SERBUF_SIZE,
    SYNCNOP,
    _p24,
    _u24,
    command_map,
)

log = logging.getLogger("sim.tools.serprog")

DEFAULT_TURNAROUND_S = 1e-3  # one USB full-speed frame per O_SPIOP round trip


class SerprogSession:
    """The protocol state of one connection, over any byte stream.

    ``read(n)`` returns exactly ``n`` bytes or fewer at end of stream; ``write``
    sends an answer. State (pin drivers, operation buffer) is per
    connection, as on a programmer that is reset by reconnecting.
    """

    def __init__(
        self,
        port: SpiPort,
        read: Callable[[int], bytes],
        write: Callable[[bytes], object],
        *,
        clock: Clock | None = None,
        turnaround_s: float = DEFAULT_TURNAROUND_S,
        name: bytes = DEFAULT_NAME,
        after_command: Callable[[], object] | None = None,
    ) -> None:
        self._after_command = after_command
        self._port = port
        self._read = read
        self._write = write
        self._clock = clock
        self._turnaround_s = turnaround_s
        self._name = name.ljust(16, b"\0")
        self._cmdmap = command_map()
        self._pins_enabled = True
        self._opbuf: list[int] = []  # queued delays in microseconds
        self._opbuf_used = 0
        self._debug = log.isEnabledFor(logging.DEBUG)
        self.commands = 0

    def run(self) -> None:
        """Answer commands until the peer closes the stream."""
        read = self._read
        while True:
            opcode = read(1)
            if not opcode:
                return
            self.commands += 1
            self.handle(opcode[0])
            if self._after_command is not None:
                self._after_command()

    def handle(self, opcode: int) -> None:
        """Read the parameters of ``opcode``, act, and send the answer."""
        if opcode == O_SPIOP:  # the hot path first
            self._spi_op()
            return
        if self._debug:
            log.debug("serprog %s", _NAMES.get(opcode, f"unknown 0x{opcode:02X}"))
        answer = self._answer(opcode)
        self._write(answer)

    def _answer(self, opcode: int) -> bytes:
        if opcode == NOP:
            return bytes((ACK,))
        if opcode == SYNCNOP:
            return bytes((NAK, ACK))
        if opcode == Q_IFACE:
            return bytes((ACK,)) + struct.pack("<H", IFACE_VERSION)
        if opcode == Q_CMDMAP:
            return bytes((ACK,)) + self._cmdmap
        if opcode == Q_PGMNAME:
            return bytes((ACK,)) + self._name
        if opcode == Q_SERBUF:
            return bytes((ACK,)) + struct.pack("<H", SERBUF_SIZE)
        if opcode == Q_BUSTYPE:
            return bytes((ACK, BUS_SPI))
        if opcode == Q_OPBUF:
            return bytes((ACK,)) + struct.pack("<H", OPBUF_SIZE)
        if opcode == Q_WRNMAXLEN:
            return bytes((ACK,)) + _p24(MAX_WRITE_N)
        if opcode == Q_RDNMAXLEN:
            return bytes((ACK,)) + _p24(MAX_READ_N)
        if opcode == S_BUSTYPE:
            return self._set_bustype()
        if opcode == S_SPI_FREQ:
            return self._set_frequency()
        if opcode == S_PIN_STATE:
            params = self._params(1)
            if params is None:
                return b""
            self._pins_enabled = params[0] != 0
            return bytes((ACK,))
        if opcode == O_INIT:
            self._opbuf.clear()
            self._opbuf_used = 0
            return bytes((ACK,))
        if opcode == O_DELAY:
            return self._queue_delay()
        if opcode == O_EXEC:
            return self._execute()
        return bytes((NAK,))

    def _params(self, size: int) -> bytes | None:
        data = self._read(size)
        return data if len(data) == size else None

    def _set_bustype(self) -> bytes:
        params = self._params(1)
        if params is None:
            return b""
        # spec 0x12: more than one bit set lets the programmer choose; SPI is all we have
        return bytes((ACK if params[0] & BUS_SPI else NAK,))

    def _set_frequency(self) -> bytes:
        params = self._params(4)
        if params is None:
            return b""
        requested = struct.unpack("<I", params)[0]
        if requested == 0:  # spec 0x14: value 0 is reserved and should be NAKed
            return bytes((NAK,))
        self._port.set_frequency(float(requested))
        actual = round(self._port.frequency)
        log.debug("serprog S_SPI_FREQ requested %d Hz, set %d Hz", requested, actual)
        return bytes((ACK,)) + struct.pack("<I", min(actual, 0xFFFFFFFF))

    def _queue_delay(self) -> bytes:
        params = self._params(4)
        if params is None:
            return b""
        if self._opbuf_used + 5 > OPBUF_SIZE:
            return bytes((NAK,))
        self._opbuf.append(struct.unpack("<I", params)[0])
        self._opbuf_used += 5
        return bytes((ACK,))

    def _execute(self) -> bytes:
        # spec 0x0F: executing the operation buffer also clears it
        total_us = sum(self._opbuf)
        self._opbuf.clear()
        self._opbuf_used = 0
        if total_us and self._clock is not None:
            self._clock.sleep(total_us / 1e6)
        return bytes((ACK,))

    def _spi_op(self) -> None:
        header = self._params(6)
        if header is None:
            return
        slen, rlen = _u24(header), _u24(header, 3)
        out = self._read(slen) if slen else b""
        if len(out) != slen:
            return
        if self._debug:
            log.debug("serprog O_SPIOP out=%s... slen=%d rlen=%d", out[:8].hex(), slen, rlen)
        if slen > MAX_WRITE_N or rlen > MAX_READ_N or not self._pins_enabled:
            self._write(bytes((NAK,)))
            return
        if self._clock is not None and self._turnaround_s:
            self._clock.sleep(self._turnaround_s)
        try:
            data = self._port.exchange(out, rlen)
        except PowerLoss:
            log.warning("serprog O_SPIOP: the device has no power; NAK")
            self._write(bytes((NAK,)))
            return
        self._write(b"\x06" + bytes(data))
