"""``python -m sim bench campaign``: how a campaign scales with the fleet.

Each row is one campaign in a fresh process (so its memory figures are its own): N
devices, one wave, a 1 MiB image by default, no faults, cuts or outage. Printed per row:
wall time of the campaign (publish and rollout) and devices per second of wall time;
resident memory per device while idle before the rollout (booted, blank flash), and after
it (idle again, holding the image) beyond the image itself; what each device's flash
then holds (the image, littlefs's metadata and the blocks it wrote and freed); the
process's peak. Then the growth from the first row: wall time and memory per device
relative to it (linear growth keeps both at 1.0). With ``--repeat K`` every row runs K
times and each figure is the median; the load average is printed before and after, since
the machine may be shared.

Targets (issue 12): <= 1 MiB of RSS per idle device beyond its image; 1,000 devices with
a 1 MiB image in under 2 minutes; linear growth. The 1,000 row needs ``--large`` (and
refuses to start if the memory it would take, estimated from the 100 row, is not free).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

MiB = 1024 * 1024
SIZES = (10, 100)
LARGE = 1000
WALL_TARGET_S = 120.0
RSS_TARGET = 1.0 * MiB


def one(devices: int, image_size: int, workers: int | None) -> dict[str, Any]:
    """Run one campaign here; the figures as JSON-able data."""
    import asyncio
    import resource

    from sim.campaign.campaign import run_campaign
    from sim.campaign.executor import executor_for
    from sim.campaign.plan import CampaignPlan, Group

    plan = CampaignPlan(
        devices=devices, image_size=image_size, groups=(Group("field", 1.0),), control=0, seed=1
    )

    async def campaign() -> Any:
        executor = executor_for(workers=workers, scheduler=None)
        try:
            return await run_campaign(plan, executor=executor)
        finally:
            await executor.close()

    result = asyncio.run(campaign())
    shards = result.shards
    return {
        "devices": devices,
        "ok": result.ok,
        "wall_s": result.wall_s,
        "rollout_wall_s": max(s.wall_s for s in shards),
        "idle_before": sum(s.rss_idle - s.rss_start for s in shards) / devices,
        "idle_after": sum(s.rss_end - s.rss_start for s in shards) / devices,
        "peak": sum(s.rss_peak - s.rss_start for s in shards) / devices,
        "process_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "flash": sum(s.flash_bytes for s in shards) / devices,
        "extensions": sum(s.timeout_extensions for s in shards),
        "device_time_s": max(d.device_time_s for d in result.devices),
    }


def _child(devices: int, image_size: int, workers: int | None) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "sim.tools.bench.campaign",
        "--one",
        str(devices),
        "--image-size",
        str(image_size),
    ] + (["--workers", str(workers)] if workers else [])
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the {devices}-device row failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m sim bench campaign", description=__doc__)
    p.add_argument("--large", action="store_true", help=f"add the {LARGE}-device row")
    p.add_argument("--image-size", type=int, default=MiB, help="bytes (default 1 MiB)")
    p.add_argument("--workers", type=int, help="run every row on a Dask LocalCluster")
    p.add_argument(
        "--sizes",
        default=",".join(map(str, SIZES)),
        help="fleet sizes of the rows, comma-separated (default 10,100)",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per row; figures are medians")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args.one, args.image_size, args.workers)))
        return 0
    try:
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
        if not sizes or min(sizes) < 1:
            raise ValueError
    except ValueError:
        p.error(f"--sizes must be positive integers separated by commas, got {args.sizes!r}")
    if args.repeat < 1:
        p.error(f"--repeat must be at least 1, got {args.repeat}")
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    for n in (*sizes, *((LARGE,) if args.large else ())):
        if rows and n >= LARGE:
            need = rows[-1]["peak"] * n * 1.3 + 512 * MiB
            if need > _available():
                print(
                    f"skipping the {n}-device row: it would take about {need / 2**30:.1f} GiB "
                    f"and {_available() / 2**30:.1f} GiB are free"
                )
                break
        runs = [_child(n, args.image_size, args.workers) for _ in range(args.repeat)]
        rows.append(_median(runs))
    _print(rows, args.image_size, args.workers, args.repeat)
    print(f"  load average (1 min) {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    return 0 if all(r["ok"] for r in rows) else 1


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the runs of one row (``ok`` only if every run was)."""
    row: dict[str, Any] = {"devices": runs[0]["devices"], "ok": all(r["ok"] for r in runs)}
    for key, value in runs[0].items():
        if key not in row and isinstance(value, int | float):
            row[key] = statistics.median(r[key] for r in runs)
    row["wall_runs"] = [r["wall_s"] for r in runs]
    return row


def _print(rows: list[dict[str, Any]], image_size: int, workers: int | None, repeat: int) -> None:
    where = f"Dask LocalCluster, {workers} workers" if workers else "in process"
    runs = f", medians of {repeat} runs" if repeat > 1 else ""
    print(f"campaign scaling, {image_size / MiB:g} MiB image, one wave, no faults ({where}{runs})")
    print(
        f"  {'devices':>7} {'wall s':>8} {'dev/s':>7} {'RSS/dev idle':>13} "
        f"{'after, -image':>14} {'flash/dev':>10} {'peak/dev':>9} {'process peak':>13} "
        f"{'wall/dev x':>10} {'RSS/dev x':>9}"
    )
    base = rows[0]
    for r in rows:
        n = r["devices"]
        per_wall = (r["wall_s"] / n) / (base["wall_s"] / base["devices"])
        per_rss = r["peak"] / base["peak"]
        after = (r["idle_after"] - image_size) / MiB
        print(
            f"  {n:>7} {r['wall_s']:>8.2f} {n / r['wall_s']:>7.1f} "
            f"{r['idle_before'] / MiB:>9.2f} MiB {after:>10.2f} MiB "
            f"{r['flash'] / MiB:>6.2f} MiB {r['peak'] / MiB:>5.2f} MiB "
            f"{r['process_peak'] / 2**30:>9.2f} GiB {per_wall:>10.2f} {per_rss:>9.2f}"
            + ("" if r["ok"] else "  NOT every device applied")
        )
    if repeat > 1:
        walls = "; ".join(
            f"{r['devices']}: " + ", ".join(f"{w:.1f}" for w in r["wall_runs"]) for r in rows
        )
        print(f"  wall s of each run: {walls}")
    last = rows[-1]
    beyond = last["idle_after"] - image_size
    print(
        f"  target <= 1 MiB RSS per idle device beyond its image: "
        f"{beyond / MiB:.2f} MiB, {'met' if beyond <= RSS_TARGET else 'not met'} "
        f"(its flash holds {(last['flash'] - image_size) / MiB:.2f} MiB of it)"
    )
    large = [r for r in rows if r["devices"] == LARGE]
    if large:
        wall = large[0]["wall_s"]
        print(
            f"  target {LARGE} devices in < {WALL_TARGET_S:.0f} s: {wall:.1f} s, "
            f"{'met' if wall < WALL_TARGET_S else 'not met'}"
        )
    else:
        est = last["wall_s"] / last["devices"] * LARGE
        print(
            f"  target {LARGE} devices in < {WALL_TARGET_S:.0f} s: not run (--large); "
            f"{est:.0f} s at the {last['devices']}-device rate, "
            f"{'met' if est < WALL_TARGET_S else 'not met'} if linear"
        )
    # at most linear: a per-device cost that falls with N (a cluster's start-up spread
    # over more devices) is not a miss; one that rises by more than 25% is
    growth = max(r["wall_s"] / r["devices"] / (base["wall_s"] / base["devices"]) for r in rows)
    linear = growth <= 1.25 and last["peak"] / base["peak"] <= 1.25
    print(
        f"  linear growth (per-device wall and memory at most 25% above the "
        f"{base['devices']}-device row): {'met' if linear else 'not met'}"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
