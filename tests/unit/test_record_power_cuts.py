"""The progress record through power cuts at every step of its write-then-rename,
with a stale temporary file of any length left by an earlier cut, then a shorter
rewrite and another reboot: the record decodes at every boot.

``Storage.write_atomic`` writes ``record.json.tmp`` (``O_CREAT | O_TRUNC``), syncs it
and renames it over ``record.json`` (one littlefs metadata commit, DESIGN.md "Metadata
pairs"). An earlier cut can leave the temporary file behind, of any length: a rewrite
that did not truncate it, or that renamed before its sync, would produce a record
with the stale file's tail, which the agent would then drop and fall back to a fresh
download, hiding the loss. Found by breaking ``write_atomic`` on purpose: no test
caught a missing ``O_TRUNC``.
"""

import contextlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import PowerLoss
from agent.record import Job, Record, encode, load_record, save_record
from agent.storage import Geometry, Storage
from tests.common.storage import Rig

pytestmark = pytest.mark.sim

GEOMETRY = Geometry(block_count=32)
URL = "https://acct.blob.core.windows.net/ota/" + "a" * 120 + ".bin"
PATH = "record.json"  # where these tests keep the record; the agent's is ota/record.json
TMP = PATH + ".tmp"

# a long record (a job with a long URL and an ETag) replaced by shorter ones
LONG = Record(3).begin(Job(4, "cd" * 32, 123_456, URL, etag='"0x8DB1234567890AB"'))
LONG = LONG.progressed(65_536)
SHORT = Record(3)
SHORTER_STILL = Record(4)
assert len(encode(SHORTER_STILL)) <= len(encode(SHORT)) < len(encode(LONG))


def stale_lengths() -> list[int]:
    """Lengths of a stale temporary file around every boundary that matters: empty, a
    byte, around the short and the long record's lengths, a littlefs inline limit and
    past one 4 KiB block."""
    short, long = len(encode(SHORT)), len(encode(LONG))
    edges = [0, 1, short - 1, short, short + 1, long - 1, long, long + 1, 1024, 4097]
    return sorted(set(edges))


def leave_stale_tmp(storage: Storage, length: int, seed: int = 0) -> None:
    """What a cut between the temporary file's writes and its rename leaves: a
    ``record.json.tmp`` of ``length`` bytes (a prefix of a record, then noise)."""
    body = (encode(LONG) + random.Random(seed).randbytes(length))[:length]
    with storage.open_append(TMP) as f:
        f.write(body)
        f.sync()


def boot_record(rig: Rig) -> Record | None:
    """Reboot (tearing whatever runs) and decode the record, as a booting agent does."""
    return load_record(rig.reboot(GEOMETRY), PATH)


def sweep(rig: Rig, base, first: Record, rewrite: Record, then: Record) -> int:
    """Cut at every operation (after it, and torn halfway through it) of writing
    ``rewrite`` over ``first``; each reboot must decode ``first`` or ``rewrite``; then a
    shorter ``then`` is written without a cut and a reboot must decode it."""
    rig.chip.restore(base)
    st = rig.mount(GEOMETRY)
    start = rig.ops
    save_record(st, rewrite, PATH)
    total = rig.ops - start
    for torn in (False, True):
        for n in range(total + 1):
            rig.chip.restore(base)
            st = rig.mount(GEOMETRY)
            rig.cut_after(n, torn=torn)
            with contextlib.suppress(PowerLoss):
                save_record(st, rewrite, PATH)
            got = boot_record(rig)
            assert got in (first, rewrite), f"cut after op {n}/{total} torn={torn}: {got}"
            save_record(rig.mount(GEOMETRY, format_blank=False), then, PATH)
            assert boot_record(rig) == then, f"after the cut {n}/{total} torn={torn}"
    return total


@pytest.mark.parametrize("length", stale_lengths())
def test_every_cut_of_a_rewrite_over_a_stale_temporary_file_leaves_a_record(length):
    rig = Rig()
    st = rig.mount(GEOMETRY)
    save_record(st, LONG, PATH)
    leave_stale_tmp(st, length)
    st.unmount()
    base = rig.chip.snapshot()
    assert boot_record(rig) == LONG  # the stale file does not hide the record
    total = sweep(rig, base, LONG, SHORT, SHORTER_STILL)
    assert total > 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(length=st.integers(min_value=0, max_value=6000), seed=st.integers(0, 2**16))
def test_a_stale_temporary_file_of_any_length_never_leaks_into_the_record(length, seed):
    """The same for any length and content of the stale file, cutting at one random
    operation of the rewrite."""
    rig = Rig()
    st = rig.mount(GEOMETRY)
    save_record(st, LONG, PATH)
    leave_stale_tmp(st, length, seed)
    base = rig.chip.snapshot()
    start = rig.ops
    save_record(st, SHORT, PATH)
    total = rig.ops - start
    n = random.Random(seed).randrange(total + 1)
    rig.chip.restore(base)
    st = rig.mount(GEOMETRY)
    rig.cut_after(n, torn=bool(seed & 1))
    with contextlib.suppress(PowerLoss):
        save_record(st, SHORT, PATH)
    assert boot_record(rig) in (LONG, SHORT)
    save_record(rig.mount(GEOMETRY, format_blank=False), SHORTER_STILL, PATH)
    assert boot_record(rig) == SHORTER_STILL


def test_a_rewrite_with_no_cut_over_a_stale_file_is_exactly_the_new_record():
    rig = Rig()
    st = rig.mount(GEOMETRY)
    save_record(st, LONG, PATH)
    leave_stale_tmp(st, 4097)
    save_record(st, SHORT, PATH)
    storage = rig.reboot(GEOMETRY)
    assert storage.read_file(PATH) == encode(SHORT)
    assert not storage.exists(TMP)
