"""A deliberately small OTA agent from "another team", written against ota-hil's agent seam.

It knows :mod:`agent.protocol` (what a boot is given, what it must do) and uses two public
building blocks of the package for its storage: the SPI NOR driver (:class:`agent.flash.
SpiFlash`) and littlefs (:class:`agent.storage.Storage`). Everything else (parsing the
twin's ``extFwInfo``, the resumable download, verifying, installing, reporting) is its own,
in about a hundred lines. The layout it keeps is the one the harness's invariants judge: a
littlefs at ``board.config.geometry`` whose ``ota/current.bin`` is the image the MCU runs.

``TinyAgent(board, sync=False)`` carries the original design's first weakness behind a
flag: it never syncs the partial download, so after a power cut littlefs holds none of it
and the download starts again from byte 0. The explorers find it (``test_tiny_agent.py``):
resume efficiency, a cut may cost at most one checkpoint of re-downloaded bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import aiohttp

from agent.flash import SpiFlash
from agent.protocol import Board
from agent.storage import Storage

CURRENT, STAGED, JOB = "ota/current.bin", "ota/staged.bin", "ota/job.txt"
RETRY_S = 5.0


class TinyAgent:
    """One boot (an :class:`agent.protocol.OtaAgent`)."""

    def __init__(self, board: Board, *, sync: bool = True) -> None:
        self.board = board
        self.sync = sync
        self._desired: dict[str, Any] = {}
        self._wake = asyncio.Event()

    async def run(self) -> None:
        board = self.board
        flash = board.flash or SpiFlash(board.spi, board.clock)
        self.fs = Storage.mount(flash, board.config.geometry)
        self.fs.makedirs("ota")
        board.twin.on_desired_patch(self._on_patch)
        await board.twin.connect()
        self._desired = {**await board.twin.get_desired(), **self._desired}
        async with board.session_factory() as http:
            while True:
                self._wake.clear()
                info = self._desired.get("extFwInfo")
                if isinstance(info, dict):
                    await self._update(http, info)
                await self._wake.wait()

    def _on_patch(self, patch: dict[str, Any]) -> None:
        self._desired.update(patch)
        self._wake.set()

    async def _report(self, **status: Any) -> None:
        await self.board.twin.report({"extFwInfo": status})

    async def _update(self, http: aiohttp.ClientSession, info: dict[str, Any]) -> None:
        version, size, sha = info["version"], info["size"], info["sha256"].lower()
        target = self.board.target
        staged = STAGED
        job = f"{version}:{sha}"
        if target.current_version() >= version:
            if self.fs.exists(STAGED) and self._job() == job:
                self.fs.rename(STAGED, CURRENT)  # the install was done; finish the swap
            await self._report(Status="applied", Version=target.current_version())
            return
        if self._job() != job:
            self.fs.remove(staged)
            self.fs.write_atomic(JOB, job.encode())
        while not await self._download(http, info, staged, size):
            await self.board.clock.asleep(RETRY_S)
        if self._sha256(staged) != sha:
            self.fs.remove(staged)
            await self._report(Status="error", Error="SHA256 verify fail")
            return
        await self._report(Status="applying")
        with self.fs.open_read(staged) as image:
            target.install(image, size, version)
        self.fs.rename(STAGED, CURRENT)
        await self._report(Status="applied", Version=version)

    def _job(self) -> str | None:
        return self.fs.read_file(JOB).decode() if self.fs.exists(JOB) else None

    async def _download(
        self, http: aiohttp.ClientSession, info: dict[str, Any], path: str, size: int
    ) -> bool:
        """Append the rest of the blob to ``path``, synced every checkpoint; True when whole."""
        have = self.fs.size(path) if self.fs.exists(path) else 0
        if have >= size:
            return True
        await self._report(Status="downloading", Progress=have * 100 // size)
        checkpoint = self.board.config.download.checkpoint_bytes
        headers = {"Range": f"bytes={have}-", "x-ms-version": "2021-08-06"}
        out = self.fs.open_append(path)
        try:
            async with http.get(f"{info['url']}?{info['sas']}", headers=headers) as response:
                if response.status != 206:
                    return False
                unsynced = 0
                while chunk := await response.content.read(4096):
                    out.write(chunk[: size - have])
                    have, unsynced = have + len(chunk), unsynced + len(chunk)
                    if unsynced >= checkpoint and self.sync:
                        out.sync()
                        unsynced = 0
        except (aiohttp.ClientError, TimeoutError):
            return False
        finally:
            out.close()  # closing syncs what was written (unless the power is gone)
        return have >= size

    def _sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open_read(path) as f:
            while block := f.read(4096):
                digest.update(block)
        return digest.hexdigest()


def factory(board: Board) -> TinyAgent:
    """The agent factory (:data:`agent.protocol.AgentFactory`) the harness calls each boot."""
    return TinyAgent(board)


def buggy_factory(board: Board) -> TinyAgent:
    """The same agent with its bug switched on."""
    return TinyAgent(board, sync=False)
