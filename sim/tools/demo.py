"""``python -m sim demo``: one simulated gateway through an OTA that goes wrong on purpose.

A generated image (1 MiB by default) is uploaded to the local fault-injecting blob
server and published to the device's twin, as the original's ``ota.py`` does.
Then the script breaks things: the connection is reset mid-body, the server
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
from sim.cloud.twin import publish_ota
from sim.device import SimDevice, applied, reported_status
from sim.ports.aimed_cut import AimedCut
from sim.tools.console import EventConsole

CONTAINER, BLOB = "ota", "mcu.bin"  # one name for every version, as the original's ota.py
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

    def fault_plan(self, image: bytes) -> FaultPlan:
        reupload = base64.b64encode(image).decode()
        blob = f"{CONTAINER}/{BLOB}"
        return FaultPlan.from_dict(
            {
                "rules": [
                    {
                        "id": "connection-reset",
                        "fault": "reset_peer",
                        "params": {"after_bytes": 300_000},
                        "blob": blob,
                        "requests": [1, 1],
                    },
                    {
                        "id": "server-busy",
                        "fault": "status",
                        "params": {"status": 503, "retry_after_s": 5},
                        "blob": blob,
                        "requests": [2, 2],
                    },
                    {
                        "id": "range-ignored",
                        "fault": "ignore_range",
                        "blob": blob,
                        "requests": [3, 3],
                    },
                    {
                        "id": "body-cut-short",
                        "fault": "limit_data",
                        "params": {"bytes": 700_000},
                        "blob": blob,
                        "requests": [3, 3],
                    },
                    {
                        "id": "blob-reuploaded",
                        "fault": "etag_change",
                        "params": {"content_b64": reupload},
                        "blob": blob,
                        "requests": [5, 5],
                    },
                ]
            }
        )


async def run(scenario: Scenario, console: EventConsole) -> int:
    image = random.Random(scenario.seed).randbytes(scenario.image_size)
    digest = hashlib.sha256(image).hexdigest()
    config = AgentConfig(
        allow_http_loopback=True,
        storage_hosts=LOOPBACK_HOSTS,
        download=DownloadPolicy(checkpoint_bytes=scenario.checkpoint_bytes),
    )
    device = SimDevice(seed=scenario.seed, config=config)
    cutter = device.aim_cuts()
    pending_cuts = list(scenario.cuts)

    async with BlobServer(plan=scenario.fault_plan(image), seed=scenario.seed) as server:
        server.put_blob(CONTAINER, BLOB, image)
        url = server.blob_url(CONTAINER, BLOB)
        console.event(
            0.0, f"blob server on {server.url}; image {len(image)} bytes, sha256 {digest[:16]}..."
        )
        publish_ota(device.twin, version=1, image=image, url=url, sas=server.make_sas(CONTAINER))
        console.event(0.0, "operator published extFwInfo version 1 to the twin")

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

        seen_events = seen_reports = seen_cuts = 0

        def catch_up() -> None:
            """Tell every cut, server event and report not told yet, in that order."""
            nonlocal seen_events, seen_reports, seen_cuts
            now = device.clock.monotonic()
            for cut, address in cutter.fired[seen_cuts:]:
                console.event(now, f"POWER CUT inside {cut.op.replace('_', ' ')} at {address:#08x}")
            seen_cuts = len(cutter.fired)
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
            for patch in device.twin.reported_log[seen_reports:]:
                info = reported_status(patch)
                if info.get("Status") == "downloading" and info.get("Downloaded"):
                    console.progress(info["Downloaded"] // 1024, len(image) // 1024, "download")
                    if console.tty:
                        continue
                shown = {k: v for k, v in info.items() if v not in (None, "None")}
                console.event(now, f"twin reported {shown}")
            seen_reports = len(device.twin.reported_log)

        async def narrate() -> None:
            while True:
                catch_up()
                await asyncio.sleep(0.005)

        narrator = asyncio.ensure_future(narrate())
        started = time.perf_counter()
        try:
            result = await device.run_until(applied(1), max_boots=20, on_boot=on_boot)
        finally:
            await asyncio.sleep(0.02)
            narrator.cancel()
            catch_up()
            console.close()
        wall = time.perf_counter() - started
        sent = sum(ev.bytes_sent for ev in server.events)
    wire = device.wire_bytes()

    installed = bytes(device.target.image)
    verified = result.reached and hashlib.sha256(installed).hexdigest() == digest
    print("\nsummary")
    print(f"  outcome               {'applied version 1' if result.reached else 'NOT applied'}")
    print(f"  image verified        {'yes: MCU holds the exact image' if verified else 'NO'}")
    print(f"  bytes read by agent   {wire} ({wire / len(image):.2f} x the image size)")
    print(f"  bytes sent by server  {sent} (includes what was in flight at each cut)")
    print(f"  power cuts survived   {result.cuts} (boots: {result.boots})")
    print(f"  simulated device time {result.device_time_s:.2f} s")
    print(f"  wall time             {wall:.2f} s ({result.device_time_s / wall:.0f} x faster)")
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
    parser.add_argument("-v", "--verbose", action="store_true", help="log the agent's steps")
    args = parser.parse_args(argv)
    if args.image_size < MIN_IMAGE_SIZE:
        parser.error(
            f"--image-size must be at least {MIN_IMAGE_SIZE} bytes for the scripted faults to land"
        )
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    scenario = Scenario(image_size=args.image_size, seed=args.seed)
    return asyncio.run(run(scenario, EventConsole(unit="KiB")))
