"""``python -m sim fuzz``: power-loss exploration from the command line.

The options, their defaults and choices (``--help`` lists the schedules and every known
mutant), a progress bar with the findings printed above it, and one-line errors. The
exploring itself is :mod:`sim.explore.fuzz`'s (systematic schedules on
:class:`sim.explore.explorers.Explorer`, random cuts on the scenario runner).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from sim.explore import fuzz
from sim.explore.explorers import SCHEDULES
from sim.explore.mutants import MUTANTS
from sim.explore.scenario import Scenario
from sim.tools.console import EventConsole


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sim fuzz",
        description="explore power-loss points (and random cuts) of one OTA; "
        "exit 1 when an invariant breaks, with a finding file per violation",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--schedule", choices=(*SCHEDULES, "random"), default="log", help="where the cuts go"
    )
    p.add_argument("--image-size", type=int, default=64 * 1024, metavar="BYTES", help="image")
    p.add_argument("--depth", type=int, choices=(1, 2), default=1, help="2: exhaustive pairs")
    p.add_argument("--stride", type=int, default=1, help="visit every Nth operation")
    p.add_argument("--budget", type=float, default=None, metavar="S", help="seconds (random: 60)")
    p.add_argument("--seed", type=int, default=1, help="image and random-schedule seed")
    p.add_argument(
        "--checkpoint", type=int, default=16 * 1024, metavar="BYTES", help="agent's sync interval"
    )
    p.add_argument(
        "--mutant",
        choices=sorted(MUTANTS),
        default=None,
        metavar="NAME",
        help="a known buggy agent instead of the correct one: " + ", ".join(sorted(MUTANTS)),
    )
    p.add_argument("--out", type=Path, default=Path("fuzz-findings"), help="finding files")
    return p


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.image_size < 1:
        parser.error("--image-size must be at least 1 byte")
    if args.stride < 1:
        parser.error("--stride must be at least 1")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file, not a folder")
    if args.depth == 2:
        args.schedule = "exhaustive"
    scenario = Scenario(
        image_size=args.image_size,
        image_seed=args.seed,
        checkpoint_bytes=args.checkpoint,
        mutant=args.mutant,
    )
    console = EventConsole()
    console.event(
        None, f"seed {args.seed}, image {args.image_size} bytes, schedule {args.schedule}"
    )
    explore = fuzz._random if args.schedule == "random" else fuzz._systematic
    try:
        # the explorers' progress callback: EventConsole has _Bar's __call__ and end()
        findings = asyncio.run(explore(args, scenario, console))  # type: ignore[arg-type]
    finally:
        console.close()
    for n, finding in enumerate(findings[:20]):
        path = fuzz._save(finding, args.out, n)
        console.event(None, f"VIOLATION {finding}\n  replay: python -m sim replay {path}")
    return 1 if findings else 0
