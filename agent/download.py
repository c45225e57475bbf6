"""Resumable, lie-proof download of a firmware image from Azure Blob storage.

The downloader streams ``GET {url}?{sas}`` into a :class:`Staging` area and
resumes with ``Range: bytes=N-`` from what the staging area has durably
committed, guarded by ``If-Match`` on the ETag first seen, so a blob replaced
between two requests is never spliced onto the old one's prefix (the original
design's weakness 2). Every answer is checked against what was asked before a
byte of it is kept (weaknesses 4 and 5), every failure is retried with capped
exponential backoff and full jitter (weakness 6), and data is committed every
``checkpoint_bytes`` so a power cut costs at most one interval (weakness 1).

References: Azure Blob REST "Get Blob" and "Specifying the range header"
(206/``Content-Range``, 416 ``InvalidRange``, 412 ``ConditionNotMet``);
RFC 9110 sections 13.1.1 (If-Match), 14.4 (Content-Range), 10.2.3 (Retry-After);
"Exponential Backoff And Jitter" (AWS architecture blog, 2015) for full jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from agent.clock import Clock
from agent.instruction import Instruction
from agent.redact import redact

log = logging.getLogger(__name__)

X_MS_VERSION = "2021-08-06"  # open-ended ranges need 2011-08-18 or later
# A low-speed window closes this close to its end: a clock far from zero cannot
# advance by a remainder of a few ulps, which would otherwise spin forever.
_WINDOW_SLACK_S = 1e-6
# Header numbers are DIGIT, %x30-39 (RFC 9110 5.6.1): ASCII only, never "\d" or
# str.isdigit, which take any Unicode digit (and int("²") raises).
_DIGITS = re.compile(r"[0-9]+")
_CONTENT_RANGE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/([0-9]+)")


class Staging(Protocol):
    """Where downloaded bytes go: a partial image file plus its progress record."""

    @property
    def committed(self) -> int:
        """Bytes durably on flash; a resume starts here."""
        ...

    @property
    def etag(self) -> str | None:
        """The ETag of the blob the committed bytes came from, if any."""
        ...

    def begin(self, etag: str) -> None:
        """Durably record the ETag of the blob about to be written from offset 0."""
        ...

    def write(self, data: bytes) -> None:
        """Append after what is written so far (not yet durable)."""
        ...

    def commit(self) -> None:
        """Make everything written so far durable (a real file sync)."""
        ...

    def restart(self) -> None:
        """Durably discard all bytes and the ETag: the next write starts at 0."""
        ...


@dataclass(frozen=True, kw_only=True)
class DownloadPolicy:
    """Tunables of the downloader; the defaults follow the original where it had one."""

    checkpoint_bytes: int = 64 * 1024
    read_chunk_bytes: int = 16 * 1024
    low_speed_limit_bps: float = 10.0  # curl's CURLOPT_LOW_SPEED_LIMIT in the original
    low_speed_time_s: float = 30.0  # curl's CURLOPT_LOW_SPEED_TIME in the original
    connect_timeout_s: float = 30.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    retry_after_cap_s: float = 600.0
    max_attempts: int = 8  # consecutive failures without progress before giving up
    x_ms_version: str = X_MS_VERSION

    def __post_init__(self) -> None:
        for name in ("checkpoint_bytes", "read_chunk_bytes", "max_attempts"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DownloadPolicy.{name} must be > 0, got {getattr(self, name)}")
        for name in (
            "low_speed_limit_bps",
            "low_speed_time_s",
            "connect_timeout_s",
            "backoff_base_s",
            "backoff_cap_s",
            "retry_after_cap_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"DownloadPolicy.{name} must be >= 0, got {getattr(self, name)}")

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Full jitter: uniform over [0, min(cap, base * 2**(failures-1))]."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** max(0, failures - 1))
        return rng.uniform(0.0, ceiling)


class DownloadError(Exception):
    """The download could not finish; ``report_error`` is the text reported to the cloud."""

    report_error = "Network Timeout"


class HttpStatusError(DownloadError):
    """The server kept answering with an HTTP error."""

    report_error = "Http Response > 400"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ResponseLie(DownloadError):
    """The server's answer contradicts the request or the instruction."""

    report_error = "Http Response > 400"


class Stalled(DownloadError):
    """Fewer than ``low_speed_limit_bps`` bytes/s for ``low_speed_time_s`` seconds."""


@dataclass
class DownloadStats:
    """What one :func:`download` call did, for reports and for the resume invariants."""

    requests: int = 0
    wire_bytes: int = 0  # body bytes received, kept or not
    kept_bytes: int = 0  # body bytes appended to the staging area
    restarts: int = 0  # times the partial image was discarded (blob replaced)
    retries: int = 0
    events: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    """How to consume one response: skip ``skip`` body bytes, then append."""

    skip: int
    etag: str
    restart: bool = False


class _Retry(Exception):
    def __init__(self, error: DownloadError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def _raise_if_cancelled() -> None:
    """Raise the cancel that ``asyncio.wait_for`` swallowed, if it did.

    On Python 3.11 ``wait_for`` returns the result instead of raising when a cancel
    arrives in the loop iteration in which the awaitable it wraps completed (CPython
    gh-86296, fixed in 3.12 by gh-98518). Body reads go through ``Clock.wait_for``, so
    while data keeps arriving every cancel can be lost and a superseded download would
    run to its end. ``Task.cancelling()`` still counts the request, so honour it here.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def parse_retry_after(value: str | None, now_epoch: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if _DIGITS.fullmatch(value):
        return float(value)
    if not value.isascii():
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if now_epoch is None:
        return None  # a date needs a wall clock; the agent has none it trusts
    return max(0.0, when.timestamp() - now_epoch)


class Downloader:
    """Downloads one instruction's image into a staging area, resuming across calls."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        policy: DownloadPolicy | None = None,
        rng: random.Random | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self._session = session
        self._clock = clock
        self.policy = policy or DownloadPolicy()
        self._rng = rng or random.Random()
        self._on_progress = on_progress
        self.history: list[DownloadStats] = []

    @property
    def stats(self) -> DownloadStats | None:
        """The stats of the latest :meth:`download` call, kept up to date while it runs
        (so they survive a :class:`~agent.errors.PowerLoss` that ends it)."""
        return self.history[-1] if self.history else None

    async def download(self, instruction: Instruction, staging: Staging) -> DownloadStats:
        """Fetch the rest of the image; return once ``staging.committed == size``.

        Raises :class:`DownloadError` after ``max_attempts`` consecutive failures
        with no progress. :class:`agent.errors.PowerLoss` from the staging area
        passes through untouched.
        """
        stats = DownloadStats()
        self.history.append(stats)
        failures = 0
        while staging.committed < instruction.size:
            before = staging.committed
            try:
                await self._one_request(instruction, staging, stats)
            except _Retry as retry:
                if staging.committed > before:
                    failures = 0
                failures += 1
                self._event(
                    stats, f"attempt failed ({failures}/{self.policy.max_attempts}): {retry}"
                )
                if failures >= self.policy.max_attempts:
                    raise retry.error from None
                delay = self.policy.backoff(failures, self._rng)
                if retry.retry_after is not None:
                    delay = max(delay, min(retry.retry_after, self.policy.retry_after_cap_s))
                stats.retries += 1
                await self._clock.asleep(delay)
                continue
            failures = 0
        return stats

    async def _one_request(
        self, instruction: Instruction, staging: Staging, stats: DownloadStats
    ) -> None:
        offset = staging.committed
        headers = {"x-ms-version": self.policy.x_ms_version}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-"
        if staging.etag is not None:
            headers["If-Match"] = staging.etag
        stats.requests += 1
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None)
        try:
            response = await self._clock.wait_for(
                self._session.get(
                    instruction.download_url(),
                    headers=headers,
                    timeout=timeout,
                    auto_decompress=False,
                ),
                self.policy.connect_timeout_s,
            )
        except TimeoutError:
            raise _Retry(Stalled(f"no response within {self.policy.connect_timeout_s} s")) from None
        except aiohttp.ClientError as exc:
            raise _Retry(DownloadError(f"connection failed: {redact(str(exc))}")) from None
        async with response:
            _raise_if_cancelled()
            plan = self._check(response, instruction, staging, offset, stats)
            if plan.restart:
                stats.restarts += 1
                staging.restart()
                self._progress(0, instruction.size)
            if staging.etag is None:
                staging.begin(plan.etag)
            await self._consume(response, plan, instruction, staging, stats)

    def _check(
        self,
        response: aiohttp.ClientResponse,
        instruction: Instruction,
        staging: Staging,
        offset: int,
        stats: DownloadStats,
    ) -> _Plan:
        """Decide from status and headers what the body is; never trust it unchecked."""
        status = response.status
        etag = response.headers.get("ETag")
        size = instruction.size
        if status in (200, 206) and not etag:
            raise _Retry(ResponseLie(f"HTTP {status} without an ETag"))
        if status == 206:
            crange = _parse_content_range(response.headers.get("Content-Range"))
            if crange is None:
                raise _Retry(
                    ResponseLie(
                        f"206 with a bad Content-Range {response.headers.get('Content-Range')!r}"
                    )
                )
            start, end, total = crange
            if total != size:
                raise _Retry(
                    ResponseLie(f"206 for a blob of {total} bytes; the instruction says {size}")
                )
            if start != offset or end != size - 1:
                raise _Retry(
                    ResponseLie(
                        f"asked for bytes {offset}-, got Content-Range {start}-{end}/{total}"
                    )
                )
            if staging.etag is not None and etag != staging.etag:
                self._event(
                    stats, f"ETag changed {staging.etag} -> {etag} despite If-Match; restarting"
                )
                raise _Retry(ResponseLie("ETag changed under a conditional request"))
            self._check_length(response, end - start + 1)
            return _Plan(skip=0, etag=etag or "")
        if status == 200:
            self._check_length(response, size)
            if offset > 0 and staging.etag is not None and etag != staging.etag:
                self._event(
                    stats, f"200 with a new ETag {etag}: the blob was replaced; restarting from 0"
                )
                return _Plan(skip=0, etag=etag or "", restart=True)
            if offset > 0:
                self._event(
                    stats,
                    f"server ignored Range (200 for bytes={offset}-); skipping {offset} bytes",
                )
            return _Plan(skip=offset, etag=etag or "")
        if status == 412:
            self._event(stats, "412 ConditionNotMet: the blob was replaced; restarting from 0")
            stats.restarts += 1
            staging.restart()
            self._progress(0, instruction.size)
            raise _Retry(HttpStatusError(412, "blob replaced (412), restarting"), retry_after=0.0)
        if status == 416:
            unsat = _UNSATISFIED_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            length = int(unsat.group(1)) if unsat else None
            # The offset is always below the instruction's size here, so a 416 means the
            # blob is not the one described: never take it as "complete" (weakness 5).
            raise _Retry(
                ResponseLie(
                    f"416 for bytes={offset}- (server length {length}, instruction size {size})"
                )
            )
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise _Retry(
            HttpStatusError(status, f"HTTP {status} {response.reason or ''}".strip()), retry_after
        )

    @staticmethod
    def _check_length(response: aiohttp.ClientResponse, expected: int) -> None:
        length = response.headers.get("Content-Length")
        if length is not None and (not _DIGITS.fullmatch(length) or int(length) != expected):
            raise _Retry(ResponseLie(f"Content-Length {length}, expected {expected}"))

    async def _consume(
        self,
        response: aiohttp.ClientResponse,
        plan: _Plan,
        instruction: Instruction,
        staging: Staging,
        stats: DownloadStats,
    ) -> None:
        """Stream the body into staging, committing every checkpoint and on failure."""
        policy = self.policy
        skip = plan.skip
        written = staging.committed
        uncommitted = 0
        window_start = self._clock.monotonic()
        window_bytes = 0
        try:
            while written < instruction.size:
                remaining = policy.low_speed_time_s - (self._clock.monotonic() - window_start)
                chunk = None
                if remaining > _WINDOW_SLACK_S:
                    with contextlib.suppress(TimeoutError):
                        chunk = await self._clock.wait_for(
                            response.content.read(policy.read_chunk_bytes), remaining
                        )
                _raise_if_cancelled()
                now = self._clock.monotonic()
                if chunk:
                    stats.wire_bytes += len(chunk)
                    window_bytes += len(chunk)
                if now - window_start >= policy.low_speed_time_s - _WINDOW_SLACK_S:
                    rate = window_bytes / max(now - window_start, 1e-9)
                    if rate < policy.low_speed_limit_bps:
                        raise _Retry(
                            Stalled(f"{rate:.1f} B/s for {policy.low_speed_time_s:g} s (stalled)")
                        )
                    window_start, window_bytes = now, 0
                if chunk is None:
                    continue
                if not chunk:
                    raise _Retry(
                        DownloadError(f"connection closed at {written} of {instruction.size} bytes")
                    )
                if skip:
                    dropped = min(skip, len(chunk))
                    skip -= dropped
                    chunk = chunk[dropped:]
                    if not chunk:
                        continue
                chunk = chunk[: instruction.size - written]
                while chunk:  # never let more than one interval go uncommitted
                    room = policy.checkpoint_bytes - uncommitted
                    part, chunk = chunk[:room], chunk[room:]
                    staging.write(part)
                    written += len(part)
                    uncommitted += len(part)
                    stats.kept_bytes += len(part)
                    if uncommitted >= policy.checkpoint_bytes:
                        staging.commit()
                        uncommitted = 0
                        self._progress(written, instruction.size)
        except (_Retry, aiohttp.ClientError) as exc:
            # Keep what did arrive: a broken connection is not a power cut.
            if uncommitted:
                staging.commit()
                self._progress(written, instruction.size)
            if isinstance(exc, _Retry):
                raise
            raise _Retry(
                DownloadError(f"transfer failed at {written} bytes: {redact(str(exc))}")
            ) from None
        if uncommitted:
            staging.commit()
            self._progress(written, instruction.size)

    def _progress(self, done: int, total: int) -> None:
        if self._on_progress is not None:
            self._on_progress(done, total)

    @staticmethod
    def _event(stats: DownloadStats, text: str) -> None:
        stats.events.append(text)
        log.info("download: %s", text)


def _parse_content_range(value: str | None) -> tuple[int, int, int] | None:
    match = _CONTENT_RANGE.fullmatch(value or "")
    if not match:
        return None
    start, end, total = (int(g) for g in match.groups())
    if start > end or end >= total:
        return None
    return start, end, total
