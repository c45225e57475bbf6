"""The downloader's decisions one at a time, against a scripted fake HTTP session.

The end-to-end tests (tests/functional/test_agent_*.py) drive the agent through a real
blob server; some of the downloader's checks never change their outcome there, because
an honest server never sends the lie they guard against or a later check catches it
too. These tests pin each such decision directly: a :class:`FakeSession` answers with
exactly the headers and body chunks a test scripts (and honestly otherwise), a
:class:`FakeStaging` logs every call in order, and a :class:`VirtualClock` counts
backoff sleeps without real waiting. Found by a mutation audit of agent/download.py.

Sources: Azure Blob REST "Get Blob" and "Specifying the range header"; RFC 9110
sections 8.6 (Content-Length), 10.2.3 (Retry-After), 13.1.1 (If-Match), 14.4
(Content-Range); "Exponential Backoff And Jitter" (AWS architecture blog, 2015).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from agent.download import Downloader, DownloadError, DownloadPolicy, Stalled
from agent.instruction import Instruction
from sim.clock import VirtualClock

pytestmark = pytest.mark.sim

SIZE = 4096
IMAGE = random.Random("test_download").randbytes(SIZE)
ETAG = '"0x8DB0000000000A"'
STALL = object()  # a body item: the read never completes


def instruction(size: int = SIZE) -> Instruction:
    return Instruction(
        version=1,
        size=size,
        url="https://example.blob.core.windows.net/ota/mcu.bin",
        sas="sv=2021-08-06&sr=b&sp=r&sig=c2VjcmV0",
        sha256=hashlib.sha256(IMAGE[:size]).digest(),
    )


@dataclass
class Answer:
    """One scripted response: status, headers, and body items read one per read()."""

    status: int = 206
    headers: dict[str, str] = field(default_factory=dict)
    body: list[Any] = field(default_factory=list)
    read_s: float = 0.0  # virtual seconds each body read takes


def honest(asked: dict[str, str], *, read_bytes: int = 1024, read_s: float = 0.0) -> Answer:
    """What Azure answers to ``asked``: 206 for a Range, 200 otherwise."""
    start = int(asked["Range"].removeprefix("bytes=").split("-")[0]) if "Range" in asked else 0
    body = IMAGE[start:]
    chunks = [body[i : i + read_bytes] for i in range(0, len(body), read_bytes)]
    headers = {"ETag": ETAG, "Content-Length": str(len(body))}
    if "Range" not in asked:
        return Answer(200, headers, chunks, read_s)
    headers["Content-Range"] = f"bytes {start}-{SIZE - 1}/{SIZE}"
    return Answer(206, headers, chunks, read_s)


class FakeContent:
    def __init__(self, answer: Answer, clock: VirtualClock) -> None:
        self._items = list(answer.body)
        self._read_s = answer.read_s
        self._clock = clock

    async def read(self, n: int) -> bytes:
        if not self._items:
            return b""
        item = self._items.pop(0)
        if item is STALL:
            await asyncio.Event().wait()
        if isinstance(item, BaseException):
            raise item
        if len(item) > n:
            item, rest = item[:n], item[n:]
            self._items.insert(0, rest)
        self._clock.advance(self._read_s)
        return item


class FakeResponse:
    def __init__(self, answer: Answer, clock: VirtualClock) -> None:
        self.status = answer.status
        self.headers = answer.headers
        self.reason = "scripted"
        self.content = FakeContent(answer, clock)

    async def __aenter__(self) -> FakeResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class FakeSession:
    """Answers each GET with the next scripted :class:`Answer` (or a callable of the
    request headers returning one), and honestly once the script is used up."""

    def __init__(self, clock: VirtualClock, script: list[Any] | None = None) -> None:
        self._clock = clock
        self._script = list(script or [])
        self.asked: list[dict[str, str]] = []

    async def _get(self, headers: dict[str, str]) -> FakeResponse:
        self.asked.append(dict(headers))
        step = self._script.pop(0) if self._script else honest
        answer = step(headers) if callable(step) else step
        if isinstance(answer, BaseException):
            raise answer
        return FakeResponse(answer, self._clock)

    def get(self, url: str, *, headers: dict[str, str], **_: Any) -> Any:
        return self._get(headers)


class FakeStaging:
    """An in-memory staging area that logs every call, in order."""

    def __init__(self, data: bytes = b"", etag: str | None = None) -> None:
        self.data = bytearray(data)
        self._committed = len(data)
        self._etag = etag
        self.log: list[tuple[str, int]] = []  # (call, bytes written so far)

    @property
    def committed(self) -> int:
        return self._committed

    @property
    def etag(self) -> str | None:
        return self._etag

    def begin(self, etag: str) -> None:
        self.log.append(("begin", len(self.data)))
        self._etag = etag

    def write(self, data: bytes) -> None:
        self.log.append(("write", len(self.data)))
        self.data += data

    def commit(self) -> None:
        self.log.append(("commit", len(self.data)))
        self._committed = len(self.data)

    def restart(self) -> None:
        self.log.append(("restart", len(self.data)))
        self.data.clear()
        self._committed = 0
        self._etag = None

    def uncommitted_peak(self) -> int:
        """The most bytes ever written but not yet committed."""
        peak = last = 0
        for call, at in [*self.log, ("end", len(self.data))]:
            if call in ("commit", "end"):
                peak = max(peak, at - last)
                last = at
        return peak


class SleepLog(VirtualClock):
    """A virtual clock that also records every ``asleep`` (the downloader's backoffs)."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().asleep(seconds)


def downloader(clock: VirtualClock, session: FakeSession, seed: int = 0, **policy: Any) -> Any:
    policy.setdefault("checkpoint_bytes", 1024)
    policy.setdefault("read_chunk_bytes", 4096)
    return Downloader(
        session,  # type: ignore[arg-type]  # duck-typed: get() is all it uses
        clock,
        policy=DownloadPolicy(**policy),
        rng=random.Random(seed),
    )


def lie(**changes: Any) -> Any:
    """A step answering honestly except for ``changes`` (``headers`` are merged)."""

    def step(asked: dict[str, str]) -> Answer:
        answer = honest(asked)
        answer.headers.update(changes.pop("headers", {}))
        for name, value in changes.items():
            setattr(answer, name, value)
        return answer

    return step


def drop_header(name: str) -> Any:
    def step(asked: dict[str, str]) -> Answer:
        answer = honest(asked)
        del answer.headers[name]
        return answer

    return step


async def run(script: list[Any], staging: FakeStaging | None = None, **policy: Any) -> Any:
    clock = SleepLog()
    session = FakeSession(clock, script)
    staging = staging or FakeStaging()
    d = downloader(clock, session, **policy)
    stats = await d.download(instruction(), staging)
    return stats, session, staging, clock


# -- what a response must carry before its body is kept -----------------------------


async def test_answer_without_an_etag_is_not_kept():
    """Resume needs If-Match on the ETag first seen (RFC 9110 13.1.1; Get Blob always
    returns ETag): a 200 without one is retried, never written."""
    stats, session, staging, _ = await run([drop_header("ETag")])
    assert len(session.asked) == 2
    assert stats.kept_bytes == SIZE
    assert bytes(staging.data) == IMAGE


async def test_206_starting_elsewhere_than_asked_is_not_kept():
    """RFC 9110 14.4: Content-Range names the first byte sent; a 206 for ``bytes=1000-``
    that starts at 1512 would be spliced at 1000 if kept."""

    def later(asked: dict[str, str]) -> Answer:
        body = IMAGE[1512:]
        headers = {
            "ETag": ETAG,
            "Content-Length": str(len(body)),
            "Content-Range": f"bytes 1512-{SIZE - 1}/{SIZE}",
        }
        return Answer(206, headers, [body])

    _, session, staging, _ = await run([later], FakeStaging(IMAGE[:1000], ETAG))
    assert session.asked[1]["Range"] == "bytes=1000-"
    assert bytes(staging.data) == IMAGE


async def test_206_with_another_etag_than_the_recorded_one_is_not_kept():
    """If-Match (RFC 9110 13.1.1) should make a replaced blob answer 412; a server or
    proxy that answers 206 with another ETag anyway is not believed."""
    other = lie(headers={"ETag": '"0x8DBFFFFFFFFFFFF"'}, body=[bytes(SIZE - 1000)])
    stats, _, staging, _ = await run([other], FakeStaging(IMAGE[:1000], ETAG))
    assert stats.retries == 1
    assert bytes(staging.data) == IMAGE


async def test_200_with_a_new_etag_on_resume_restarts_from_zero():
    """A server that ignores both Range and If-Match (RFC 9110 14.2 and 13.1.1 allow
    neither, but proxies do) sends the whole replaced blob as 200 with its new ETag:
    the old prefix is discarded and the new blob written from 0, never spliced."""

    def replaced(asked: dict[str, str]) -> Answer:
        return Answer(200, {"ETag": ETAG, "Content-Length": str(SIZE)}, [IMAGE])

    old = FakeStaging(bytes(1000), '"0x8DB0000000000OLD"')
    stats, _, staging, _ = await run([replaced], old)
    assert stats.restarts == 1
    assert staging.etag == ETAG
    assert bytes(staging.data) == IMAGE


async def test_412_discards_the_old_prefix_and_starts_again_without_conditions():
    """Azure "Get Blob": 412 ConditionNotMet means the blob under If-Match was replaced;
    the prefix of the old one is dropped and the next request is unconditional from 0."""
    old = FakeStaging(bytes(1000), '"0x8DB0000000000OLD"')
    _, session, staging, _ = await run([Answer(412)], old)
    assert "Range" not in session.asked[1] and "If-Match" not in session.asked[1]
    assert bytes(staging.data) == IMAGE


async def test_416_keeps_the_committed_prefix_and_asks_the_same_range_again():
    """A 416 below the instruction's size is a lie or a transient (weakness 5): never
    "complete", and no reason to throw away bytes that were verified by If-Match."""
    unsatisfiable = Answer(416, {"Content-Range": "bytes */1000"})
    _, session, staging, _ = await run([unsatisfiable], FakeStaging(IMAGE[:1000], ETAG))
    assert session.asked[1]["Range"] == "bytes=1000-"
    assert bytes(staging.data) == IMAGE


async def test_etag_is_recorded_before_the_first_byte_is_written():
    """Committed bytes must always have a known origin so a resume can send If-Match
    (issue 4, weakness 2): ``begin`` comes before any ``write``."""
    _, _, staging, _ = await run([])
    assert staging.log[0] == ("begin", 0)
    assert staging.etag == ETAG


async def test_resume_sends_if_match_with_the_recorded_etag():
    """RFC 9110 13.1.1: If-Match makes a replaced blob answer 412 instead of splicing."""
    _, session, _, _ = await run([], FakeStaging(IMAGE[:1000], ETAG))
    assert session.asked[0]["Range"] == "bytes=1000-"
    assert session.asked[0]["If-Match"] == ETAG


async def test_200_whose_content_length_is_not_the_instruction_size_is_not_kept():
    """RFC 9110 8.6: a 200's Content-Length is the blob's size; another size means
    another blob, so not a byte of it is written."""
    stats, session, _, _ = await run([lie(headers={"Content-Length": str(2 * SIZE)})])
    assert len(session.asked) == 2
    assert stats.kept_bytes == SIZE


async def test_206_whose_content_length_is_not_the_range_length_is_not_kept():
    """RFC 9110 8.6 and 14.4: a 206's Content-Length is the length of its range."""
    start = FakeStaging(IMAGE[:1000], ETAG)
    stats, session, _, _ = await run([lie(headers={"Content-Length": "5"})], start)
    assert len(session.asked) == 2
    assert stats.kept_bytes == SIZE - 1000


async def test_overlong_body_without_content_length_is_cut_at_the_instruction_size():
    """A chunked 200 carries no length; bytes past ``size`` are not the image."""

    def overlong(asked: dict[str, str]) -> Answer:
        return Answer(200, {"ETag": ETAG}, [IMAGE + b"trailing junk"])

    _, _, staging, _ = await run([overlong], read_chunk_bytes=2 * SIZE)
    assert bytes(staging.data) == IMAGE


# -- checkpoints ----------------------------------------------------------------------


async def test_no_more_than_one_checkpoint_is_ever_left_uncommitted():
    """A cut costs at most one interval (issue 4, weakness 1), even when one read
    returns several intervals' worth."""
    _, _, staging, _ = await run([lie(body=[IMAGE])], checkpoint_bytes=1000)
    assert staging.uncommitted_peak() <= 1000
    assert bytes(staging.data) == IMAGE


async def test_bytes_that_arrived_before_a_broken_connection_are_committed():
    """A broken connection is not a power cut: what arrived is kept, so the resume asks
    from the last byte received, not the last checkpoint."""
    broken = lie(body=[IMAGE[:1500], aiohttp.ClientPayloadError("reset by peer")])
    _, session, staging, _ = await run([broken], checkpoint_bytes=1024)
    assert session.asked[1]["Range"] == "bytes=1500-"
    assert bytes(staging.data) == IMAGE


# -- the low-speed limit --------------------------------------------------------------


async def test_a_trickle_below_the_limit_is_a_stall():
    """curl's LOW_SPEED_LIMIT/TIME (reference design): fewer than ``low_speed_limit_bps``
    bytes per second over ``low_speed_time_s`` seconds ends the attempt as stalled."""
    trickle = lie(body=[IMAGE[i : i + 50] for i in range(0, 2000, 50)], read_s=1.0)
    with pytest.raises(Stalled):
        await run([trickle], max_attempts=1, low_speed_limit_bps=100, low_speed_time_s=10)


async def test_each_low_speed_window_counts_only_its_own_bytes():
    """The limit applies per window: a fast first window does not excuse a dead second."""
    fast_then_dead = lie(
        body=[IMAGE[i : i + 100] for i in range(0, 1000, 100)] + [STALL], read_s=1.0
    )
    with pytest.raises(Stalled):
        await run([fast_then_dead], max_attempts=1, low_speed_limit_bps=50, low_speed_time_s=5)


async def test_a_short_window_at_an_adequate_rate_is_not_a_stall():
    """The limit is a rate (bytes per second), not a byte count per window."""
    steady = lie(body=[IMAGE[i : i + 15] for i in range(0, 1500, 15)], read_s=0.1)
    stats, _, _, _ = await run([steady], low_speed_limit_bps=100, low_speed_time_s=0.5)
    assert not any("stalled" in e for e in stats.events)


# -- retries, backoff and giving up ---------------------------------------------------


async def test_retry_after_seconds_are_waited_before_the_retry():
    """RFC 9110 10.2.3: Retry-After in seconds; Azure sends it with 503 ServerBusy."""
    busy = Answer(503, {"Retry-After": "120"})
    _, _, _, clock = await run([busy])
    assert clock.sleeps[0] >= 120


async def test_retry_after_is_capped_by_the_policy():
    """A server asking for a day must not park the device for a day."""
    busy = Answer(503, {"Retry-After": "86400"})
    _, _, _, clock = await run([busy], retry_after_cap_s=600)
    assert clock.sleeps[0] == 600


async def test_failures_with_progress_between_them_never_exhaust_the_attempts():
    """``max_attempts`` counts consecutive failures without progress: a connection that
    breaks after every kilobyte still finishes."""
    script = [
        lie(body=[IMAGE[i : i + 1024], aiohttp.ClientPayloadError("reset")])
        for i in range(0, SIZE - 1024, 1024)
    ]
    _, _, staging, _ = await run(script, max_attempts=2, checkpoint_bytes=4096)
    assert bytes(staging.data) == IMAGE


async def test_gives_up_after_exactly_max_attempts_failures():
    """``max_attempts`` failed requests in a row, no more and no fewer, then the error."""
    clock = SleepLog()
    session = FakeSession(clock, [Answer(500)] * 10)
    with pytest.raises(DownloadError):
        await downloader(clock, session, max_attempts=3).download(instruction(), FakeStaging())
    assert len(session.asked) == 3


def test_backoff_is_full_jitter_below_an_exponential_ceiling():
    """Full jitter (AWS 2015): uniform over [0, base * 2**(n-1)]; the draws spread out."""
    policy = DownloadPolicy(backoff_base_s=1.0, backoff_cap_s=1000.0)
    rng = random.Random(4)
    draws = [policy.backoff(6, rng) for _ in range(200)]
    assert all(0 <= d <= 32 for d in draws)
    assert max(draws) > 16  # the ceiling doubled five times
    assert len(set(draws)) == len(draws)  # jittered, not a fixed delay


def test_backoff_never_exceeds_its_cap():
    """However many failures, one wait is at most ``backoff_cap_s``."""
    policy = DownloadPolicy(backoff_base_s=1.0, backoff_cap_s=300.0)
    rng = random.Random(5)
    assert max(policy.backoff(40, rng) for _ in range(200)) <= 300.0


# -- numbers in headers are ASCII digits only (RFC 9110 5.6.1 DIGIT is %x30-39) ----------

_NON_ASCII = [
    "\u0661\u0662",
    "\uff11\uff12",
    "\u00b2",
    "\u0967",
]  # Arabic-Indic, fullwidth, ², Devanagari
_ZEROS = {"arabic-indic": 0x0660, "fullwidth": 0xFF10, "devanagari": 0x0966}


def _spelled(number: int, zero: int) -> str:
    """``number`` written in the decimal digits starting at code point ``zero``."""
    return "".join(chr(zero + int(d)) for d in str(number))


@pytest.mark.parametrize("zero", _ZEROS.values(), ids=_ZEROS.keys())
async def test_a_content_range_in_non_ascii_digits_is_not_kept(zero: int):
    """``Content-Range: bytes ١٠٢٤-...`` is not a range even when the numbers it spells
    are right: the answer is refused and asked again (Python's ``int`` and ``\\d`` take
    any Unicode digit)."""
    crange = f"bytes {_spelled(1024, zero)}-{_spelled(SIZE - 1, zero)}/{_spelled(SIZE, zero)}"
    bad = lie(headers={"Content-Range": crange})
    resumed = FakeStaging(IMAGE[:1024], etag=ETAG)
    stats, session, staging, _ = await run([bad], resumed)
    assert any("Content-Range" in e for e in stats.events)
    assert bytes(staging.data) == IMAGE and len(session.asked) == 2


@pytest.mark.parametrize("zero", _ZEROS.values(), ids=_ZEROS.keys())
async def test_a_content_length_in_non_ascii_digits_is_not_kept(zero: int):
    """A Content-Length spelling the right length in other digits is no length."""
    bad = lie(headers={"Content-Length": _spelled(SIZE, zero)})
    stats, session, staging, _ = await run([bad])
    assert any("Content-Length" in e for e in stats.events)
    assert bytes(staging.data) == IMAGE and len(session.asked) == 2


async def test_a_content_length_of_superscript_two_is_a_lie_not_a_crash():
    """``Content-Length: ²`` passes ``str.isdigit`` but ``int`` raises ValueError: it is
    a lie to retry past, not an exception that ends the agent."""
    stats, session, staging, _ = await run([lie(headers={"Content-Length": "\u00b2"})])
    assert any("Content-Length" in e for e in stats.events)
    assert bytes(staging.data) == IMAGE and len(session.asked) == 2


@pytest.mark.parametrize("digits", _NON_ASCII)
def test_a_retry_after_in_non_ascii_digits_is_ignored(digits: str):
    """Retry-After is ``1*DIGIT`` (RFC 9110 10.2.3); anything else is no advice."""
    from agent.download import parse_retry_after

    assert parse_retry_after(digits) is None
    assert parse_retry_after("12") == 12.0


# -- every retry path is spread by jitter across devices ------------------------------


async def test_backoff_waits_differ_across_seeds_and_stay_below_the_ceiling():
    """A fleet that lost its server together must not come back in lock-step: the
    downloader's waits after the same failures differ from device to device (seed to
    seed), each within full jitter's [0, min(cap, base * 2**(n-1))]."""
    sequences = []
    for seed in range(8):
        clock = SleepLog()
        session = FakeSession(clock, [Answer(503)] * 6)
        d = downloader(clock, session, seed=seed, max_attempts=6, backoff_base_s=2.0)
        with pytest.raises(DownloadError):
            await d.download(instruction(), FakeStaging())
        assert len(clock.sleeps) == 5
        for n, wait in enumerate(clock.sleeps, start=1):
            assert 0.0 <= wait <= 2.0 * 2 ** (n - 1)
        sequences.append(tuple(clock.sleeps))
    assert len(set(sequences)) == len(sequences)
    for n in range(5):  # at every step the devices are spread, not merely shifted
        column = [s[n] for s in sequences]
        assert max(column) - min(column) > 0.25 * 2.0 * 2**n
