"""``python -m sim bench sweep``: power-loss sweep speed, Dask speed-up, memory, mutation score.

A ``linear`` sweep cuts after every state-changing flash operation of a clean OTA
(checkpoint every 64 KiB), each cut run from the clean run's snapshot and stopped
where it re-joins the clean run (a 5 % sample runs to the end). Prints, per image
size (``--sizes``, default 64 KiB, 256 KiB, 1 MiB, 4 MiB; ``--stride`` visits every
Nth operation and the total is extrapolated), the runs per second and the total time
in this process; then the speed-up of a Dask LocalCluster of ``--workers`` against
one worker on the 256 KiB sweep, the peak RSS, and the mutation score. Figures only:
nothing is asserted; each line states its target.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

from sim.cloud.blobserver import BlobServer
from sim.distribute import Engine, EngineConfig
from sim.explore.campaign import Item
from sim.explore.explorers import Explorer
from sim.explore.mutants import MUTANTS
from sim.explore.mutants.kills import execute
from sim.explore.scenario import Scenario
from sim.explore.work import Setup, ops_of, run_items

KIB = 1024
TARGETS = {256 * KIB: ("<= 1.2 s on one core", 1.2), 4096 * KIB: ("<= 180 s on 2 cores", 180.0)}


def _scenario(size: int) -> Scenario:
    return Scenario(image_size=size, checkpoint_bytes=64 * KIB)


async def _sweep(size: int, stride: int) -> tuple[int, int, float, int]:
    """(ops, runs, wall seconds, violating) of a strided linear sweep in this process."""
    async with BlobServer() as server:
        explorer = Explorer(_scenario(size), server)
        clean = await explorer.prepare()
        found = await explorer.explore("linear", stride=stride)
    return len(clean.ops), found.runs, found.wall_s, len(found.findings)


def _dask(size: int, workers: int) -> tuple[float, float, int]:
    """Wall seconds of the same full sweep on 1 and on ``workers`` Dask workers."""
    setup = Setup(base=_scenario(size).to_dict())
    n_ops = ops_of(setup)
    items = [Item("sweep", "cut", index=i) for i in range(1, n_ops + 1)]
    walls = []
    for count in (1, workers):
        with Engine(EngineConfig(workers=count)) as engine:
            engine.map(run_items, items[: count * 2], setup)  # warm: every worker's clean run
            started = time.perf_counter()
            engine.map(run_items, items, setup)
            walls.append(time.perf_counter() - started)
    return walls[0], walls[1], n_ops


async def _score() -> None:
    killed = []
    for name, mutant in MUTANTS.items():
        violations = await execute(mutant.kill, mutant.factory)
        verdict = f"killed ({violations[0].invariant})" if violations else "SURVIVED"
        print(f"  {name:<20} {verdict:<32} {mutant.bug}")
        killed += [name] if violations else []
    print(f"mutation score: {len(killed)}/{len(MUTANTS)} mutants killed")


def _size(text: str) -> int:
    text = text.strip().lower()
    unit = 1024 * 1024 if text.endswith("m") else 1024 if text.endswith("k") else 1
    return int(text.rstrip("km")) * unit


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim bench sweep", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sizes", default="64k,256k,1m,4m", help="image sizes (k/m suffixes)")
    parser.add_argument("--stride", type=int, default=0, help="every Nth op (0: by size)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers for the speed-up")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask speed-up")
    parser.add_argument("--no-mutants", action="store_true", help="skip the mutation score")
    args = parser.parse_args(argv)
    try:
        sizes = [_size(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be sizes like 64k,256k,1m, got {args.sizes!r}")
    if any(s < 1 for s in sizes) or args.stride < 0 or args.workers < 1:
        parser.error("--sizes, --stride and --workers must be positive")
    print("linear sweep (a cut after every state-changing op), one process:")
    for size in sizes:
        stride = args.stride or max(1, size // (256 * KIB))
        ops, runs, wall, bad = asyncio.run(_sweep(size, stride))
        total = wall * ops / max(runs, 1)
        target = TARGETS.get(size)
        note = f"  target {target[0]}" if target else ""
        how = "" if stride == 1 else f" (every {stride}th op, total extrapolated)"
        print(
            f"  {size // KIB:>5} KiB: {ops:>6} ops, {runs / wall:7.1f} runs/s, "
            f"full sweep {total:7.1f} s{how}, {bad} violating{note}"
        )
    if not args.no_dask:
        one, many, ops = _dask(256 * KIB, args.workers)
        print(
            f"Dask LocalCluster, 256 KiB full sweep ({ops} runs): 1 worker {one:.1f} s, "
            f"{args.workers} workers {many:.1f} s: speed-up {one / many:.2f}x "
            f"(target >= 1.7x at 2 workers)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (the sweeps): {peak:.0f} MiB (target <= 150 MiB)")
    if not args.no_mutants:
        asyncio.run(_score())
    return 0
