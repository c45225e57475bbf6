"""The Winbond W25Q128JV as its datasheet defines it: every instruction, the status
register bits and the array geometry, each written once.

The driver (:mod:`agent.flash`) speaks these instructions and the chip model
(:mod:`sim.chip.w25q128`), the ports in front of it and the bench tools take them from
here, so an opcode or a sector size is never typed twice. Section numbers cite the
W25Q128JV datasheet (Rev H and later); ``docs/w25q128jv.md`` summarises it.
"""

from enum import IntEnum

# -- geometry (datasheet 6, "Block diagram"; 24-bit addresses) --------------------------

SIZE = 16 * 1024 * 1024  # 128 Mbit
PAGE = 256  # Page Program unit (8.2.13)
SECTOR = 4096  # Sector Erase unit
BLOCK_32K = 32 * 1024  # 32 KiB Block Erase unit
BLOCK_64K = 64 * 1024  # 64 KiB Block Erase unit
SECTORS = SIZE // SECTOR
PAGES = SIZE // PAGE


class Op(IntEnum):
    """Every instruction of the W25Q128JV (datasheet 8.1 instruction tables; 8.2 describes
    each one)."""

    WRITE_ENABLE = 0x06
    VOLATILE_SR_WRITE_ENABLE = 0x50
    WRITE_DISABLE = 0x04
    READ_STATUS1 = 0x05
    READ_STATUS2 = 0x35
    READ_STATUS3 = 0x15
    WRITE_STATUS1 = 0x01
    WRITE_STATUS2 = 0x31
    WRITE_STATUS3 = 0x11
    READ_DATA = 0x03  # up to 50 MHz (fR, 9.6)
    FAST_READ = 0x0B  # 8 dummy clocks
    FAST_READ_DUAL_OUTPUT = 0x3B
    FAST_READ_QUAD_OUTPUT = 0x6B
    FAST_READ_DUAL_IO = 0xBB
    FAST_READ_QUAD_IO = 0xEB
    SET_BURST_WITH_WRAP = 0x77
    PAGE_PROGRAM = 0x02
    QUAD_PAGE_PROGRAM = 0x32
    SECTOR_ERASE = 0x20  # 4 KiB
    BLOCK32_ERASE = 0x52  # 32 KiB
    BLOCK64_ERASE = 0xD8  # 64 KiB
    CHIP_ERASE = 0xC7
    CHIP_ERASE_ALT = 0x60  # the same instruction
    SUSPEND = 0x75  # erase/program suspend
    RESUME = 0x7A  # erase/program resume
    POWER_DOWN = 0xB9
    RELEASE_POWER_DOWN = 0xAB  # also reads the device ID
    MANUFACTURER_DEVICE_ID = 0x90
    MANUFACTURER_DEVICE_ID_DUAL_IO = 0x92
    MANUFACTURER_DEVICE_ID_QUAD_IO = 0x94
    UNIQUE_ID = 0x4B  # 4 dummy bytes, then 64 bits
    JEDEC_ID = 0x9F
    READ_SFDP = 0x5A  # 24-bit address, 8 dummy clocks (JESD216)
    ERASE_SECURITY = 0x44
    PROGRAM_SECURITY = 0x42
    READ_SECURITY = 0x48
    INDIVIDUAL_BLOCK_LOCK = 0x36
    INDIVIDUAL_BLOCK_UNLOCK = 0x39
    READ_BLOCK_LOCK = 0x3D
    GLOBAL_BLOCK_LOCK = 0x7E
    GLOBAL_BLOCK_UNLOCK = 0x98
    ENABLE_RESET = 0x66
    RESET_DEVICE = 0x99  # only right after ENABLE_RESET


READ_STATUS = (Op.READ_STATUS1, Op.READ_STATUS2, Op.READ_STATUS3)
WRITE_STATUS = (Op.WRITE_STATUS1, Op.WRITE_STATUS2, Op.WRITE_STATUS3)
ERASE_UNITS: dict[int, int] = {  # opcode -> the bytes it erases
    Op.SECTOR_ERASE: SECTOR,
    Op.BLOCK32_ERASE: BLOCK_32K,
    Op.BLOCK64_ERASE: BLOCK_64K,
}
CHIP_ERASES = frozenset({Op.CHIP_ERASE, Op.CHIP_ERASE_ALT})
PROGRAMS = frozenset({Op.PAGE_PROGRAM, Op.QUAD_PAGE_PROGRAM})

STATE_CHANGING = frozenset(
    PROGRAMS
    | set(ERASE_UNITS)
    | CHIP_ERASES
    | set(WRITE_STATUS)
    | {Op.PROGRAM_SECURITY, Op.ERASE_SECURITY}
)
"""Instructions that start an internal program, erase or status-register write cycle when
/CS rises (BUSY = 1 for tPP, tSE, tBE, tCE or tW; datasheet 8.2 and the AC table, 9.6).
A power cut can tear only these; every other instruction leaves the array alone."""

ADDRESSED = frozenset(
    PROGRAMS
    | set(ERASE_UNITS)
    | {
        Op.READ_DATA,
        Op.FAST_READ,
        Op.FAST_READ_DUAL_OUTPUT,
        Op.FAST_READ_QUAD_OUTPUT,
        Op.FAST_READ_DUAL_IO,
        Op.FAST_READ_QUAD_IO,
        Op.MANUFACTURER_DEVICE_ID,
        Op.READ_SFDP,
        Op.ERASE_SECURITY,
        Op.PROGRAM_SECURITY,
        Op.READ_SECURITY,
        Op.INDIVIDUAL_BLOCK_LOCK,
        Op.INDIVIDUAL_BLOCK_UNLOCK,
        Op.READ_BLOCK_LOCK,
    }
)
"""Instructions whose opcode is followed by a 24-bit address, most significant byte first."""

ALLOWED_WHILE_BUSY = frozenset({*READ_STATUS, Op.SUSPEND, Op.ENABLE_RESET, Op.RESET_DEVICE})
"""What the chip accepts while BUSY = 1 (datasheet 8.2: status reads, suspend, reset);
every other instruction is ignored."""


# Status register bits are IntEnums, not IntFlags: ``status & SR1.BUSY`` is then plain int
# arithmetic (an IntFlag operation runs Python code, about 50x slower on a polling loop).


class SR1(IntEnum):
    """Status Register-1 (datasheet 7.1)."""

    BUSY = 0x01  # read only: a program, erase or status write is in progress
    WEL = 0x02  # read only: write enable latch
    BP0 = 0x04
    BP1 = 0x08
    BP2 = 0x10
    TB = 0x20  # top/bottom protect
    SEC = 0x40  # sector/block protect
    SRP = 0x80  # status register protect


class SR2(IntEnum):
    """Status Register-2 (datasheet 7.1)."""

    SRL = 0x01  # status register lock (one-time when non-volatile)
    QE = 0x02  # quad enable
    LB1 = 0x08  # security register locks, one-time programmable
    LB2 = 0x10
    LB3 = 0x20
    CMP = 0x40  # complement protect
    SUS = 0x80  # read only: erase/program suspended


class SR3(IntEnum):
    """Status Register-3 (datasheet 7.1)."""

    WPS = 0x04  # write protect selection: individual block locks
    DRV0 = 0x20  # output driver strength
    DRV1 = 0x40
    HOLD_RST = 0x80  # /HOLD or /RESET function


__all__ = [
    "ADDRESSED",
    "ALLOWED_WHILE_BUSY",
    "BLOCK_32K",
    "BLOCK_64K",
    "CHIP_ERASES",
    "ERASE_UNITS",
    "PAGE",
    "PAGES",
    "PROGRAMS",
    "READ_STATUS",
    "SECTOR",
    "SECTORS",
    "SIZE",
    "SR1",
    "SR2",
    "SR3",
    "STATE_CHANGING",
    "WRITE_STATUS",
    "Op",
]
