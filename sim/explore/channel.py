"""A scenario's twin-channel faults on its run: the twin whose channel breaks, boot by boot.

:func:`break_channel` (called from :meth:`sim.explore.runner.Run.assemble`) gives a run
whose scenario has ``twin_faults`` a :class:`ChannelTwin`: the in-process twin with the
fault vocabulary (:class:`sim.cloud.faulty_twin.FaultyTwin`) on the device's virtual
clock, each :class:`sim.explore.scenario.ChannelFault` armed at the first connect of its
boot. A run without twin faults keeps its plain twin and costs nothing more.

The run waits for the hub's reported state to settle. With a broken channel the device
can go idle (:attr:`agent.engine.Agent.idle`) while the channel still owes it something
(a delayed patch, its client's reconnect): the clock then moves to that moment, as it
would have passed on a real gateway. When the device is idle and nothing is owed, the run
has settled where it is: if the hub is short of what the run waits for (a report that was
lost for good), the clock is moved past the run's device-time bound so the run ends
there, and the invariants judge what the operator was left believing
(:func:`sim.explore.invariants.reported_converges`).
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Callable
from typing import Any

from sim.cloud.faulty_twin import FaultyTwin
from sim.cloud.twin_faults import KINDS, TwinFault
from sim.explore.scenario import ChannelFault
from sim.explore.scenario_twin import ScenarioTwin

IDLE_POLL_S = 0.001  # how often the device is looked at (detection only, never a verdict)

Predicate = Callable[[dict[str, Any]], bool]


def break_channel(run: Any) -> None:
    """Give ``run`` (a :class:`sim.explore.runner.Run` after assembly) a
    :class:`ChannelTwin` when its scenario has twin faults; otherwise leave it alone."""
    if not run.s.twin_faults:
        return
    twin = ChannelTwin(run)
    run.twin = twin
    run.device.twin = twin


class ChannelTwin(FaultyTwin, ScenarioTwin):
    """The twin of a run whose scenario breaks its channel (see the module doc): the
    fault vocabulary in front of the run's twin, so the run still hears of every report
    that reaches the hub (``on_report``), whatever the channel does to it afterwards."""

    def __init__(self, run: Any) -> None:
        super().__init__(clock=run.chip.clock)
        self._run = run
        self._boot = 0
        self.reported_log = [dict(patch) for patch in run.twin.reported_log]
        self.reported = copy.deepcopy(run.twin.reported)

    def boot(self) -> int:
        """The run's boot number now (as the runner counts boots)."""
        return int(self._run.boots_before + self._run.device.boots)

    async def connect(self) -> None:
        boot = self.boot()
        if boot != self._boot:  # the first connect of a boot: its faults, and only them
            self._boot = boot
            self.arm(f.fault for f in self._run.s.twin_faults if f.boot == boot)
        await super().connect()

    async def wait_reported(self, predicate: Predicate) -> dict[str, Any]:
        watcher = asyncio.ensure_future(self._pass_idle_time())
        try:
            return await super().wait_reported(predicate)
        finally:
            watcher.cancel()

    async def _pass_idle_time(self) -> None:
        """While the device is idle, move the clock to what the channel owes it; once
        nothing is owed, end the run by its device-time bound (see the module doc).

        With loopback time virtual (:mod:`sim.loopback`) the channel's next due time is a
        wait of that network's, so the jump a quiet loop makes lands there first rather
        than at the run's device-time limit."""
        clock = self._run.chip.clock
        while True:
            await asyncio.sleep(IDLE_POLL_S)
            agent = self._run.device.agent
            if agent is None or not getattr(agent, "idle", False):
                continue
            due = self.next_due()
            network = getattr(clock, "network", None)
            if due is not None:
                if network is not None:
                    await network.sleep(due - clock.monotonic())
                else:
                    clock.advance_to(due)
                self.tick()
                continue
            if network is None:
                clock.advance(self._run.s.max_device_time_s + 1.0)
                return


def random_channel_faults(rng: random.Random, *, chance: float = 0.4) -> tuple[ChannelFault, ...]:
    """What ``python -m sim fuzz --schedule random`` adds to a scenario: usually nothing,
    with probability ``chance`` one or two faults of random kinds in boot 1 or 2."""
    if rng.random() >= chance:
        return ()
    return tuple(
        ChannelFault(random_twin_fault(rng), boot=rng.randint(1, 2))
        for _ in range(rng.randint(1, 2))
    )


def random_twin_fault(rng: random.Random) -> TwinFault:
    """One fault of a random kind with parameters in the range a run can meet: message
    counts within a small OTA's reports, times within its few seconds of device time,
    outages up to ten minutes."""
    kind = rng.choice(KINDS)
    when = round(rng.uniform(0.0, 4.0), 3)
    if kind == "drop_connection":
        if rng.random() < 0.5:
            return TwinFault(kind, after_messages=rng.randint(1, 12))
        return TwinFault(kind, at_s=when)
    if kind == "refuse_connect":
        if rng.random() < 0.5:
            return TwinFault(kind, count=rng.randint(1, 5))
        return TwinFault(kind, at_s=when, for_s=round(rng.uniform(1.0, 600.0), 1))
    if kind == "delay_desired":
        return TwinFault(kind, delay_s=round(rng.uniform(0.1, 120.0), 1))
    if kind == "fail_twin_get":
        return TwinFault(kind, count=rng.randint(1, 4), status=rng.choice((500, 503, 429)))
    return TwinFault(kind, count=rng.randint(1, 4), at_s=when if rng.random() < 0.5 else None)
