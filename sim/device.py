"""A simulated gateway: chip + SPI port + driver + agent + twin + MCU target.

A power cut ends the running agent wherever it is (a cut scheduled on the chip
fires on the next flash access; :meth:`SimDevice.power_cycle` cuts at once) and
the device boots a new agent on the same chip, the same twin (reconnected) and
the same MCU, exactly as a real gateway reboots. Many devices can run in one
process: each has its own virtual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from agent.engine import Agent, AgentConfig
from agent.errors import PowerLoss
from agent.hosts import LOOPBACK_HOSTS
from agent.protocol import AgentFactory, Board, OtaAgent
from agent.spi import SpiPort
from agent.twin import Twin
from sim.chip.w25q128 import W25Q128
from sim.clock import VirtualClock
from sim.cloud.twin import InProcessTwin
from sim.mcu import SimMcuTarget
from sim.ports.aimed_cut import AimedCutPort
from sim.ports.model import SimSpiPort

SIM_SPI_HZ = 8e6  # the reference design's SPI clock (mode 0, 8 MHz)

Predicate = Callable[[dict[str, Any]], bool]


class ObservedTwin(Twin, Protocol):
    """The agent's twin plus the cloud's view of it a simulation watches: the in-process
    twin (:class:`sim.cloud.twin.InProcessTwin`), or the real SDK over the local IoT Hub
    (:class:`sim.cloud.iothub.device_twin.HubTwin`)."""

    @property
    def reported(self) -> dict[str, Any]: ...

    @property
    def reported_log(self) -> list[dict[str, Any]]: ...

    @property
    def desired(self) -> dict[str, Any]: ...

    async def wait_reported(self, predicate: Predicate) -> dict[str, Any]: ...

    def disconnect(self) -> None: ...


class Power(Protocol):
    """The flash's power as a device drives it: the model chip, or a bench supply."""

    @property
    def powered(self) -> bool: ...

    def power_off(self) -> None: ...

    def power_on(self) -> None: ...


def reported_status(reported: dict[str, Any]) -> dict[str, Any]:
    """The ``extFwInfo`` section of a reported document (empty when absent)."""
    section = reported.get("extFwInfo")
    return section if isinstance(section, dict) else {}


def applied(version: int) -> Predicate:
    """Done when the device reports ``applied`` with ``Version == version``."""
    return lambda r: (
        reported_status(r).get("Status") == "applied"
        and reported_status(r).get("Version") == version
    )


def settled(version: int) -> Predicate:
    """Done when ``version`` is applied, or the device gave up on it (error / invalid)."""
    done = applied(version)
    return lambda r: (
        done(r)
        or (
            reported_status(r).get("Status") in ("error", "invalid")
            and reported_status(r).get("TargetVersion") in (version, None)
        )
    )


@dataclass
class RunResult:
    """How :meth:`SimDevice.run_until` ended."""

    reached: bool
    boots: int
    cuts: int
    device_time_s: float
    reported: dict[str, Any] = field(default_factory=dict)


class SimDevice:
    """One simulated gateway. Build it, publish an OTA to :attr:`twin`, then
    :meth:`run_until` a predicate on the reported properties holds."""

    def __init__(
        self,
        *,
        seed: int = 0,
        config: AgentConfig | None = None,
        timing: str = "typical",
        clock: VirtualClock | None = None,
        chip: W25Q128 | None = None,
        twin: ObservedTwin | None = None,
        target: SimMcuTarget | None = None,
        agent_factory: AgentFactory = Agent.from_board,
        port: SpiPort | None = None,
        power: Power | None = None,
    ) -> None:
        """With ``port`` and ``power`` (a bench's flash and supply) no model is built.

        ``agent_factory`` builds each boot's agent from its :class:`agent.protocol.Board`:
        this project's agent by default, any :class:`agent.protocol.OtaAgent` otherwise.
        """
        if (port is None) != (power is None):
            raise ValueError("port and power go together: give both or neither")
        self.clock = clock or (chip.clock if chip is not None else VirtualClock())
        self.chip = chip
        if port is None:
            self.chip = chip or W25Q128(self.clock, seed=seed, timing=timing)
            port = SimSpiPort(self.chip, frequency=SIM_SPI_HZ)
        self.port: SpiPort = port
        self.power: Power = power or self.chip  # type: ignore[assignment]
        # Typed as the in-process twin its many callers publish to; a HubTwin offers the
        # ObservedTwin subset this class itself uses (publish through the hub instead).
        self.twin: InProcessTwin = cast(InProcessTwin, twin or InProcessTwin())
        self.target = target or SimMcuTarget(self.clock)
        self.target.on_cut = self.power.power_off
        self.config = config or AgentConfig(allow_http_loopback=True, storage_hosts=LOOPBACK_HOSTS)
        self.agent_factory = agent_factory
        self.rng = random.Random(f"device:{seed}")
        self.agent: OtaAgent | None = None
        self.agents: list[OtaAgent] = []  # every boot's agent, oldest first
        self.boots = 0
        self.cuts = 0
        self._task: asyncio.Task[None] | None = None

    def board(self) -> Board:
        """What the next boot's agent is given: this device's port, clock, twin, MCU."""
        return Board(
            spi=self.port,
            clock=self.clock,
            twin=self.twin,
            target=self.target,
            config=self.config,
            rng=random.Random(self.rng.getrandbits(64)),
        )

    def new_agent(self) -> OtaAgent:
        """Power the chip if it is off and build a fresh agent (a boot)."""
        if not self.power.powered:
            self.power.power_on()
        self.boots += 1
        agent = self.agent_factory(self.board())
        self.agent = agent
        self.agents.append(agent)
        return agent

    def aim_cuts(self) -> AimedCutPort:
        """Put an :class:`AimedCutPort` in front of the model, for cuts aimed at an op kind."""
        if self.chip is None:
            raise ValueError("aim_cuts needs the W25Q128 model; this device has none")
        cutter = AimedCutPort(self.port, self.chip)
        self.port = cutter
        return cutter

    def wire_bytes(self) -> int:
        """Response body bytes every boot's agent read off its sockets."""
        return sum(
            stats.wire_bytes
            for agent in self.agents
            for stats in getattr(agent, "downloads", ())  # this project's agent counts them
        )

    def power_cycle(self) -> None:
        """Cut the power now, wherever the agent is; :meth:`run_until` boots it again."""
        self.power.power_off()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def run_until(
        self,
        predicate: Predicate,
        *,
        max_boots: int = 100,
        max_device_time_s: float = 24 * 3600.0,
        max_wall_s: float = 300.0,
        on_boot: Callable[[SimDevice], None] | None = None,
    ) -> RunResult:
        """Boot agents (again after every cut) until ``predicate(reported)`` holds.

        Gives up, with ``reached=False``, after ``max_boots`` boots or once the
        virtual clock passes ``max_device_time_s``: the liveness bound. An agent that
        goes idle before the predicate holds stops the virtual clock, so
        ``max_wall_s`` of real time bounds the run too.
        """
        wall_deadline = time.monotonic() + max_wall_s
        waiter = asyncio.ensure_future(self.twin.wait_reported(predicate))
        try:
            while not waiter.done():
                if (
                    self.boots >= max_boots
                    or self.clock.monotonic() > max_device_time_s
                    or time.monotonic() >= wall_deadline
                ):
                    break
                agent = self.new_agent()
                if on_boot is not None:
                    on_boot(self)
                self._task = asyncio.ensure_future(agent.run())
                deadline = asyncio.ensure_future(
                    self._watch_clock(max_device_time_s, wall_deadline)
                )
                try:
                    await asyncio.wait(
                        {self._task, waiter, deadline}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    deadline.cancel()
                if not self._task.done():
                    if waiter.done() or deadline.done():
                        await self._stop_agent()
                        break
                    continue
                cut = self._task.cancelled() or isinstance(self._task.exception(), PowerLoss)
                if not cut:
                    self._task.result()  # an agent crash is a bug: raise it to the caller
                    break  # run() returned: it never should
                self.cuts += 1
                self.power.power_off()
                self.twin.disconnect()
            return RunResult(
                reached=waiter.done() and not waiter.cancelled(),
                boots=self.boots,
                cuts=self.cuts,
                device_time_s=self.clock.monotonic(),
                reported=dict(self.twin.reported),
            )
        finally:
            waiter.cancel()
            await self._stop_agent()

    async def _watch_clock(self, limit_s: float, wall_deadline: float) -> None:
        network = getattr(self.clock, "network", None)
        if network is not None:  # virtual loopback time: the limit lands at a fixed device time
            waiter = asyncio.ensure_future(network.at(math.nextafter(limit_s, math.inf)))
            try:
                while not waiter.done() and time.monotonic() < wall_deadline:
                    await asyncio.wait({waiter}, timeout=0.05)
            finally:
                waiter.cancel()
            return
        while self.clock.monotonic() <= limit_s and time.monotonic() < wall_deadline:
            await asyncio.sleep(0.01)

    async def _stop_agent(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, PowerLoss):
                await task
