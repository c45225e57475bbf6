"""``python -m sim fuzz`` explores power cuts; ``python -m sim replay FILE`` replays a finding.

``fuzz`` runs a systematic schedule (``linear``, ``log``, ``exhaustive`` pairs up to
``--depth 2``, ``torn`` cuts inside operations) over one scenario, or ``random``
scenarios (a random cut inside a random operation, sometimes two, sometimes with
twin-channel faults) from ``--seed``,
until ``--budget`` seconds pass. It prints runs per second and, for every run that
breaks an invariant, writes a JSON scenario and prints its path; ``replay`` runs that
scenario again from zero and prints the flash operations just before each cut.
``--mutant NAME`` runs one of the known buggy agents of :mod:`sim.explore.mutants`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.cloud.blobserver import BlobServer
from sim.explore.channel import random_channel_faults
from sim.explore.explorers import SCHEDULES, Explorer, Finding
from sim.explore.invariants import check_all
from sim.explore.mutants import MUTANTS
from sim.explore.runner import run_scenario
from sim.explore.scenario import TIMINGS, Cut, Scenario
from sim.explore.stage import Stage


class _Bar:
    """A progress bar on a terminal; nothing otherwise."""

    def __init__(self, stream: Any = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.tty or total <= 0:
            return
        filled = done * 30 // total
        self.stream.write(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
        self.stream.flush()

    def end(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")


def _mutant(name: str | None) -> Callable[..., Any] | None:
    if name is None:
        return None
    if name not in MUTANTS:
        raise SystemExit(f"unknown mutant {name!r}; known: {', '.join(sorted(MUTANTS))}")
    return MUTANTS[name].factory()


def _save(finding: Finding, out: Path, n: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"finding-{int(time.time())}-{n}.json"
    finding.scenario.save(path)
    return path


async def _systematic(args: argparse.Namespace, scenario: Scenario, bar: _Bar) -> list[Finding]:
    async with BlobServer() as server:
        explorer = Explorer(scenario, server, agent_factory=_mutant(args.mutant))
        clean = await explorer.prepare()
        print(f"clean run: {len(clean.ops)} state-changing flash operations")
        fractions = (0.25, 0.5, 0.75) if args.schedule == "torn" else (1.0,)
        found = await explorer.explore(
            args.schedule,
            stride=args.stride,
            fractions=fractions,
            budget_s=args.budget,
            progress=bar,
        )
    bar.end()
    print(
        f"{found.schedule}: {found.runs} cut runs in {found.wall_s:.1f} s "
        f"({found.runs_per_s:.1f} runs/s), {len(found.findings)} violating"
    )
    return found.findings


def random_scenario(rng: random.Random, base: Scenario, n_ops: int) -> Scenario:
    """A random cut (or two) inside random operations, with a random timing mode, and
    sometimes twin-channel faults (:func:`sim.explore.channel.random_channel_faults`)."""
    cuts = [Cut(after_ops=rng.randint(1, max(1, n_ops)), fraction=rng.random())]
    if rng.random() < 0.3:
        cuts.append(Cut(after_ops=rng.randint(1, max(1, n_ops)), fraction=rng.random(), boot=2))
    return dataclasses.replace(
        base,
        cuts=tuple(cuts),
        timing=rng.choice(TIMINGS),
        chip_seed=rng.getrandbits(16),
        twin_faults=random_channel_faults(rng),
    )


async def _random(args: argparse.Namespace, scenario: Scenario, bar: _Bar) -> list[Finding]:
    rng = random.Random(args.seed)
    factory = _mutant(args.mutant)
    findings: list[Finding] = []
    n_ops = max(8, scenario.image_size // 256 + 64)
    started, runs = time.perf_counter(), 0
    budget = args.budget or 60.0
    async with BlobServer() as server:
        stage = Stage(server)
        while time.perf_counter() - started < budget:
            trial = random_scenario(rng, scenario, n_ops)
            result = await run_scenario(
                trial, stage=stage, agent_factory=None if factory is None else factory
            )
            runs += 1
            violations = check_all(result)
            if violations:
                findings.append(Finding(trial, tuple(violations)))
            bar(int(time.perf_counter() - started), int(budget))
    bar.end()
    wall = time.perf_counter() - started
    print(
        f"random: {runs} runs in {wall:.1f} s ({runs / wall:.1f} runs/s), {len(findings)} violating"
    )
    return findings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=64 * 1024, help="bytes")
    parser.add_argument("--schedule", choices=(*SCHEDULES, "random"), default="log")
    parser.add_argument("--depth", type=int, choices=(1, 2), default=1, help="2: exhaustive pairs")
    parser.add_argument("--stride", type=int, default=1, help="visit every Nth operation")
    parser.add_argument("--budget", type=float, default=None, help="seconds (random: 60)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--checkpoint", type=int, default=16 * 1024, help="bytes")
    parser.add_argument("--mutant", default=None, help="a known buggy agent: " + ", ".join(MUTANTS))
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    args = parser.parse_args(argv)
    if args.image_size < 1:
        parser.error("--image-size must be at least 1 byte")
    if args.stride < 1:
        parser.error("--stride must be at least 1")
    if args.depth == 2:
        args.schedule = "exhaustive"
    scenario = Scenario(
        image_size=args.image_size,
        image_seed=args.seed,
        checkpoint_bytes=args.checkpoint,
        mutant=args.mutant,
    )
    print(f"seed {args.seed}, image {args.image_size} bytes, schedule {args.schedule}")
    bar = _Bar()
    runner = _random if args.schedule == "random" else _systematic
    findings = asyncio.run(runner(args, scenario, bar))
    for n, finding in enumerate(findings[:20]):
        path = _save(finding, args.out, n)
        print(f"VIOLATION {finding}\n  replay: python -m sim replay {path}")
    return 1 if findings else 0


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
    for fault in scenario.twin_faults:
        print(f"twin fault: {fault.describe()}")
    print("\n".join(result.trace) or "(no power cut fired)")
    statuses = " -> ".join(str(r.get("Status")) for r in result.reports)
    print(f"reports: {statuses}")
    print(f"boots {result.boots}, cuts {result.cuts_fired}, MCU version {result.target_version}")
    violations = check_all(result)
    for v in violations:
        print(f"VIOLATION {v}")
    print("all invariants hold" if not violations else f"{len(violations)} violation(s)")
    return 1 if violations else 0
