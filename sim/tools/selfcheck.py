"""``python -m sim selfcheck``: the simulated W25Q128JV's identity, timing table and a round trip.

Talks to the chip only through :class:`sim.ports.model.SimSpiPort`, as a driver would, and times
a page program and a sector erase on the virtual clock (BUSY polled every 10 µs).
"""

import argparse
import sys

from agent.w25q128jv import SR1, Op
from sim.chip import sfdp
from sim.chip.w25q128 import W25Q128
from sim.ports.model import SimSpiPort

_POLL_S = 10e-6


def _wait_ready(port: SimSpiPort) -> float:
    """Poll SR1 BUSY (05h) until clear; return the virtual seconds it took."""
    clock = port.chip.clock
    t0 = clock.monotonic()
    while port.exchange(bytes((Op.READ_STATUS1,)), 1)[0] & SR1.BUSY:
        clock.sleep(_POLL_S)
    return clock.monotonic() - t0


def _command(opcode: int, address: int) -> bytes:
    return bytes((opcode,)) + address.to_bytes(3, "big")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim selfcheck", description=__doc__)
    parser.add_argument("--seed", type=int, default=0, help="the chip's seed (default 0)")
    parser.add_argument(
        "--timing", choices=("typical", "max", "random"), default="typical", help="busy times"
    )
    args = parser.parse_args(argv)
    chip = W25Q128(seed=args.seed, timing=args.timing)
    port = SimSpiPort(chip)

    jedec = port.exchange(bytes((Op.JEDEC_ID,)), 3)
    mfr_dev = port.exchange(_command(Op.MANUFACTURER_DEVICE_ID, 0), 2)
    uid = port.exchange(bytes((Op.UNIQUE_ID,)) + bytes(4), 8)
    summary = sfdp.parse(port.exchange(_command(Op.READ_SFDP, 0) + b"\x00", sfdp.SFDP_SIZE))
    print("W25Q128JV model (sim.chip.w25q128)")
    print(f"  JEDEC ID (9Fh)          {jedec.hex(' ').upper()}")
    print(f"  manufacturer/device 90h {mfr_dev.hex(' ').upper()}")
    print(f"  unique ID (4Bh)         {uid.hex().upper()}  (seed {args.seed})")
    print(
        f"  SFDP {summary.revision}: {summary.density_bytes // (1024 * 1024)} MiB, "
        f"page {summary.page_size} B, 4K erase {summary.erase_4k_opcode:02X}h"
    )
    for et in summary.erase_types:
        print(
            f"    erase {et.size // 1024:>3} KiB {et.opcode:02X}h  "
            f"typ {et.typical_s * 1e3:8.1f} ms  max {et.max_s * 1e3:8.1f} ms (SFDP units)"
        )
    print(
        f"    page program typ {summary.page_program_typical_s * 1e3:.3f} ms, "
        f"chip erase typ {summary.chip_erase_typical_s:.0f} s"
    )
    print("\ntiming table (datasheet 9.6)        typical          max")
    for name, row in chip.table.rows():
        print(f"  {name:<22} {row.typical_s * 1e3:12.3f} ms {row.max_s * 1e3:12.3f} ms")

    data = bytes(range(256))
    port.exchange(bytes((Op.WRITE_ENABLE,)))
    port.exchange(_command(Op.PAGE_PROGRAM, 0x1000) + data)
    t_program = _wait_ready(port)
    programmed = port.exchange(_command(Op.READ_DATA, 0x1000), 256) == data
    port.exchange(bytes((Op.WRITE_ENABLE,)))
    port.exchange(_command(Op.SECTOR_ERASE, 0x1000))
    t_erase = _wait_ready(port)
    erased = port.exchange(_command(Op.READ_DATA, 0x1000), 256) == b"\xff" * 256
    print(f"\nround trip ({args.timing} timing, virtual clock, BUSY polled every 10 µs):")
    verdict = {True: "ok", False: "FAILED"}
    print(f"  page program 256 B   {t_program * 1e3:8.3f} ms   read back {verdict[programmed]}")
    print(f"  sector erase 4 KiB   {t_erase * 1e3:8.3f} ms   read back {verdict[erased]}")
    print(
        f"  virtual time {chip.clock.monotonic() * 1e3:.3f} ms; counters {dict(chip.counters.ops)}"
    )
    return 0 if programmed and erased else 1


if __name__ == "__main__":
    sys.exit(main())
