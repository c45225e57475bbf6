"""agent.storage: littlefs on the flash driver, honest about power cuts.

Rules come from littlefs's own guarantees (littlefs SPEC.md / DESIGN.md: a file's
data is committed by ``lfs_file_sync`` or close; a rename is one atomic metadata
commit) and from the binding's traps in ``/work/shared/notes/littlefs-python.md``.
"""

import contextlib
import subprocess
import sys
import textwrap
import time

import pytest

from agent.errors import PowerLoss
from agent.flash import SpiFlash
from agent.storage import (
    Geometry,
    NotFormatted,
    Storage,
    StorageError,
    StorageFull,
)
from sim.clock import VirtualClock
from sim.ramport import RamSpiPort

pytestmark = pytest.mark.sim

SMALL = Geometry(block_count=64)  # 256 KiB: room for the tests, quick to format


class NorFake:
    """A NOR flash in memory: programs AND bits in, erases set 0xFF, a cut after N ops.

    ``cut_after(n)`` lets ``n`` more programs/erases complete, then the power goes:
    that call and every later one raise :class:`PowerLoss` until :meth:`power_on`.
    """

    sector_size = 4096
    page_size = 256

    def __init__(self, size: int = 1 << 20) -> None:
        self.size = size
        self.mem = bytearray(b"\xff" * size)
        self.ops = 0  # state-changing operations completed
        self.reads = 0
        self.powered = True
        self._left: int | None = None
        self.fail_next_program: Exception | None = None

    def cut_after(self, n: int) -> None:
        self._left = n

    def power_on(self) -> None:
        self.powered, self._left = True, None

    def _change(self) -> None:
        if not self.powered:
            raise PowerLoss("flash unpowered")
        if self._left is not None:
            if self._left == 0:
                self.powered = False
                raise PowerLoss("scheduled cut")
            self._left -= 1
        self.ops += 1

    def read(self, addr: int, n: int) -> bytes:
        if not self.powered:
            raise PowerLoss("flash unpowered")
        self.reads += 1
        return bytes(self.mem[addr : addr + n])

    def program(self, addr: int, data: bytes) -> None:
        if self.fail_next_program is not None:
            exc, self.fail_next_program = self.fail_next_program, None
            raise exc
        self._change()
        for i, b in enumerate(data):
            self.mem[addr + i] &= b

    def erase(self, addr: int, length: int) -> None:
        assert addr % self.sector_size == 0 and length % self.sector_size == 0
        for at in range(addr, addr + length, self.sector_size):
            self._change()
            self.mem[at : at + self.sector_size] = b"\xff" * self.sector_size


@pytest.fixture
def flash() -> NorFake:
    return NorFake()


@pytest.fixture
def storage(flash: NorFake):
    st = Storage.mount(flash, SMALL)
    yield st
    if not st.power_lost:
        st.unmount()


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


def test_geometry_must_fit_the_flash_on_sector_boundaries(flash):
    """Blocks are erased as whole sectors (W25Q128JV 8.2.15: 4 KiB sector erase)."""
    with pytest.raises(ValueError, match="runs past the end"):
        Storage.mount(flash, Geometry(block_count=512))
    with pytest.raises(ValueError, match="offset"):
        Storage.mount(flash, Geometry(block_count=8, offset=100))


# -- mounting ---------------------------------------------------------------------


def test_mount_formats_a_blank_chip(flash):
    """A blank (all 0xFF) region is formatted on first boot."""
    st = Storage.mount(flash, SMALL)
    assert st.formatted
    assert st.listdir() == []
    st.unmount()
    assert not Storage.mount(flash, SMALL).formatted


def test_mount_of_a_blank_chip_with_format_blank_false_raises_not_formatted(flash):
    """Formatting is the caller's decision (littlefs-python trap 3)."""
    with pytest.raises(NotFormatted):
        Storage.mount(flash, SMALL, format_blank=False)
    assert flash.ops == 0


@pytest.mark.parametrize("where", [0, 5 * 4096 + 1])
def test_mount_refuses_a_foreign_chip_and_leaves_it_intact(flash, where):
    """A chip that is not blank and not littlefs is reported, never wiped (trap 3):
    data in the superblock pair or at the start of any later block counts."""
    flash.mem[where : where + 4] = b"\x12\x34\x56\x78"
    before = bytes(flash.mem)
    with pytest.raises(NotFormatted, match="force_format=True"):
        Storage.mount(flash, SMALL)
    assert bytes(flash.mem) == before
    assert flash.ops == 0


def test_force_format_wipes_a_foreign_chip(flash):
    """force_format formats whatever the region holds."""
    flash.mem[0:4] = b"\x12\x34\x56\x78"
    st = Storage.mount(flash, SMALL, force_format=True)
    assert st.formatted and st.listdir() == []


def test_force_format_erases_existing_files(flash):
    """A forced format of a littlefs region starts an empty file system."""
    st = Storage.mount(flash, SMALL)
    st.write_atomic("keep", b"x")
    st.unmount()
    assert Storage.mount(flash, SMALL, force_format=True).listdir() == []


def test_region_at_an_offset_leaves_the_rest_of_the_chip_alone(flash):
    """Geometry.offset maps block 0 to that address; nothing below it is touched."""
    flash.mem[0:4096] = b"\x00" * 4096
    st = Storage.mount(flash, Geometry(block_count=16, offset=4096))
    st.write_atomic("f", b"hello")
    assert flash.mem[0:4096] == b"\x00" * 4096
    st.unmount()
    assert Storage.mount(flash, Geometry(block_count=16, offset=4096)).read_file("f") == b"hello"


# -- files ------------------------------------------------------------------------


def test_files_survive_a_remount(flash, storage):
    """What was committed is read back by a fresh mount."""
    storage.write_atomic("a.bin", pattern(10_000))
    storage.unmount()
    st = Storage.mount(flash, SMALL)
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
    with storage.open_append("a") as f:
        f.write(b"x" * 100)
        assert f.size == 100
        assert storage.size("a") == 0  # not committed yet
        f.sync()
        assert storage.size("a") == 100


def test_a_flash_fault_becomes_a_storage_error_naming_the_operation(flash, storage):
    """A driver error (agent.flash.FlashError) is returned to littlefs as LFS_ERR_IO
    and raised to the caller as StorageError with the op and block, the cause chained."""
    flash.fail_next_program = RuntimeError("chip stayed BUSY")
    with pytest.raises(StorageError, match=r"program of block \d+") as info:
        storage.write_atomic("f", pattern(5000))
    assert isinstance(info.value.__cause__, RuntimeError)


# -- power loss -------------------------------------------------------------------


def test_power_loss_during_a_read_is_raised_not_returned_as_ff(flash, storage):
    """A failed data-block read comes back from littlefs as 0xFF with no error (trap 2):
    the storage must raise PowerLoss instead of returning those bytes."""
    storage.write_atomic("img", pattern(20_000))
    f = storage.open_read("img")
    flash.powered = False
    with pytest.raises(PowerLoss):
        f.read_at(8192, 4096)


def test_after_a_power_loss_every_call_raises_without_touching_the_flash(flash, storage):
    """Nothing reaches a chip without power; the instance is dead until remounted."""
    flash.cut_after(0)
    with pytest.raises(PowerLoss):
        storage.write_atomic("f", b"data")
    flash.power_on()
    reads, ops = flash.reads, flash.ops
    for call in (lambda: storage.exists("f"), lambda: storage.write_atomic("g", b"x")):
        with pytest.raises(PowerLoss):
            call()
    assert (flash.reads, flash.ops) == (reads, ops)
    assert storage.power_lost


def test_power_loss_during_mount_is_raised(flash):
    """A cut while formatting is a PowerLoss, not a NotFormatted or a silent success."""
    flash.cut_after(1)
    with pytest.raises(PowerLoss):
        Storage.mount(flash, SMALL)


def test_a_failed_close_does_not_kill_the_interpreter():
    """littlefs-python trap 5: after a failed lfs_file_close, a second close (from a
    finaliser) hits littlefs's lfs_mlist_isopen assertion and aborts the process.
    Run in a child so that an abort fails this test instead of the whole session."""
    script = textwrap.dedent(
        """
        import gc
        from agent.errors import PowerLoss
        from agent.storage import Geometry, Storage
        from tests.unit.test_storage import NorFake

        flash = NorFake()
        st = Storage.mount(flash, Geometry(block_count=64))
        f = st.open_append("img")
        f.write(b"x" * 10_000)
        flash.cut_after(0)
        try:
            f.close()
        except PowerLoss:
            pass
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
    assert done.stdout.strip() == "alive"


def count_ops(action, make_flash=NorFake) -> tuple[NorFake, int]:
    """Mount a fresh flash, then count the state-changing ops ``action`` does."""
    flash = make_flash()
    st = Storage.mount(flash, SMALL)
    start = flash.ops
    action(st)
    total = flash.ops - start
    st.unmount()
    return flash, total


def cut_points(total: int, stride: int, extra: tuple[int, ...] = ()) -> list[int]:
    """Every ``stride``-th op, both ends, and ``extra`` (the ops around sync points)."""
    points = set(range(0, total + 1, stride)) | {0, 1, total - 1, total} | set(extra)
    return sorted(p for p in points if 0 <= p <= total)


SYNC_EVERY = 16 * 1024
APPEND_TOTAL = 100 * 1024
APPEND_CHUNK = 4096


def append_with_syncs(st: Storage, marks: list[int] | None = None, flash=None) -> None:
    with st.open_append("ota.bin") as f:
        data = pattern(APPEND_TOTAL)
        for pos in range(0, APPEND_TOTAL, APPEND_CHUNK):
            f.write(data[pos : pos + APPEND_CHUNK])
            if (pos + APPEND_CHUNK) % SYNC_EVERY == 0:
                f.sync()
                if marks is not None:
                    marks.append(flash.ops)


def test_append_cut_at_every_operation_keeps_exactly_the_last_sync_point():
    """littlefs commits file data on lfs_file_sync or close (littlefs DESIGN.md, "Files";
    lfs.h, lfs_file_sync): after a cut anywhere, the remounted file is exactly as long as
    the last completed commit and its bytes are the ones written. The original agent
    never syncs (reference-design.md, weakness 1)."""
    probe = NorFake()
    st = Storage.mount(probe, SMALL)
    base = probe.ops
    marks: list[int] = []
    append_with_syncs(st, marks, probe)
    total = probe.ops - base
    st.unmount()
    commits = {m - base: SYNC_EVERY * (i + 1) for i, m in enumerate(marks)}
    commits[total] = APPEND_TOTAL  # the final close
    extra = tuple(op + d for op in commits for d in (-1, 0, 1))
    expected = pattern(APPEND_TOTAL)
    for n in cut_points(total, 7, extra):
        flash = NorFake()
        st = Storage.mount(flash, SMALL)
        flash.cut_after(n)
        try:
            append_with_syncs(st)
        except PowerLoss:
            assert n < total, f"PowerLoss with a cut after op {n}, past the last ({total})"
        else:
            assert n >= total, f"no PowerLoss with a cut after op {n} of {total}"
        flash.power_on()
        st2 = Storage.mount(flash, SMALL, format_blank=False)
        size = st2.size("ota.bin") if st2.exists("ota.bin") else 0
        done = max([0] + [size_ for op, size_ in commits.items() if op <= n])
        assert size in (0, *commits.values()), f"cut after op {n}: size {size} never committed"
        assert size >= done, f"cut after op {n}: size {size}, lost the commit of {done}"
        if size:
            assert st2.read_file("ota.bin") == expected[:size], f"cut after op {n}: bad bytes"
        st2.unmount()


def test_append_without_sync_loses_everything_after_a_cut():
    """Weakness 1 of the reference design: without lfs_file_sync, a cut just before the
    final close leaves nothing of the file's data, so our sync is what makes resume work."""

    def append_no_sync(st: Storage) -> None:
        with st.open_append("ota.bin") as f:
            for pos in range(0, APPEND_TOTAL, APPEND_CHUNK):
                f.write(pattern(APPEND_TOTAL)[pos : pos + APPEND_CHUNK])

    _, total = count_ops(append_no_sync)
    flash = NorFake()
    st = Storage.mount(flash, SMALL)
    flash.cut_after(total - 1)
    with pytest.raises(PowerLoss):
        append_no_sync(st)
    flash.power_on()
    st2 = Storage.mount(flash, SMALL, format_blank=False)
    assert not st2.exists("ota.bin") or st2.size("ota.bin") == 0


OLD = pattern(9000, seed=1)
NEW = pattern(13_000, seed=2)


def test_write_atomic_cut_at_every_operation_leaves_old_or_new():
    """A littlefs rename is one metadata commit (DESIGN.md, "Metadata pairs"): a cut
    anywhere in write_atomic leaves the old content or the new, never a mix."""

    def prepare() -> tuple[NorFake, Storage]:
        flash = NorFake()
        st = Storage.mount(flash, SMALL)
        st.write_atomic("record", OLD)
        return flash, st

    flash, st = prepare()
    start = flash.ops
    st.write_atomic("record", NEW)
    total = flash.ops - start
    seen = set()
    for n in range(total + 1):
        flash, st = prepare()
        flash.cut_after(n)
        with contextlib.suppress(PowerLoss):
            st.write_atomic("record", NEW)
        flash.power_on()
        got = Storage.mount(flash, SMALL, format_blank=False).read_file("record")
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


def test_print_mount_and_append_speed_on_the_flash_driver():
    """Figures, not assertions on time: format+mount, a 1 MiB append with a sync every
    64 KiB, a remount and a read back, over the real driver (agent.flash.SpiFlash)
    on the plain bytearray port (sim.ramport), the whole 16 MiB default geometry."""
    flash = SpiFlash(RamSpiPort(), VirtualClock())
    data = pattern(1 << 20)
    t0 = time.perf_counter()
    st = Storage.mount(flash)
    t1 = time.perf_counter()
    append_mib(st, data)
    t2 = time.perf_counter()
    counts = st.io_counts
    st.unmount()
    t3 = time.perf_counter()
    st = Storage.mount(flash, format_blank=False)
    t4 = time.perf_counter()
    assert st.read_file("ota.bin") == data
    t5 = time.perf_counter()
    print(
        f"\nstorage over SpiFlash+RamSpiPort: format+mount {1e3 * (t1 - t0):.1f} ms, "
        f"1 MiB append {1e3 * (t2 - t1):.1f} ms ({counts}), remount {1e3 * (t4 - t3):.2f} ms, "
        f"1 MiB read {1e3 * (t5 - t4):.1f} ms"
    )
