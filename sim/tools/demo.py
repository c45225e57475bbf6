"""``python -m sim demo``: one simulated gateway through an OTA that goes wrong on purpose.

A generated image (1 MiB by default) goes the whole real cloud path by default: the
deploy tool uploads it to the local fault-injecting blob server and creates the IoT Hub
configuration in the local IoT Hub, and the gateway, provisioned through DPS, receives it
over MQTT/TLS with the real device SDK (:mod:`sim.tools.demo_cloud`);
``--in-process-twin`` publishes it to an in-process twin instead. Then the script breaks
things: the connection is reset mid-body, the server
answers 503 with ``Retry-After``, ignores ``Range``, cuts a body short, the
operator re-uploads the blob (new ETag) mid-download, and the power is cut twice:
once inside a page program and once inside a sector erase. The agent must still
end with the exact image applied. Everything runs on a virtual clock; the
summary compares simulated device time with wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import logging
import random
import time
from dataclasses import dataclass

from agent.download import DownloadPolicy
from agent.engine import AgentConfig
from agent.hosts import LOOPBACK_HOSTS
from sim.cloud.blobserver import BlobServer
from sim.cloud.faults.plan import FaultPlan
from sim.device import SimDevice, applied, reported_status
from sim.ports.aimed_cut import AimedCut
from sim.tools.console import EventConsole
from sim.tools.demo_cloud import CONTAINER, PATHS

# the scripted faults land at fixed byte counts: a connection reset after 300000 bytes, a
# body cut short at 700000 and the re-upload within them; a smaller image ends first
MIN_IMAGE_SIZE = 800_000


@dataclass(frozen=True)
class Scenario:
    """What the demo breaks, and when."""

    image_size: int = 1024 * 1024
    seed: int = 2020
    checkpoint_bytes: int = 64 * 1024
    cuts: tuple[AimedCut, ...] = (
        AimedCut("page_program", nth=900, fraction=0.5),
        AimedCut("sector_erase", nth=60, fraction=0.4),
    )
    cloud: str = "hub"  # a key of sim.tools.demo_cloud.PATHS

    def __post_init__(self) -> None:
        if self.cloud not in PATHS:
            raise ValueError(f"cloud must be one of {sorted(PATHS)}, got {self.cloud!r}")

    def fault_plan(self, image: bytes, blob_name: str, *, after: int = 0) -> FaultPlan:
        """The scripted faults on ``blob_name``, counting requests after the first ``after``
        (the deploy tool's own upload)."""
        reupload = base64.b64encode(image).decode()
        blob = f"{CONTAINER}/{blob_name}"
        return FaultPlan.from_dict(
            {
                "rules": [
                    {
                        "id": "connection-reset",
                        "fault": "reset_peer",
                        "params": {"after_bytes": 300_000},
                        "blob": blob,
                        "requests": [after + 1, after + 1],
                    },
                    {
                        "id": "server-busy",
                        "fault": "status",
                        "params": {"status": 503, "retry_after_s": 5},
                        "blob": blob,
                        "requests": [after + 2, after + 2],
                    },
                    {
                        "id": "range-ignored",
                        "fault": "ignore_range",
                        "blob": blob,
                        "requests": [after + 3, after + 3],
                    },
                    {
                        "id": "body-cut-short",
                        "fault": "limit_data",
                        "params": {"bytes": 700_000},
                        "blob": blob,
                        "requests": [after + 3, after + 3],
                    },
                    {
                        "id": "blob-reuploaded",
                        "fault": "etag_change",
                        "params": {"content_b64": reupload},
                        "blob": blob,
                        "requests": [after + 5, after + 5],
                    },
                ]
            }
        )


PATH_NAMES = {
    "hub": "deploy tool, local IoT Hub + DPS, MQTT/TLS (azure-iot-device)",
    "in-process": "in-process twin (--in-process-twin)",
}
SETUP = {
    "hub": "starting the local IoT Hub, the deploy tool",
    "in-process": "starting the blob server, the upload",
}


async def run(scenario: Scenario, console: EventConsole) -> int:
    image = random.Random(scenario.seed).randbytes(scenario.image_size)
    digest = hashlib.sha256(image).hexdigest()
    config = AgentConfig(
        allow_http_loopback=True,
        storage_hosts=LOOPBACK_HOSTS,
        download=DownloadPolicy(checkpoint_bytes=scenario.checkpoint_bytes),
    )
    started = time.perf_counter()
    async with (
        BlobServer(seed=scenario.seed) as server,
        PATHS[scenario.cloud](server, image, seed=scenario.seed, config=config) as cloud,
    ):
        device = cloud.device
        cutter = device.aim_cuts()
        pending_cuts = list(scenario.cuts)
        console.event(0.0, f"cloud path: {cloud.label}")
        console.event(
            0.0, f"blob server on {server.url}; image {len(image)} bytes, sha256 {digest[:16]}..."
        )
        for line in await cloud.publish():
            console.event(0.0, line)
        server.plan = scenario.fault_plan(image, cloud.blob, after=len(server.events))
        first_event = len(server.events)
        setup = time.perf_counter() - started

        def on_boot(dev: SimDevice) -> None:
            catch_up()  # the cut that caused this boot is told before the boot
            console.event(dev.clock.monotonic(), f"boot #{dev.boots}")
            if pending_cuts:
                cut = pending_cuts.pop(0)
                cutter.arm(cut)
                console.event(
                    dev.clock.monotonic(),
                    f"  (power cut armed: {cut.op.replace('_', ' ')} #{cut.nth}, "
                    f"{cut.fraction:.0%} through it)",
                )

        seen_events, seen_reports, seen_cuts = first_event, 0, 0

        def catch_up() -> None:
            """Tell every cut, cloud event, server event and report not told yet, in order."""
            nonlocal seen_events, seen_reports, seen_cuts
            now = device.clock.monotonic()
            for cut, address in cutter.fired[seen_cuts:]:
                console.event(now, f"POWER CUT inside {cut.op.replace('_', ' ')} at {address:#08x}")
            seen_cuts = len(cutter.fired)
            for line in cloud.news():
                console.event(now, line)
            for ev in server.events[seen_events:]:
                if ev.faults or ev.status not in (200, 206) or ev.outcome != "ok":
                    faults = ", ".join(f.split(":")[0] for f in ev.faults) or "-"
                    console.event(
                        now,
                        f"server: request {ev.request} range={ev.range or '-'} "
                        f"status={ev.status} sent={ev.bytes_sent} "
                        f"outcome={ev.outcome} fault={faults}",
                    )
            seen_events = len(server.events)
            reported = device.twin.reported_log
            for patch in reported[seen_reports:]:
                info = reported_status(patch)
                if info.get("Status") == "downloading" and info.get("Downloaded"):
                    console.progress(info["Downloaded"] // 1024, len(image) // 1024, "download")
                    if console.tty:
                        continue
                shown = {k: v for k, v in info.items() if v not in (None, "None")}
                console.event(now, f"twin reported {shown}")
            seen_reports += len(reported[seen_reports:])

        async def narrate() -> None:
            while True:
                catch_up()
                await asyncio.sleep(0.005)

        narrator = asyncio.ensure_future(narrate())
        try:
            result = await device.run_until(applied(1), max_boots=20, on_boot=on_boot)
        finally:
            await asyncio.sleep(0.02)
            narrator.cancel()
            catch_up()
            console.close()
        wall = time.perf_counter() - started
        sent = sum(ev.bytes_sent for ev in server.events[first_event:])
    wire = device.wire_bytes()

    installed = bytes(device.target.image)
    verified = result.reached and hashlib.sha256(installed).hexdigest() == digest
    print()
    print("summary")
    print(f"  cloud path            {PATH_NAMES[scenario.cloud]}")
    print(f"  outcome               {'applied version 1' if result.reached else 'NOT applied'}")
    print(f"  image verified        {'yes: MCU holds the exact image' if verified else 'NO'}")
    print(f"  bytes read by agent   {wire} ({wire / len(image):.2f} x the image size)")
    print(f"  bytes sent by server  {sent} (includes what was in flight at each cut)")
    print(f"  power cuts survived   {result.cuts} (boots: {result.boots})")
    print(f"  simulated device time {result.device_time_s:.2f} s")
    print(f"  wall time             {wall:.2f} s ({result.device_time_s / wall:.0f} x faster)")
    print(f"  of which setup        {setup:.2f} s ({SETUP[scenario.cloud]})")
    return 0 if verified else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim demo",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=Scenario.image_size,
        metavar="BYTES",
        help=f"the image's size; at least {MIN_IMAGE_SIZE} for the scripted faults to land",
    )
    parser.add_argument("--seed", type=int, default=Scenario.seed, help="image and jitter seed")
    parser.add_argument(
        "--in-process-twin",
        action="store_true",
        help="publish to an in-process twin instead of the deploy tool, local IoT Hub and DPS",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log the agent's steps")
    args = parser.parse_args(argv)
    if args.image_size < MIN_IMAGE_SIZE:
        parser.error(
            f"--image-size must be at least {MIN_IMAGE_SIZE} bytes for the scripted faults to land"
        )
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if not args.verbose:  # the SDK logs every reconnect the scripted cuts cause
        logging.getLogger("azure.iot.device").setLevel(logging.ERROR)
    cloud = "in-process" if args.in_process_twin else "hub"
    scenario = Scenario(image_size=args.image_size, seed=args.seed, cloud=cloud)
    return asyncio.run(run(scenario, EventConsole(unit="KiB")))
