"""``python -m sim fleet``: the campaign's small preset (:mod:`sim.tools.campaign`: five
devices, a ``field_test`` and a ``pilot`` wave, one dryer, no outage, no cuts, no report);
and :func:`run_fleet`, the retagging rollout below, which campaigns do not do.

Every device is a whole :class:`sim.device.SimDevice` (its own virtual clock, W25Q128JV
model, littlefs, agent and twin) registered in a :class:`sim.cloud.hub.Hub` with tags. The
operator (:func:`deploy.ota.publish`, the real Azure SDK against our blob server)
publishes v1 to ``productType=washer, deviceGroup=field_test``; then moves some of those
devices to the ``pilot`` group (tags can change at any time) and publishes v2 to
``washer/pilot``. The hub evaluates its configurations on a virtual 5-minute schedule
(IoT Hub "Automatic device management": evaluated at creation and then periodically) and
the devices run concurrently on one event loop until each has settled. One device is a
``dryer``: no configuration targets it, so nothing may be written to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.engine import AgentConfig
from agent.hosts import LOOPBACK_HOSTS
from deploy.ota import Release, publish
from sim.clock import VirtualClock
from sim.cloud.blobserver import BlobServer
from sim.cloud.hub import EVALUATION_INTERVAL_S, ConfigurationMetrics, Hub
from sim.device import SimDevice, reported_status, settled

PRODUCT, FIELD_TEST, PILOT, OTHER_PRODUCT = "washer", "field_test", "pilot", "dryer"
MAX_DEVICES = 32  # each device holds a 16 MiB chip model in RAM
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest().upper()


@dataclass(frozen=True)
class FleetPlan:
    """How big the fleet is and how the rollout goes."""

    devices: int = 5
    seed: int = 0
    image_size: int = 64 * 1024
    max_evaluations: int = 12  # per release: a liveness bound on the hub's schedule
    # Real loopback I/O is waited for in real time scaled by this (sim.clock.VirtualClock):
    # with many devices sharing one process and CPU, 0.001 (30 ms for a 30 s stall window)
    # times out reads that are merely queued, and the fleet retries forever.
    io_time_scale: float = 0.05
    max_wall_s: float = 300.0  # real time for the whole rollout: devices idle on real I/O

    def __post_init__(self) -> None:
        if isinstance(self.devices, bool) or not isinstance(self.devices, int):
            raise ValueError(f"devices must be an integer, got {self.devices!r}")
        if not 3 <= self.devices <= MAX_DEVICES:
            raise ValueError(f"devices must be 3..{MAX_DEVICES}, got {self.devices}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not 1 <= self.image_size <= 4 * 1024 * 1024:
            raise ValueError(f"image_size must be 1..4194304 bytes, got {self.image_size}")
        if not 0 < self.io_time_scale <= 1:
            raise ValueError(f"io_time_scale must be in (0, 1], got {self.io_time_scale}")
        if not self.max_wall_s > 0:
            raise ValueError(f"max_wall_s must be > 0, got {self.max_wall_s}")
        if self.max_evaluations < 1:
            raise ValueError(f"max_evaluations must be >= 1, got {self.max_evaluations}")

    def tags(self, index: int) -> dict[str, str]:
        """The last device is a dryer (never targeted); the other washers start in
        field_test."""
        product = OTHER_PRODUCT if index == self.devices - 1 else PRODUCT
        return {"productType": product, "deviceGroup": FIELD_TEST}

    def moves_to_pilot(self, index: int) -> bool:
        """Every second washer joins the pilot group before v2."""
        return index % 2 == 1 and index != self.devices - 1


@dataclass(frozen=True)
class DeviceOutcome:
    """Where one device ended."""

    device_id: str
    tags: Mapping[str, Any]
    desired_version: int | None  # extFwInfo.version in its desired properties, if any
    status: str | None  # reported extFwInfo.Status
    installed_version: int  # what its MCU runs
    desired_sha256: str | None  # extFwInfo.sha256 as the hub published it
    image_sha256: str  # SHA-256 (upper-case hex) of what the MCU holds
    boots: int
    interruptions: int  # reports of `interrupted` (timeouts, HTTP errors) on its way
    device_time_s: float

    @property
    def image_ok(self) -> bool:
        """The MCU holds exactly the published image, or nothing when none was published."""
        if self.desired_sha256 is None:
            return self.image_sha256 == _EMPTY_SHA256
        return self.image_sha256 == self.desired_sha256.upper()


@dataclass(frozen=True)
class FleetResult:
    outcomes: tuple[DeviceOutcome, ...]
    metrics: Mapping[str, ConfigurationMetrics]
    evaluations: int
    hub_time_s: float
    wall_s: float


class Fleet:
    """Simulated devices registered in a hub, each run by its own long-lived task."""

    def __init__(self, hub: Hub, *, config: AgentConfig | None = None) -> None:
        self.hub = hub
        self.clock = VirtualClock()  # the hub's time: its evaluation schedule
        self.devices: dict[str, SimDevice] = {}
        self._config = config or AgentConfig(allow_http_loopback=True, storage_hosts=LOOPBACK_HOSTS)
        self._runs: dict[str, asyncio.Task[Any]] = {}

    def add(
        self, device_id: str, *, tags: Mapping[str, Any], seed: int, io_time_scale: float = 0.05
    ) -> SimDevice:
        clock = VirtualClock(io_time_scale=io_time_scale)
        device = SimDevice(seed=seed, config=self._config, clock=clock)
        self.hub.add_device(device_id, tags=tags, twin=device.twin)
        self.devices[device_id] = device
        return device

    def start(self, *, max_wall_s: float = 300.0) -> None:
        """Boot every device; each then serves its twin until :meth:`stop`, or until
        ``max_wall_s`` of real time has passed (then :meth:`settle` fails, naming it)."""
        for device_id, device in self.devices.items():
            if device_id not in self._runs:
                run = device.run_until(_never, max_wall_s=max_wall_s)
                self._runs[device_id] = asyncio.ensure_future(run)

    async def stop(self) -> None:
        runs, self._runs = self._runs, {}
        for task in runs.values():
            task.cancel()
        for task in runs.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def settle(self, *, max_evaluations: int) -> int:
        """Evaluate on the hub's schedule, and after each pass wait until every device
        with an instruction has applied it or given up; stop after a pass that wrote
        nothing. Returns the number of evaluations."""
        for done in range(1, max_evaluations + 1):
            written = self.hub.evaluate()
            await asyncio.gather(*(self._settled(i) for i in self.devices))
            if not written:
                return done
            self.clock.advance(EVALUATION_INTERVAL_S)
        raise RuntimeError(f"the fleet did not settle within {max_evaluations} evaluations")

    async def _settled(self, device_id: str) -> None:
        version = desired_version(self.devices[device_id])
        run = self._runs.get(device_id)
        if version is None or run is None:
            return
        waiter = asyncio.ensure_future(self.devices[device_id].twin.wait_reported(settled(version)))
        try:
            await asyncio.wait({waiter, run}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if run.done():
            run.result()  # an agent crash is a bug: raise it
            raise RuntimeError(
                f"{device_id} stopped before settling on version {version} "
                "(its boot, device-time or max_wall_s bound ran out)"
            )


def _never(reported: dict[str, Any]) -> bool:
    return False


def desired_version(device: SimDevice) -> int | None:
    info = device.twin.desired.get("extFwInfo")
    version = info.get("version") if isinstance(info, dict) else None
    return version if isinstance(version, int) else None


async def run_fleet(plan: FleetPlan) -> FleetResult:
    """The rollout described in the module docstring; returns where every device ended."""
    rng = random.Random(f"fleet:{plan.seed}")
    images = {v: rng.randbytes(plan.image_size) for v in (1, 2)}
    hub = Hub()
    fleet = Fleet(hub)
    for i in range(plan.devices):
        fleet.add(
            f"gw-{i:02d}",
            tags=plan.tags(i),
            seed=plan.seed * 1000 + i,
            io_time_scale=plan.io_time_scale,
        )
    started = time.perf_counter()
    evaluations = 0
    async with BlobServer(seed=plan.seed) as storage:
        fleet.start(max_wall_s=plan.max_wall_s)
        try:
            await publish(
                Release(image=images[1], version=1, product=PRODUCT, group=FIELD_TEST),
                storage=storage.connection_string,
                hub=hub,
            )
            evaluations += await fleet.settle(max_evaluations=plan.max_evaluations)
            for i, device_id in enumerate(fleet.devices):
                if plan.moves_to_pilot(i):
                    hub.set_tags(device_id, {**plan.tags(i), "deviceGroup": PILOT})
            await publish(
                Release(image=images[2], version=2, product=PRODUCT, group=PILOT),
                storage=storage.connection_string,
                hub=hub,
            )
            evaluations += await fleet.settle(max_evaluations=plan.max_evaluations)
        finally:
            await fleet.stop()
    wall = time.perf_counter() - started
    outcomes = []
    for device_id, device in fleet.devices.items():
        info = device.twin.desired.get("extFwInfo")
        outcomes.append(
            DeviceOutcome(
                device_id=device_id,
                tags=hub.twin_document(device_id)["tags"],
                desired_version=desired_version(device),
                status=reported_status(device.twin.reported).get("Status"),
                installed_version=device.target.current_version(),
                desired_sha256=info.get("sha256") if isinstance(info, dict) else None,
                image_sha256=hashlib.sha256(bytes(device.target.image)).hexdigest().upper(),
                boots=device.boots,
                interruptions=sum(
                    reported_status(r).get("Status") == "interrupted"
                    for r in device.twin.reported_log
                ),
                device_time_s=device.clock.monotonic(),
            )
        )
    return FleetResult(
        outcomes=tuple(outcomes),
        metrics={c.id: hub.metrics(c.id) for c in hub.configurations},
        evaluations=evaluations,
        hub_time_s=fleet.clock.monotonic(),
        wall_s=wall,
    )


FLEET_PRESET: dict[str, Any] = {
    "devices": 5,
    "image_size": "64K",
    "groups": f"{FIELD_TEST}=50%,{PILOT}=50%",
    "control": 1,
    "outage": None,
    "cut_rate": 0.0,
    "report": None,
}


def main(argv: list[str]) -> int:
    from sim.tools.campaign import main as campaign_main

    return campaign_main(argv, prog="python -m sim fleet", defaults=FLEET_PRESET)
