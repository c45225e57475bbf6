"""Writing a response body the way an :class:`~sim.cloud.faults.exchange.Exchange` says.

The body is a view of the stored blob (a memoryview, or a file read on demand),
written in slices (no per-request copy of a multi-MiB body); faults cap the rate,
slice the writes, flip bytes, stall, cut the body short and end the connection with
FIN or RST.
"""

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from sim.cloud.blobserver.store import BlobView
from sim.cloud.faults.exchange import Exchange

CHUNK_BYTES = 256 * 1024  # big writes: loopback throughput; faults make them smaller
RATE_SLICE_S = 0.01  # a bandwidth cap writes about 10 ms of data at a time
FLUSH_POLL_S = 0.001  # a real client: look again 1 ms later; a simulation passes 0 (see flush)


@dataclass
class Progress:
    """What the body writer did, for the event log."""

    bytes_sent: int = 0
    outcome: str = "ok"


def reset_connection(request: web.BaseRequest) -> None:
    """Close the connection with RST: SO_LINGER (on, 0) then close (socket(7))."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # already gone
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def close_connection(request: web.BaseRequest) -> None:
    """Close the connection cleanly (FIN) once buffered bytes are out."""
    if request.transport is not None:
        request.transport.close()


def client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def flush(request: web.BaseRequest, poll_s: float = FLUSH_POLL_S) -> None:
    """Wait until the transport has handed every written byte to the kernel.

    ``poll_s=0`` stays runnable meanwhile, so a virtual-time simulation never takes the
    handler for idle while bytes are still on their way (sim/loopback.py)."""
    while True:
        transport = request.transport
        if transport is None or transport.is_closing() or transport.get_write_buffer_size() == 0:
            return
        await asyncio.sleep(poll_s)


async def send_body(
    request: web.BaseRequest,
    response: web.StreamResponse,
    view: BlobView,
    *,
    first: int,
    exchange: Exchange,
    rng: random.Random,
    pause: Callable[[float], Awaitable[None]],
    hold: Callable[[float], Awaitable[None]],
    progress: Progress,
    flush_poll_s: float = FLUSH_POLL_S,
) -> None:
    """Write ``view`` (the blob bytes from offset ``first``) with the exchange's faults.

    ``pause`` waits a time (cut short when the server stops); ``hold`` stalls for a
    time or, for 0, until the client leaves.
    """
    stop = len(view)
    ending = "normal"
    if exchange.missing_bytes:
        stop, ending = max(0, stop - exchange.missing_bytes), "close"
    if exchange.stop_after is not None and exchange.stop_after < stop:
        stop, ending = exchange.stop_after, exchange.ending
    stalling = exchange.stall_s is not None and exchange.stall_after_bytes is not None
    if stalling and exchange.stall_after_bytes is not None and exchange.stall_after_bytes <= stop:
        stop, ending = exchange.stall_after_bytes, "stall"
    try:
        await _write(response, view, stop, first, exchange, rng, pause, progress)
    except ConnectionError:
        progress.outcome = "client-gone"
        return
    if ending == "normal":
        if exchange.close_delay_s:
            await flush(request, flush_poll_s)
            await pause(exchange.close_delay_s)
        return
    await flush(request, flush_poll_s)
    if ending == "stall":
        progress.outcome = "stalled"
        await hold(exchange.stall_s or 0.0)
        close_connection(request)
    elif ending == "reset":
        progress.outcome = "reset"
        if exchange.reset_delay_s:
            await pause(exchange.reset_delay_s)
        reset_connection(request)
    else:
        progress.outcome = "closed"
        if exchange.close_delay_s:
            await pause(exchange.close_delay_s)
        close_connection(request)


async def _write(
    response: web.StreamResponse,
    view: BlobView,
    stop: int,
    first: int,
    exchange: Exchange,
    rng: random.Random,
    pause: Callable[[float], Awaitable[None]],
    progress: Progress,
) -> None:
    corrupt = {o - first: m for o, m in exchange.corrupt.items() if first <= o < first + stop}
    rate = exchange.rate_bps
    pos = 0
    while pos < stop:
        size = CHUNK_BYTES
        if exchange.slice_size:
            variation = exchange.slice_variation
            size = exchange.slice_size + (rng.randint(-variation, variation) if variation else 0)
        if rate is not None:
            size = min(size, max(1, int(rate * RATE_SLICE_S)))
        size = min(size, stop - pos)
        chunk: memoryview | bytes = view[pos : pos + size]
        flips = [o for o in corrupt if pos <= o < pos + size]
        if flips:
            copy = bytearray(chunk)
            for offset in flips:
                copy[offset - pos] ^= corrupt[offset]
            chunk = bytes(copy)
        await response.write(chunk)
        pos += size
        progress.bytes_sent = pos
        delay = (exchange.slice_delay_s if exchange.slice_size else 0.0) + (
            size / rate if rate is not None else 0.0
        )
        if delay and pos < stop:
            await pause(delay)
