"""``python -m sim campaign``: roll an image out to a fleet of simulated gateways in waves,
watch it live, and keep a report.

Every device is a whole simulated gateway (W25Q128JV model, littlefs, the real agent)
on its own device-time clock; the operator's ``ota`` (:mod:`deploy.ota`, real
azure-storage-blob) publishes one release per group to the project's blob server, and
an in-process IoT Hub (one replica per shard) evaluates each wave. ``--outage`` takes
the storage account down for a window of device time; ``--cut-rate`` cuts each device's
power at random (Poisson, per device-hour of device time); ``--faults`` adds a blob
server fault plan, and its ``"twin"`` section twin-channel faults on each device's twin
(:mod:`sim.campaign.twin_channel`). Exit status 0 when every targeted device applied
exactly the published image and nothing else was touched, 1 otherwise, 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.campaign.campaign import CampaignResult, run_campaign
from sim.campaign.executor import executor_for
from sim.campaign.herd import Herd, herd
from sim.campaign.plan import CampaignPlan, parse_groups, parse_outage
from sim.campaign.progress import LiveStatus
from sim.campaign.report import MiB, write_report
from sim.campaign.twin_channel import FleetTwinFault, parse_twin_section
from sim.cloud.faults.plan import FaultPlan

DEFAULTS: dict[str, Any] = {
    "devices": 200,
    "image_size": "256K",
    "groups": "canary=10%,field=90%",
    "control": 2,
    "outage": "61:90",
    "cut_rate": 30.0,
    "report": "campaign-report",
}


@dataclass(frozen=True)
class Options:
    plan: CampaignPlan
    report: Path | None
    workers: int | None
    scheduler: str | None
    live: bool


def parse_size(text: str) -> int:
    """``262144``, ``256K``, ``1M`` (binary units)."""
    units = {"K": 1024, "M": 1024 * 1024}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise ValueError(f"--image-size must be bytes, or N K / N M, got {text!r}") from None


def load_faults(path: str) -> tuple[FaultPlan, tuple[FleetTwinFault, ...]]:
    """A blob server fault plan file; its ``"twin"`` section (twin-channel faults,
    :mod:`sim.campaign.twin_channel`) is split off and returned apart."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"--faults: cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--faults: {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--faults: {path} must hold a JSON object")
    try:
        twin = parse_twin_section(data.pop("twin", []))
        return FaultPlan.from_dict(data), twin
    except ValueError as exc:
        raise ValueError(f"--faults: {path}: {exc}") from None


def parser(prog: str, defaults: dict[str, Any]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").split("\n")[0])
    p.add_argument("--devices", type=int, default=defaults["devices"], help="fleet size")
    p.add_argument("--image-size", default=defaults["image_size"], help="bytes, or 256K, 1M")
    p.add_argument(
        "--groups",
        default=defaults["groups"],
        help="device groups, one wave each in order: NAME=SHARE%%,...",
    )
    p.add_argument(
        "--control",
        type=int,
        default=defaults["control"],
        help="devices of another product that no release targets",
    )
    p.add_argument(
        "--wave-interval",
        type=float,
        default=CampaignPlan.wave_interval_s,
        help="hub seconds between waves (IoT Hub evaluates every 300 s)",
    )
    p.add_argument(
        "--faults",
        metavar="PLAN",
        help="blob server fault plan (JSON); its 'twin' section: twin-channel faults",
    )
    p.add_argument(
        "--cut-rate",
        type=float,
        default=defaults["cut_rate"],
        help="power cuts per device-hour of device time",
    )
    p.add_argument(
        "--outage",
        metavar="START:LENGTH",
        default=defaults["outage"],
        help="storage account down for this window of device time (s); 'none'",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--report",
        metavar="DIR",
        default=defaults["report"],
        help="where the report goes; 'none' for no report",
    )
    p.add_argument("--workers", type=int, help="run shards on a Dask LocalCluster of N workers")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run shards on this Dask cluster")
    p.add_argument(
        "--io-time-scale",
        type=float,
        default=CampaignPlan.io_time_scale,
        help="real seconds waited per second of a socket timeout",
    )
    p.add_argument(
        "--max-device-time",
        type=float,
        default=CampaignPlan.max_device_time_s,
        help="device-time bound per device (s)",
    )
    p.add_argument("--quiet", action="store_true", help="no live progress")
    return p


def options(argv: list[str], *, prog: str, defaults: dict[str, Any]) -> Options:
    p = parser(prog, defaults)
    args = p.parse_args(argv)
    try:
        faults, twin = load_faults(args.faults) if args.faults else (FaultPlan(), ())
        outage = None
        if args.outage is not None and args.outage.lower() != "none":
            outage = parse_outage(args.outage)
        plan = CampaignPlan(
            devices=args.devices,
            image_size=parse_size(str(args.image_size)),
            groups=parse_groups(args.groups),
            control=args.control,
            wave_interval_s=args.wave_interval,
            faults=faults,
            twin_faults=twin,
            cut_rate=args.cut_rate,
            outage=outage,
            seed=args.seed,
            io_time_scale=args.io_time_scale,
            max_device_time_s=args.max_device_time,
        )
        if args.workers is not None and args.scheduler is not None:
            raise ValueError("give --workers or --scheduler, not both")
    except ValueError as exc:
        p.error(str(exc))
    report = None if args.report in (None, "none") else Path(args.report)
    return Options(plan, report, args.workers, args.scheduler, not args.quiet)


async def campaign(opts: Options, out: Any) -> tuple[CampaignResult, Herd | None]:
    executor = executor_for(workers=opts.workers, scheduler=opts.scheduler)
    try:
        live = LiveStatus(
            targeted=opts.plan.targeted, stream=out, live=opts.live and executor.streams_reports
        )
        async with live:
            result = await run_campaign(opts.plan, executor=executor, on_report=live.on_report)
    finally:
        await executor.close()
    found = (
        None
        if opts.plan.outage is None
        else herd(opts.plan.outage, result.devices, result.arrivals)
    )
    return result, found


DEVICE_TABLE_MAX = 20  # a fleet this small gets one row per device


def print_devices(result: CampaignResult, out: Any) -> None:
    print("devices", file=out)
    print(
        f"  {'device':<8} {'product':<8} {'group':<11} {'desired':>7} {'status':<12} "
        f"{'MCU':>3} {'image':<5} {'boots':>5} {'cuts':>4} {'device time':>11}",
        file=out,
    )
    for d in result.devices:
        desired = "-" if d.desired_version is None else str(d.desired_version)
        print(
            f"  {d.device_id:<8} {d.tags['productType']:<8} {d.tags['deviceGroup']:<11} "
            f"{desired:>7} {d.status or '-':<12} {d.installed_version:>3} "
            f"{'ok' if d.image_ok else 'BAD':<5} {d.boots:>5} {d.cuts:>4} "
            f"{d.device_time_s:>9.2f} s",
            file=out,
        )


def print_summary(result: CampaignResult, found: Herd | None, out: Any) -> None:
    plan = result.plan
    outcomes: dict[str, int] = {}
    for d in result.targeted:
        outcomes[d.status or "none"] = outcomes.get(d.status or "none", 0) + 1
    wire = sum(d.wire_bytes for d in result.devices)
    device_s = max((d.device_time_s for d in result.devices), default=0.0)
    if len(result.devices) <= DEVICE_TABLE_MAX:
        print_devices(result, out)
    print("campaign", file=out)
    print(
        f"  devices            {plan.devices} ({plan.targeted} targeted in "
        f"{len(plan.groups)} waves, {plan.control} control) on {result.executor}",
        file=out,
    )
    print(
        "  outcome            "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        + ("" if result.ok else "  (NOT every targeted device applied its image)"),
        file=out,
    )
    print(
        f"  power cuts         {sum(d.cuts for d in result.devices)} survived "
        f"(boots {sum(d.boots for d in result.devices)})",
        file=out,
    )
    print(
        f"  bytes over wire    {wire} ({wire / max(1, plan.image_size * plan.targeted):.3f} "
        "x the images)",
        file=out,
    )
    print(
        f"  requests           {len(result.arrivals)} "
        f"({sum(a.outcome == 'outage' for a in result.arrivals)} refused by the outage)",
        file=out,
    )
    if plan.twin_faults:
        fired = result.twin_faults_fired()
        hit = sum(1 for d in result.devices if d.twin_faults)
        kinds = ", ".join(f"{k} {n}" for k, n in fired.items()) or "none"
        print(
            f"  twin faults        {sum(fired.values())} fired on {hit} devices ({kinds})",
            file=out,
        )
    print(f"  device time        {device_s:.1f} s; wall time {result.wall_s:.1f} s", file=out)
    print(
        f"  RSS per device     {result.rss_per_device(phase='idle') / MiB:.2f} MiB idle, "
        f"{result.rss_per_device(phase='peak') / MiB:.2f} MiB at peak; its flash holds "
        f"{result.flash_per_device() / MiB:.2f} MiB (image {plan.image_size / MiB:.2f} MiB)",
        file=out,
    )
    for config_id, m in result.metrics.items():
        counts = ", ".join(f"{k}={v}" for k, v in m["queries"].items() if v) or "none"
        print(
            f"  hub {config_id:<10} targeted={m['targeted']} applied={m['applied']} "
            f"reported: {counts}",
            file=out,
        )
    if found is not None:
        for line in found.lines():
            print(line, file=out)


def main(
    argv: list[str], *, prog: str = "python -m sim campaign", defaults: dict[str, Any] | None = None
) -> int:
    opts = options(argv, prog=prog, defaults=defaults or DEFAULTS)
    # A fleet's twin links warn on every first failure of a call: with twin faults, one
    # line per device and fault; the report counts them (summary.json, twin_faults_fired).
    logging.getLogger("agent.twin_link").setLevel(logging.ERROR)
    out = sys.stdout
    try:
        result, found = asyncio.run(campaign(opts, out))
    except ValueError as exc:  # the executor's arguments (e.g. no dask installed)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print_summary(result, found, out)
    if opts.report is not None:
        paths = write_report(result, opts.report, found)
        print(f"report             {opts.report}/ ({', '.join(p.name for p in paths)})", file=out)
    return 0 if result.ok else 1
