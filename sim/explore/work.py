"""Running a campaign's items (:mod:`sim.explore.campaign`) in a worker process.

:func:`run_items` is what :class:`sim.distribute.Engine` maps over chunks: it runs each
item (a cut run of the base scenario from its clean run's snapshots, or a scenario from
zero) and returns one picklable :class:`Outcome` per item. The blob server, the stage
and the base scenario's prepared explorer live in the worker between chunks, on the
worker's own event loop, so the clean run is made once per worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.protocol import AgentFactory
from sim.cloud.blobserver import BlobServer
from sim.distribute import run_async, worker_state
from sim.explore.campaign import Item
from sim.explore.explorers import Explorer
from sim.explore.invariants import check_all
from sim.explore.mutants import MUTANTS
from sim.explore.runner import run_scenario
from sim.explore.scenario import Scenario
from sim.explore.stage import Stage


@dataclass(frozen=True)
class Setup:
    """What every item of one campaign shares: the base scenario, the agent, the sample."""

    base: dict[str, Any]
    mutant: str | None = None
    full_sample: float = 0.05

    def key(self) -> str:
        return json.dumps([self.base, self.mutant, self.full_sample], sort_keys=True)

    def factory(self) -> AgentFactory | None:
        """A fresh agent factory (a mutant may keep state outside the flash)."""
        if self.mutant is None:
            return None
        if self.mutant not in MUTANTS:
            raise ValueError(f"unknown mutant {self.mutant!r}; known: {', '.join(MUTANTS)}")
        return MUTANTS[self.mutant].factory()


@dataclass(frozen=True)
class Outcome:
    """One item's verdict: the violations (invariant, message) and, when there are any,
    the scenario that replays the run from zero."""

    violations: tuple[tuple[str, str], ...]
    scenario: dict[str, Any] | None
    rejoined: bool = False


async def _explorer(setup: Setup) -> Explorer:
    state = worker_state()
    if state.get("key") != setup.key():
        for old in state.pop("servers", ()):
            await old.close()
        # two servers: runs from zero upload other images under the same blob names,
        # which would change the ETags the explorer's snapshots recorded
        servers = (BlobServer(), BlobServer())
        for server in servers:
            await server.start()
        base = Scenario.from_dict(setup.base)
        explorer = Explorer(
            base, servers[0], agent_factory=setup.factory(), full_sample=setup.full_sample
        )
        await explorer.prepare()
        state.update(key=setup.key(), servers=servers, explorer=explorer, stage=Stage(servers[1]))
    explorer = state["explorer"]
    assert isinstance(explorer, Explorer)
    return explorer


async def prepared_ops(setup: Setup) -> int:
    """The base scenario's clean run (made here once): its state-changing operations."""
    explorer = await _explorer(setup)
    assert explorer.clean is not None
    return len(explorer.clean.ops)


async def _run_one(item: Item, setup: Setup) -> Outcome:
    explorer = await _explorer(setup)
    if item.kind in ("cut", "pair"):
        scenario, result = await explorer.cut_run(item.index, item.fraction, item.second)
    else:
        assert item.scenario is not None
        scenario = Scenario.from_dict({**item.scenario, "mutant": setup.mutant})
        stage = worker_state()["stage"]
        result = await run_scenario(scenario, agent_factory=setup.factory(), stage=stage)
    violations = tuple((v.invariant, v.message) for v in check_all(result))
    return Outcome(
        violations=violations,
        scenario=scenario.to_dict() if violations else None,
        rejoined=result.rejoined_at is not None,
    )


async def _run_all(items: list[Item], setup: Setup) -> list[Outcome]:
    return [await _run_one(item, setup) for item in items]


def run_items(items: list[Item], setup: Setup) -> list[Outcome]:
    """Run ``items`` in order in this process (a worker's chunk)."""
    return run_async(_run_all(items, setup))


def ops_of(setup: Setup) -> int:
    return run_async(prepared_ops(setup))
