"""littlefs's CTZ skip-list formulas as sim/explore/ctz.py reads them (littlefs SPEC.md,
LFS_TYPE_CTZSTRUCT): checked against files the real littlefs wrote, of sizes around
block boundaries, so the re-join shortcut's structural comparison reads what littlefs
reads."""

import random

import pytest

from agent.storage import Storage
from agent.w25q128jv import SECTOR
from sim.explore import ctz
from sim.ports.memory import MemoryFlash
from sim.ports.view import ArrayView

pytestmark = pytest.mark.sim


class _Last(ArrayView):
    """Notes the block of the last read."""

    last = -1

    def read(self, addr: int, n: int) -> bytes:
        self.last = addr // SECTOR
        return super().read(addr, n)


def _written(size: int) -> tuple[tuple[bytes, ...], int, bytes]:
    data = random.Random(size).randbytes(size)
    flash = MemoryFlash()
    storage = Storage.mount(flash)
    with storage.open_append("f.bin") as f:
        for at in range(0, size, 5000):  # appends and syncs, as the agent writes
            f.write(data[at : at + 5000])
            f.sync()
    storage.unmount()
    sectors = flash.memory.freeze()
    view = _Last(sectors=sectors)
    storage = Storage.mount(view, format_blank=False)
    with storage.open_read("f.bin") as f:
        f.read_at(size - 1, 1)  # lfs_ctz_find of the last byte reads the head block only
        head = view.last
    storage.unmount()
    return sectors, head, data


@pytest.mark.parametrize("size", [4097, 8184, 8185, 12276, 65536, 300 * 1024 + 7])
def test_the_first_pointer_chain_and_the_data_layout_give_littlefs_content(size):
    sectors, head, data = _written(size)
    last = ctz.last_index(size, SECTOR)
    blocks = ctz.chain(sectors, head, last)
    assert sorted(blocks) == list(range(last + 1))
    assert ctz.consistent(sectors, blocks, range(1, last + 1))
    rebuilt = b"".join(
        sectors[blocks[i]][ctz.POINTER * ctz.pointer_count(i) :] for i in range(last + 1)
    )[:size]
    assert rebuilt == data
    for pos in (0, SECTOR - 9, SECTOR - 8, SECTOR, size // 2, size - 1):
        i = ctz.index_of(pos, SECTOR)
        start = sum(SECTOR - ctz.POINTER * ctz.pointer_count(k) for k in range(i))
        assert start <= pos < start + SECTOR - ctz.POINTER * ctz.pointer_count(i)


def test_a_skip_pointer_that_disagrees_with_the_chain_is_seen():
    sectors, head, _ = _written(40 * 1024)
    last = ctz.last_index(40 * 1024, SECTOR)
    blocks = ctz.chain(sectors, head, last)
    index = next(i for i in range(last, 0, -1) if ctz.pointer_count(i) > 1)
    bad = bytearray(sectors[blocks[index]])
    bad[ctz.POINTER : 2 * ctz.POINTER] = (blocks[index - 1]).to_bytes(4, "little")
    broken = list(sectors)
    broken[blocks[index]] = bytes(bad)
    assert not ctz.consistent(tuple(broken), blocks, range(1, last + 1))
