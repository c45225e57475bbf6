"""``python -m sim bench ota``: a 4 MiB OTA end to end, with no faults and with k power cuts.

Prints wall time, simulated device time and their ratio (target: device time at
least 50 x wall time), bytes over the wire per image byte, and, with k cuts, the
bytes the agent read twice against the bound of k checkpoint intervals (plus, per
cut, the rest of the socket read in hand when the power went).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import random
import statistics
import time
from dataclasses import dataclass

from agent.download import DownloadPolicy
from agent.engine import Agent, AgentConfig
from agent.hosts import LOOPBACK_HOSTS
from agent.protocol import AgentFactory, Board, OtaAgent
from sim.cloud.blobserver import BlobServer
from sim.cloud.twin import publish_ota
from sim.device import SimDevice, applied
from sim.ports.aimed_cut import AimedCut
from sim.ports.memory import MemoryFlash
from sim.ports.memory_spi import MemorySpiPort

MiB = 1024 * 1024


@dataclass
class OtaRun:
    cuts: int
    wall_s: float
    device_s: float
    wire_bytes: int
    image_bytes: int
    verified: bool

    @property
    def redownloaded(self) -> int:
        return self.wire_bytes - self.image_bytes


async def ota_once(
    size: int, cuts: int, checkpoint: int, seed: int, *, bytearray_flash: bool = False
) -> OtaRun:
    """One OTA of ``size`` bytes with ``cuts`` power cuts spread over the download;
    ``bytearray_flash``: the agent's flash is a plain array (no SPI, no model)."""
    image = random.Random(seed).randbytes(size)
    config = AgentConfig(
        allow_http_loopback=True,
        storage_hosts=LOOPBACK_HOSTS,
        download=DownloadPolicy(checkpoint_bytes=checkpoint),
    )
    factory: AgentFactory = Agent.from_board
    if bytearray_flash:
        memory = MemoryFlash()

        def factory(board: Board) -> OtaAgent:
            spi = MemorySpiPort(memory)
            return Agent.from_board(dataclasses.replace(board, flash=memory, spi=spi))

    device = SimDevice(seed=seed, config=config, agent_factory=factory)
    cutter = device.aim_cuts() if cuts else None
    pages = size // 256
    plan = [AimedCut("page_program", nth=max(1, pages // (cuts + 1)), fraction=0.5)] * cuts

    def on_boot(dev: SimDevice) -> None:
        if cutter is not None and plan:
            cutter.arm(plan.pop())

    async with BlobServer(seed=seed) as server:
        server.put_blob("ota", "mcu.bin", image)
        publish_ota(
            device.twin,
            version=1,
            image=image,
            url=server.blob_url("ota", "mcu.bin"),
            sas=server.make_sas("ota"),
        )
        started = time.perf_counter()
        result = await device.run_until(applied(1), max_boots=cuts + 5, on_boot=on_boot)
        wall = time.perf_counter() - started
    wire = device.wire_bytes()
    verified = result.reached and hashlib.sha256(device.target.image).digest() == (
        hashlib.sha256(image).digest()
    )
    return OtaRun(result.cuts, wall, result.device_time_s, wire, size, verified)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim bench ota", description=__doc__)
    parser.add_argument("--size", type=int, default=4 * MiB, help="image bytes (default 4 MiB)")
    parser.add_argument("--cuts", type=int, default=5)
    parser.add_argument("--checkpoint", type=int, default=64 * 1024)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    runs = [
        asyncio.run(ota_once(args.size, 0, args.checkpoint, args.seed)),
        asyncio.run(ota_once(args.size, args.cuts, args.checkpoint, args.seed)),
    ]
    model = statistics.median(
        asyncio.run(ota_once(args.size, 0, args.checkpoint, args.seed)).wall_s for _ in range(3)
    )
    plain = statistics.median(
        asyncio.run(ota_once(args.size, 0, args.checkpoint, args.seed, bytearray_flash=True)).wall_s
        for _ in range(3)
    )
    print(f"OTA of {args.size / MiB:.2f} MiB, checkpoint every {args.checkpoint // 1024} KiB")
    print(
        f"{'cuts':>5} {'wall s':>8} {'device s':>9} {'device/wall':>12} "
        f"{'wire/image':>11} {'re-downloaded':>14} {'bound':>10} {'verified':>9}"
    )
    for run in runs:
        bound = run.cuts * args.checkpoint
        print(
            f"{run.cuts:>5} {run.wall_s:>8.2f} {run.device_s:>9.2f} "
            f"{run.device_s / run.wall_s:>11.0f}x {run.wire_bytes / run.image_bytes:>11.3f} "
            f"{run.redownloaded:>14} {bound:>10} {'yes' if run.verified else 'NO':>9}"
        )
    print("targets: device/wall >= 50x; re-downloaded <= cuts x checkpoint interval")
    print(
        f"whole OTA, median of 3: on the model {model:.2f} s, on a bytearray flash "
        f"{plain:.2f} s: {model / plain:.2f}x (target <= 2x: "
        f"{'met' if model / plain <= 2 else 'MISSED'})"
    )
    return 0 if all(r.verified for r in runs) else 1
