"""``python -m sim bench sweep``: power-loss sweep speed and the mutation score.

Prints the runs per second of a ``linear`` sweep (a cut after every state-changing
operation of a clean 256 KiB OTA by default, each cut run from a chip snapshot) and
the mutation score: mutants from ``sim/explore/mutants`` whose kill breaks an invariant,
out of all mutants. Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio

from sim.cloud.blobserver import BlobServer
from sim.explore.explorers import Explorer
from sim.explore.mutants import MUTANTS
from sim.explore.mutants.kills import execute
from sim.explore.scenario import Scenario


async def _sweep(size: int, stride: int) -> None:
    async with BlobServer() as server:
        explorer = Explorer(Scenario(image_size=size, checkpoint_bytes=64 * 1024), server)
        clean = await explorer.prepare()
        found = await explorer.explore("linear", stride=stride)
    print(
        f"linear sweep, {size // 1024} KiB image: {len(clean.ops)} state-changing ops, "
        f"{found.runs} cut runs in {found.wall_s:.1f} s = {found.runs_per_s:.1f} runs/s, "
        f"{len(found.findings)} violating"
    )


async def _score() -> None:
    killed = []
    for name, mutant in MUTANTS.items():
        violations = await execute(mutant.kill, mutant.factory)
        verdict = f"killed ({violations[0].invariant})" if violations else "SURVIVED"
        print(f"  {name:<20} {verdict:<32} {mutant.bug}")
        killed += [name] if violations else []
    print(f"mutation score: {len(killed)}/{len(MUTANTS)} mutants killed")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim bench sweep", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--image-size", type=int, default=256 * 1024, help="bytes")
    parser.add_argument("--stride", type=int, default=1, help="cut after every Nth operation")
    parser.add_argument("--no-mutants", action="store_true", help="skip the mutation score")
    args = parser.parse_args(argv)
    if args.image_size < 1 or args.stride < 1:
        parser.error("--image-size and --stride must be positive")
    asyncio.run(_sweep(args.image_size, args.stride))
    if not args.no_mutants:
        asyncio.run(_score())
    return 0
