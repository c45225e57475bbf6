"""A serprog bridge: any SPI port served to flashrom over TCP.

flashrom's serprog programmer (``flashrom -p serprog:ip=HOST:PORT``) speaks the
*Serial Flasher Protocol Specification, version 1* (flashrom source tree,
``Documentation/serprog-protocol.txt``, also shipped as
``/usr/share/doc/flashrom/serprog-protocol.txt.gz``). Every command is one opcode
byte and fixed parameters; the answer is ACK (06h) plus data, or NAK (15h).
Multi-byte values are little-endian; lengths and addresses are 24-bit.

This bridge serves the SPI bus only (Q_BUSTYPE answers SPI): ``O_SPIOP`` sends
``slen`` bytes and reads ``rlen`` bytes in one /CS assertion, i.e. one
``port.exchange(out, rlen)``. The operation buffer (``O_INIT``/``O_DELAY``/
``O_EXEC``) holds delays only: flashrom streams its waits (WIP polling, status
register writes) to the programmer when ``O_DELAY`` is advertised instead of
sleeping itself, and the bridge turns them into time on the injected clock; on a
:class:`sim.clock.VirtualClock` that costs no real time. Each ``O_SPIOP`` also
costs ``turnaround_s`` on that clock, the programmer's round trip (a USB
full-speed serprog adapter answers once per 1 ms frame).

Deliberate choices, each allowed by the specification:

- Parallel/LPC/FWH commands (``Q_CHIPSIZE``, ``R_BYTE``, ``R_NBYTES``,
  ``O_WRITEB``, ``O_WRITEN``) are not in the command map and are NAKed.
- An opcode not in the command map is answered with one NAK and none of the bytes
  after it are consumed (its parameters are unknown), as serprog firmware does;
  flashrom resynchronises with NOPs and ``SYNCNOP``.
- An ``O_SPIOP`` longer than the advertised maximum, sent while the pin drivers are
  disabled (``S_PIN_STATE`` 0), or failing because the device lost power
  (:class:`agent.errors.PowerLoss`) has its data consumed and is answered NAK.

Connections are served one at a time, in order; the port (and the chip behind it)
persists between them. A client that sends no command, or reads none of its answer,
for ``idle_timeout_s`` is dropped, so the next one waiting is served. ``python -m sim
serprog`` serves a simulated W25Q128JV; with ``--image`` its array is the file and its
registers and wear are in ``FILE.nv.json``, written (atomically) after every command
that changed them, so even ``kill -9`` loses nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import selectors
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from typing import BinaryIO, cast

from agent.clock import Clock
from agent.errors import PowerLoss
from agent.spi import SpiPort

log = logging.getLogger(__name__)

ACK = 0x06
NAK = 0x15

# Opcodes, Serial Flasher Protocol Specification v1 command table.
NOP = 0x00
Q_IFACE = 0x01
Q_CMDMAP = 0x02
Q_PGMNAME = 0x03
Q_SERBUF = 0x04
Q_BUSTYPE = 0x05
Q_CHIPSIZE = 0x06
Q_OPBUF = 0x07
Q_WRNMAXLEN = 0x08
R_BYTE = 0x09
R_NBYTES = 0x0A
O_INIT = 0x0B
O_WRITEB = 0x0C
O_WRITEN = 0x0D
O_DELAY = 0x0E
O_EXEC = 0x0F
SYNCNOP = 0x10
Q_RDNMAXLEN = 0x11
S_BUSTYPE = 0x12
O_SPIOP = 0x13
S_SPI_FREQ = 0x14
S_PIN_STATE = 0x15

IFACE_VERSION = 1
BUS_SPI = 0x08  # Q_BUSTYPE bit 3: SPI
SERBUF_SIZE = 0xFFFF  # spec: "guaranteed working flow control" (TCP) answers a big bogus value
OPBUF_SIZE = 4096  # bytes of operation buffer; an O_DELAY takes 5
MAX_WRITE_N = 0xFFFFFF  # largest O_SPIOP slen, the 24-bit maximum
MAX_READ_N = 0xFFFFFF  # largest O_SPIOP rlen, the 24-bit maximum
DEFAULT_NAME = b"ota-hil sim"
DEFAULT_TURNAROUND_S = 1e-3  # one USB full-speed frame per O_SPIOP round trip
DEFAULT_IDLE_TIMEOUT_S = 30.0  # a client silent (or not reading) this long is dropped
SEND_CHUNK_BYTES = 64 * 1024  # answers go out in pieces, each within the idle timeout

SUPPORTED = frozenset(
    {
        NOP,
        Q_IFACE,
        Q_CMDMAP,
        Q_PGMNAME,
        Q_SERBUF,
        Q_BUSTYPE,
        Q_OPBUF,
        Q_WRNMAXLEN,
        O_INIT,
        O_DELAY,
        O_EXEC,
        SYNCNOP,
        Q_RDNMAXLEN,
        S_BUSTYPE,
        O_SPIOP,
        S_SPI_FREQ,
        S_PIN_STATE,
    }
)
_NAMES = {
    NOP: "NOP",
    Q_IFACE: "Q_IFACE",
    Q_CMDMAP: "Q_CMDMAP",
    Q_PGMNAME: "Q_PGMNAME",
    Q_SERBUF: "Q_SERBUF",
    Q_BUSTYPE: "Q_BUSTYPE",
    Q_OPBUF: "Q_OPBUF",
    Q_WRNMAXLEN: "Q_WRNMAXLEN",
    O_INIT: "O_INIT",
    O_DELAY: "O_DELAY",
    O_EXEC: "O_EXEC",
    SYNCNOP: "SYNCNOP",
    Q_RDNMAXLEN: "Q_RDNMAXLEN",
    S_BUSTYPE: "S_BUSTYPE",
    S_SPI_FREQ: "S_SPI_FREQ",
    S_PIN_STATE: "S_PIN_STATE",
}


def command_map(opcodes: frozenset[int] = SUPPORTED) -> bytes:
    """The 32-byte Q_CMDMAP answer: command n is bit n % 8 of byte n // 8."""
    bitmap = bytearray(32)
    for opcode in opcodes:
        bitmap[opcode // 8] |= 1 << (opcode % 8)
    return bytes(bitmap)


def _u24(data: bytes, offset: int = 0) -> int:
    return data[offset] | data[offset + 1] << 8 | data[offset + 2] << 16


def _p24(value: int) -> bytes:
    return value.to_bytes(3, "little")


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


class SerprogServer:
    """Serves ``port`` over serprog on a TCP socket, one connection at a time.

    The socket is bound on construction (``port_number=0`` picks a free port; read
    it from :attr:`address`). Run :meth:`serve_forever` in a thread of your own, or
    use the server as a context manager, which runs it in a background thread and
    stops it on exit. ``clock`` receives the time flashrom asks to wait
    (``O_DELAY``) and ``turnaround_s`` per ``O_SPIOP``; without one no time passes.
    A client that sends nothing, or accepts none of its answer, for ``idle_timeout_s``
    of real time is dropped so the next can be served. ``after_command`` is called
    after every command (the CLI saves the chip's non-volatile state there).
    """

    def __init__(
        self,
        port: SpiPort,
        host: str = "127.0.0.1",
        port_number: int = 0,
        *,
        clock: Clock | None = None,
        turnaround_s: float = DEFAULT_TURNAROUND_S,
        name: str = DEFAULT_NAME.decode(),
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        after_command: Callable[[], object] | None = None,
    ) -> None:
        if not idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s must be > 0, got {idle_timeout_s}")
        if not 0 <= port_number <= 0xFFFF:
            raise ValueError(f"port_number must be 0..65535, got {port_number}")
        if turnaround_s < 0:
            raise ValueError(f"turnaround_s must be >= 0, got {turnaround_s}")
        encoded = name.encode("ascii")
        if len(encoded) > 16:
            raise ValueError(f"name must be at most 16 ASCII characters, got {name!r}")
        self._port = port
        self._clock = clock
        self._turnaround_s = turnaround_s
        self._name = encoded
        self._idle_timeout_s = idle_timeout_s
        self._after_command = after_command
        self._listener = socket.create_server((host, port_number))
        self._wake_r, self._wake_w = socket.socketpair()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._conn: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.connections = 0

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        host, port = self._listener.getsockname()[:2]
        return host, port

    def serve_forever(self, *, max_connections: int | None = None) -> None:
        """Accept and serve connections in order until :meth:`close`.

        With ``max_connections`` it returns after serving that many.
        """
        served = 0
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._closed.is_set():
                events = selector.select()
                if any(key.fileobj is self._wake_r for key, _ in events):
                    break
                try:
                    conn, peer = self._listener.accept()
                except OSError:
                    if self._closed.is_set():
                        break
                    raise
                self._serve_connection(conn, peer)
                served += 1
                if max_connections is not None and served >= max_connections:
                    return

    def _serve_connection(self, conn: socket.socket, peer: tuple) -> None:
        with self._lock:
            if self._closed.is_set():
                conn.close()
                return
            self._conn = conn
        self.connections += 1
        log.info("serprog: client %s:%d connected", peer[0], peer[1])
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(self._idle_timeout_s)  # each recv and each send piece
        # a BufferedReader at run time; typeshed types any explicit buffer size as IOBase
        reader = cast(BinaryIO, conn.makefile("rb", buffering=1 << 16))
        session = SerprogSession(
            self._port,
            reader.read,
            lambda data: _send_in_pieces(conn, data),
            clock=self._clock,
            turnaround_s=self._turnaround_s,
            name=self._name,
            after_command=self._after_command,
        )
        try:
            session.run()
        except TimeoutError:
            log.warning(
                "serprog: dropping client %s:%d: idle (no command, or not reading) for %g s",
                peer[0],
                peer[1],
                self._idle_timeout_s,
            )
        except OSError as exc:  # peer reset, or close() shut the socket down
            log.info("serprog: connection ended: %s", exc)
        except Exception:  # a fault in the port ends this client, not the server
            log.exception("serprog: dropping the client after an error")
        finally:
            with self._lock:
                self._conn = None
            reader.close()
            conn.close()
        log.info("serprog: client disconnected after %d commands", session.commands)

    def start(self) -> threading.Thread:
        """Run :meth:`serve_forever` in a daemon thread and return it."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        self._thread = threading.Thread(target=self.serve_forever, name="serprog", daemon=True)
        self._thread.start()
        return self._thread

    def close(self) -> None:
        """Stop accepting, end the current connection, and release the sockets."""
        self._closed.set()
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> SerprogServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _send_in_pieces(conn: socket.socket, data: bytes) -> None:
    """``sendall`` in pieces: the socket's timeout then bounds how long the client may
    leave each piece unread (``sendall``'s own timeout would bound the whole answer)."""
    view = memoryview(data)
    for offset in range(0, len(view), SEND_CHUNK_BYTES):
        conn.sendall(view[offset : offset + SEND_CHUNK_BYTES])


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port), with an error that names what was wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"--listen must be HOST:PORT, got {text!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--listen port must be a number, got {port_text!r}") from None
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"--listen port must be 0..65535, got {port}")
    return host, port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sim serprog",
        description="Serve a simulated W25Q128JV to flashrom "
        "(flashrom -p serprog:ip=HOST:PORT). Ctrl-C stops.",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="address to listen on (default 127.0.0.1:0, a free port; the address is printed)",
    )
    parser.add_argument(
        "--image", metavar="FILE", help="back the chip's array with FILE (kept on exit)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the chip's seed (default 0)")
    parser.add_argument(
        "--timing",
        choices=("typical", "max", "random"),
        default="typical",
        help="program/erase durations from the datasheet (default typical)",
    )
    parser.add_argument(
        "--turnaround-us",
        type=float,
        default=DEFAULT_TURNAROUND_S * 1e6,
        help="simulated time each SPI operation's round trip costs (default 1000 us)",
    )
    parser.add_argument(
        "--once", action="store_true", help="exit after the first client disconnects"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT_S,
        metavar="S",
        help="drop a client that sends nothing, or reads nothing, for S seconds "
        f"(default {DEFAULT_IDLE_TIMEOUT_S:g}); the next one waiting is then served",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sim serprog``: serve a simulated chip until interrupted."""
    args = _parser().parse_args(argv)
    try:
        host, port_number = parse_listen(args.listen)
    except ValueError as exc:
        print(f"serprog: {exc}", file=sys.stderr)
        return 2
    if args.turnaround_us < 0:
        print(f"serprog: --turnaround-us must be >= 0, got {args.turnaround_us}", file=sys.stderr)
        return 2
    if not args.idle_timeout > 0:
        print(f"serprog: --idle-timeout must be > 0, got {args.idle_timeout}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )

    from sim.chip.w25q128 import W25Q128
    from sim.clock import VirtualClock
    from sim.ports.model import SimSpiPort

    clock = VirtualClock()
    try:
        chip = W25Q128(clock=clock, seed=args.seed, timing=args.timing, image=args.image)
    except (ValueError, OSError) as exc:
        print(f"serprog: --image: {exc}", file=sys.stderr)
        return 2
    port = SimSpiPort(chip)
    try:
        server = SerprogServer(
            port,
            host,
            port_number,
            clock=clock,
            turnaround_s=args.turnaround_us / 1e6,
            idle_timeout_s=args.idle_timeout,
            after_command=chip.save_nv,
        )
    except OSError as exc:
        chip.close()
        print(f"serprog: cannot listen on {host}:{port_number}: {exc.strerror}", file=sys.stderr)
        return 1
    bound_host, bound_port = server.address
    print(f"serprog: listening on {bound_host}:{bound_port}", flush=True)
    print(f"serprog: flashrom -p serprog:ip={bound_host}:{bound_port}", flush=True)

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever(max_connections=1 if args.once else None)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
        chip.close()  # flushes a file-backed array (--image) and its non-volatile registers
    return 0
