"""``python -m sim fuzz``: power-loss and network-fault exploration from the command line.

The options, their defaults and choices (``--help`` lists the schedules and every known
mutant), a progress bar with runs per second and the time left, the findings printed
above it, and one-line errors. What runs is :mod:`sim.explore.fuzz`'s: the default
campaign, a systematic schedule or random mixes, on Dask workers or a shard.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from sim.distribute import parse_shard
from sim.explore import campaign, fuzz
from sim.explore.campaign import Item
from sim.explore.explorers import DEFAULT_FULL_SAMPLE, SCHEDULES
from sim.explore.mutants import MUTANTS
from sim.explore.scenario import Scenario
from sim.explore.work import Outcome
from sim.tools.console import EventConsole

MAX_PRINTED = 20  # findings printed (and saved); the count says how many more there were


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sim fuzz",
        description="explore power cuts, network faults and twin events of one OTA; "
        "exit 1 when an invariant breaks, with a replayable finding file per violation",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--schedule",
        choices=("campaign", *SCHEDULES, "random"),
        default="campaign",
        help="campaign: every layer within --budget; a schedule sweeps one scenario",
    )
    p.add_argument("--image-size", type=_positive, default=64 * 1024, metavar="BYTES")
    p.add_argument("--depth", type=int, choices=(1, 2), default=1, help="2: exhaustive pairs")
    p.add_argument("--stride", type=_positive, default=1, help="visit every Nth operation")
    p.add_argument(
        "--budget",
        type=_seconds,
        default=campaign.DEFAULT_BUDGET_S,
        metavar="S",
        help="seconds of one core the campaign (or random mixes) may spend",
    )
    p.add_argument("--seed", type=int, default=1, help="image and campaign seed")
    p.add_argument(
        "--checkpoint", type=_positive, default=16 * 1024, metavar="BYTES", help="sync interval"
    )
    p.add_argument(
        "--mutant",
        choices=sorted(MUTANTS),
        default=None,
        metavar="NAME",
        help="a known buggy agent instead of the correct one: " + ", ".join(sorted(MUTANTS)),
    )
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="Dask LocalCluster worker processes (0: run in this process)",
    )
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="an existing Dask cluster")
    p.add_argument(
        "--shard", type=_shard, default=None, metavar="I/N", help="run share I of N here"
    )
    p.add_argument(
        "--full-sample",
        type=float,
        default=DEFAULT_FULL_SAMPLE,
        help="share of cut runs that run to the end although they re-joined the clean run",
    )
    p.add_argument("--out", type=Path, default=Path("fuzz-findings"), help="finding files")
    return p


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file, not a folder")
    if not 0.0 <= args.full_sample <= 1.0:
        parser.error(f"--full-sample must lie in [0, 1], got {args.full_sample}")
    if args.depth == 2:
        args.schedule = "exhaustive"
    base = Scenario(
        image_size=args.image_size,
        image_seed=args.seed,
        checkpoint_bytes=args.checkpoint,
        mutant=args.mutant,
    )
    console = EventConsole(rate=True)
    todo = fuzz.plan(args, base)
    console.event(
        None,
        f"seed {args.seed}: base OTA of {base.image_size} bytes, {todo.n_ops} state-changing "
        f"flash operations; {len(todo.items)} runs ({args.schedule}, budget {args.budget:g} s "
        "of one core)",
    )
    started = time.perf_counter()
    try:
        outcomes = fuzz.run(args, todo, lambda done, total: console.progress(done, total, "runs"))
    finally:
        console.close()
    wall = time.perf_counter() - started
    _summary(console, args, todo.items, outcomes, wall)
    return 1 if any(o.violations for o in outcomes) else 0


def _summary(
    console: EventConsole,
    args: argparse.Namespace,
    items: list[Item],
    outcomes: list[Outcome],
    wall: float,
) -> None:
    found = [(i, o) for i, o in enumerate(outcomes) if o.violations]
    rejoined = sum(o.rejoined for o in outcomes)
    by_family: dict[str, int] = {}
    for item in items:
        by_family[item.family] = by_family.get(item.family, 0) + 1
    mix = ", ".join(f"{name} {n}" for name, n in by_family.items())
    console.event(
        None,
        f"{len(items)} runs in {wall:.1f} s ({len(items) / max(wall, 1e-9):.1f} runs/s; "
        f"{rejoined} stopped where they re-joined the clean run): {mix}",
    )
    console.event(None, f"{len(found)} violating")
    for n, (index, outcome) in enumerate(found):
        if n >= MAX_PRINTED:
            console.event(None, f"... and {len(found) - MAX_PRINTED} more")
            break
        assert outcome.scenario is not None
        name = f"finding-{args.seed}-{index:05d}.json"
        path = fuzz.save_finding(outcome.scenario, args.out, name)
        what = "; ".join(f"{inv}: {msg}" for inv, msg in outcome.violations)
        console.event(
            None,
            f"VIOLATION ({items[index].family}) {what}\n  replay: python -m sim replay {path}",
        )


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
