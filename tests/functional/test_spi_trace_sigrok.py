"""SPI traces decoded by a real logic-analyzer tool: sigrok-cli's spi and spiflash decoders.

A page program and a read through the project's NOR driver, logged by the simulated port
(with the chip's real MISO) and by :class:`sim.ports.trace.TracePort` in front of pyftdi on
the virtual FT232H, are written as VCD and decoded by ``sigrok-cli -P spi,spiflash``
(Debian package sigrok-cli; ./bootstrap installs it). The decoded commands, addresses and
data must be what the driver sent and the chip answered (W25Q128JV datasheet 8.2.6 Read
Data 03h, 8.2.13 Page Program 02h, 8.2.29 JEDEC ID 9Fh).
"""

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.flash import SpiFlash
from sim.ports.model import SimSpiPort
from sim.ports.trace import TracePort, write_vcd

pytestmark = pytest.mark.sim

SIGROK = shutil.which("sigrok-cli")
NO_SIGROK = "sigrok-cli is not installed (Debian: apt-get install sigrok-cli; ./bootstrap does it)"
# CI must decode: there a missing sigrok-cli is a failure (./bootstrap installs it), not a skip
requires_sigrok = pytest.mark.skipif(SIGROK is None and not os.environ.get("CI"), reason=NO_SIGROK)
ADDRESS = 0x012300  # page-aligned, inside sector 0x012000
DATA = random.Random("trace").randbytes(256)


def decode(vcd: Path, *, mode: int = 0) -> list[str]:
    """sigrok-cli's spiflash annotations for ``vcd``, one per line, without the prefix."""
    if SIGROK is None:
        pytest.fail(NO_SIGROK)
    cpol = cpha = 1 if mode == 3 else 0
    proc = subprocess.run(
        [
            str(SIGROK),
            "-I",
            "vcd:compress=1000",
            "-i",
            str(vcd),
            "-P",
            f"spi:clk=sck:mosi=mosi:miso=miso:cs=cs:cpol={cpol}:cpha={cpha},spiflash",
            "-A",
            "spiflash",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [line.split(": ", 1)[1] for line in proc.stdout.splitlines() if ": " in line]


def exercise(flash: SpiFlash) -> bytes:
    flash.erase(ADDRESS & ~0xFFF, 4096)
    flash.program(ADDRESS, DATA)
    return flash.read(ADDRESS + 16, 64)


def hexes(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def check(lines: list[str], back: bytes) -> None:
    assert back == DATA[16:80]
    programs = [line for line in lines if line.startswith("Page program")]
    assert programs == [f"Page program (addr 0x{ADDRESS:06x}, 256 bytes): {hexes(DATA)}"]
    reads = [line for line in lines if line.startswith("Read data")]
    assert reads[-1] == f"Read data (addr 0x{ADDRESS + 16:06x}, 64 bytes): {hexes(back)}"
    assert f"Erase sector {ADDRESS & ~0xFFF} (0x{ADDRESS & ~0xFFF:06x})" in lines
    assert lines.count("Command: Write enable (WREN)") >= 2  # before the erase and the program


@requires_sigrok
@pytest.mark.parametrize("mode", [0, 3])
def test_sigrok_decodes_a_simulated_page_program_and_read(w25q128, tmp_path, mode):
    port = SimSpiPort(w25q128, frequency=8e6, log=True)
    back = exercise(SpiFlash(port, w25q128.clock))
    assert port.log is not None
    write_vcd(port.log, tmp_path / "sim.vcd", mode=mode)
    lines = decode(tmp_path / "sim.vcd", mode=mode)
    check(lines, back)
    assert "Command: Read identification (RDID)" in lines  # the driver's probe, EF 40 18
    ids = [line for line in lines if re.match(r"(Manufacturer ID|Memory type|Device ID):", line)]
    assert ids[:3] == ["Manufacturer ID: 0xef", "Memory type: 0x40", "Device ID: 0x18"]


@requires_sigrok
def test_sigrok_decodes_the_virtual_ft232h_traffic(tmp_path):
    """The bench path: pyftdi's own SpiPort on the virtual FT232H, traced in front."""
    from hil.port import open_bench
    from hil.rig import Rig
    from sim.harness.packaged import rig_path

    with open_bench(Rig.load(rig_path("virtual"))) as bench:
        port = TracePort(bench.port, bench.clock)
        back = exercise(SpiFlash(port, bench.clock))
    write_vcd(port.log, tmp_path / "ft232h.vcd")
    check(decode(tmp_path / "ft232h.vcd"), back)


def test_the_log_keeps_data_up_to_its_bound(w25q128):
    """The log keeps at most ``log_bytes`` each way, counts every byte clocked."""
    port = SimSpiPort(w25q128, frequency=8e6, log=True, log_bytes=8)
    got = port.exchange(b"\x03\x00\x00\x00", 300)
    (tx,) = port.log or []
    assert (tx.opcode, tx.address, tx.out_len, tx.in_len, tx.clocked) == (3, 0, 4, 300, 304)
    assert tx.mosi == b"\x03\x00\x00\x00\xff\xff\xff\xff"
    assert tx.miso[4:] == got[:4] and tx.truncated
    with pytest.raises(ValueError, match="log_bytes"):
        SimSpiPort(w25q128, log=True, log_bytes=-1)
