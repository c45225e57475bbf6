"""Agent mutants: each one a small subclass with one known bug, never shipped in ``agent/``.

The bugs are the original design's weaknesses (``docs/reference-design.md``)
and classic ones. Downloader and staging bugs reach the agent by swapping the class of
the instance the agent made (``obj.__class__ = Mutant``), so each mutant overrides
exactly one method of the class it breaks.
"""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp

from agent.download import Downloader, DownloadStats, Staging, _Plan
from agent.engine import Agent, Outcome
from agent.instruction import Instruction
from agent.protocol import AgentFactory
from agent.record import Job, Record, State, encode
from agent.report import Report, Status, to_reported
from agent.staging import CURRENT_PATH, ImageStaging, Journal
from agent.w25q128jv import PAGE

# -- staging mutants -------------------------------------------------------------------------


class NoSyncStaging(ImageStaging):
    """Weakness 1: no sync during download; data is committed only once complete."""

    def commit(self) -> None:
        job = self._journal.record.job
        if job is not None and self._written < job.size:
            return
        super().commit()


class NoEtagStaging(ImageStaging):
    """Weakness 2: resume by file size alone; the blob's ETag is never kept or checked."""

    @property
    def etag(self) -> str | None:
        return None


class RecordFirstStaging(ImageStaging):
    """Classic: the checkpoint record claims the bytes before the data is synced."""

    def commit(self) -> None:
        self._journal.save(self._journal.record.progressed(self._written))
        super().commit()


class PageOffByOneStaging(ImageStaging):
    """Classic: a write that ends exactly on a 256-byte page boundary loses its last byte
    (``<`` for ``<=`` in a page split) while the byte count still moves on."""

    def write(self, data: bytes) -> None:
        if data and (self._written + len(data)) % PAGE == 0:
            super().write(data[:-1])
            self._written += 1
            return
        super().write(data)


class StreamHashStaging(ImageStaging):
    """Hashes the bytes as they go past (for :class:`StreamShaAgent`)."""

    def write(self, data: bytes) -> None:
        digest = getattr(self._journal, "stream_sha", None)
        if digest is None or self._written == 0:
            digest = hashlib.sha256()
            self._journal.stream_sha = digest  # type: ignore[attr-defined]
            self._journal.stream_from = self._written  # type: ignore[attr-defined]
        digest.update(data)
        super().write(data)


# -- downloader mutants ----------------------------------------------------------------------


class _StagingSwap(Downloader):
    """Downloads through a mutant staging class (set by the agent below)."""

    staging_class: type[ImageStaging] = ImageStaging

    async def download(self, instruction: Instruction, staging: Staging) -> Any:
        if isinstance(staging, ImageStaging):
            staging.__class__ = self.staging_class
        return await super().download(instruction, staging)


class RangeIgnoredAppends(Downloader):
    """Weakness 4: a 200 answer to a Range request is taken as the resumed data."""

    def _check(
        self,
        response: aiohttp.ClientResponse,
        instruction: Instruction,
        staging: Staging,
        offset: int,
        stats: DownloadStats,
    ) -> _Plan:
        plan = super()._check(response, instruction, staging, offset, stats)
        if plan.skip:
            return type(plan)(skip=0, etag=plan.etag, restart=plan.restart)
        return plan


class No416LengthCheck(Downloader):
    """Weakness 5: a 416 for a resume is taken as "complete", the length never checked."""

    def _check(
        self,
        response: aiohttp.ClientResponse,
        instruction: Instruction,
        staging: Staging,
        offset: int,
        stats: DownloadStats,
    ) -> _Plan:
        if response.status == 416 and isinstance(staging, ImageStaging):
            staging._committed = instruction.size  # the download is "done"
            return _plan(staging)
        return super()._check(response, instruction, staging, offset, stats)


def _plan(staging: ImageStaging) -> _Plan:
    return _Plan(skip=0, etag=staging.etag or '"416"')


# -- agent mutants ---------------------------------------------------------------------------


class _DownloaderSwap(Agent):
    """An agent whose downloader instance is switched to ``downloader_class``."""

    downloader_class: type[Downloader] = Downloader

    async def _download(self, instruction: Instruction) -> bool:
        if self._downloader is not None:
            self._downloader.__class__ = self.downloader_class
        return await super()._download(instruction)


def staging_mutant(name: str, staging: type[ImageStaging]) -> type[Agent]:
    """An agent whose staging area is ``staging``."""
    swap = type(f"{name}Downloader", (_StagingSwap,), {"staging_class": staging})
    return type(name, (_DownloaderSwap,), {"downloader_class": swap})


def downloader_mutant(name: str, downloader: type[Downloader]) -> type[Agent]:
    return type(name, (_DownloaderSwap,), {"downloader_class": downloader})


class ReapplyAgent(Agent):
    """Weakness 8: apply is not idempotent; every delivery of the installed version
    installs it again."""

    async def _work(self, instruction: Instruction) -> Outcome:
        assert self.storage is not None
        if instruction.version == self.installed_version() and self.storage.exists(CURRENT_PATH):
            await self._report(
                Report(Status.APPLYING, target_version=instruction.version, progress=100)
            )
            with self.storage.open_read(CURRENT_PATH) as reader:
                self.target.install(reader, instruction.size, instruction.version)  # type: ignore[arg-type]
            await self._report(
                Report(Status.APPLIED, installed_version=instruction.version, progress=100)
            )
            return Outcome.DONE
        return await super()._work(instruction)


class RollbackAgent(Agent):
    """Reference "versions only increase" broken: the installed version is never
    compared, so an older instruction is downloaded, accepted and reported applied."""

    def installed_version(self) -> int:
        return 0

    async def _begin(self, instruction: Instruction) -> bool:
        assert self.journal is not None
        self.journal._record = Record()  # forgets what is installed, as the check does
        return await super()._begin(instruction)


class StreamShaAgent(Agent):
    """Classic: the SHA-256 is taken over the downloaded stream, not read back from
    flash, so what flash really holds (a stuck bit) is never checked."""

    async def _download(self, instruction: Instruction) -> bool:
        if self._downloader is not None:
            self._downloader.__class__ = _STREAM_DOWNLOADER
        return await super()._download(instruction)

    async def _verify(self) -> bool:
        assert self.journal is not None and self.storage is not None
        job = self.journal.record.job
        digest = getattr(self.journal, "stream_sha", None)
        whole = getattr(self.journal, "stream_from", None) == 0
        if (
            job is not None
            and digest is not None
            and whole
            and (digest.hexdigest().upper() == job.sha256)
        ):
            self.journal.save(self.journal.record.verified())
            return True
        return await super()._verify()


class DropFailedReportAgent(Agent):
    """Classic (and this agent's own bug until the twin channel could break): a report
    whose send raises is logged and dropped, never sent again, so once the connection
    drops the operator is left believing an old status."""

    async def _send_reports(self) -> None:
        while True:
            report = await self._outbox.get()
            try:
                await self.twin.report(to_reported(report))
            except Exception:
                continue  # the bug: the report is gone


class _InPlaceJournal(Journal):
    """The record rewritten in place, not replaced: the file is cut to nothing (a commit of
    its own), then the new record is written and synced."""

    def save(self, record: Record) -> None:
        storage = self._storage
        if storage.exists(self.path):
            storage.truncate(self.path, 0)
        with storage.open_append(self.path) as f:
            f.write(encode(record))
            f.sync()
        self._record = record


class RecordInPlaceAgent(Agent):
    """Classic: the progress record is overwritten in place instead of written to a copy
    and renamed over (``Storage.write_atomic``), so a cut between the truncation and the
    new bytes leaves an empty, unreadable record."""

    def boot(self) -> None:
        super().boot()
        assert self.storage is not None and self.journal is not None
        self.journal = _InPlaceJournal(self.storage, self.journal.record, self.journal.path)


_STREAM_DOWNLOADER = type("StreamDownloader", (_StagingSwap,), {"staging_class": StreamHashStaging})


class _DictJournal(Journal):
    """The progress record kept outside the file system, in ``store`` (the original's
    device mutable storage): it survives a power cut however the flash fared."""

    store: dict[str, Record]

    def save(self, record: Record) -> None:
        self.store["record"] = record
        self._record = record


def record_outside_factory() -> AgentFactory:
    """Weakness 7: the record lives outside littlefs and is written before the flash
    change it describes (a new job is recorded, then the old partial image removed)."""
    store: dict[str, Record] = {}

    class RecordOutsideAgent(Agent):
        def boot(self) -> None:
            super().boot()
            assert self.storage is not None and self.journal is not None
            record = store.get("record") or self.journal.record
            journal = _DictJournal(self.storage, record, self.journal.path)
            journal.store = store
            self.journal = journal

        async def _begin(self, instruction: Instruction) -> bool:
            assert self.journal is not None
            job = Job(
                version=instruction.version,
                sha256=instruction.sha256.hex().upper(),
                size=instruction.size,
                url=instruction.url,
            )
            self.journal.save(
                Record(self.journal.record.installed_version, State.DOWNLOADING, job, 0)
            )
            return await super()._begin(instruction)

    return RecordOutsideAgent.from_board
