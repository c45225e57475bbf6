"""``agent.staging.record_on_flash``: does this flash hold a readable progress record
(or legitimately none)? The question an explorer invariant asks after every power cut.

Readable: a record that decodes; legitimately none: a blank region (first boot, or a
cut during the first format) or a file system with no record yet. Unreadable: a
region that does not mount, or a record that does not decode. It never writes.
"""

import pytest

from agent.record import Record, save_record
from agent.staging import OTA_DIR, RECORD_PATH, record_on_flash
from tests.common.storage import SMALL, Rig

pytestmark = pytest.mark.sim


@pytest.fixture
def rig():
    return Rig()


def look(rig: Rig):
    ops = rig.ops
    got = record_on_flash(rig.flash, SMALL)
    assert rig.ops == ops, "record_on_flash wrote to the flash"
    return got


def test_a_blank_region_legitimately_holds_no_record(rig):
    got = look(rig)
    assert (got.readable, got.record, got.problem) == (True, None, None)


def test_a_cut_during_the_first_format_legitimately_holds_no_record(rig):
    rig.chip.array[0:64] = bytes(64)
    assert look(rig).readable and look(rig).record is None


def test_a_file_system_without_a_record_legitimately_holds_none(rig):
    st = rig.mount()
    st.makedirs(OTA_DIR)
    st.unmount()
    assert look(rig) == type(look(rig))(readable=True)


def test_a_record_that_decodes_is_returned(rig):
    st = rig.mount()
    st.makedirs(OTA_DIR)
    save_record(st, Record(installed_version=5), RECORD_PATH)
    st.unmount()
    got = look(rig)
    assert got.readable and got.record == Record(installed_version=5)


def test_a_record_that_does_not_decode_is_unreadable_naming_why(rig):
    st = rig.mount()
    st.makedirs(OTA_DIR)
    save_record(st, Record(installed_version=5), RECORD_PATH)
    raw = st.read_file(RECORD_PATH)
    st.write_atomic(RECORD_PATH, raw[:-10] + b"}" * 10)
    st.unmount()
    got = look(rig)
    assert not got.readable and got.record is None
    assert got.problem is not None and "progress record" in got.problem


def test_a_region_that_does_not_mount_is_unreadable(rig):
    st = rig.mount()
    st.makedirs(OTA_DIR)
    save_record(st, Record(installed_version=5), RECORD_PATH)
    st.write_atomic("ota/current.bin", b"x" * 20_000)
    st.unmount()
    rig.chip.array[0 : 2 * 4096] = bytes(2 * 4096)  # both superblocks gone
    got = look(rig)
    assert not got.readable and "does not mount" in got.problem
