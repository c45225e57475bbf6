"""The gateway link: a device twin and an MCU target served to an agent process over TCP.

When a harness runs an agent as a separate process (:mod:`sim.process`), the twin and the
MCU stay in the harness, where the invariants read them, and reach the agent over one
loopback TCP connection of JSON lines (UTF-8, one object per ``\\n``):

* requests, agent to harness: ``{"id": N, "op": OP, ...}`` with ``op`` one of ``connect``,
  ``get_desired``, ``report`` (``"patch"``), ``close`` (the :class:`agent.twin.Twin`
  seam) and ``version``, ``install`` (``"version"``, ``"size"``, ``"data"``: the image in
  base64) (the :class:`agent.target.McuTarget` seam);
* answers: ``{"id": N, "result": ...}``, or ``{"id": N, "error": KIND, "message": TEXT}``
  with ``KIND`` ``twin`` (:class:`TwinError`), ``power`` (:class:`PowerLoss`: the board
  lost power during an install) or ``install`` (the MCU refused the image);
* pushed by the harness: ``{"patch": {...}}``, a desired-properties patch.

A native agent speaks the same lines (README, "Agents in another process").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from agent.errors import PowerLoss
from agent.twin import PatchHandler, TwinError

CONNECT_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 120.0  # an install of 16 MiB at the simulated MCU's rate stays under it


class LinkInstallError(Exception):
    """The MCU (behind the link) refused or failed the image."""


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class GatewayLink:
    """The agent's end of the link: a :class:`~agent.twin.Twin` and an
    :class:`~agent.target.McuTarget` at once."""

    def __init__(self, address: str) -> None:
        host, port = parse_address(address)
        try:
            self._sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            raise TwinError(f"gateway link {address}: cannot connect: {exc}") from None
        self._sock.settimeout(None)
        self._file = self._sock.makefile("rwb")
        self._lock = threading.Lock()
        self._next = 0
        self._waiting: dict[int, Callable[[dict[str, Any]], None]] = {}
        self._handler: PatchHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early: list[dict[str, Any]] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="gateway-link", daemon=True)
        self._reader.start()

    # -- the wire -------------------------------------------------------------------------

    def _read(self) -> None:
        try:
            for line in self._file:
                message = json.loads(line)
                if "patch" in message:
                    self._deliver(message["patch"])
                    continue
                with self._lock:
                    done = self._waiting.pop(message.get("id"), None)
                if done is not None:
                    done(message)
        except (OSError, ValueError):
            pass
        finally:
            self._closed = True
            with self._lock:
                waiting, self._waiting = self._waiting, {}
            for done in waiting.values():
                done({"error": "twin", "message": "gateway link closed"})

    def _deliver(self, patch: dict[str, Any]) -> None:
        loop, handler = self._loop, self._handler
        if loop is None or handler is None:
            self._early.append(patch)
        else:
            loop.call_soon_threadsafe(handler, patch)

    def _send(self, op: str, done: Callable[[dict[str, Any]], None], **fields: Any) -> None:
        if self._closed:
            raise TwinError("gateway link closed")
        with self._lock:
            self._next += 1
            ident = self._next
            self._waiting[ident] = done
            line = json.dumps({"id": ident, "op": op, **fields}).encode() + b"\n"
            try:
                self._file.write(line)
                self._file.flush()
            except OSError as exc:
                self._waiting.pop(ident, None)
                raise TwinError(f"gateway link: {exc}") from None

    def call(self, op: str, **fields: Any) -> Any:
        """A request answered before returning (the MCU's synchronous seam)."""
        answered = threading.Event()
        box: dict[str, Any] = {}

        def done(message: dict[str, Any]) -> None:
            box.update(message)
            answered.set()

        self._send(op, done, **fields)
        if not answered.wait(CALL_TIMEOUT_S):
            raise TwinError(f"gateway link: no answer to {op} in {CALL_TIMEOUT_S} s")
        return _result(box)

    async def acall(self, op: str, **fields: Any) -> Any:
        """A request awaited on the agent's event loop (the twin's seam)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()

        def settle(message: dict[str, Any]) -> None:
            if not future.done():
                future.set_result(message)

        def done(message: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(settle, message)

        self._send(op, done, **fields)
        return _result(await asyncio.wait_for(future, CALL_TIMEOUT_S))

    # -- Twin -----------------------------------------------------------------------------

    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.acall("connect")
        early, self._early = self._early, []
        for patch in early:
            self._deliver(patch)

    async def get_desired(self) -> dict[str, Any]:
        return dict(await self.acall("get_desired"))

    def on_desired_patch(self, handler: PatchHandler) -> None:
        self._handler = handler

    async def report(self, patch: dict[str, Any]) -> None:
        await self.acall("report", patch=patch)

    async def close(self) -> None:
        if not self._closed:
            with contextlib.suppress(TwinError):
                await self.acall("close")
        self._closed = True
        self._sock.close()

    # -- McuTarget ------------------------------------------------------------------------

    def current_version(self) -> int:
        return int(self.call("version"))

    def install(self, reader: BinaryIO, size: int, version: int) -> None:
        image = reader.read(size)
        if len(image) != size:
            raise LinkInstallError(f"image ended after {len(image)} of {size} bytes")
        data = base64.b64encode(image).decode()
        self.call("install", version=version, size=size, data=data)


def _result(message: dict[str, Any]) -> Any:
    kind = message.get("error")
    if kind is None:
        return message.get("result")
    text = str(message.get("message", kind))
    if kind == "power":
        raise PowerLoss(text)
    if kind == "install":
        raise LinkInstallError(text)
    raise TwinError(text)
