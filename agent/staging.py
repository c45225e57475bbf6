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

from agent.record import Record, save_record
from agent.storage import AppendFile, Storage

log = logging.getLogger(__name__)

OTA_DIR = "ota"
STAGED_PATH = f"{OTA_DIR}/staged.bin"
CURRENT_PATH = f"{OTA_DIR}/current.bin"
RECORD_PATH = f"{OTA_DIR}/record.json"


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
