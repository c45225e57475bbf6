"""``python -m sim bench flash``: the flash driver over the chip model vs over a bytearray.

Writes a random image through :class:`agent.flash.SpiFlash` (4 KiB sector erases,
then page programs) and reads it back, first over :class:`sim.ports.ram.RamSpiPort`
(the baseline: no timing, no model), then over ``SimSpiPort(W25Q128)``. Prints wall
time, the simulated device time, and the two ratios issue 2 sets targets for:
device time / wall time >= 100, model wall / bytearray wall <= 3. Figures only:
nothing here asserts on time. ``--profile`` prints where the model leg spends it.
"""

import argparse
import cProfile
import io
import pstats
import random
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.flash import SpiFlash
from agent.spi import SpiPort
from sim.clock import VirtualClock
from sim.ports.ram import RamSpiPort

MiB = 1024 * 1024
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 10**6, "mb": 10**6, "mib": MiB}
DEVICE_PER_WALL_TARGET = 100.0
MODEL_PER_RAM_TARGET = 3.0


def parse_size(text: str) -> int:
    """``4MiB``, ``512KiB``, ``65536``: a positive whole number of 4 KiB sectors."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    unit = match and _UNITS.get(match.group(2).lower())
    if not match or unit is None:
        raise argparse.ArgumentTypeError(f"size {text!r} is not like 4MiB, 512KiB or 65536")
    size = int(match.group(1)) * unit
    if size <= 0 or size % 4096 or size > 16 * MiB:
        raise argparse.ArgumentTypeError(
            f"size {text!r} must be whole 4 KiB sectors, 4 KiB..16 MiB"
        )
    return size


@dataclass(frozen=True)
class Leg:
    """One port's figures: wall seconds writing and reading, simulated seconds in all."""

    label: str
    write_s: float
    read_s: float
    device_s: float
    intact: bool

    @property
    def wall_s(self) -> float:
        return self.write_s + self.read_s


def run_leg(label: str, port: SpiPort, clock: VirtualClock, image: bytes) -> Leg:
    """Erase sector by sector, program the image, read it back; time each phase."""
    flash = SpiFlash(port, clock)
    device_start = clock.monotonic()
    start = time.perf_counter()
    for address in range(0, len(image), flash.sector_size):
        flash.erase_sector(address)
    flash.program(0, image)
    written = time.perf_counter()
    back = flash.read(0, len(image))
    done = time.perf_counter()
    return Leg(
        label, written - start, done - written, clock.monotonic() - device_start, back == image
    )


class BytearrayFlash:
    """Bare littlefs's baseline: a bytearray with NOR rules behind the Flash seam."""

    sector_size = 4096

    def __init__(self, size: int = 16 * MiB) -> None:
        self.size = size
        self.memory = bytearray(b"\xff" * size)

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.memory[addr : addr + n])

    def program(self, addr: int, data: bytes) -> None:
        n, old = len(data), int.from_bytes(self.memory[addr : addr + len(data)], "big")
        self.memory[addr : addr + n] = (old & int.from_bytes(data, "big")).to_bytes(n, "big")

    def erase(self, addr: int, length: int) -> None:
        self.memory[addr : addr + length] = b"\xff" * length


def littlefs_pattern(flash: object, image: bytes) -> float:
    """Wall seconds of littlefs's own access pattern (16-byte reads through a 256-byte
    cache, a read-back after each program): the agent's write of ``image`` with a sync
    every 64 KiB, then its verify read in 4 KiB chunks."""
    from agent.storage import Storage

    started = time.perf_counter()
    storage = Storage.mount(flash)  # type: ignore[arg-type]
    with storage.open_append("img.bin") as f:
        for at in range(0, len(image), 16 * 1024):
            f.write(image[at : at + 16 * 1024])
            if (at + 16 * 1024) % (64 * 1024) == 0:
                f.sync()
    back = bytearray()
    with storage.open_read("img.bin") as reader:
        while chunk := reader.read(4096):
            back += chunk
    storage.unmount()
    if back != image:
        raise RuntimeError("littlefs read back other bytes")
    return time.perf_counter() - started


def _model_port(clock: VirtualClock, frequency: float, timing: str, seed: int) -> SpiPort:
    from sim.chip.w25q128 import W25Q128
    from sim.ports.model import SimSpiPort

    return SimSpiPort(W25Q128(clock=clock, seed=seed, timing=timing), frequency=frequency)


def _profiled(run: Callable[[], Leg], lines: int) -> Leg:
    profiler = cProfile.Profile()
    leg = profiler.runcall(run)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(lines)
    print(text.getvalue())
    return leg


def _median(legs: list[Leg]) -> Leg:
    return sorted(legs, key=lambda leg: leg.wall_s)[len(legs) // 2]


def _table(legs: list[Leg]) -> str:
    heads = ("write s", "read s", "wall s", "device s", "device/wall")
    rows = [
        f"{'port':<30} "
        + " ".join(f"{h:>{w}}" for h, w in zip(heads, (9, 8, 8, 9, 12), strict=True))
    ]
    for leg in legs:
        ratio = f"{leg.device_s / leg.wall_s:11.1f}x" if leg.device_s else f"{'-':>12}"
        rows.append(
            f"{leg.label:<30} {leg.write_s:9.3f} {leg.read_s:8.3f} {leg.wall_s:8.3f} "
            f"{leg.device_s:9.3f} {ratio}"
        )
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim bench flash",
        description="Write and read back an image through the flash driver: "
        "the chip model against a bytearray port.",
    )
    parser.add_argument(
        "--size", type=parse_size, default=4 * MiB, help="image size (default 4MiB)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the image and the chip")
    parser.add_argument("--frequency", type=float, default=30e6, help="SCK in Hz (default 30e6)")
    parser.add_argument("--timing", choices=("typical", "max", "random"), default="typical")
    parser.add_argument("--runs", type=int, default=3, help="median of N runs (default 3)")
    parser.add_argument("--profile", action="store_true", help="cProfile the model leg")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")

    image = random.Random(args.seed).randbytes(args.size)
    print(
        f"flash bench: {args.size / MiB:g} MiB random image (seed {args.seed}), SCK "
        f"{args.frequency / 1e6:g} MHz: 4 KiB erases + page programs, then read back; "
        f"median of {args.runs}"
    )

    def ram() -> Leg:
        clock = VirtualClock()
        port = RamSpiPort(frequency=args.frequency)
        return run_leg("driver + bytearray (RamSpiPort)", port, clock, image)

    def model() -> Leg:
        clock = VirtualClock()
        port = _model_port(clock, args.frequency, args.timing, args.seed)
        return run_leg(f"driver + W25Q128 ({args.timing})", port, clock, image)

    legs = [_median([ram() for _ in range(args.runs)])]
    try:
        if args.profile:
            legs.append(_profiled(model, 25))
        else:
            legs.append(_median([model() for _ in range(args.runs)]))
    except ImportError as missing:
        print(f"(chip model unavailable: {missing}; only the baseline ran)")
    print(_table(legs))
    if len(legs) == 2:
        base, chip = legs
        speed, slowdown = chip.device_s / chip.wall_s, chip.wall_s / base.wall_s
        print(
            f"device time / wall time: {speed:.0f}x (target >= {DEVICE_PER_WALL_TARGET:g}x: "
            f"{'met' if speed >= DEVICE_PER_WALL_TARGET else 'MISSED'})\n"
            f"model wall / bytearray wall: {slowdown:.2f}x (target <= {MODEL_PER_RAM_TARGET:g}x: "
            f"{'met' if slowdown <= MODEL_PER_RAM_TARGET else 'MISSED'})"
        )
    bare = statistics.median(littlefs_pattern(BytearrayFlash(), image) for _ in range(args.runs))
    models = []
    for _ in range(args.runs):
        clock = VirtualClock()
        port = _model_port(clock, args.frequency, args.timing, args.seed)
        models.append(littlefs_pattern(SpiFlash(port, clock), image))
    on_model = statistics.median(models)
    print(
        f"littlefs pattern ({args.size / MiB:g} MiB written with a sync every 64 KiB, read "
        f"back in 4 KiB), median of {args.runs}: bare littlefs on a bytearray {bare:.3f} s, "
        f"on driver + model {on_model:.3f} s: {on_model / bare:.2f}x (target <= 2x: "
        f"{'met' if on_model / bare <= 2 else 'MISSED'})"
    )
    broken = [leg.label for leg in legs if not leg.intact]
    if broken:
        print(f"READ-BACK MISMATCH on: {', '.join(broken)}")
        return 1
    return 0
