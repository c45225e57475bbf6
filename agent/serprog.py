"""A serprog client: the agent's SPI port (and, under a simulator, its clock) over TCP.

flashrom's *Serial Flasher Protocol Specification, version 1* (``serprog-protocol.txt`` in
flashrom's tree) is spoken by serprog programmer firmware (e.g. on an RP2040 or an STM32)
and by this project's bridge (``python -m sim serprog``, :mod:`sim.tools.serprog`), which
serves the W25Q128JV model. :class:`SerprogPort` implements the :mod:`agent.spi` seam:
each half-duplex exchange is one ``O_SPIOP`` (one /CS assertion: ``slen`` bytes out, then
``rlen`` in). :class:`BusClock` keeps the agent's time on the programmer's side: a wait is
an ``O_DELAY`` executed by ``O_EXEC``, which the simulator's bridge spends on its virtual
clock, so the chip's BUSY times pass without real sleeping; a real programmer waits in
real time. A NAK of ``O_SPIOP`` means the device has no power: :class:`PowerLoss`.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Awaitable
from typing import TypeVar
from urllib.parse import urlsplit

from agent.errors import PowerLoss

T = TypeVar("T")

ACK, NAK = 0x06, 0x15
# opcodes of the specification's command table this client sends
Q_IFACE, Q_CMDMAP, Q_BUSTYPE, Q_WRNMAXLEN, Q_RDNMAXLEN = 0x01, 0x02, 0x05, 0x08, 0x11
O_INIT, O_DELAY, O_EXEC, SYNCNOP = 0x0B, 0x0E, 0x0F, 0x10
S_BUSTYPE, O_SPIOP, S_SPI_FREQ, S_PIN_STATE = 0x12, 0x13, 0x14, 0x15
BUS_SPI = 0x08
REQUIRED = (O_SPIOP, S_SPI_FREQ, O_DELAY, O_EXEC, O_INIT)
MAX_DELAY_US = 0xFFFFFFFF
CONNECT_TIMEOUT_S = 10.0
REPLY_TIMEOUT_S = 60.0  # a bridge answering a 16 MiB read at the slowest SCK stays under it


class SerprogError(OSError):
    """The programmer is unreachable, closed the connection or broke the protocol."""


def parse_url(url: str) -> tuple[str, int]:
    """``serprog://HOST:PORT`` (IPv6 as ``[::1]``) as ``(host, port)``."""
    parts = urlsplit(url)
    if parts.scheme != "serprog" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"{url!r} is not serprog://HOST:PORT")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or port == 0:
        raise ValueError(f"{url!r} has no TCP port (serprog://HOST:PORT)")
    return parts.hostname, port


class SerprogLink:
    """One TCP connection to a serprog programmer, synchronised and checked on open."""

    def __init__(self, host: str, port: int, *, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise SerprogError(f"serprog://{host}:{port}: cannot connect: {exc}") from None
        self._sock.settimeout(REPLY_TIMEOUT_S)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.where = f"serprog://{host}:{port}"
        self._handshake()

    def _handshake(self) -> None:
        self._send(bytes((SYNCNOP,)))
        if self._recv(2) != bytes((NAK, ACK)):
            raise SerprogError(f"{self.where}: no serprog programmer answers (SYNCNOP)")
        version = struct.unpack("<H", self.command(Q_IFACE, b"", 2))[0]
        if version != 1:
            raise SerprogError(f"{self.where}: serprog interface version {version}, not 1")
        cmdmap = int.from_bytes(self.command(Q_CMDMAP, b"", 32), "little")
        missing = [f"0x{op:02X}" for op in REQUIRED if not cmdmap >> op & 1]
        if missing:
            raise SerprogError(f"{self.where}: programmer lacks commands {', '.join(missing)}")
        if not self.command(Q_BUSTYPE, b"", 1)[0] & BUS_SPI:
            raise SerprogError(f"{self.where}: programmer has no SPI bus")
        self.command(S_BUSTYPE, bytes((BUS_SPI,)), 0)
        self.max_write = int.from_bytes(self.command(Q_WRNMAXLEN, b"", 3), "little") or 1 << 24
        self.max_read = int.from_bytes(self.command(Q_RDNMAXLEN, b"", 3), "little") or 1 << 24
        self.command(S_PIN_STATE, b"\x01", 0)

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise SerprogError(f"{self.where}: connection lost: {exc}") from None

    def _recv(self, n: int) -> bytes:
        chunks, need = [], n
        while need:
            try:
                chunk = self._sock.recv(need)
            except OSError as exc:
                raise SerprogError(f"{self.where}: connection lost: {exc}") from None
            if not chunk:
                raise SerprogError(f"{self.where}: the programmer closed the connection")
            chunks.append(chunk)
            need -= len(chunk)
        return b"".join(chunks)

    def command(self, opcode: int, params: bytes, answer: int) -> bytes:
        """Send one command; return the ``answer`` bytes after its ACK."""
        self._send(bytes((opcode,)) + params)
        status = self._recv(1)[0]
        if status == NAK:
            raise SerprogNak(opcode)
        if status != ACK:
            raise SerprogError(f"{self.where}: answer 0x{status:02X} to 0x{opcode:02X}")
        return self._recv(answer) if answer else b""

    def close(self) -> None:
        self._sock.close()


class SerprogNak(Exception):
    """The programmer refused a command (NAK)."""

    def __init__(self, opcode: int) -> None:
        super().__init__(f"serprog command 0x{opcode:02X} was refused (NAK)")
        self.opcode = opcode


class SerprogPort:
    """pyftdi's ``SpiPort`` subset (:class:`agent.spi.SpiPort`) over a :class:`SerprogLink`.

    serprog frames exactly one /CS assertion per ``O_SPIOP`` and is half duplex, so a
    transfer must start and stop in one call and cannot be ``duplex`` (the NOR driver,
    :class:`agent.flash.SpiFlash`, needs neither).
    """

    def __init__(self, link: SerprogLink, *, frequency: float = 8e6) -> None:
        self._link = link
        self._frequency = 0.0
        self.bytes_clocked = 0
        self.set_frequency(frequency)

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        if duplex or droptail or not (start and stop):
            raise ValueError("serprog sends one half-duplex /CS-framed transfer per O_SPIOP")
        if len(out) > self._link.max_write or readlen > self._link.max_read:
            raise ValueError(f"transfer of {len(out)}/{readlen} bytes exceeds the programmer's")
        header = len(out).to_bytes(3, "little") + readlen.to_bytes(3, "little")
        try:
            data = self._link.command(O_SPIOP, header + bytes(out), readlen)
        except SerprogNak:
            raise PowerLoss(
                f"{self._link.where}: O_SPIOP refused: the flash has no power"
            ) from None
        self.bytes_clocked += len(out) + readlen
        return data

    def close(self) -> None:
        """Close the connection (the programmer serves the next client)."""
        self._link.close()

    def read(self, readlen: int = 0, start: bool = True, stop: bool = True) -> bytes:
        return self.exchange(b"", readlen, start, stop)

    def write(self, out: bytes | bytearray, start: bool = True, stop: bool = True) -> None:
        self.exchange(out, 0, start, stop)

    @property
    def frequency(self) -> float:
        return self._frequency

    def set_frequency(self, frequency: float) -> None:
        if not 0 < frequency <= 0xFFFFFFFF:
            raise ValueError(f"frequency must be in (0, 4.29 GHz], got {frequency!r}")
        actual = self._link.command(S_SPI_FREQ, struct.pack("<I", round(frequency)), 4)
        self._frequency = float(struct.unpack("<I", actual)[0])


class BusClock:
    """:class:`agent.clock.Clock` on the programmer's side of the bus.

    Every wait is spent by the programmer (``O_DELAY`` + ``O_EXEC``); :meth:`monotonic`
    counts those waits plus the SCK time of every byte the port clocked, which is how the
    simulator's bridge moves its virtual clock. Real I/O (sockets) is waited for in real
    time, compressed by ``io_time_scale`` when it times out, as
    :class:`sim.clock.VirtualClock` does, and the wait is then spent on the bus too.
    """

    def __init__(self, link: SerprogLink, port: SerprogPort, *, io_time_scale: float = 0.01):
        if not 0 < io_time_scale <= 1:
            raise ValueError(f"io_time_scale must be in (0, 1], got {io_time_scale}")
        self._link, self._port = link, port
        self._waited = 0.0
        self.io_time_scale = io_time_scale

    def monotonic(self) -> float:
        return self._waited + self._port.bytes_clocked * 8 / self._port.frequency

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self._link.command(O_INIT, b"", 0)
        left = round(seconds * 1e6)
        while left > 0:
            step = min(left, MAX_DELAY_US)
            self._link.command(O_DELAY, struct.pack("<I", step), 0)
            left -= step
        self._link.command(O_EXEC, b"", 0)
        self._waited += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(aw, max(0.0, timeout) * self.io_time_scale)
        except TimeoutError:
            self.sleep(max(0.0, timeout))
            raise
        self.sleep(time.perf_counter() - started)
        return result


def open_serprog(url: str, *, frequency: float = 8e6) -> tuple[SerprogPort, BusClock]:
    """Connect to ``serprog://HOST:PORT``; the port and the clock of that bus."""
    host, port_number = parse_url(url)
    link = SerprogLink(host, port_number)
    port = SerprogPort(link, frequency=frequency)
    return port, BusClock(link, port)
