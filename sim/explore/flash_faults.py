"""Faults of the flash itself that a scenario can ask for: bits stuck at 0 and bits that
rot after they were verified (datasheet 9.6 endurance and data retention)."""

from __future__ import annotations

from sim.chip.sectors import SectorArray
from sim.chip.w25q128 import W25Q128


def stick_bits(chip: W25Q128, bits: tuple[int, ...] | list[int]) -> None:
    """Stick chip bits (``byte * 8 + bit``, bit 0 = MSB) at 0: erases leave them 0, as a
    cell worn past its endurance does (datasheet 9.6: 100,000 program/erase cycles)."""
    store = chip._store  # the model keeps stuck bits per sector; it has no setter of its own
    for bit in bits:
        byte, mask = bit >> 3, 0x80 >> (bit & 7)
        sector = store.stuck.setdefault(byte // 4096, {})
        sector[byte % 4096] = sector.get(byte % 4096, 0) | mask


ROT_NEEDLE = 48  # bytes of image either side of a rotting bit that locate it on the chip


def rot_image_bits(array: SectorArray, image: bytes, bits: tuple[int, ...]) -> int:
    """Flip image bits (``byte * 8 + bit`` offsets into ``image``, bit 0 = MSB) wherever the
    flash ``array`` (:attr:`sim.chip.w25q128.W25Q128.array`, the model's test backdoor: no
    program or erase is counted) holds that stretch of the image; returns how many flash
    bits flipped.

    A retention or read-disturb error (datasheet 9.6 data retention; JEDEC JESD22-A117):
    the cell changes after it was programmed and verified, with no program or erase, so
    nothing but reading the image back before use can see it. littlefs checks its
    metadata with CRCs but not file data, so the file system stays healthy. The image
    is found by content (a run of bytes around the bit) because littlefs decides where
    file data goes; a stretch that crosses a block's skip-list pointers is tried from
    the other side.
    """
    flipped = 0
    for bit in bits:
        byte, mask = bit >> 3, 0x80 >> (bit & 7)
        for lo in (max(0, byte - ROT_NEEDLE + 1), byte):
            needle = image[lo : lo + ROT_NEEDLE]
            where, hits = array.find(needle), 0
            while where >= 0:
                array[where + byte - lo] ^= mask
                hits += 1
                where = array.find(needle, where + len(needle))
            if hits:
                flipped += hits
                break
    return flipped
