"""agent.record: the progress record kept in littlefs beside the image.

It fixes the reference design's weakness 7 (record outside the file system, so a cut
lets record and image disagree: reference-design.md) by living in the same littlefs
and being replaced atomically; the schema and CRC-32 reject anything else clearly.
"""

import contextlib
import json
import zlib

import pytest

from agent.errors import PowerLoss
from agent.record import (
    Job,
    Record,
    RecordError,
    State,
    decode,
    encode,
    load_record,
    save_record,
)
from agent.storage import Geometry
from tests.common.storage import Rig

pytestmark = pytest.mark.sim

PATH = "record.json"  # where these tests keep the record; the agent's is ota/record.json

GEOMETRY = Geometry(block_count=32)
SHA = "ab" * 32
URL = "https://acct.blob.core.windows.net/ota/fw.bin"


def job(version: int = 2, **changes) -> Job:
    fields = {"version": version, "sha256": SHA, "size": 1000, "url": URL, "etag": '"0x8D1"'}
    fields.update(changes)
    return Job(**fields)


@pytest.fixture
def storage():
    st = Rig().mount(GEOMETRY)
    yield st
    if not st.power_lost:
        st.unmount()


def test_no_record_on_a_fresh_file_system(storage):
    """First boot: there is nothing to resume."""
    assert load_record(storage, PATH) is None


@pytest.mark.parametrize(
    "record",
    [
        Record(),
        Record(installed_version=1).begin(job()).progressed(512),
        Record(installed_version=1).begin(job(etag=None)).progressed(0),
        Record(1).begin(job()).progressed(1000).verified().applying(),
        Record(1).begin(job()).progressed(1000).verified().applying().applied(),
        Record(1).begin(job()).progressed(300).failed("SHA256 verify fail"),
    ],
    ids=["idle", "downloading", "no-etag-yet", "applying", "applied", "failed"],
)
def test_a_record_round_trips_through_the_file_system(storage, record):
    """What save_record writes, load_record reads back equal, in every state."""
    save_record(storage, record, PATH)
    assert load_record(storage, PATH) == record


def test_save_replaces_the_previous_record(storage):
    first = Record(1).begin(job())
    save_record(storage, first, PATH)
    save_record(storage, first.progressed(700), PATH)
    assert load_record(storage, PATH) == first.progressed(700)
    assert storage.listdir() == [PATH]


def test_the_sha256_is_kept_uppercase_as_the_cloud_contract_writes_it():
    """extFwInfo.sha256 is UPPERCASE hex (reference-design.md, Cloud contract)."""
    assert job(sha256="ab" * 32).sha256 == "AB" * 32
    assert job().identity() == (2, bytes.fromhex(SHA), 1000, URL)


def test_applied_sets_the_installed_version():
    """After apply the job's version is the installed one (versions only increase)."""
    record = Record(1).begin(job(version=5)).progressed(1000).verified().applying().applied()
    assert record.installed_version == 5 and record.state is State.APPLIED


def test_progress_keeps_the_first_etag_seen():
    record = Record(1).begin(job(etag=None)).progressed(100, etag='"E1"')
    assert record.job.etag == '"E1"'
    assert record.progressed(200).job.etag == '"E1"'


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: job(sha256="zz" * 32), "job.sha256"),
        (lambda: job(sha256="ab" * 31), "job.sha256"),
        (lambda: job(version=0), "job.version"),
        (lambda: job(size=0), "job.size"),
        (lambda: job(url=URL + "?sv=2020&sig=SECRET"), "job.url"),
        (lambda: job(etag="bad\netag"), "job.etag"),
        (lambda: Record(installed_version=-1), "installed_version"),
        (lambda: Record(state="paused"), "state"),
        (lambda: Record(1, State.DOWNLOADING, job(), committed=1001), "committed"),
        (lambda: Record(1, State.VERIFIED, job(), committed=999), "committed"),
        (lambda: Record(2, State.DOWNLOADING, job(version=2)), "job.version"),
        (lambda: Record(1, State.APPLIED, job(version=2), committed=1000), "installed_version"),
        (lambda: Record(1, State.DOWNLOADING), "job"),
        (lambda: Record(1, State.FAILED, job()), "error"),
        (lambda: Record(1, State.IDLE, job()), "idle"),
    ],
)
def test_an_impossible_record_is_refused_naming_the_field(build, field):
    """Records are validated on construction, so one read back is a legal state."""
    with pytest.raises(ValueError, match=field):
        build()


def test_the_url_of_a_job_never_holds_the_sas():
    """The SAS is a bearer secret (its `sig`); the record stores the bare blob URL only."""
    with pytest.raises(ValueError) as info:
        job(url=URL + "?sig=SECRET")
    assert "SECRET" not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b'{"Downloading": 3}', "envelope"),
        (b"[1, 2]", "envelope"),
        (b"{" + b" " * 5000 + b"}", "more than"),
    ],
)
def test_garbage_is_rejected_with_a_clear_error(storage, raw, why):
    """A foreign or damaged file is a RecordError saying what is wrong, not a crash."""
    storage.write_atomic(PATH, raw)
    with pytest.raises(RecordError, match=why):
        load_record(storage, PATH)


def test_a_flipped_bit_fails_the_crc():
    raw = encode(Record(1).begin(job()).progressed(512))
    tampered = raw.replace(b'"committed":512', b'"committed":513')
    assert tampered != raw
    with pytest.raises(RecordError, match="CRC-32"):
        decode(tampered)


def test_another_schema_is_refused_by_name():
    """A record from a different agent format is not misread as this one."""
    body = Record().to_json()
    crc = zlib.crc32(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    raw = json.dumps({"schema": 2, "crc32": crc, "record": body}).encode()
    with pytest.raises(RecordError, match="schema 2"):
        decode(raw)


def test_a_well_formed_but_impossible_record_is_rejected():
    """A record with a valid CRC but an illegal state combination is still refused."""
    body = Record(1).begin(job()).to_json()
    body["committed"] = 5000
    crc = zlib.crc32(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    raw = json.dumps({"schema": 1, "crc32": crc, "record": body}).encode()
    with pytest.raises(RecordError, match="impossible record: committed"):
        decode(raw)


def test_a_cut_at_every_operation_of_save_leaves_the_old_or_the_new_record():
    """Weakness 7: with the record in littlefs, replaced by an atomic rename (littlefs
    DESIGN.md, "Metadata pairs"), a reboot after any cut reads a whole record."""
    old = Record(1).begin(job()).progressed(400)
    new = old.progressed(1000).verified()

    rig = Rig()
    st = rig.mount(GEOMETRY)
    save_record(st, old, PATH)
    before = rig.chip.snapshot()
    start = rig.ops
    save_record(st, new, PATH)
    total = rig.ops - start
    seen = []
    for torn in (False, True):
        for n in range(total + 1):
            rig.chip.restore(before)
            st = rig.mount(GEOMETRY)
            rig.cut_after(n, torn=torn)
            with contextlib.suppress(PowerLoss):
                save_record(st, new, PATH)
            got = load_record(rig.reboot(GEOMETRY), PATH)
            assert got in (old, new), f"cut after op {n} of {total} (torn={torn}): {got}"
            seen.append(got)
    assert seen[0] == old and seen[-1] == new
