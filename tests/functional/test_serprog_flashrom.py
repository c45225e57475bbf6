"""flashrom, a client written against real chips, drives the simulated W25Q128JV.

The bridge (:mod:`sim.tools.serprog`) serves the chip model over flashrom's serprog
protocol on a loopback port; the real ``flashrom -p serprog:ip=127.0.0.1:PORT``
probes, reads, writes (erase + program + verify) and verifies it (issue 2, section 5).
flashrom's own rules (its chip table names this part "W25Q128.V"; a write reads the
chip, erases what must be erased, programs, then reads back) are the specification.
"""

import contextlib
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.tools.serprog import SerprogServer

pytestmark = pytest.mark.sim


@pytest.fixture
def chip(w25q128):
    """The plugin's fresh W25Q128 model (typical timing, seed 0, virtual clock)."""
    return w25q128


@pytest.fixture
def clock(w25q128):
    return w25q128.clock


@pytest.fixture
def port(w25q128_port):
    """The chip behind pyftdi's ``SpiPort`` interface at 30 MHz SCK."""
    return w25q128_port


SIZE = 16 * 1024 * 1024
REPO = Path(__file__).resolve().parents[2]
FLASHROM_TIMEOUT_S = 600  # a hung flashrom must not hang the suite; nothing asserts on time


def _find_flashrom() -> str | None:
    return shutil.which("flashrom") or next(
        (p for p in ("/usr/sbin/flashrom", "/sbin/flashrom") if os.access(p, os.X_OK)), None
    )


FLASHROM = _find_flashrom()
requires_flashrom = pytest.mark.skipif(
    FLASHROM is None,
    reason="flashrom is not installed (Debian: apt-get install flashrom; ./bootstrap does it)",
)


def flashrom(address: tuple[str, int], *args: str) -> str:
    """Run flashrom against the bridge; return its output, failing with it on error."""
    host, port = address
    command = [FLASHROM, "-p", f"serprog:ip={host}:{port}", *args]
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=FLASHROM_TIMEOUT_S, check=False
    )
    elapsed = time.perf_counter() - started
    print(f"flashrom {' '.join(args) or '(probe)'}: {elapsed:.1f} s wall")
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"flashrom {args} failed ({done.returncode}):\n{output}"
    return output


@pytest.fixture
def bridge(port, clock):
    with SerprogServer(port, clock=clock) as server:
        yield server


@contextlib.contextmanager
def serprog_cli(*args: str) -> Iterator[tuple[subprocess.Popen[str], tuple[str, int]]]:
    """``python -m sim serprog --listen 127.0.0.1:0 ARGS`` as a child: it and its address."""
    command = [sys.executable, "-m", "sim", "serprog", "--listen", "127.0.0.1:0", *args]
    server = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = server.stdout.readline()
        match = re.search(r"listening on ([\d.]+):(\d+)", line)
        assert match, f"no address in {line!r}; stderr: {server.stderr.read()}"
        yield server, (match[1], int(match[2]))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()
        server.stderr.close()


def layout(tmp_path: Path, regions: dict[str, tuple[int, int]]) -> Path:
    """A flashrom layout file: ``start:end name`` per line, inclusive hex addresses."""
    path = tmp_path / "layout.txt"
    path.write_text("".join(f"{a:08x}:{b:08x} {name}\n" for name, (a, b) in regions.items()))
    return path


@requires_flashrom
def test_flashrom_detects_the_chip_as_w25q128v(bridge):
    """flashrom's chip table: JEDEC EF 40 18 on SPI is Winbond "W25Q128.V", 16384 kB."""
    output = flashrom(bridge.address)
    assert 'Found Winbond flash chip "W25Q128.V" (16384 kB, SPI) on serprog.' in output
    assert len(re.findall(r"Found .* flash chip", output)) == 1, output


@requires_flashrom
def test_flashrom_reads_an_erased_chip_as_all_ff(bridge, chip, tmp_path):
    """Datasheet 8.2.6 Read Data (03h) over the whole array; a new chip is erased (FFh)."""
    dump = tmp_path / "dump.bin"
    flashrom(bridge.address, "-r", str(dump))
    data = dump.read_bytes()
    assert len(data) == SIZE
    assert data == bytes(chip.array)
    assert data.count(0xFF) == SIZE


@requires_flashrom
def test_flashrom_writes_and_verifies_a_random_16_mib_image(bridge, chip, clock, tmp_path):
    """Issue 2 section 5: write (with flashrom's read-back verify) then ``-v`` a random image."""
    image = random.Random(2).randbytes(SIZE)
    path = tmp_path / "image.bin"
    path.write_bytes(image)
    written = flashrom(bridge.address, "-w", str(path))
    assert "Verifying flash... VERIFIED." in written
    assert bytes(chip.array) == image
    print(f"16 MiB write: {clock.monotonic():.1f} s simulated device time")
    verified = flashrom(bridge.address, "-v", str(path))
    assert "VERIFIED." in verified


@requires_flashrom
def test_flashrom_erases_before_reprogramming_a_region(bridge, chip, tmp_path):
    """NOR programs only clear bits (datasheet 8.2.13): new data over old needs an erase.

    Two random images written in turn to the first 64 KiB: the second write must
    erase (20h/52h/D8h) before programming, or flashrom's verify fails.
    """
    regions = layout(tmp_path, {"head": (0, 0xFFFF), "rest": (0x10000, SIZE - 1)})
    rng = random.Random(3)
    erases_in_head = []
    for n in range(2):
        image = rng.randbytes(0x10000) + b"\xff" * (SIZE - 0x10000)
        path = tmp_path / f"image{n}.bin"
        path.write_bytes(image)
        output = flashrom(bridge.address, "-l", str(regions), "-i", "head", "-N", "-w", str(path))
        assert "VERIFIED." in output
        assert bytes(chip.array[:0x10000]) == image[:0x10000]
        erases_in_head.append(sum(chip.counters.sector_erases[:16]))
    assert erases_in_head[0] == 0  # erased (FFh) flash needs no erase before programming
    assert erases_in_head[1] >= 16  # every sector of the head held random data
    assert sum(chip.counters.sector_erases[16:]) == 0
    assert bytes(chip.array[0x10000:]).count(0xFF) == SIZE - 0x10000


@requires_flashrom
def test_cli_serves_flashrom_and_keeps_the_image_file(tmp_path):
    """``python -m sim serprog --image FILE`` persists the array when it exits."""
    image_file = tmp_path / "chip.bin"
    data = random.Random(4).randbytes(0x1000) + b"\xff" * (SIZE - 0x1000)
    (tmp_path / "data.bin").write_bytes(data)
    regions = layout(tmp_path, {"first": (0, 0xFFF), "rest": (0x1000, SIZE - 1)})
    with serprog_cli("--image", str(image_file), "--once") as (server, address):
        output = flashrom(
            address, "-l", str(regions), "-i", "first", "-N", "-w", str(tmp_path / "data.bin")
        )
        assert "VERIFIED." in output
        assert server.wait(timeout=60) == 0
    assert image_file.read_bytes() == data


@requires_flashrom
def test_cli_flushes_the_image_when_terminated(tmp_path):
    """SIGTERM stops ``python -m sim serprog`` cleanly: exit 0, image and registers saved.

    The chip keeps non-volatile registers beside the image (``FILE.nv.json``); they are
    written when the chip is closed, which proves the exit path flushed it.
    """
    image_file = tmp_path / "chip.bin"
    with serprog_cli("--image", str(image_file)) as (server, address):
        assert "W25Q128.V" in flashrom(address)
        server.terminate()
        assert server.wait(timeout=60) == 0
    assert image_file.stat().st_size == SIZE
    assert (tmp_path / "chip.bin.nv.json").exists()
