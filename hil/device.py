"""A bench device: the real agent on a rig's flash, rebooted after every power cut.

Issue 6, "Power cuts on the bench": cut the flash's supply after the Nth program or
erase command (or a delay into it), hold it off, restore it and boot a fresh agent, so
the invariants checked in simulation are checked on silicon. The run loop is
:class:`sim.device.SimDevice`'s (boot, run until a reported predicate holds, boot
again after :class:`~agent.errors.PowerLoss`), given a :class:`CutSchedule` over the
rig's port and supply switch as its SPI port and its power. The cloud
(:class:`sim.cloud.twin.InProcessTwin`) and the MCU (:class:`sim.mcu.SimMcuTarget`) stay
simulated on a bench too: the chip is what the bench puts under test.

The same class serves the simulator, given the model's port and a switch over the
model's power, so the shared OTA tests run one code path on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.clock import Clock
from agent.download import DownloadStats
from agent.engine import Agent, AgentConfig
from agent.protocol import AgentFactory, OtaAgent
from agent.spi import SpiPort
from sim.clock import VirtualClock
from sim.device import Power, Predicate, RunResult, SimDevice
from sim.mcu import SimMcuTarget
from sim.ports.wrapper import PortWrapper

from .powercut import DEFAULT_OFF_TIME_S, BenchCut, BenchCutPort


@dataclass(frozen=True)
class FiredCut:
    """One cut that happened: its plan, the boot it ended (1-based), the clock time."""

    plan: BenchCut
    boot: int
    at_s: float


class CutSchedule(PortWrapper):
    """The rig's port with a fresh :class:`BenchCutPort` per boot, armed with the next plan.

    It is both the :class:`agent.spi.SpiPort` the agents use and the power role a
    :class:`~sim.device.SimDevice` drives (``powered``, ``power_off``, ``power_on``).
    A plan counts the program/erase commands of its own boot (datasheet 8.2); once the
    plans run out the port passes every exchange straight through.
    """

    def __init__(
        self,
        port: SpiPort,
        supply: Power,
        clock: Clock,
        plans: Sequence[BenchCut] = (),
        *,
        off_time_s: float = DEFAULT_OFF_TIME_S,
    ) -> None:
        for i, plan in enumerate(plans):
            if not isinstance(plan, BenchCut):
                raise TypeError(f"plans[{i}] must be a BenchCut, got {type(plan).__name__}")
        super().__init__(port)
        self._base = port
        self._supply = supply
        self._clock = clock
        self.off_time_s = off_time_s
        self._plans = list(plans)
        self._live: BenchCutPort | None = None
        self.boot = 1
        self.fired: list[FiredCut] = []
        self._arm_next()

    def _arm_next(self) -> None:
        plan = self._plans.pop(0) if self._plans else None
        self._live = (
            None
            if plan is None
            else BenchCutPort(
                self._base, self._supply, self._clock, plan, off_time_s=self.off_time_s
            )
        )

    @property
    def pending(self) -> int:
        """Plans not yet armed (the armed one excluded)."""
        return len(self._plans)

    # -- the power role (sim.device.SimDevice's ``chip``) -----------------------------

    @property
    def powered(self) -> bool:
        return self._supply.powered and (self._live is None or self._live.powered)

    def power_off(self) -> None:
        """Cut the supply now (a no-op on the switch if a plan already cut it)."""
        self._supply.power_off()

    def power_on(self) -> None:
        """Hold the supply off for the rig's ``off_time_s``, restore it (tPUW, datasheet
        9.1), and arm the next plan for the boot that follows."""
        live = self._live
        if live is not None and not live.powered:
            assert live.cut_at is not None
            self.fired.append(FiredCut(live.plan, self.boot, live.cut_at))
            live.restore()
        else:
            self._supply.power_off()
            self._clock.sleep(self.off_time_s)
            self._supply.power_on()
        self.boot += 1
        self._arm_next()

    # -- agent.spi.SpiPort ------------------------------------------------------------

    @property
    def _port(self) -> SpiPort:
        return self._base if self._live is None else self._live

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        return self._port.exchange(out, readlen, start, stop, duplex, droptail)


class BenchDevice:
    """One gateway on a rig: the rig's flash, the real agent, a simulated twin and MCU.

    Publish an OTA to :attr:`twin`, then :meth:`run_until` a predicate on the reported
    properties holds; each :class:`BenchCut` in ``cuts`` cuts the supply once, in its
    own boot, and the next boot resumes from flash alone.
    """

    def __init__(
        self,
        *,
        port: SpiPort,
        clock: Clock,
        supply: Power,
        config: AgentConfig,
        cuts: Sequence[BenchCut] = (),
        off_time_s: float = DEFAULT_OFF_TIME_S,
        seed: int = 0,
        model: Any = None,
        agent_factory: AgentFactory = Agent.from_board,
    ) -> None:
        """``supply`` is the flash's power (the rig's switch, or the model itself), held
        off ``off_time_s`` at each cut (the rig's ``[power] off_time_s``); ``model`` is the
        W25Q128 behind a simulated or virtual port, if there is one (kept as the inner
        device's ``chip`` for inspection; a real rig has none)."""
        self.clock = clock
        self.schedule = CutSchedule(port, supply, clock, cuts, off_time_s=off_time_s)
        # The MCU's programming time is simulated; on real time it keeps its own clock.
        mcu_clock = clock if isinstance(clock, VirtualClock) else VirtualClock()
        self.target = SimMcuTarget(mcu_clock)
        self._device = SimDevice(
            seed=seed,
            config=config,
            clock=clock,  # type: ignore[arg-type]  # SimDevice only reads monotonic()
            chip=model,
            target=self.target,
            agent_factory=agent_factory,
            port=self.schedule,
            power=self.schedule,
        )
        self.twin = self._device.twin
        self.config = config
        self.agents: list[OtaAgent] = []

    @property
    def boots(self) -> int:
        return self._device.boots

    @property
    def fired(self) -> list[FiredCut]:
        return self.schedule.fired

    @property
    def downloads(self) -> list[DownloadStats]:
        """Every download attempt of every boot, oldest first."""
        return [s for agent in self.agents for s in getattr(agent, "downloads", ())]

    async def run_until(
        self, predicate: Predicate, *, max_boots: int = 20, budget_s: float = 6 * 3600.0
    ) -> RunResult:
        """Boot agents (again after every cut) until ``predicate(reported)`` holds, at most
        ``max_boots`` boots or ``budget_s`` seconds on the device's clock from now."""
        if max_boots < 1:
            raise ValueError(f"max_boots must be >= 1, got {max_boots}")
        if budget_s <= 0:
            raise ValueError(f"budget_s must be > 0, got {budget_s}")
        return await self._device.run_until(
            predicate,
            max_boots=max_boots,
            max_device_time_s=self.clock.monotonic() + budget_s,
            on_boot=self._on_boot,
        )

    def _on_boot(self, device: SimDevice) -> None:
        assert device.agent is not None
        self.agents.append(device.agent)

    def power_up(self) -> None:
        """Leave the flash powered (after a run that ended on a cut), for clean-up."""
        if not self.schedule.powered:
            self.schedule.power_on()
