"""Power-loss exploration campaigns: what ``python -m sim fuzz`` plans and runs.

With no options it is the default campaign (:mod:`sim.explore.campaign`): cuts after and
inside every flash operation, network faults and HTTP lies, twin events, flash faults
and timing modes, cut to a budget of seconds of one core. A schedule (``linear``,
``log``, ``exhaustive``, ``torn``) sweeps one scenario instead; ``random`` plays random
mixes. Runs go to Dask workers (:mod:`sim.distribute`), a local cluster or an existing
scheduler, or a shard runs here without Dask: the findings are the same whichever way
the runs are spread. The command line is :mod:`sim.tools.fuzz`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.distribute import Engine, EngineConfig, shard
from sim.explore import campaign
from sim.explore.campaign import Item
from sim.explore.explorers import cut_points
from sim.explore.mutants import MUTANTS
from sim.explore.scenario import Scenario
from sim.explore.work import Outcome, Setup, ops_of, run_items

Progress = Callable[[int, int], None]


def check_mutant(name: str | None) -> None:
    """Refuse an unknown mutant now, naming the known ones."""
    if name is not None and name not in MUTANTS:
        raise ValueError(f"unknown mutant {name!r}; known: {', '.join(sorted(MUTANTS))}")


def items_for(args: argparse.Namespace, n_ops: int) -> list[Item]:
    """The runs one invocation asks for, in a fixed order."""
    if args.schedule == "campaign":
        return campaign.plan(n_ops, budget_s=args.budget, seed=args.seed)
    if args.schedule == "random":
        rnd = campaign.random_mixes(args.seed)
        out, spent = [], 0.0
        while spent < args.budget:
            out.append(next(rnd))
            spent += out[-1].cost
        return out
    if args.schedule == "torn":
        return [
            Item("torn", "cut", index=i, fraction=f)
            for i in cut_points("linear", n_ops, stride=args.stride)
            for f in (0.25, 0.5, 0.75)
        ]
    if args.schedule == "exhaustive":
        return [
            Item("pairs", "pair", index=i, second=j)
            for i in cut_points("linear", n_ops, stride=args.stride)
            for j in cut_points("linear", max(1, n_ops - i), stride=args.stride)
        ]
    return [Item(args.schedule, "cut", index=i) for i in cut_points(args.schedule, n_ops)]


def save_finding(scenario: dict[str, Any], out: Path, name: str) -> Path:
    """Write a finding's scenario as replayable JSON under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    Scenario.from_dict(scenario).save(path)
    return path


@dataclass(frozen=True)
class Plan:
    """What one invocation will run: the setup every worker rebuilds, the runs in order."""

    setup: Setup
    n_ops: int  # state-changing flash operations of the clean OTA
    items: list[Item]


def plan(args: argparse.Namespace, base: Scenario) -> Plan:
    """The runs ``args`` ask for over ``base`` (the clean OTA runs once here to count ops)."""
    check_mutant(args.mutant)
    setup = Setup(base=base.to_dict(), mutant=args.mutant, full_sample=args.full_sample)
    n_ops = ops_of(setup)
    items = items_for(args, n_ops)
    if args.shard is not None:
        items = shard(items, *args.shard)
    return Plan(setup, n_ops, items)


def run(args: argparse.Namespace, todo: Plan, progress: Progress | None = None) -> list[Outcome]:
    """Run the plan on the engine ``args`` name (a shard runs here); outcomes in item order."""
    config = EngineConfig(
        workers=0 if args.shard is not None else args.workers, scheduler=args.scheduler
    )
    with Engine(config) as engine:
        return engine.map(run_items, todo.items, todo.setup, progress=progress)
