"""One partition of a campaign's devices, run on one event loop against a hub replica.

A shard is the unit an executor places (:mod:`sim.campaign.executor`): its input
(:class:`ShardSpec`) and output (:class:`ShardResult`) are plain picklable data, so the
same :func:`run_shard` runs in process or in a Dask worker. Devices reach the one
storage account by the URL in each configuration; the hub is a replica per shard
holding that shard's devices and every wave's configuration, as the deploy tool
published it (devices never interact through the hub, so replicas give each device
exactly what one hub would; the metrics of the replicas add up).

Each device is a :class:`sim.device.SimDevice` (the W25Q128JV model, littlefs, the real
agent) on a :class:`sim.campaign.clock.CampaignClock`, booted again after each power cut
(a Poisson process in device time, ``cut_rate`` per device-hour, seeded per device) until
it settles on its wave's version, runs out of boots, or passes the device-time bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import random
import resource
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.engine import Agent
from agent.errors import PowerLoss
from agent.protocol import Board, OtaAgent
from sim.campaign.clock import CampaignClock
from sim.campaign.plan import CampaignPlan, DeviceSpec
from sim.campaign.probe import Probe, Report, TimedTwin
from sim.campaign.twin_channel import IdleTime, faults_for
from sim.cloud.hub import Configuration, Hub
from sim.device import SimDevice, settled
from sim.mcu import SharedImages, SimMcuTarget

ReportHook = Callable[[str, Report], None]


@dataclass(frozen=True)
class Wave:
    """One wave: its version, the hub time it is evaluated at, the configuration body."""

    index: int
    version: int
    hub_time_s: float
    configuration: Mapping[str, Any]  # Configuration.to_json(), as the deploy tool built it


@dataclass(frozen=True)
class ShardSpec:
    plan: CampaignPlan
    devices: tuple[DeviceSpec, ...]
    waves: tuple[Wave, ...]
    index: int = 0


@dataclass
class DeviceRecord:
    """Where one device ended, and what it reported on the way."""

    device_id: str
    tags: dict[str, str]
    wave: int | None
    desired_version: int | None
    status: str | None
    installed_version: int
    image_ok: bool
    boots: int
    cuts: int
    wire_bytes: int
    requests: int
    broken_by_outage: int  # responses cut short when the account went down
    device_time_s: float
    settled_at_s: float | None  # device time of the settling report
    settled_wall_s: float | None  # wall time from the shard's start to it
    ended: str  # settled | untargeted | boots | device-time | stopped
    timeline: list[Report] = field(default_factory=list)
    boot_marks: list[tuple[int, float]] = field(default_factory=list)  # (seq, device time)
    twin_faults: dict[str, int] = field(default_factory=dict)  # kind -> firings on it


@dataclass
class ShardResult:
    index: int
    devices: list[DeviceRecord]
    metrics: dict[str, dict[str, Any]]  # config id -> targeted/applied/queries at the end
    wall_s: float
    rss_start: int
    rss_idle: int  # every device booted, nothing published yet
    rss_peak: int
    rss_end: int
    flash_bytes: int  # what the shard's chips hold at the end (erased sectors cost nothing)
    timeout_extensions: int  # socket timeouts deferred while the loop was busy


def rss_bytes() -> int:
    """This process's resident set now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class _Device:
    """One device of the shard and the futures its run ends on."""

    def __init__(
        self,
        spec: DeviceSpec,
        shard: ShardSpec,
        hook: ReportHook | None,
        *,
        idle_time: IdleTime,
        images: SharedImages,
    ):
        plan = shard.plan
        self.spec = spec
        self.version = None if spec.wave is None else shard.waves[spec.wave].version
        self.stop = asyncio.get_running_loop().create_future()
        self.settled_at: float | None = None
        self.settled_wall: float | None = None
        self.ended = "untargeted" if self.version is None else "stopped"
        self._hook = hook
        self._started = time.perf_counter()
        self._cuts = random.Random(f"cuts:{plan.seed}:{spec.index}")
        self._rate = plan.cut_rate / 3600.0
        self.clock = CampaignClock(
            io_time_scale=plan.io_time_scale,
            limit_s=plan.max_device_time_s,
            on_expire=self._expired,
        )
        self.probe = Probe(spec.device_id, self.clock, plan.outage)
        self.twin = TimedTwin(
            self.probe, on_report=self._reported, on_owed=lambda: idle_time.owe(self)
        )
        self.twin.arm(
            faults_for(
                plan.twin_faults, seed=plan.seed, device_id=spec.device_id, device_index=spec.index
            )
        )
        self.sim = SimDevice(
            seed=plan.seed * 1_000_003 + spec.index,
            config=plan.agent,
            clock=self.clock,
            twin=self.twin,
            target=SimMcuTarget(self.clock, images=images),
            agent_factory=self._agent,
        )
        self._done = settled(self.version) if self.version is not None else None

    def _agent(self, board: Board) -> OtaAgent:
        """Each boot's agent, its HTTP through the probe that places it in device time."""
        return Agent.from_board(dataclasses.replace(board, session_factory=self.probe.session))

    def _expired(self) -> None:
        self._finish("device-time")

    def _finish(self, why: str) -> None:
        if not self.stop.done():
            self.ended = why
            self.stop.set_result(why)

    def _reported(self, report: Report) -> None:
        if self._hook is not None:
            self._hook(self.spec.device_id, report)
        if self._done is not None and self.settled_at is None and self._done(self.twin.reported):
            self.settled_at = report.t
            self.settled_wall = time.perf_counter() - self._started
            self._finish("settled")

    def wake_at(self, t: float) -> None:
        """The device idled until hub time ``t`` (a cut while idle costs nothing: the
        process is memoryless, so the next cut is drawn from ``t``)."""
        if self.sim.chip is not None:
            self.sim.chip.cancel_cut()  # before the clock jumps past it
        self.clock.advance_to(t)
        self._arm_cut()

    # -- what the shard's IdleTime asks of a device whose twin channel owes it something

    def channel_due(self) -> float | None:
        return self.twin.next_due()

    def idle(self) -> bool:
        """The agent waits for the cloud, every report sent (:attr:`Agent.idle`)."""
        return bool(getattr(self.sim.agent, "idle", False)) and not self.stop.done()

    def pass_idle_time(self, until: float) -> None:
        """Let device time pass to ``until`` while idle, then what fell due happens."""
        self.wake_at(until)
        self.twin.tick()

    def _arm_cut(self) -> None:
        if self._rate > 0 and self.sim.chip is not None:
            at = self.clock.monotonic() + self._cuts.expovariate(self._rate)
            self.sim.chip.schedule_cut(at_time=at)

    async def run(self, max_boots: int) -> None:
        """Boot, and boot again after every cut, until :attr:`stop` resolves."""
        while not self.stop.done():
            if self.sim.boots >= max_boots:
                self._finish("boots")
                break
            agent = self.sim.new_agent()
            self.probe.boot()
            self._arm_cut()
            task = asyncio.ensure_future(agent.run())
            await asyncio.wait({task, self.stop}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, PowerLoss):
                    await task
                break
            if not (task.cancelled() or isinstance(task.exception(), PowerLoss)):
                task.result()  # an agent crash is a bug: raise it
                raise RuntimeError(f"{self.spec.device_id}: the agent's run() returned")
            self.sim.cuts += 1
            self.sim.power.power_off()
            self.twin.disconnect()

    def record(self) -> DeviceRecord:
        desired = self.twin.desired.get("extFwInfo")
        desired = desired if isinstance(desired, dict) else {}
        image = hashlib.sha256(bytes(self.sim.target.image)).hexdigest().upper()
        want = desired.get("sha256")
        image_ok = image == (
            want.upper() if isinstance(want, str) else hashlib.sha256(b"").hexdigest().upper()
        )
        status = self.twin.reported.get("extFwInfo", {}).get("Status")
        return DeviceRecord(
            device_id=self.spec.device_id,
            tags=dict(self.spec.tags),
            wave=self.spec.wave,
            desired_version=desired.get("version"),
            status=status,
            installed_version=self.sim.target.current_version(),
            image_ok=image_ok,
            boots=self.sim.boots,
            cuts=self.sim.cuts,
            wire_bytes=self.sim.wire_bytes(),
            requests=self.probe.requests,
            broken_by_outage=self.probe.broken_streams,
            device_time_s=self.clock.monotonic(),
            settled_at_s=self.settled_at,
            settled_wall_s=self.settled_wall,
            ended=self.ended,
            timeline=self.twin.timeline,
            boot_marks=list(self.probe.boots),
            twin_faults=dict(Counter(e.kind for e in self.twin.faults.events)),
        )


async def run_shard(spec: ShardSpec, *, on_report: ReportHook | None = None) -> ShardResult:
    """Boot the shard's devices, evaluate every wave on the hub replica, and run until
    each targeted device settled (or hit a bound); then stop them all."""
    started = time.perf_counter()
    rss_start = rss_bytes()
    hub = Hub()
    idle_time, images = IdleTime(), SharedImages()  # the MCUs' images: one copy each
    devices = [
        _Device(d, spec, on_report, idle_time=idle_time, images=images) for d in spec.devices
    ]
    for device in devices:
        hub.add_device(device.spec.device_id, tags=device.spec.tags, twin=device.twin)
    runs = [asyncio.ensure_future(d.run(spec.plan.max_boots)) for d in devices]
    rss = _RssPeak()
    try:
        await _connected(devices, runs)
        rss_idle = rss_bytes()
        _evaluate_waves(hub, spec.waves, {d.spec.device_id: d for d in devices})
        await _until_settled([d.stop for d in devices if d.version is not None], runs)
    finally:
        for device in devices:
            if not device.stop.done():
                device.stop.set_result("stopped")
        results = await asyncio.gather(*runs, return_exceptions=True)
        await idle_time.close()
        rss.stop()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    rss_end = rss_bytes()
    return ShardResult(
        index=spec.index,
        devices=[d.record() for d in devices],
        metrics={c.id: _metrics(hub, c.id) for c in hub.configurations},
        wall_s=time.perf_counter() - started,
        rss_start=rss_start,
        rss_idle=rss_idle,
        rss_peak=max(rss_end, rss.peak, rss_idle),
        rss_end=rss_end,
        flash_bytes=sum(d.sim.chip.array.resident_bytes() for d in devices if d.sim.chip),
        timeout_extensions=sum(d.clock.extensions for d in devices),
    )


async def _connected(devices: list[_Device], runs: Sequence[asyncio.Future[None]]) -> None:
    """Wait until every agent has booted and connected its twin (idle, nothing desired)."""
    while not all(d.twin.connected for d in devices):
        for task in runs:
            if task.done():
                task.result()
        await asyncio.sleep(0.01)


def _evaluate_waves(hub: Hub, waves: tuple[Wave, ...], devices: dict[str, _Device]) -> None:
    """Create each wave's configuration and evaluate it; a device it writes to has been
    idle until the wave's hub time, so its clock moves there before the patch is sent
    (a twin channel that delays the patch counts from then)."""
    for wave in waves:
        hub.create_configuration(Configuration.from_json(wave.configuration))
        due = [d for d in devices.values() if d.spec.wave == wave.index]
        for device in due:
            device.wake_at(wave.hub_time_s)
        woken = {d.spec.device_id for d in due}
        for device_id in hub.evaluate():
            if device_id not in woken:  # a configuration reached beyond its group
                devices[device_id].wake_at(wave.hub_time_s)


async def _until_settled(
    stops: list[asyncio.Future[str]], runs: Sequence[asyncio.Future[None]]
) -> None:
    """Return once every stop future resolved; raise at once if a device's run crashes."""
    if not stops:
        return
    everything = asyncio.ensure_future(asyncio.wait(stops))
    watch: set[asyncio.Future[Any]] = {everything, *runs}
    try:
        while not everything.done():
            done, watch = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not everything:
                    task.result()
    finally:
        everything.cancel()


class _RssPeak:
    """The largest resident set seen, sampled every 0.1 s of real time."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._handle = asyncio.get_running_loop().call_later(0.1, self._sample)

    def _sample(self) -> None:
        self.peak = max(self.peak, rss_bytes())
        self._handle = asyncio.get_running_loop().call_later(0.1, self._sample)

    def stop(self) -> None:
        self._handle.cancel()
        self.peak = max(self.peak, rss_bytes())


def _metrics(hub: Hub, config_id: str) -> dict[str, Any]:
    m = hub.metrics(config_id)
    return {"targeted": m.targeted_count, "applied": m.applied_count, "queries": dict(m.queries)}


def run_shard_sync(spec: ShardSpec) -> ShardResult:
    """:func:`run_shard` on a fresh event loop in a thread of its own (a Dask worker may
    run its tasks where a loop is already running)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run_shard(spec)).result()
