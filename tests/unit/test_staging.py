"""agent.staging: the partial image and the progress record, kept in step.

The rules are the module's ordering guarantees (``agent/staging.py`` docstring; the
reference design's weaknesses 1 and 7 in ``docs/reference-design.md``): the
record never claims bytes the staged file lacks, a staged file that disagrees with
the record is restarted rather than resumed, and a restart removes the partial file
before the record forgets the blob's ETag.
"""

import pytest

from agent.record import Job, Record, State
from agent.staging import RECORD_PATH, STAGED_PATH, ImageStaging, Journal
from agent.storage import Geometry, Storage
from tests.common.storage import Rig

pytestmark = pytest.mark.sim

GEOMETRY = Geometry(block_count=32)
SIZE = 1000
ETAG = '"0x8D1"'
JOB = Job(version=2, sha256="AB" * 32, size=SIZE, url="https://a.blob.core.windows.net/c/b")


@pytest.fixture
def storage():
    st = Rig().mount(GEOMETRY)
    st.makedirs("ota")
    yield st
    if not st.power_lost:
        st.unmount()


def journal_at(storage: Storage, committed: int, *, etag: str | None = ETAG) -> Journal:
    """A journal whose record says ``committed`` bytes of the job (from ``etag``) are staged."""
    job = Job(**{**JOB.__dict__, "etag": etag})
    journal = Journal(storage, Record(1, State.DOWNLOADING, job, committed), RECORD_PATH)
    journal.save(journal.record)
    return journal


def stage(storage: Storage, n: int) -> None:
    """Leave ``n`` committed bytes in the staged file, as an earlier boot would."""
    storage.write_atomic(STAGED_PATH, bytes(range(256)) * (n // 256) + bytes(n % 256))


def test_staged_file_shorter_than_the_record_says_is_restarted_from_zero(storage):
    """Committed data gone missing is never resumed on top of: the hole would be
    filled by the next range (staging.py: "never resume on top of a hole")."""
    stage(storage, 300)
    journal = journal_at(storage, 600)
    staging = ImageStaging(storage, journal, STAGED_PATH)
    assert (staging.committed, storage.exists(STAGED_PATH)) == (0, False)
    assert (journal.record.committed, journal.record.job.etag) == (0, None)


def test_staged_file_as_long_as_the_record_says_is_resumed_from_its_end(storage):
    """The staged file's committed size is the resume point; the record's ``committed``
    is a lower bound it meets here, so nothing is thrown away (weakness 1)."""
    stage(storage, 600)
    journal = journal_at(storage, 600)
    staging = ImageStaging(storage, journal, STAGED_PATH)
    assert (staging.committed, storage.size(STAGED_PATH), staging.etag) == (600, 600, ETAG)


def test_staged_file_longer_than_the_image_is_restarted_from_zero(storage):
    """More bytes than the job's image can only be another image's: restart, never
    verify or resume it (staging.py: over-long staged file)."""
    stage(storage, SIZE + 24)
    journal = journal_at(storage, SIZE)
    staging = ImageStaging(storage, journal, STAGED_PATH)
    assert (staging.committed, storage.exists(STAGED_PATH)) == (0, False)
    assert journal.record.committed == 0


def test_restart_forgets_the_etag_so_the_next_blob_is_not_asked_with_if_match(storage):
    """Bytes from a blob that changed are discarded with its ETag: a restart records
    no ETag, so the next response's ETag is taken afresh (weakness 2)."""
    stage(storage, 300)
    journal = journal_at(storage, 300)
    staging = ImageStaging(storage, journal, STAGED_PATH)
    staging.restart()
    assert (staging.etag, journal.record.job.etag, journal.record.committed) == (None, None, 0)


class WatchedJournal(Journal):
    """A journal that notes, at every save, whether the staged file still exists."""

    def __init__(self, storage: Storage, record: Record) -> None:
        super().__init__(storage, record, RECORD_PATH)
        self.saves: list[tuple[str | None, bool]] = []

    def save(self, record: Record) -> None:
        assert record.job is not None
        self.saves.append((record.job.etag, self._storage.exists(STAGED_PATH)))
        super().save(record)


def test_restart_removes_the_partial_file_before_the_record_forgets_its_etag(storage):
    """A cut between the two steps must not leave bytes of unknown origin: the file
    goes first, then the ETag (staging.py: "a restart removes the partial file
    *before* the record forgets its ETag")."""
    stage(storage, 300)
    journal = WatchedJournal(
        storage, Record(1, State.DOWNLOADING, Job(**{**JOB.__dict__, "etag": ETAG}), 300)
    )
    journal.save(journal.record)
    staging = ImageStaging(storage, journal, STAGED_PATH)
    staging.restart()
    assert journal.saves[-1] == (None, False)
