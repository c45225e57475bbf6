"""The W25Q128JV's SFDP space (5Ah): a JEDEC JESD216B header and Basic Flash Parameter Table.

Built field by field from the geometry and :mod:`sim.chip.timing` rather than
copied from a dump, so the table says exactly what the model does:

* 16 MiB (128 Mbit) density, 3-byte addresses, 256-byte pages, uniform 4 KiB erase
  with opcode 20h, erase types 4 KiB/20h, 32 KiB/52h, 64 KiB/D8h (JESD216B DWORDs 1, 2, 8, 9);
* typical erase/program/chip-erase times and their maximum multipliers (DWORDs 10, 11),
  rounded to the units the standard allows (e.g. 45 ms is encoded as 48 ms);
* suspend/resume 75h/7Ah, deep power-down B9h/ABh, BUSY in SR1 bit 0, reset 66h+99h,
  status registers written through 06h (non-volatile) or 50h (volatile) (DWORDs 12-16).

Deviation: the real part advertises 1-1-2, 1-2-2, 1-1-4 and 1-4-4 fast reads; the
model declines dual/quad I/O (its SPI seam has one data line each way), so those
bits are clear here. The space is 256 bytes; addresses wrap within it and unused
bytes read 0xFF.
"""

import math
import struct
from dataclasses import dataclass

from agent.w25q128jv import Op
from sim.chip.timing import DATASHEET, Timing

SFDP_SIZE = 256
BFPT_OFFSET = 0x80
BFPT_DWORDS = 16
SIGNATURE = b"SFDP"

_ERASE_UNITS_S = (1e-3, 16e-3, 128e-3, 1.0)  # DWORD 10 units, JESD216B 6.4.13
_PP_UNITS_S = (8e-6, 64e-6)  # DWORD 11 page program units
_BYTE_UNITS_S = (1e-6, 8e-6)  # DWORD 11 byte program units
_CHIP_UNITS_S = (16e-3, 256e-3, 4.0, 64.0)  # DWORD 11 chip erase units
_BYTE_FIRST_S, _BYTE_NEXT_S = 30e-6, 2.5e-6  # tBP1, tBP2 typical (datasheet 9.6)


def _encode_time(seconds: float, units: tuple[float, ...], count_bits: int) -> tuple[int, int]:
    """(count, unit index) with (count + 1) * unit closest to ``seconds`` in the finest unit."""
    limit = 1 << count_bits
    for index, unit in enumerate(units):
        count = max(1, round(seconds / unit))
        if count <= limit:
            return count - 1, index
    return limit - 1, len(units) - 1


def _decode_time(count: int, index: int, units: tuple[float, ...]) -> float:
    return (count + 1) * units[index]


def _multiplier(pairs: list[tuple[float, float]]) -> int:
    """The 4-bit M with max = 2 * (M + 1) * typical covering every (typical, max) pair."""
    need = max(mx / typ for typ, mx in pairs)
    return min(15, max(0, math.ceil(need / 2) - 1))


def build(timing: Timing = DATASHEET) -> bytes:
    """The 256-byte SFDP space of this part."""
    t = timing
    dw = [0] * BFPT_DWORDS
    # DWORD 1: 4 KiB erase everywhere (01b), write granularity >= 64 bytes, 20h, 3-byte only.
    dw[0] = 0xFF800000 | (Op.SECTOR_ERASE << 8) | 0xE0 | 0x04 | 0x01
    dw[1] = 128 * 1024 * 1024 - 1  # DWORD 2: density in bits minus one
    dw[2] = dw[3] = 0  # DWORDs 3-4: no 1-4-4 / 1-1-4 / 1-1-2 / 1-2-2 reads
    dw[4] = 0xFFFFFFEE  # DWORD 5: no 2-2-2, no 4-4-4
    dw[5] = dw[6] = 0x0000FFFF  # DWORDs 6-7: their (absent) parameters
    erase_types = (12, Op.SECTOR_ERASE, 15, Op.BLOCK32_ERASE)  # DWORD 8: 2^12/20h, 2^15/52h
    dw[7] = struct.unpack("<I", bytes(erase_types))[0]
    dw[8] = struct.unpack("<I", bytes((16, Op.BLOCK64_ERASE, 0, 0)))[0]  # DWORD 9: 2^16/D8h
    erases = (t.sector_erase, t.block32_erase, t.block64_erase)
    value = _multiplier([(e.typical_s, e.max_s) for e in erases])
    for i, row in enumerate(erases):  # DWORD 10: typical erase times, 7 bits each
        count, unit = _encode_time(row.typical_s, _ERASE_UNITS_S, 5)
        value |= (count | unit << 5) << (4 + 7 * i)
    dw[9] = value
    pp_count, pp_unit = _encode_time(t.page_program.typical_s, _PP_UNITS_S, 5)
    b1_count, b1_unit = _encode_time(_BYTE_FIRST_S, _BYTE_UNITS_S, 4)
    bn_count, bn_unit = _encode_time(_BYTE_NEXT_S, _BYTE_UNITS_S, 4)
    ce_count, ce_unit = _encode_time(t.chip_erase.typical_s, _CHIP_UNITS_S, 5)
    dw[10] = (  # DWORD 11
        _multiplier([(t.page_program.typical_s, t.page_program.max_s)])
        | 8 << 4  # page size 2^8
        | (pp_count | pp_unit << 5) << 8
        | (b1_count | b1_unit << 4) << 14
        | (bn_count | bn_unit << 4) << 19
        | (ce_count | ce_unit << 5) << 24
        | 1 << 31
    )
    sus_count, sus_unit = _encode_time(t.suspend.max_s, (128e-9, 1e-6, 8e-6, 64e-6), 5)
    dw[11] = (  # DWORD 12: suspend/resume supported (bit 31 = 0), latencies, intervals
        0x7
        | 0x7 << 4
        | 1 << 8
        | (sus_count | sus_unit << 5) << 13
        | (sus_count | sus_unit << 5) << 24
    )
    dw[12] = Op.RESUME | Op.SUSPEND << 8 | Op.RESUME << 16 | Op.SUSPEND << 24  # DWORD 13
    res_count, res_unit = _encode_time(t.release_power_down.max_s, (128e-9, 1e-6, 8e-6, 64e-6), 5)
    dw[13] = (  # DWORD 14: power-down enter/exit opcodes, exit latency, status polling
        Op.POWER_DOWN << 23
        | Op.RELEASE_POWER_DOWN << 15
        | (res_count | res_unit << 5) << 8
        | 0x01 << 2
        | 0x3
    )
    dw[14] = 0  # DWORD 15: no QE requirement modelled, no HOLD/RESET disable, no 0-4-4
    dw[15] = 0x08 | 0x80 | 0x10 << 8  # DWORD 16: 06h/50h status writes, 66h+99h reset
    header = SIGNATURE + bytes((0x06, 0x01, 0x00, 0xFF))
    param = bytes((0x00, 0x06, 0x01, BFPT_DWORDS)) + BFPT_OFFSET.to_bytes(3, "little") + b"\xff"
    table = struct.pack(f"<{BFPT_DWORDS}I", *dw)
    space = bytearray(b"\xff" * SFDP_SIZE)
    space[: len(header) + len(param)] = header + param
    space[BFPT_OFFSET : BFPT_OFFSET + len(table)] = table
    return bytes(space)


@dataclass(frozen=True)
class EraseType:
    """One erase type of the BFPT: unit size, opcode, typical and maximum time."""

    size: int
    opcode: int
    typical_s: float
    max_s: float


@dataclass(frozen=True)
class SfdpSummary:
    """What a driver would learn from the BFPT (JESD216B 6.4)."""

    revision: str
    density_bytes: int
    page_size: int
    erase_4k_opcode: int
    erase_types: tuple[EraseType, ...]
    page_program_typical_s: float
    page_program_max_s: float
    chip_erase_typical_s: float


def parse(space: bytes) -> SfdpSummary:
    """Decode the fields of ``space`` this project relies on; refuses a bad signature."""
    if space[:4] != SIGNATURE:
        raise ValueError(f"SFDP signature must be {SIGNATURE!r}, got {bytes(space[:4])!r}")
    pointer = int.from_bytes(space[12:15], "little")
    count = space[11]
    dw = struct.unpack_from(f"<{count}I", space, pointer)
    density = dw[1] + 1 >> 3 if not dw[1] >> 31 else 1 << ((dw[1] & 0x7FFFFFFF) - 3)
    mult = 2 * ((dw[9] & 0xF) + 1)
    types = []
    for i in range(4):
        exp, opcode = (
            (dw[7 + i // 2] >> (16 * (i % 2))) & 0xFF,
            dw[7 + i // 2] >> (16 * (i % 2) + 8) & 0xFF,
        )
        if not exp:
            continue
        bits = (dw[9] >> (4 + 7 * i)) & 0x7F
        typ = _decode_time(bits & 0x1F, bits >> 5, _ERASE_UNITS_S)
        types.append(EraseType(1 << exp, opcode, typ, typ * mult))
    pp = (dw[10] >> 8) & 0x3F
    pp_typ = _decode_time(pp & 0x1F, pp >> 5, _PP_UNITS_S)
    ce = (dw[10] >> 24) & 0x7F
    return SfdpSummary(
        revision=f"{space[5]}.{space[4]}",
        density_bytes=density,
        page_size=1 << ((dw[10] >> 4) & 0xF),
        erase_4k_opcode=(dw[0] >> 8) & 0xFF,
        erase_types=tuple(types),
        page_program_typical_s=pp_typ,
        page_program_max_s=pp_typ * 2 * ((dw[10] & 0xF) + 1),
        chip_erase_typical_s=_decode_time(ce & 0x1F, ce >> 5, _CHIP_UNITS_S),
    )
