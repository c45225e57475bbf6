"""agent.storage: littlefs on the flash driver, honest about power cuts.

Rules come from littlefs's own guarantees (littlefs SPEC.md / DESIGN.md: a file's
data is committed by ``lfs_file_sync`` or close; a rename is one atomic metadata
commit) and from the binding's traps in ``docs/littlefs.md``.
"""

import contextlib
import functools
import subprocess
import sys
import textwrap
import time

import pytest

from agent.errors import PowerLoss
from agent.flash import FlashTimeout, SpiFlash
from agent.storage import (
    Geometry,
    NotFormatted,
    Storage,
    StorageError,
    StorageFull,
)
from tests.common.storage import SMALL, Rig

pytestmark = pytest.mark.sim


class FailingFlash:
    """The real driver, with the next program failing as a driver fault would."""

    def __init__(self, flash: SpiFlash) -> None:
        self._flash = flash
        self.size, self.sector_size = flash.size, flash.sector_size
        self.fail_next_program: Exception | None = None

    def read(self, addr: int, n: int) -> bytes:
        return self._flash.read(addr, n)

    def program(self, addr: int, data: bytes) -> None:
        if self.fail_next_program is not None:
            exc, self.fail_next_program = self.fail_next_program, None
            raise exc
        self._flash.program(addr, data)

    def erase(self, addr: int, length: int) -> None:
        self._flash.erase(addr, length)


@pytest.fixture
def rig() -> Rig:
    return Rig()


@pytest.fixture
def storage(rig: Rig):
    st = rig.mount()
    yield st
    if not st.power_lost:
        st.unmount()


@functools.cache
def pattern(n: int, seed: int = 0) -> bytes:
    """Bytes that differ at every offset, so a splice or a shift is visible."""
    return bytes((i * 7 + seed + (i >> 8)) & 0xFF for i in range(n))


# -- geometry ---------------------------------------------------------------------


def test_geometry_defaults_are_the_reference_designs():
    """The original's lfs_config (reference-design.md, Storage): 4 KiB x 4096 blocks,
    read 16, prog 256, cache 256, lookahead 16, block_cycles 500."""
    g = Geometry()
    assert (g.block_size, g.block_count, g.read_size, g.prog_size) == (4096, 4096, 16, 256)
    assert (g.cache_size, g.lookahead_size, g.block_cycles, g.offset) == (256, 16, 500, 0)
    assert g.region_size == 16 * 1024 * 1024


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("read_size", 0),
        ("cache_size", 100),  # not a multiple of read_size 16 / prog_size 256
        ("block_size", 64),
        ("block_count", 1),
        ("lookahead_size", 12),
        ("block_cycles", 0),
        ("offset", -4096),
    ],
)
def test_geometry_rejects_a_bad_field_by_name(field, value):
    """littlefs's lfs_init asserts on these (an abort, not an error): refuse them first."""
    with pytest.raises(ValueError, match=f"Geometry.{field}"):
        Geometry(**{field: value})


def test_geometry_must_fit_the_flash_on_sector_boundaries(rig):
    """Blocks are erased as whole sectors (W25Q128JV 8.2.15: 4 KiB sector erase)."""
    with pytest.raises(ValueError, match="runs past the end"):
        rig.mount(Geometry(block_count=4097))
    with pytest.raises(ValueError, match="offset"):
        rig.mount(Geometry(block_count=8, offset=100))
    with pytest.raises(ValueError, match="block_size"):
        rig.mount(Geometry(block_size=2048, cache_size=256))


# -- mounting ---------------------------------------------------------------------


def test_mount_formats_a_blank_chip(rig):
    """A blank (all 0xFF) region is formatted on first boot, and only then."""
    st = rig.mount()
    assert st.formatted
    assert st.listdir() == []
    st.unmount()
    assert not rig.mount().formatted


def test_mount_of_a_blank_chip_with_format_blank_false_raises_not_formatted(rig):
    """Formatting is the caller's decision (littlefs-python trap 3)."""
    with pytest.raises(NotFormatted):
        rig.mount(format_blank=False)
    assert rig.ops == 0


@pytest.mark.parametrize("where", [2 * 4096, 5 * 4096 + 1, 63 * 4096])
def test_mount_refuses_a_foreign_chip_and_leaves_it_intact(rig, where):
    """A chip that is not blank and not littlefs is reported, never wiped (trap 3):
    data at the start of any block past the superblock pair counts."""
    rig.chip.array[where : where + 4] = b"\x12\x34\x56\x78"
    before = bytes(rig.chip.array[: SMALL.region_size])
    with pytest.raises(NotFormatted, match="force_format=True"):
        rig.mount()
    assert bytes(rig.chip.array[: SMALL.region_size]) == before
    assert rig.ops == 0


def test_a_foreign_littlefs_is_not_formatted(rig):
    """A littlefs of another geometry does not mount with ours; it is data, not blank."""
    other = rig.mount(Geometry(block_count=64, block_size=8192, cache_size=256))
    other.write_atomic("theirs", pattern(30_000))
    other.unmount()
    before = rig.ops
    with pytest.raises(NotFormatted):
        rig.mount()
    assert rig.ops == before


def test_force_format_wipes_a_foreign_chip(rig):
    """force_format formats whatever the region holds."""
    rig.chip.array[0:4] = b"\x12\x34\x56\x78"
    st = rig.mount(force_format=True)
    assert st.formatted and st.listdir() == []


def test_force_format_erases_existing_files(rig):
    """A forced format of a littlefs region starts an empty file system."""
    st = rig.mount()
    st.write_atomic("keep", b"x")
    st.unmount()
    assert rig.mount(force_format=True).listdir() == []


def test_region_at_an_offset_leaves_the_rest_of_the_chip_alone(rig):
    """Geometry.offset maps block 0 to that address; nothing below it is touched."""
    rig.chip.array[0:4096] = b"\x00" * 4096
    geometry = Geometry(block_count=16, offset=4096)
    st = rig.mount(geometry)
    st.write_atomic("f", b"hello")
    assert rig.chip.array[0:4096] == b"\x00" * 4096
    st.unmount()
    assert rig.mount(geometry).read_file("f") == b"hello"


# -- files ------------------------------------------------------------------------


def test_files_survive_a_remount(rig, storage):
    """What was committed is read back by a fresh mount."""
    storage.write_atomic("a.bin", pattern(10_000))
    storage.unmount()
    st = rig.mount()
    assert st.read_file("a.bin") == pattern(10_000)
    assert st.size("a.bin") == 10_000


def test_read_range_returns_the_slice_and_stops_at_the_end(storage):
    storage.write_atomic("a", pattern(5000))
    assert storage.read_range("a", 4000, 500) == pattern(5000)[4000:4500]
    assert storage.read_range("a", 4900, 500) == pattern(5000)[4900:]


def test_open_read_is_a_seekable_binary_stream(storage):
    """The reader given to McuTarget.install is a standard raw stream."""
    storage.write_atomic("img", pattern(3000))
    with storage.open_read("img") as f:
        assert f.read(10) == pattern(3000)[:10]
        f.seek(2990)
        assert f.read() == pattern(3000)[2990:]
    assert f.closed


def test_missing_files_raise_file_not_found(storage):
    with pytest.raises(FileNotFoundError, match="nope"):
        storage.read_file("nope")
    assert not storage.exists("nope")
    storage.remove("nope")  # missing_ok by default
    with pytest.raises(FileNotFoundError):
        storage.remove("nope", missing_ok=False)


def test_write_atomic_replaces_and_leaves_no_temporary(storage):
    storage.write_atomic("r", b"old")
    storage.write_atomic("r", b"new content")
    assert storage.read_file("r") == b"new content"
    assert storage.listdir() == ["r"]


def test_truncate_cuts_at_the_size_given(storage):
    """littlefs-python's FileHandle.truncate ignores its size (trap 6); ours does not."""
    storage.write_atomic("t", pattern(9000))
    storage.truncate("t", 1234)
    assert storage.size("t") == 1234
    assert storage.read_file("t") == pattern(9000)[:1234]


def test_rename_replaces_the_destination(storage):
    storage.write_atomic("a", b"A")
    storage.write_atomic("b", b"B")
    storage.rename("a", "b")
    assert storage.listdir() == ["b"] and storage.read_file("b") == b"A"


def test_makedirs_and_listdir(storage):
    storage.makedirs("/ota/staging")
    storage.makedirs("/ota/staging")
    storage.write_atomic("/ota/staging/x", b"1")
    assert storage.listdir("/ota") == ["staging"]
    assert storage.listdir("/ota/staging") == ["x"]


def test_free_bytes_shrink_as_files_grow(storage):
    before = storage.free_bytes()
    storage.write_atomic("big", pattern(40_000))
    assert before - storage.free_bytes() >= 40_000


def test_a_full_file_system_raises_storage_full_and_keeps_the_old_file(storage):
    """LFS_ERR_NOSPC is reported as StorageFull; write_atomic leaves the old content."""
    storage.write_atomic("keep", b"good")
    with pytest.raises(StorageFull):
        storage.write_atomic("keep", bytes(SMALL.region_size))
    assert storage.read_file("keep") == b"good"
    assert not storage.exists("keep.tmp")


def test_append_file_size_counts_uncommitted_data(storage):
    """lfs_file_size includes unsynced data; lfs_stat sees only what was committed."""
    with storage.open_append("a") as f:
        f.write(b"x" * 100)
        assert f.size == 100
        assert storage.size("a") == 0
        f.sync()
        assert storage.size("a") == 100


def test_a_flash_fault_becomes_a_storage_error_naming_the_operation(rig):
    """A driver error (agent.flash.FlashError) is returned to littlefs as LFS_ERR_IO
    and raised to the caller as StorageError with the op and block, the cause chained."""
    flash = FailingFlash(rig.flash)
    st = Storage.mount(flash, SMALL)
    flash.fail_next_program = FlashTimeout("still BUSY after page program")
    with pytest.raises(StorageError, match=r"program of block \d+") as info:
        st.write_atomic("f", pattern(5000))
    assert isinstance(info.value.__cause__, FlashTimeout)
    st.write_atomic("f", b"fine again")  # a fault is reported once, not sticky
    assert st.read_file("f") == b"fine again"


# -- power loss -------------------------------------------------------------------


def test_power_loss_during_a_read_is_raised_not_returned_as_ff(rig, storage):
    """A failed data-block read comes back from littlefs as 0xFF with no error (trap 2):
    the storage must raise PowerLoss instead of returning those bytes."""
    storage.write_atomic("img", pattern(20_000))
    f = storage.open_read("img")
    rig.chip.power_off()
    with pytest.raises(PowerLoss):
        f.read_at(8192, 4096)


def test_after_a_power_loss_every_call_raises_without_touching_the_flash(rig, storage):
    """Nothing reaches a chip without power; the instance is dead until remounted."""
    rig.cut_after(0)
    with pytest.raises(PowerLoss):
        storage.write_atomic("f", b"data")
    rig.chip.power_on()
    before = rig.transactions
    for call in (lambda: storage.exists("f"), lambda: storage.write_atomic("g", b"x")):
        with pytest.raises(PowerLoss):
            call()
    assert rig.transactions == before
    assert storage.power_lost


@pytest.mark.parametrize("torn", [False, True], ids=["after-op", "torn-op"])
def test_a_cut_during_the_first_format_raises_and_the_next_boot_formats(torn):
    """A cut while formatting is a PowerLoss, not a NotFormatted or a silent success.
    lfs_format writes only the superblock pair (blocks 0 and 1), so a chip torn there
    and blank elsewhere is formatted again on the next boot rather than bricked."""
    probe = Rig()
    probe.mount().unmount()
    total = probe.ops
    for n in range(total):
        rig = Rig()
        rig.cut_after(n, torn=torn)
        with pytest.raises(PowerLoss):
            rig.mount()
        rig.chip.power_on()
        st = rig.mount()
        st.write_atomic("f", b"ok")
        assert rig.reboot().read_file("f") == b"ok"


def test_a_failed_close_does_not_kill_the_interpreter():
    """littlefs-python trap 5: after a failed lfs_file_close, a second close (from a
    finaliser) hits littlefs's lfs_mlist_isopen assertion and aborts the process.
    Run in a child so that an abort fails this test instead of the whole session."""
    script = textwrap.dedent(
        """
        import gc
        from agent.errors import PowerLoss
        from tests.common.storage import Rig

        rig = Rig()
        st = rig.mount()
        f = st.open_append("img")
        f.write(b"x" * 10_000)
        rig.cut_after(0)
        try:
            f.close()
        except PowerLoss:
            print("close raised PowerLoss")
        f.close()
        del f, st
        gc.collect()
        print("alive")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["close raised PowerLoss", "alive"]


def cut_points(total: int, stride: int, extra: tuple[int, ...] = ()) -> list[int]:
    """Every ``stride``-th op, both ends, and ``extra`` (the ops around commit points)."""
    points = set(range(0, total + 1, stride)) | {0, 1, total - 1, total} | set(extra)
    return sorted(p for p in points if 0 <= p <= total)


SYNC_EVERY = 16 * 1024
APPEND_TOTAL = 100 * 1024
APPEND_CHUNK = 4096


def append_with_syncs(st: Storage, on_sync=None) -> None:
    """Append APPEND_TOTAL bytes in 4 KiB writes, syncing every 16 KiB, then close."""
    data = pattern(APPEND_TOTAL)
    with st.open_append("ota.bin") as f:
        for pos in range(0, APPEND_TOTAL, APPEND_CHUNK):
            f.write(data[pos : pos + APPEND_CHUNK])
            if (pos + APPEND_CHUNK) % SYNC_EVERY == 0:
                f.sync()
                if on_sync is not None:
                    on_sync(pos + APPEND_CHUNK)


@pytest.mark.parametrize("torn", [False, True], ids=["after-op", "torn-op"])
def test_append_cut_at_every_operation_keeps_exactly_the_last_commit(torn):
    """littlefs commits file data on lfs_file_sync or close (littlefs DESIGN.md, "Files";
    lfs.h, lfs_file_sync): after a cut anywhere, even one tearing a page program or a
    sector erase (W25Q128JV 8.2.13, 8.2.15: contents undefined), the remounted file is
    exactly as long as the last completed commit and holds the bytes written.
    The original agent never syncs (reference-design.md, weakness 1)."""
    rig = Rig()
    st = rig.mount()
    blank = rig.chip.snapshot()
    base = rig.ops
    commits = {}
    append_with_syncs(st, lambda size: commits.__setitem__(rig.ops - base, size))
    total = rig.ops - base
    commits[total] = APPEND_TOTAL  # the final close
    extra = tuple(op + d for op in commits for d in (-1, 0, 1))
    expected = pattern(APPEND_TOTAL)
    points = cut_points(total, 2 if torn else 1, extra)
    for n in points:
        rig.chip.restore(blank)
        st = rig.mount()
        rig.cut_after(n, torn=torn)
        try:
            append_with_syncs(st)
        except PowerLoss:
            assert n <= total, f"PowerLoss with a cut after op {n}, past the last ({total})"
        else:
            assert n >= total, f"no PowerLoss with a cut after op {n} of {total}"
        st2 = rig.reboot()
        size = st2.size("ota.bin") if st2.exists("ota.bin") else 0
        done = max([0] + [size_ for op, size_ in commits.items() if op <= n])
        assert size in (0, *commits.values()), f"cut after op {n}: size {size} never committed"
        assert size >= done, f"cut after op {n}: size {size}, lost the commit of {done}"
        if size:
            assert st2.read_file("ota.bin") == expected[:size], f"cut after op {n}: bad bytes"
        st2.unmount()
    print(f"\n{len(points)} cut points over {total} operations (torn={torn})")


def test_append_without_sync_loses_everything_after_a_cut(rig):
    """Weakness 1 of the reference design: without lfs_file_sync, a cut just before the
    final close leaves nothing of the file's data, so our sync is what makes resume work."""

    def append_no_sync(st: Storage) -> None:
        data = pattern(APPEND_TOTAL)
        with st.open_append("ota.bin") as f:
            for pos in range(0, APPEND_TOTAL, APPEND_CHUNK):
                f.write(data[pos : pos + APPEND_CHUNK])

    st = rig.mount()
    blank = rig.chip.snapshot()
    base = rig.ops
    append_no_sync(st)
    total = rig.ops - base
    rig.chip.restore(blank)
    st = rig.mount()
    rig.cut_after(total - 1)
    with pytest.raises(PowerLoss):
        append_no_sync(st)
    st2 = rig.reboot()
    assert not st2.exists("ota.bin") or st2.size("ota.bin") == 0


OLD = pattern(9000, seed=1)
NEW = pattern(13_000, seed=2)


@pytest.mark.parametrize("torn", [False, True], ids=["after-op", "torn-op"])
def test_write_atomic_cut_at_every_operation_leaves_old_or_new(torn):
    """A littlefs rename is one metadata commit (DESIGN.md, "Metadata pairs"): a cut
    anywhere in write_atomic leaves the old content or the new, never a mix."""
    rig = Rig()
    st = rig.mount()
    st.write_atomic("record", OLD)
    before = rig.chip.snapshot()
    start = rig.ops
    st.write_atomic("record", NEW)
    total = rig.ops - start
    seen = set()
    for n in range(total + 1):
        rig.chip.restore(before)
        st = rig.mount()
        rig.cut_after(n, torn=torn)
        with contextlib.suppress(PowerLoss):
            st.write_atomic("record", NEW)
        got = rig.reboot().read_file("record")
        assert got in (OLD, NEW), f"cut after op {n} of {total}: mixed content"
        seen.add(got)
    assert seen == {OLD, NEW}


# -- figures ----------------------------------------------------------------------


def append_mib(st: Storage, data: bytes) -> None:
    """Append ``data`` in 4 KiB writes with a sync every 64 KiB (the download checkpoint)."""
    with st.open_append("ota.bin") as f:
        for pos in range(0, len(data), 4096):
            f.write(data[pos : pos + 4096])
            if (pos + 4096) % (64 * 1024) == 0:
                f.sync()


def test_print_mount_and_append_speed_on_the_chip_model():
    """Figures, not assertions on time: first boot (blank probe + format + mount), a
    1 MiB append with a sync every 64 KiB, a remount and a read back, over the real
    driver on the W25Q128JV model with the default 16 MiB geometry; wall time and the
    simulated device time (datasheet typical tPP/tSE on the virtual clock)."""
    rig = Rig()
    data = pattern(1 << 20)
    figures = []

    def timed(label, action):
        wall, sim = time.perf_counter(), rig.clock.monotonic()
        result = action()
        wall, sim = time.perf_counter() - wall, rig.clock.monotonic() - sim
        figures.append(f"{label} {1e3 * wall:.1f} ms wall / {sim:.3f} s device")
        return result

    st = timed("first boot (probe+format+mount)", lambda: rig.mount(Geometry()))
    timed("1 MiB append", lambda: append_mib(st, data))
    counts = st.io_counts
    st.unmount()
    st = timed("remount", lambda: rig.mount(Geometry(), format_blank=False))
    assert timed("1 MiB read", lambda: st.read_file("ota.bin")) == data
    print("\nstorage on SpiFlash+W25Q128 model: " + "; ".join(figures) + f"; append {counts}")
