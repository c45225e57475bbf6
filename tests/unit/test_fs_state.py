"""The file system's logical content, as the re-join shortcut compares it
(sim/explore/fs_state.py; issue 11 "cut runs that cost the cut, not the image"): a file
whose head, size and sectors are unchanged reuses a clean checkpoint's reading, and any
change to one of its bytes, its size or its place is read and hashed again."""

import hashlib
import random

import pytest

from agent.storage import Storage
from agent.w25q128jv import SECTOR
from sim.explore import ctz
from sim.explore.fs_state import flash_state
from sim.ports.memory import MemoryFlash
from sim.ports.view import ArrayView

pytestmark = pytest.mark.sim

IMAGE = random.Random(7).randbytes(300 * 1024)


def _flash() -> MemoryFlash:
    flash = MemoryFlash()
    storage = Storage.mount(flash)
    storage.makedirs("ota")
    storage.write_atomic("ota/current.bin", IMAGE)
    storage.write_atomic("ota/record.json", b'{"small": "inline"}')
    storage.unmount()
    return flash


def _digests(state) -> dict[str, str]:
    return dict(state.files)


def test_the_content_is_every_files_sha256():
    state = flash_state(_flash().memory.freeze())
    assert state is not None
    assert _digests(state) == {
        "/ota/current.bin": hashlib.sha256(IMAGE).hexdigest(),
        "/ota/record.json": hashlib.sha256(b'{"small": "inline"}').hexdigest(),
    }
    assert set(state.reads) == {"/ota/current.bin"}  # an inline file is always read again


def test_an_unchanged_file_reuses_the_reading_with_a_few_reads(monkeypatch):
    sectors = _flash().memory.freeze()
    like = flash_state(sectors)
    calls = []
    real = ArrayView.read
    monkeypatch.setattr(ArrayView, "read", lambda self, a, n: calls.append(a) or real(self, a, n))
    again = flash_state(sectors, like=like)
    assert again == like
    full = len(calls)
    calls.clear()
    flash_state(sectors)
    assert full * 4 < len(calls)  # the 300 KiB file's skip-list walk is not made again


def test_a_changed_byte_in_a_data_sector_is_seen():
    """One bit of the image flipped in place (same head, same size): the sector differs
    from the one the clean reading touched, so the file is read and hashed again."""
    flash = _flash()
    like = flash_state(flash.memory.freeze())
    assert like is not None
    read = like.reads["/ota/current.bin"]
    sector = read.sectors[len(read.sectors) // 2][0]
    at = sector * SECTOR + 100
    flash.memory.put(at, bytes([flash.memory.read(at, 1)[0] ^ 0x01]))
    changed = flash_state(flash.memory.freeze(), like=like)
    fresh = flash_state(flash.memory.freeze())
    assert changed == fresh and changed != like
    assert _digests(changed)["/ota/current.bin"] != hashlib.sha256(IMAGE).hexdigest()


def test_a_rewritten_file_elsewhere_is_read_again():
    """The same bytes written again land in other blocks (another head): the reading is
    not reused, and the content still compares equal."""
    flash = _flash()
    like = flash_state(flash.memory.freeze())
    storage = Storage.mount(flash)
    storage.write_atomic("ota/current.bin", IMAGE)
    storage.unmount()
    state = flash_state(flash.memory.freeze(), like=like)
    assert state == like
    assert state.reads["/ota/current.bin"].head != like.reads["/ota/current.bin"].head
    assert state.reads["/ota/current.bin"] is not like.reads["/ota/current.bin"]


def test_a_region_that_does_not_mount_has_no_state():
    assert flash_state(MemoryFlash().memory.freeze()) is None


FIRST, SECOND = 200 * 1024 + 100, 264 * 1024


def _clean_and_before() -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """The clean run: staged.bin gets IMAGE[:FIRST], a sync (a checkpoint), then more on
    the same handle up to SECOND and a sync (the next checkpoint). Returns the sectors at
    the first checkpoint and at the second."""
    flash = MemoryFlash()
    storage = Storage.mount(flash)
    with storage.open_append("staged.bin") as f:
        f.write(IMAGE[:FIRST])
        f.sync()
        before = flash.memory.freeze()
        f.write(IMAGE[FIRST:SECOND])
        f.sync()
    storage.unmount()
    return before, flash.memory.freeze()


def _resumed(before: tuple[bytes, ...], then: bytes) -> tuple[bytes, ...]:
    """A cut run: the state at the first checkpoint, a remount, ``then`` appended."""
    flash = MemoryFlash.from_sectors(before)
    storage = Storage.mount(flash)
    with storage.open_append("staged.bin") as f:
        f.write(then)
    storage.unmount()
    return flash.memory.freeze()


KEEP = 80 * 1024  # the bytes written again (64 KiB) and the block copied before them


def test_a_file_whose_last_blocks_were_written_again_shares_the_clean_prefix(monkeypatch):
    """The clean run appended 64 KiB to a 200 KiB partial image; a cut run restored the
    state before, remounted and appended the same bytes (littlefs copies the partial last
    block elsewhere: another head). Its prefix is the clean file's, so only the tail is
    read and compared, and the state compares equal."""
    before, clean = _clean_and_before()
    like = flash_state(clean, keep_tail=KEEP)
    assert like is not None and like.reads["/staged.bin"].blocks
    cut = _resumed(before, IMAGE[FIRST:SECOND])
    assert cut != clean  # other blocks, same content
    calls = []
    real = ArrayView.read
    monkeypatch.setattr(ArrayView, "read", lambda self, a, n: calls.append(a) or real(self, a, n))
    state = flash_state(cut, like=like)
    assert state == like and state.reads["/staged.bin"] is like.reads["/staged.bin"]
    shortcut = len(calls)
    calls.clear()
    assert flash_state(cut) == like
    assert shortcut * 2 < len(calls)


@pytest.mark.parametrize("where", ["prefix", "tail"])
def test_a_changed_byte_in_a_re_joining_file_is_seen(where):
    """A bit flipped in a block of the shared prefix, or in the bytes written again: the
    state differs from the clean one and equals what a full reading gives."""
    before, clean = _clean_and_before()
    like = flash_state(clean, keep_tail=KEEP)
    assert like is not None
    read = like.reads["/staged.bin"]
    tail = IMAGE[FIRST:SECOND]
    if where == "tail":
        cut = _resumed(before, tail[:1000] + bytes([tail[1000] ^ 1]) + tail[1001:])
    else:
        cut = list(_resumed(before, tail))
        sector = bytearray(cut[read.blocks[3]])
        sector[2000] ^= 1
        cut[read.blocks[3]] = bytes(sector)
        cut = tuple(cut)
    state = flash_state(cut, like=like)
    assert state is not None and state != like
    assert state == flash_state(cut)


def test_a_skip_pointer_of_a_block_written_again_must_agree():
    """A block the cut run wrote again points (a skip pointer) into the shared prefix
    at another block than the clean list has there: the prefix is not taken as shared."""
    before, clean = _clean_and_before()
    like = flash_state(clean, keep_tail=KEEP)
    assert like is not None
    read = like.reads["/staged.bin"]
    cut = _resumed(before, IMAGE[FIRST:SECOND])
    head = flash_state(cut).reads["/staged.bin"].head
    shared = read.shared_down_to(head, read.size, cut)
    assert shared is not None and shared < len(read.blocks) - 1
    last = len(read.blocks) - 1
    chain = ctz.chain(cut, head, last, stop=shared)
    index, j = next(
        (i, j)
        for i in range(last, shared, -1)
        for j in range(ctz.pointer_count(i))
        if i - (1 << j) < shared
    )
    broken = list(cut)
    sector = bytearray(broken[chain[index]])
    sector[4 * j : 4 * j + 4] = read.blocks[index - (1 << j) + 1].to_bytes(4, "little")
    broken[chain[index]] = bytes(sector)
    assert read.shared_down_to(head, read.size, tuple(broken)) is None
