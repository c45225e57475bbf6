"""``python -m sim fuzz`` explores power cuts; ``python -m sim replay FILE`` replays a finding.

``fuzz`` with no options plays the default campaign (:mod:`sim.explore.campaign`):
cuts after and inside every flash operation, network faults and HTTP lies, twin
events, flash faults and timing modes, cut to ``--budget`` seconds of one core.
``--schedule linear|log|exhaustive|torn`` sweeps one scenario instead, ``random``
plays random mixes. Runs go to Dask workers (:mod:`sim.distribute`): a local
cluster of ``--workers N`` processes (0: this process), or ``--scheduler ADDRESS``;
``--shard i/n`` runs share i of n here, without Dask. The findings are the same
whichever way the runs are spread. Each finding is a JSON scenario that ``replay``
runs from zero, printing the flash operations just before each cut. ``--mutant NAME``
runs one of the known buggy agents of :mod:`sim.explore.mutants`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from sim.distribute import Engine, EngineConfig, parse_shard, shard
from sim.explore import campaign
from sim.explore.campaign import Item
from sim.explore.explorers import DEFAULT_FULL_SAMPLE, SCHEDULES, cut_points
from sim.explore.invariants import check_all
from sim.explore.mutants import MUTANTS
from sim.explore.runner import run_scenario
from sim.explore.scenario import Scenario
from sim.explore.work import Outcome, Setup, ops_of, run_items
from sim.tools.progress import RunProgress


def _mutant(name: str | None) -> Any:
    if name is None:
        return None
    if name not in MUTANTS:
        raise SystemExit(f"unknown mutant {name!r}; known: {', '.join(sorted(MUTANTS))}")
    return MUTANTS[name].factory()


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


def _save(scenario: dict[str, Any], out: Path, name: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    Scenario.from_dict(scenario).save(path)
    return path


def run_campaign(args: argparse.Namespace, base: Scenario) -> tuple[list[Item], list[Outcome]]:
    """Plan and run; the outcomes in item order."""
    setup = Setup(base=base.to_dict(), mutant=args.mutant, full_sample=args.full_sample)
    n_ops = ops_of(setup)
    items = items_for(args, n_ops)
    if args.shard is not None:
        items = shard(items, *args.shard)
    config = EngineConfig(
        workers=0 if args.shard is not None else args.workers, scheduler=args.scheduler
    )
    print(
        f"base OTA: {base.image_size} bytes, {n_ops} state-changing flash operations; "
        f"{len(items)} runs ({args.schedule}, budget {args.budget:g} s of one core)"
    )
    with RunProgress(len(items)) as bar, Engine(config) as engine:
        outcomes = engine.map(run_items, items, setup, progress=bar.update)
    return items, outcomes


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.depth == 2:
        args.schedule = "exhaustive"
    base = Scenario(
        image_size=args.image_size,
        image_seed=args.seed,
        checkpoint_bytes=args.checkpoint,
        mutant=args.mutant,
    )
    _mutant(args.mutant)  # names an unknown mutant now, with the known ones
    started = time.perf_counter()
    items, outcomes = run_campaign(args, base)
    wall = time.perf_counter() - started
    found = [(i, o) for i, o in enumerate(outcomes) if o.violations]
    rejoined = sum(o.rejoined for o in outcomes)
    by_family: dict[str, int] = {}
    for item in items:
        by_family[item.family] = by_family.get(item.family, 0) + 1
    mix = ", ".join(f"{name} {n}" for name, n in by_family.items())
    print(
        f"{len(items)} runs in {wall:.1f} s ({len(items) / max(wall, 1e-9):.1f} runs/s; "
        f"{rejoined} stopped where they re-joined the clean run): {mix}"
    )
    print(f"{len(found)} violating")
    for n, (index, outcome) in enumerate(found):
        if n >= 20:
            print(f"... and {len(found) - 20} more")
            break
        assert outcome.scenario is not None
        path = _save(outcome.scenario, args.out, f"finding-{args.seed}-{index:05d}.json")
        what = "; ".join(f"{inv}: {msg}" for inv, msg in outcome.violations)
        print(f"VIOLATION ({items[index].family}) {what}\n  replay: python -m sim replay {path}")
    return 1 if found else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=_positive, default=64 * 1024, help="bytes")
    parser.add_argument(
        "--schedule", choices=("campaign", *SCHEDULES, "random"), default="campaign"
    )
    parser.add_argument("--depth", type=int, choices=(1, 2), default=1, help="2: exhaustive pairs")
    parser.add_argument("--stride", type=_positive, default=1, help="visit every Nth operation")
    parser.add_argument(
        "--budget",
        type=_seconds,
        default=campaign.DEFAULT_BUDGET_S,
        help=f"seconds of one core (default {campaign.DEFAULT_BUDGET_S:g})",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--checkpoint", type=_positive, default=16 * 1024, help="bytes")
    parser.add_argument("--mutant", default=None, help="a known buggy agent: " + ", ".join(MUTANTS))
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="Dask LocalCluster worker processes (default: one per core; 0: this process)",
    )
    parser.add_argument("--scheduler", default=None, help="an existing Dask scheduler address")
    parser.add_argument("--shard", type=_shard, default=None, help="i/n: run share i of n here")
    parser.add_argument(
        "--full-sample",
        type=float,
        default=DEFAULT_FULL_SAMPLE,
        help="share of cut runs that run to the end where they re-join (default 0.05)",
    )
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def replay_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim replay", description="replay a scenario from its JSON"
    )
    parser.add_argument("scenario", type=Path)
    args = parser.parse_args(argv)
    try:
        scenario = Scenario.load(args.scenario)
    except (OSError, ValueError) as exc:
        print(f"cannot load {args.scenario}: {exc}", file=sys.stderr)
        return 2
    factory = _mutant(scenario.mutant)
    result = asyncio.run(run_scenario(scenario, agent_factory=factory, trace=True))
    for cut in scenario.cuts:
        print(f"cut: {cut.describe()}")
    print("\n".join(result.trace) or "(no power cut fired)")
    statuses = " -> ".join(str(r.get("Status")) for r in result.reports)
    print(f"reports: {statuses}")
    print(f"boots {result.boots}, cuts {result.cuts_fired}, MCU version {result.target_version}")
    violations = check_all(result)
    for v in violations:
        print(f"VIOLATION {v}")
    print("all invariants hold" if not violations else f"{len(violations)} violation(s)")
    return 1 if violations else 0
