"""Helpers for the agent's end-to-end tests: a device, a blob server, and what they saw.

Every test builds its own :class:`~sim.cloud.blobserver.BlobServer` (real HTTP on loopback)
and :class:`~sim.device.SimDevice` (chip model, littlefs, the real agent), publishes an
OTA the way the original's ``ota.py`` does, and runs the device until a predicate on
the reported properties holds. The helpers here only observe: a request recorder on
the agent's own aiohttp session (what was asked, with which headers, at which virtual
time), every boot's agent (for its download statistics), and a read-only look at the
device's littlefs after a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp

from agent.download import DownloadPolicy, DownloadStats
from agent.engine import Agent, AgentConfig
from agent.flash import SpiFlash
from agent.hosts import LOOPBACK_HOSTS
from agent.protocol import Board
from agent.record import Record, load_record
from agent.staging import CURRENT_PATH, RECORD_PATH, STAGED_PATH
from agent.storage import Geometry, Storage
from sim.cloud.blobserver import BlobServer
from sim.cloud.twin import publish_ota
from sim.device import SimDevice, reported_status

CONTAINER = "ota"
BLOB = "mcu.bin"
IMAGE_BYTES = 128 * 1024
CHECKPOINT_BYTES = 16 * 1024  # small, so a 128 KiB image has eight checkpoints
READ_CHUNK_BYTES = 4 * 1024


def make_image(seed: int, size: int = IMAGE_BYTES) -> bytes:
    """A firmware image of ``size`` seeded random bytes."""
    return random.Random(f"image:{seed}").randbytes(size)


def sha256(data: bytes | bytearray) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


def config(**download: Any) -> AgentConfig:
    """The agent's configuration for tests: plain http to loopback, small checkpoints."""
    policy = {"checkpoint_bytes": CHECKPOINT_BYTES, "read_chunk_bytes": READ_CHUNK_BYTES}
    policy.update(download)
    return AgentConfig(
        allow_http_loopback=True, storage_hosts=LOOPBACK_HOSTS, download=DownloadPolicy(**policy)
    )


@dataclass(frozen=True)
class SeenRequest:
    """One request as the agent sent it: virtual send time, method, path, headers."""

    at: float
    method: str
    path: str
    headers: dict[str, str]

    @property
    def range_start(self) -> int | None:
        value = self.headers.get("Range")
        return None if value is None else int(value.removeprefix("bytes=").split("-")[0])


class Recorder:
    """Records every request the agent's HTTP session sends (aiohttp client tracing)."""

    def __init__(self, device: SimDevice) -> None:
        self.device = device
        self.requests: list[SeenRequest] = []

    def session(self) -> aiohttp.ClientSession:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_request_start)
        return aiohttp.ClientSession(trace_configs=[trace])

    async def _on_request_start(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        self.requests.append(
            SeenRequest(
                at=self.device.clock.monotonic(),
                method=params.method,
                path=params.url.path,
                headers=dict(params.headers),
            )
        )

    def gets(self, blob: str = BLOB) -> list[SeenRequest]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + blob)]


@dataclass
class Rig:
    """A device wired to a blob server, with everything the tests observe."""

    server: BlobServer
    device: SimDevice
    recorder: Recorder
    agents: list[Agent] = field(default_factory=list)
    _extra_on_boot: Callable[[SimDevice], None] | None = None

    def put(self, image: bytes, blob: str = BLOB) -> str:
        return self.server.put_blob(CONTAINER, blob, image)

    def publish(self, version: int, image: bytes, blob: str = BLOB) -> int:
        """The operator's ``ota.py``: describe ``image`` at ``blob`` as ``version``."""
        return publish_ota(
            self.device.twin,
            version=version,
            image=image,
            url=self.server.blob_url(CONTAINER, blob),
            sas=self.server.make_sas(CONTAINER),
        )

    def offer(self, version: int, image: bytes, blob: str = BLOB) -> None:
        """Upload ``image`` and publish it as ``version``."""
        self.put(image, blob)
        self.publish(version, image, blob)

    async def run(
        self,
        predicate: Any,
        *,
        real_timeout_s: float = 30.0,
        on_boot: Callable[[SimDevice], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """``run_until`` with this rig's boot log; ``real_timeout_s`` of wall time stops a
        device that has gone idle short of the predicate (its virtual clock then stands
        still, so ``max_device_time_s`` alone would never end the run)."""
        kwargs.setdefault("max_boots", 40)
        kwargs.setdefault("max_device_time_s", 6 * 3600.0)
        self._extra_on_boot = on_boot
        async with asyncio.timeout(real_timeout_s):
            return await self.device.run_until(predicate, on_boot=self._on_boot, **kwargs)

    def _on_boot(self, device: SimDevice) -> None:
        assert device.agent is not None
        self.agents.append(device.agent)
        if self._extra_on_boot is not None:
            self._extra_on_boot(device)

    def event(self, number: int) -> Any:
        """The server's event for request ``number`` (events are logged as they end)."""
        return next(e for e in self.server.events if e.request == number)

    @property
    def downloads(self) -> list[DownloadStats]:
        """Every download call of every boot, in order."""
        return [stats for agent in self.agents for stats in agent.downloads]

    def kept_bytes(self) -> int:
        """Image bytes written to the staging file over all boots."""
        return sum(stats.kept_bytes for stats in self.downloads)

    def wire_bytes(self) -> int:
        """Body bytes the agent read from the network over all boots, kept or not."""
        return sum(stats.wire_bytes for stats in self.downloads)

    def statuses(self) -> list[tuple[str, str]]:
        """``(Status, Error)`` of every reported patch, in order."""
        return [
            (section.get("Status"), section.get("Error"))
            for section in map(reported_status, self.device.twin.reported_log)
        ]

    def reports(self, status: str) -> list[dict[str, Any]]:
        return [
            section
            for section in map(reported_status, self.device.twin.reported_log)
            if section.get("Status") == status
        ]

    @property
    def reported(self) -> dict[str, Any]:
        return reported_status(self.device.twin.reported)

    @contextlib.contextmanager
    def storage(self) -> Iterator[Storage]:
        """The device's littlefs, mounted on a fresh driver while no agent runs."""
        with mounted(self.device) as storage:
            yield storage

    def files(self) -> dict[str, bytes | None]:
        """The staged and current images after a run (None when absent)."""
        with self.storage() as fs:
            return {
                path: fs.read_file(path) if fs.exists(path) else None
                for path in (STAGED_PATH, CURRENT_PATH)
            }

    def record(self) -> Record | None:
        with self.storage() as fs:
            return load_record(fs, RECORD_PATH)


@contextlib.contextmanager
def mounted(device: SimDevice, geometry: Geometry | None = None) -> Iterator[Storage]:
    """Mount the device's littlefs without formatting (a read-only look, by intent)."""
    if not device.chip.powered:
        device.chip.power_on()
    geometry = geometry or device.config.geometry
    storage = Storage.mount(SpiFlash(device.port, device.clock), geometry, format_blank=False)
    try:
        yield storage
    finally:
        storage.unmount()


@contextlib.asynccontextmanager
async def rig(
    *,
    seed: int = 0,
    agent_config: AgentConfig | None = None,
    server: BlobServer | None = None,
    **device: Any,
) -> Any:
    """A blob server (unless one is given) and a device whose agent records its requests."""
    async with contextlib.AsyncExitStack() as stack:
        if server is None:
            server = await stack.enter_async_context(BlobServer(seed=seed))
        holder: dict[str, Recorder] = {}
        dev = SimDevice(
            seed=seed,
            config=agent_config or config(),
            agent_factory=functools.partial(_recording_agent, holder),
            **device,
        )
        recorder = holder["recorder"] = Recorder(dev)
        yield Rig(server=server, device=dev, recorder=recorder)


def _recording_agent(holder: dict[str, Recorder], board: Board) -> Agent:
    return Agent.from_board(dataclasses.replace(board, session_factory=holder["recorder"].session))


def status_is(status: str, **fields: Any) -> Any:
    """Predicate: the reported ``extFwInfo`` has ``Status == status`` and these fields."""

    def predicate(reported: dict[str, Any]) -> bool:
        section = reported_status(reported)
        return section.get("Status") == status and all(
            section.get(k) == v for k, v in fields.items()
        )

    return predicate
