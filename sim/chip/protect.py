"""Write protection of the W25Q128JV: the BP/TB/SEC/CMP table and the SRP/SRL lock.

Datasheet 7.1.3-7.1.6 (status register bits) and 7.1.15 / Table "Status Register
Memory Protection (WPS=0, CMP=0)": BP2..BP0 select a power-of-two fraction of the
array (1/64 .. 1/2, or all), TB puts it at the bottom instead of the top, SEC
shrinks it to 4..32 KiB sectors, CMP=1 protects the complement instead.
"""

from agent.w25q128jv import SECTOR, SIZE, SR1, SR2


def protected_range(sr1: int, sr2: int, size: int = SIZE) -> tuple[int, int]:
    """The protected byte range ``[start, end)`` selected by SR1/SR2 (WPS=0).

    With CMP=1 the complement of the CMP=0 range is protected; both are contiguous
    because the CMP=0 range always touches one end of the array. SEC=1 with
    BP=1xx gives 32 KiB (rows ``1 x 1 0 x`` of the table; BP=110 is read the same
    way, the datasheet leaves it out). ``(0, 0)`` means nothing is protected.
    """
    bp = (sr1 >> 2) & 0x7
    top = not sr1 & SR1.TB
    if bp == 0:
        length = 0
    elif bp == 7:
        length = size
    elif sr1 & SR1.SEC:
        length = min(SECTOR << (bp - 1), 8 * SECTOR)
    else:
        length = size >> (7 - bp)  # BP=1: 1/64 (256 KiB) .. BP=6: 1/2
    start, end = (size - length, size) if top else (0, length)
    if not sr2 & SR2.CMP:
        return (start, end) if length else (0, 0)
    if length == 0:
        return (0, size)
    if length == size:
        return (0, 0)
    return (0, start) if top else (end, size)


def status_locked(sr1: int, sr2: int, wp_high: bool, wp_enabled: bool) -> bool:
    """Whether Write Status Register commands are refused (datasheet 7.1.7, 7.1.8).

    SRL=1: locked (until power-off if set volatile, for ever if set non-volatile).
    SRP=1 with /WP driven low: hardware protected. ``wp_enabled`` is False when QE=1
    turns /WP into IO2, which removes hardware protection (datasheet 4.3).
    """
    if sr2 & SR2.SRL:
        return True
    return bool(sr1 & SR1.SRP) and wp_enabled and not wp_high
