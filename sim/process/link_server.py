"""The harness's end of the gateway link (:mod:`agent.link`): a twin and an MCU target served
to one agent process over loopback TCP, as JSON lines.

Once the board has lost power nothing more gets through: requests are neither answered nor
acted on (a report sent after the cut never reaches the twin), exactly as a gateway whose
supply is gone sends nothing. A power loss inside an install (the simulated MCU's cut) is
answered ``power`` and reported to the caller through ``on_loss``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import threading
from collections.abc import Callable
from typing import Any

from agent.errors import PowerLoss
from agent.target import McuTarget
from agent.twin import Twin, TwinError

HOST = "127.0.0.1"
LINE_LIMIT = 48 * 1024 * 1024  # one install line: a 16 MiB image in base64, and headroom


class LinkServer:
    """Serves ``twin`` and ``target`` to the agent process that connects."""

    def __init__(
        self, twin: Twin, target: McuTarget, *, dead: threading.Event, on_loss: Callable[[], None]
    ) -> None:
        self._twin, self._target = twin, target
        self._dead, self._on_loss = dead, on_loss
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def address(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, 0, limit=LINE_LIMIT)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for writer in self._writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)

        def send(message: dict[str, Any]) -> None:
            if not self._dead.is_set() and not writer.is_closing():
                writer.write(json.dumps(message).encode() + b"\n")

        self._twin.on_desired_patch(lambda patch: send({"patch": patch}))
        try:
            while line := await reader.readline():
                if self._dead.is_set():
                    continue  # no power: nothing the agent sends gets out any more
                request = json.loads(line)
                answer = await self._answer(request)
                send({"id": request.get("id"), **answer})
                await writer.drain()
        except (ConnectionError, ValueError):
            pass  # a broken or malformed link: closing it fails the agent's pending calls
        finally:
            writer.close()

    async def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        try:
            if op == "connect":
                await self._twin.connect()
                return {"result": None}
            if op == "get_desired":
                return {"result": await self._twin.get_desired()}
            if op == "report":
                await self._twin.report(request["patch"])
                return {"result": None}
            if op == "close":
                await self._twin.close()
                return {"result": None}
            if op == "version":
                return {"result": self._target.current_version()}
            if op == "install":
                image = base64.b64decode(request["data"])
                self._target.install(io.BytesIO(image), request["size"], request["version"])
                return {"result": None}
        except TwinError as exc:
            return {"error": "twin", "message": str(exc)}
        except PowerLoss as exc:
            self._on_loss()
            return {"error": "power", "message": str(exc)}
        except Exception as exc:  # the MCU refused the image, or a malformed request
            return {"error": "install", "message": f"{type(exc).__name__}: {exc}"}
        return {"error": "twin", "message": f"unknown op {op!r}"}
