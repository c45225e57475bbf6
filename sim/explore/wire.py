"""What the agent reads off the network in a scenario run, counted on its own session.

The runner gives each agent an aiohttp session whose responses count the body bytes the
agent consumes, per request, so the invariants can judge resume efficiency from what the
device saw rather than from what the server sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import aiohttp

from sim.explore.result import RequestRecord


class _Counted:
    """Proxy for a response's ``content`` that counts the bytes the agent reads."""

    def __init__(self, inner: Any, on_read: Callable[[int], None]) -> None:
        self._inner = inner
        self._on_read = on_read

    async def readany(self) -> bytes:
        data = await self._inner.readany()
        self._on_read(len(data))
        return data

    async def read(self, n: int = -1) -> bytes:
        data = await self._inner.read(n)
        self._on_read(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Wire:
    """One run's request log, fed by a counting ``ClientResponse`` class.

    ``watchers`` see every read as ``(request entry, total bytes so far)``; one that
    returns True is done and dropped (the runner's \"publish the newer version after N
    bytes\" and \"rot the image once received\").
    """

    def __init__(self) -> None:
        self.boot = 0
        self.requests: list[dict[str, Any]] = []
        self.total = 0
        # called after every read with (request entry, total bytes); True: done, drop it
        self.watchers: list[Callable[[dict[str, Any], int], bool]] = []

    def session_factory(self) -> aiohttp.ClientSession:
        wire = self

        class CountingResponse(aiohttp.ClientResponse):
            async def start(self, connection: Any) -> Any:
                result = await super().start(connection)
                entry = wire._open(self)
                counted = _Counted(self.content, lambda n: wire._read(entry, n))
                self.content = counted  # type: ignore[assignment]
                return result

        return aiohttp.ClientSession(response_class=CountingResponse)

    def _open(self, response: aiohttp.ClientResponse) -> dict[str, Any]:
        start = 0
        crange = response.headers.get("Content-Range", "")
        if response.status == 206 and crange.startswith("bytes ") and "-" in crange:
            with contextlib.suppress(ValueError):
                start = int(crange[6:].split("-", 1)[0])
        entry = {
            "boot": self.boot,
            "url": str(response.url).split("?", 1)[0],
            "status": response.status,
            "start": start,
            "consumed": 0,
            "max_read": 0,
            "etag": response.headers.get("ETag"),
            "asked": _range_start(response.request_info.headers.get("Range")),
        }
        self.requests.append(entry)
        return entry

    def _read(self, entry: dict[str, Any], n: int) -> None:
        entry["consumed"] += n
        entry["max_read"] = max(entry["max_read"], n)
        self.total += n
        if self.watchers:
            self.watchers = [w for w in self.watchers if not w(entry, self.total)]

    def records(self) -> list[RequestRecord]:
        return [RequestRecord(**e) for e in self.requests]


def _range_start(header: str | None) -> int | None:
    """The first byte a ``Range: bytes=N-[M]`` request header asks for (None: no Range)."""
    if header is None or not header.startswith("bytes="):
        return None
    first = header[6:].split("-", 1)[0]
    return int(first) if first.isascii() and first.isdigit() else None
