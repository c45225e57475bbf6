"""The OTA agent's state machine: instruction in, image applied, every step resumable.

On every start the agent derives where it is from flash alone (the progress record,
the staged and current image files, and the target's version), so a power cut at
any instant, during a download, a verify, an install or the record's rename,
resumes correctly. It keeps the original design's cloud contract
(``docs/reference-design.md``) without its weaknesses:

* versions only increase: an instruction not newer than what is installed is
  refused and reported, never re-applied (weakness 8);
* the same instruction delivered again (a reconnect) continues where it was; a
  different one supersedes the job in hand cleanly;
* the image is verified by reading it back from flash, so what is applied is what
  is stored, not what went past on the wire;
* the last applied image is kept until a new one is verified and applied; if both
  cannot fit, the new instruction is refused rather than the good image destroyed;
* apply is idempotent: it runs only while the target's version is below the
  staged one, so a cut during install just installs again;
* a chip that cannot be used at boot (no chip or a foreign one by its JEDEC ID, stuck
  BUSY, a region littlefs cannot mount that is not blank) is reported as ``error`` /
  ``Flash unusable`` with a ``Detail``, the twin keeps being served, and the agent
  tries again every ``storage_retry_s`` (jittered, on the injected clock); a region it
  cannot read is never formatted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import random
from collections.abc import Callable
from enum import Enum
from typing import Any

import aiohttp

from agent.clock import Clock
from agent.config import AgentConfig
from agent.download import Downloader, DownloadError, DownloadStats
from agent.errors import PowerLoss
from agent.flash import FlashError, SpiFlash
from agent.instruction import (
    Instruction,
    InvalidInstruction,
    parse_instruction,
)
from agent.protocol import Board
from agent.record import Job, Record, RecordError, State, load_record
from agent.report import ErrorText, Report, Status, percent, to_reported
from agent.reporting import Reporter
from agent.staging import (
    CURRENT_PATH,
    OTA_DIR,
    RECORD_PATH,
    STAGED_PATH,
    ImageStaging,
    Journal,
)
from agent.storage import Flash, Storage, StorageError
from agent.target import McuTarget
from agent.twin import Twin, merge_patch
from agent.twin_link import TwinLink

log = logging.getLogger(__name__)

VERIFY_CHUNK_BYTES = 4096


class Outcome(Enum):
    """What became of one attempt at the desired instruction."""

    DONE = "done"  # applied, refused or failed for good: wait for a new instruction
    RETRY = "retry"  # interrupted: try again after a while or on redelivery


#: How long a chip may stay BUSY at boot before it is taken as stuck: power-on leaves a
#: chip idle, so this is the longest operation the agent itself issues (a 64 KiB block
#: erase, W25Q128JV datasheet 9.6 tBE2 max 2 s), with the driver's margin.
BOOT_READY_TIMEOUT_S = 3.0


class Agent(Reporter):
    """One boot of the OTA agent. A power cut ends it (:class:`PowerLoss` escapes
    :meth:`run`); the device then boots a new :class:`Agent` on the same flash.

    Give ``flash`` (a driver already probed) or ``open_flash`` (probes the chip: it may
    raise :class:`agent.flash.FlashError`, which the agent reports and retries); a
    ``flash`` given wins."""

    def __init__(
        self,
        *,
        flash: Flash | None = None,
        open_flash: Callable[[], Flash] | None = None,
        twin: Twin,
        target: McuTarget,
        clock: Clock,
        config: AgentConfig | None = None,
        rng: random.Random | None = None,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
    ) -> None:
        if flash is None and open_flash is None:
            raise ValueError("give the agent flash or open_flash")
        self.flash: Flash | None = flash
        self._open_flash = open_flash if flash is None else None
        self.twin = twin
        self.target = target
        self.clock = clock
        self.config = config or AgentConfig()
        self.rng = rng or random.Random()
        self._session_factory = session_factory or aiohttp.ClientSession
        self.storage: Storage | None = None
        self.journal: Journal | None = None
        self.reports: list[Report] = []
        self._last_report: Report | None = None
        self._desired: dict[str, Any] = {}
        self._wake = asyncio.Event()
        self._progress_sent = -1
        self._outbox: asyncio.Queue[Report] = asyncio.Queue()
        self._downloader: Downloader | None = None
        self.link = TwinLink(twin, clock, self.rng, on_desired=self._on_patch)
        self._waiting = False  # for a new instruction, in _serve

    @classmethod
    def from_board(cls, board: Board) -> Agent:
        """This agent (or a subclass) behind the :mod:`agent.protocol` seam: an
        :data:`~agent.protocol.AgentFactory`. It drives the board's SPI port through
        :class:`agent.flash.SpiFlash` (probed at boot, so a chip that does not answer is
        reported and retried), or takes the board's ``flash`` when it has one."""
        return cls(
            flash=board.flash,
            open_flash=functools.partial(SpiFlash, board.spi, board.clock),
            twin=board.twin,
            target=board.target,
            clock=board.clock,
            config=board.config,
            rng=board.rng,
            session_factory=board.session_factory,
        )

    # -- boot ---------------------------------------------------------------------

    def boot(self) -> None:
        """Open the chip and mount the file system (formatting only a blank region), and
        load the progress record. Raises :class:`agent.flash.FlashError` or
        :class:`StorageError` when the chip cannot be used (:meth:`run` reports and
        retries), :class:`PowerLoss` when the power goes."""
        if self.flash is None:
            assert self._open_flash is not None
            self.flash = self._open_flash()
        if isinstance(self.flash, SpiFlash):
            # a chip that is BUSY ignores reads: what it returns must not be judged blank
            self.flash.wait_ready(BOOT_READY_TIMEOUT_S, "power-on (before trusting a read)")
        try:
            self.config.geometry.check_fits(self.flash)
        except ValueError as exc:
            raise StorageError(
                f"the configured littlefs region does not fit the chip: {exc}"
            ) from None
        self.storage = Storage.mount(
            self.flash, self.config.geometry, format_blank=self.config.format_blank
        )
        self.storage.makedirs(OTA_DIR)
        try:
            record = load_record(self.storage, RECORD_PATH)
        except RecordError as exc:
            log.error("progress record unusable, starting over from the target: %s", exc)
            record = None
        if record is None:
            record = Record(installed_version=self.target.current_version())
        self.journal = Journal(self.storage, record, RECORD_PATH)

    @property
    def downloads(self) -> list[DownloadStats]:
        """One :class:`DownloadStats` per download attempt in this boot, oldest first."""
        return [] if self._downloader is None else self._downloader.history

    @property
    def idle(self) -> bool:
        """Nothing to do until the cloud says something: waiting for a new instruction with
        every report sent (a simulation may let the cloud's time pass then)."""
        waiting = self._waiting and not self._wake.is_set()
        return waiting and self._outbox.empty() and not self.link.busy

    def installed_version(self) -> int:
        assert self.journal is not None
        return max(self.target.current_version(), self.journal.record.installed_version)

    # -- the main loop ------------------------------------------------------------

    async def run(self) -> None:
        """Connect, boot, and serve instructions until cancelled or the power goes."""
        async with self._session_factory() as session:
            self._downloader = Downloader(
                session,
                self.clock,
                policy=self.config.download,
                rng=self.rng,
                on_progress=self._on_progress,
            )
            self.twin.on_desired_patch(self._on_patch)
            await self.link.connect()
            sender = asyncio.ensure_future(self._send_reports())
            try:
                await self._boot_until_usable()
                await self._recover()
                self._desired = merge_patch(await self.link.get_desired(), self._desired)
                await self._serve()
            finally:
                sender.cancel()
                with contextlib.suppress(Exception):
                    await self.twin.close()

    async def _boot_until_usable(self) -> None:
        """:meth:`boot` until it succeeds; meanwhile the twin is served (patches are
        kept for later) and each failure is reported as ``error``, then retried after
        ``storage_retry_s`` x uniform(0.5, 1) on the injected clock."""
        while True:
            try:
                self.boot()
                return
            except PowerLoss:
                raise
            except (FlashError, StorageError) as exc:
                if self._open_flash is not None:
                    self.flash = None  # probe the chip again next time
                self.storage = self.journal = None
                delay = self.rng.uniform(0.5, 1.0) * self.config.storage_retry_s
                log.error("flash unusable at boot (%s); trying again in %.0f s", exc, delay)
                await self._report(
                    Report(
                        Status.ERROR,
                        ErrorText.FLASH_UNUSABLE,
                        detail=f"{exc} (nothing written; trying again every "
                        f"~{self.config.storage_retry_s:g} s)",
                    )
                )
                await self.clock.asleep(delay)

    async def _send_reports(self) -> None:
        """Send reports to the twin one at a time, in the order they were made; a report
        the twin refuses (:class:`TwinError`) is kept and sent again (:mod:`agent.twin_link`)."""
        while True:
            report = await self._outbox.get()
            try:
                await self.link.report(to_reported(report))
            except Exception as exc:  # a bug in the twin must not stop the agent
                log.error("report %s not sent: %s", report.status.value, exc)

    async def _serve(self) -> None:
        while True:
            self._wake.clear()
            desired = dict(self._desired)
            outcome = await self._attempt(desired)
            if outcome is Outcome.DONE:
                self._waiting = True
                try:
                    await self._wake.wait()
                finally:
                    self._waiting = False
                continue
            delay = self.rng.uniform(0.5, 1.0) * self.config.retry_interval_s
            with contextlib.suppress(TimeoutError):
                await self.clock.wait_for(self._wake.wait(), delay)

    def _on_patch(self, patch: dict[str, Any]) -> None:
        self._desired = merge_patch(self._desired, patch)
        self._wake.set()

    async def _attempt(self, desired: dict[str, Any]) -> Outcome:
        """Work on ``desired`` until done, superseded by a different instruction, or failed."""
        try:
            instruction = self._parse(desired)
        except InvalidInstruction as exc:
            await self._report(
                Report(Status.INVALID, ErrorText.INVALID_INSTRUCTION, detail=str(exc))
            )
            return Outcome.DONE
        if instruction is None:
            return Outcome.DONE
        job = asyncio.ensure_future(self._work(instruction))
        try:
            return await self._supervise(job, instruction)
        finally:
            if not job.done():
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError, PowerLoss):
                    await job

    async def _supervise(self, job: asyncio.Future[Outcome], instruction: Instruction) -> Outcome:
        """Wait for ``job``; cancel it when a different instruction arrives.

        A job whose image is verified is never cancelled: it has reported (or is about
        to report) ``applying``, and an apply is finished before the next instruction
        is looked at, so ``applying`` is always followed by ``applied`` or ``error``.
        """
        deferred = False
        try:
            while True:
                waker: asyncio.Future[Any] = asyncio.ensure_future(self._wake.wait())
                pending: set[asyncio.Future[Any]] = {job, waker}
                try:
                    done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waker.cancel()
                if job in done:
                    return job.result()
                self._wake.clear()
                try:
                    newer = self._parse(self._desired)
                except InvalidInstruction:
                    deferred = True  # reported once the job in hand ends; it keeps going
                    continue
                if newer is None or newer.identity() == instruction.identity():
                    continue
                if self._applying():
                    deferred = True  # looked at once the apply in hand is finished
                    continue
                log.info("instruction superseded by version %d", newer.version)
                deferred = True
                return Outcome.RETRY
        finally:
            if deferred:
                self._wake.set()

    def _applying(self) -> bool:
        record = None if self.journal is None else self.journal.record
        return record is not None and record.state in (State.VERIFIED, State.APPLYING)

    def _parse(self, desired: dict[str, Any]) -> Instruction | None:
        return parse_instruction(
            desired,
            max_size=self.config.geometry.region_size,
            allow_http_loopback=self.config.allow_http_loopback,
            storage_hosts=self.config.storage_hosts,
        )

    # -- one job ------------------------------------------------------------------

    async def _work(self, instruction: Instruction) -> Outcome:
        assert self.storage is not None and self.journal is not None
        installed = self.installed_version()
        if instruction.version <= installed:
            if instruction.version == installed and self._is_installed_job(instruction):
                await self._report_applied(installed)
            else:
                why = "older than" if instruction.version < installed else "the same as"
                await self._report(
                    Report(
                        Status.INVALID,
                        ErrorText.NOT_NEWER,
                        target_version=instruction.version,
                        detail=f"version {instruction.version} is {why} the installed "
                        f"{installed}: versions only increase",
                    )
                )
            return Outcome.DONE
        record = self.journal.record
        same_job = record.job is not None and record.job.identity() == instruction.identity()
        if same_job and record.state is State.FAILED:
            await self._report_failed(record)
            return Outcome.DONE
        fresh = not same_job or record.state in (State.IDLE, State.APPLIED)
        if fresh and not await self._begin(instruction):
            return Outcome.DONE
        try:
            if self.journal.record.state is State.DOWNLOADING:
                if not await self._download(instruction):
                    return Outcome.RETRY
                if not await self._verify():
                    return Outcome.DONE
            await self._apply()
        except StorageError as exc:
            log.error("file operation failed: %s", exc)
            await self._report(
                Report(
                    Status.ERROR,
                    ErrorText.FILE_OPERATION_FAIL,
                    target_version=instruction.version,
                    detail=str(exc),
                )
            )
            return Outcome.RETRY
        return Outcome.DONE

    def _is_installed_job(self, instruction: Instruction) -> bool:
        """Whether ``instruction`` is the job applied last (unknown counts as yes: a
        target flashed at the factory or a lost record cannot prove otherwise)."""
        assert self.journal is not None
        record = self.journal.record
        if record.state is not State.APPLIED or record.job is None:
            return True
        return record.job.identity() == instruction.identity()

    async def _begin(self, instruction: Instruction) -> bool:
        """Start a new job, unless the image cannot fit beside the last good one."""
        assert self.storage is not None and self.journal is not None
        self.storage.remove(STAGED_PATH)  # before the record names the new job
        block = self.config.geometry.block_size
        need = -(-instruction.size // block) * block + self.config.space_reserve_blocks * block
        free = self.storage.free_bytes()
        if need > free:
            await self._report(
                Report(
                    Status.INVALID,
                    ErrorText.NO_SPACE,
                    target_version=instruction.version,
                    detail=f"image of {instruction.size} bytes needs {need} bytes of flash; "
                    f"{free} are free beside the last good image, which is kept",
                )
            )
            return False
        job = Job(
            version=instruction.version,
            sha256=instruction.sha256.hex().upper(),
            size=instruction.size,
            url=instruction.url,
        )
        base = self.journal.record
        if base.installed_version < self.installed_version():
            base = Record(installed_version=self.installed_version())
        self.journal.save(base.begin(job))
        self._progress_sent = -1
        return True

    async def _download(self, instruction: Instruction) -> bool:
        assert self.storage is not None and self.journal is not None
        assert self._downloader is not None
        staging = ImageStaging(self.storage, self.journal, STAGED_PATH)
        await self._report_progress(staging.committed, instruction.size, force=True)
        try:
            await self._downloader.download(instruction, staging)
        except DownloadError as exc:
            staging.close()
            await self._report(
                Report(
                    Status.INTERRUPTED,
                    ErrorText(exc.report_error),
                    target_version=instruction.version,
                    progress=percent(staging.committed, instruction.size),
                    downloaded=staging.committed,
                    detail=str(exc),
                )
            )
            return False
        except PowerLoss:
            raise
        except BaseException:
            with contextlib.suppress(PowerLoss, StorageError):
                staging.close()
            raise
        staging.close()
        return True

    async def _verify(self) -> bool:
        """Check size and SHA-256 of the staged image as read back from flash."""
        assert self.storage is not None and self.journal is not None
        record = self.journal.record
        job = record.job
        assert job is not None
        digest = hashlib.sha256()
        size = 0
        with self.storage.open_read(STAGED_PATH) as reader:
            while chunk := reader.read(VERIFY_CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                await asyncio.sleep(0)
        if size != job.size or digest.hexdigest().upper() != job.sha256:
            log.error("verify failed: %d bytes, sha256 %s", size, digest.hexdigest())
            self.storage.remove(STAGED_PATH)  # before the record says failed
            self.journal.save(record.failed(ErrorText.SHA256_VERIFY_FAIL.value, committed=0))
            await self._report_failed(self.journal.record)
            return False
        self.journal.save(record.verified())
        return True

    async def _apply(self) -> None:
        """Install the verified image (only while the target is older), then finalise."""
        assert self.storage is not None and self.journal is not None
        record = self.journal.record
        job = record.job
        assert job is not None
        if record.state is State.VERIFIED:
            self.journal.save(record.applying())
        if record.state in (State.VERIFIED, State.APPLYING):
            await self._report(Report(Status.APPLYING, target_version=job.version, progress=100))
            if self.target.current_version() < job.version:
                try:
                    with self.storage.open_read(STAGED_PATH) as reader:
                        self.target.install(reader, job.size, job.version)  # type: ignore[arg-type]
                except PowerLoss:
                    raise
                except StorageError:
                    raise
                except Exception as exc:
                    log.error("MCU install failed: %s", exc)
                    failed = self.journal.record.failed(ErrorText.MCU_DOWNLOAD_FAIL.value)
                    self.journal.save(failed)
                    await self._report_failed(self.journal.record, detail=str(exc))
                    return
            self.journal.save(self.journal.record.applied())
        if self.storage.exists(STAGED_PATH):
            self.storage.rename(STAGED_PATH, CURRENT_PATH)  # atomic; the old image goes now
        await self._report_applied(self.journal.record.installed_version)

    async def _recover(self) -> None:
        """Finish, from flash alone, what a cut interrupted and needs no instruction."""
        assert self.storage is not None and self.journal is not None
        record = self.journal.record
        if record.state in (State.VERIFIED, State.APPLYING, State.APPLIED):
            await self._apply()
            return
        complete = (
            record.state is State.DOWNLOADING
            and record.job is not None
            and self.storage.exists(STAGED_PATH)
            and self.storage.size(STAGED_PATH) == record.job.size
        )
        if complete and await self._verify():
            await self._apply()
