"""The serprog bridge's TCP server: one connection at a time, idle clients dropped.

Each connection gets a :class:`~sim.tools.serprog.session.SerprogSession` over the
socket; the port (and the chip behind it) persists between connections. A client
that sends no command, or reads none of its answer, for ``idle_timeout_s`` is
dropped so the next one waiting is served.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from collections.abc import Callable
from typing import BinaryIO, cast

from agent.clock import Clock
from agent.spi import SpiPort
from sim.tools.serprog.protocol import DEFAULT_NAME
from sim.tools.serprog.session import DEFAULT_TURNAROUND_S, SerprogSession

log = logging.getLogger("sim.tools.serprog")

DEFAULT_IDLE_TIMEOUT_S = 30.0  # a client silent (or not reading) this long is dropped
SEND_CHUNK_BYTES = 64 * 1024  # answers go out in pieces, each within the idle timeout


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
