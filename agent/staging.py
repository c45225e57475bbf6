"""The staging area: the partial image file and the progress record, kept in step.

Ordering is what makes a cut harmless (reference weaknesses 1 and 7):

* data is committed with a real littlefs sync *before* the record says so, so the
  record never claims bytes that are not on flash;
* the ETag is recorded *before* the first byte of a blob is written, so committed
  bytes always have a known origin and a resume can send ``If-Match``;
* a restart removes the partial file *before* the record forgets its ETag.

The partial file's committed size is the resume point; the record's ``committed``
lags it by at most one checkpoint and is only trusted as a lower bound.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from agent.record import Record, RecordError, load_record, save_record
from agent.storage import AppendFile, Flash, Geometry, NotFormatted, Storage, StorageError

log = logging.getLogger(__name__)

OTA_DIR = "ota"
STAGED_PATH = f"{OTA_DIR}/staged.bin"
CURRENT_PATH = f"{OTA_DIR}/current.bin"
RECORD_PATH = f"{OTA_DIR}/record.json"


@dataclass(frozen=True)
class RecordOnFlash:
    """What a flash holds by way of a progress record (:func:`record_on_flash`).

    ``readable`` is True when a booting agent would read a record (``record``) or
    legitimately find none (``record`` None: a blank region before the first format, or
    a file system without a record file, before the first job). Otherwise ``problem``
    says why it is unreadable: a region that does not mount, or a record that does not
    decode (RecordError), which an agent would drop and so lose its resume point.
    """

    readable: bool
    record: Record | None = None
    problem: str | None = None


def record_on_flash(
    flash: Flash, geometry: Geometry | None = None, *, path: str = RECORD_PATH
) -> RecordOnFlash:
    """Read-only look at the progress record on ``flash``, as the next boot would see it.

    Never formats or writes (littlefs is mounted with ``format_blank=False`` and
    unmounted with no file open). For an invariant over power cuts: after every cut
    and recovery the record must be readable, not merely "the agent recovered
    somehow" (a fresh download after a lost record would hide the loss).
    :class:`PowerLoss` passes through: the caller looks while the power is on.
    """
    try:
        storage = Storage.mount(flash, geometry, format_blank=False)
    except NotFormatted as exc:
        if _blank_or_torn_first_format(flash, geometry or Geometry()):
            return RecordOnFlash(readable=True)
        return RecordOnFlash(readable=False, problem=f"littlefs does not mount: {exc}")
    except StorageError as exc:
        return RecordOnFlash(readable=False, problem=f"littlefs does not mount: {exc}")
    try:
        try:
            record = load_record(storage, path)
        except RecordError as exc:
            return RecordOnFlash(readable=False, problem=str(exc))
        except StorageError as exc:
            return RecordOnFlash(readable=False, problem=f"record {path!r}: {exc}")
        return RecordOnFlash(readable=True, record=record)
    finally:
        if not storage.power_lost:
            storage.unmount()


def _blank_or_torn_first_format(flash: Flash, geometry: Geometry) -> bool:
    """Whether ``Storage.mount`` would format this region (blank past the superblock
    pair, no foreign littlefs): no record has ever been written there."""
    try:
        Storage.mount(_NoWrites(flash), geometry, format_blank=True).unmount()
    except NotFormatted:
        return False
    except StorageError as exc:
        if isinstance(exc.__cause__, _WouldWrite):
            return True
        raise
    return False


class _WouldWrite(Exception):
    """Raised instead of the first program or erase: the mount decided to format."""


class _NoWrites:
    """``flash`` for reads; a program or erase raises :class:`_WouldWrite` instead."""

    def __init__(self, flash: Flash) -> None:
        self._flash = flash

    @property
    def size(self) -> int:
        return self._flash.size

    @property
    def sector_size(self) -> int:
        return self._flash.sector_size

    def read(self, addr: int, n: int) -> bytes:
        return self._flash.read(addr, n)

    def program(self, addr: int, data: bytes) -> None:
        raise _WouldWrite

    def erase(self, addr: int, length: int) -> None:
        raise _WouldWrite


class Journal:
    """The progress record: the copy in memory and the one on flash, always equal."""

    def __init__(self, storage: Storage, record: Record, path: str = RECORD_PATH) -> None:
        self._storage = storage
        self._record = record
        self.path = path

    @property
    def record(self) -> Record:
        return self._record

    def save(self, record: Record) -> None:
        """Replace the record on flash atomically, then in memory."""
        save_record(self._storage, record, self.path)
        self._record = record


class ImageStaging:
    """Implements :class:`agent.download.Staging` for the job in the journal's record."""

    def __init__(self, storage: Storage, journal: Journal, path: str = STAGED_PATH) -> None:
        if journal.record.job is None:
            raise ValueError("staging needs a record with a job in hand")
        self._storage = storage
        self._journal = journal
        self.path = path
        self._file: AppendFile | None = None
        self._committed = storage.size(path) if storage.exists(path) else 0
        self._written = self._committed
        if self._committed < journal.record.committed:
            # Committed data has gone missing: never resume on top of a hole.
            log.warning(
                "staged image holds %d bytes but the record says %d were committed; restarting",
                self._committed,
                journal.record.committed,
            )
            self.restart()
        elif self._committed > journal.record.job.size:
            log.warning("staged image is longer than the job's image; restarting")
            self.restart()

    @property
    def committed(self) -> int:
        return self._committed

    @property
    def etag(self) -> str | None:
        job = self._journal.record.job
        return None if job is None else job.etag

    def begin(self, etag: str) -> None:
        self._journal.save(self._journal.record.progressed(self._committed, etag=etag))

    def write(self, data: bytes) -> None:
        if self._file is None:
            self._file = self._storage.open_append(self.path)
        self._file.write(data)
        self._written += len(data)

    def commit(self) -> None:
        if self._file is not None and self._written != self._committed:
            self._file.sync()
            self._committed = self._written
        self._journal.save(self._journal.record.progressed(self._committed))

    def restart(self) -> None:
        self.close()
        self._storage.remove(self.path)
        self._committed = self._written = 0
        record = self._journal.record
        job = record.job
        assert job is not None  # checked in __init__; the record keeps its job
        self._journal.save(record.begin(dataclasses.replace(job, etag=None)))

    def close(self) -> None:
        """Close the append handle (committing what was written, as a close does)."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()
            self._committed = self._written
