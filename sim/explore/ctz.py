"""littlefs's CTZ skip-lists read from raw sectors (littlefs SPEC.md, ``LFS_TYPE_CTZSTRUCT``;
DESIGN.md, "CTZ skip-lists"), for the re-join shortcut's file comparison only.

A file of ``size`` bytes lives in blocks indexed 0 (its first) to :func:`last_index`
(its head, which its directory entry names). Block *i* > 0 begins with ``ctz(i) + 1``
little-endian 32-bit pointers, pointer *j* naming block *i* - 2\\ :sup:`j`; littlefs
finds any block by walking these back from the head (``lfs_ctz_find``). Whichever
pointers a walk takes, it lands on the right block as long as every pointer agrees with
the chain of first pointers: :func:`chain` follows that chain and checks the others
(:func:`consistent`). The formulas are littlefs's own (``lfs_ctz_index``, ``lfs_ctz``);
``tests/unit/test_ctz.py`` checks them against files littlefs wrote.
"""

from __future__ import annotations

POINTER = 4  # bytes per pointer (lfs_block_t, little-endian)


def last_index(size: int, block_size: int) -> int:
    """Index of the block holding a ``size``-byte file's last byte (``lfs_ctz_index``)."""
    return index_of(size - 1, block_size)


def index_of(pos: int, block_size: int) -> int:
    """Index of the block holding file position ``pos`` (``lfs_ctz_index``)."""
    b = block_size - 2 * POINTER
    i = pos // b
    if i == 0:
        return 0
    return (pos - POINTER * ((i - 1).bit_count() + 2)) // b


def pointer_count(index: int) -> int:
    """Pointers at the start of block ``index``: ``ctz(index) + 1`` (none in block 0)."""
    return 0 if index == 0 else (index & -index).bit_length()


def pointers(block: bytes, index: int) -> list[int]:
    """The blocks block ``index`` points to: pointer j names index ``index - 2**j``."""
    return [
        int.from_bytes(block[POINTER * j : POINTER * (j + 1)], "little")
        for j in range(pointer_count(index))
    ]


def chain(sectors: tuple[bytes, ...], head: int, last: int, *, stop: int = 0) -> dict[int, int]:
    """index -> block from ``last`` (at ``head``) down to ``stop``, by first pointers; a
    pointer outside ``sectors`` ends it early (the caller sees the missing indices)."""
    blocks = {last: head}
    block = head
    for index in range(last, stop, -1):
        block = pointers(sectors[block], index)[0]
        if block >= len(sectors):
            break
        blocks[index - 1] = block
    return blocks


def consistent(sectors: tuple[bytes, ...], blocks: dict[int, int], indices: range) -> bool:
    """Whether every pointer of the blocks at ``indices`` names the block ``blocks`` has
    at its target index (a target missing from ``blocks`` is a disagreement)."""
    for index in indices:
        for j, target in enumerate(pointers(sectors[blocks[index]], index)):
            if blocks.get(index - (1 << j)) != target:
                return False
    return True
