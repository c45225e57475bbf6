"""How a response body is written under the slicer and bandwidth faults, write by write.

Over a real socket the kernel merges and splits writes, so the size of each write
and the pause between them are observed here through a recording response and a
recording ``pause`` (no real time passes). Sources: toxiproxy's ``slicer``
(``average_size`` ± ``size_variation`` bytes, ``delay`` between writes) and
``bandwidth`` (``rate`` bytes per second) toxics.
"""

import random
from types import SimpleNamespace

import pytest

from sim.cloud.blobserver.shaping import RATE_SLICE_S, Progress, send_body
from sim.cloud.faults import FAULTS
from sim.cloud.faults.exchange import Exchange

pytestmark = pytest.mark.sim

BODY = random.Random(21).randbytes(20_000)


class RecordingResponse:
    """Stands in for aiohttp's StreamResponse: keeps each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))


async def _send(*faults, seed=0, first=0, body=BODY):
    exchange = Exchange()
    for fault in faults:
        fault.apply(exchange, random.Random(seed))
    response, pauses = RecordingResponse(), []

    async def pause(seconds):
        pauses.append(seconds)

    async def hold(seconds):
        raise AssertionError("no stall was planned")

    await send_body(
        SimpleNamespace(transport=None),
        response,
        memoryview(body),
        first=first,
        exchange=exchange,
        rng=random.Random(seed),
        pause=pause,
        hold=hold,
        progress=Progress(),
    )
    return response.writes, pauses


async def test_slicer_writes_vary_within_size_variation_and_follow_the_seed():
    """toxiproxy slicer: each write is average_size ± uniform(size_variation) bytes."""
    slicer = FAULTS["slicer"](average_size=1000, size_variation=300)
    writes, _ = await _send(slicer, seed=4)
    sizes = [len(w) for w in writes]
    assert b"".join(writes) == BODY
    assert all(700 <= s <= 1300 for s in sizes[:-1])
    assert len(set(sizes)) > 3
    assert [len(w) for w in (await _send(slicer, seed=4))[0]] == sizes


async def test_slicer_pauses_its_delay_between_writes():
    """toxiproxy slicer: ``delay`` separates consecutive writes (none after the last)."""
    writes, pauses = await _send(FAULTS["slicer"](average_size=4000, delay_s=0.25))
    assert len(writes) == 5
    assert pauses == [0.25] * 4


async def test_bandwidth_writes_ten_ms_of_data_then_waits_its_transfer_time():
    """toxiproxy bandwidth: rate bytes/s, paced as writes of rate*10 ms, each followed by
    a wait of size/rate, so the body takes len/rate seconds."""
    rate = 100_000
    writes, pauses = await _send(FAULTS["bandwidth"](rate_bps=rate))
    assert b"".join(writes) == BODY
    assert {len(w) for w in writes} == {int(rate * RATE_SLICE_S)}
    assert pauses == [pytest.approx(len(w) / rate) for w in writes[:-1]]


async def test_corrupt_offsets_are_blob_offsets_not_body_offsets():
    """corrupt names offsets of the blob: a range starting at 1000 flips body byte 5
    for blob offset 1005, and leaves body byte 5 of a range starting at 0 alone."""
    corrupt = FAULTS["corrupt"](offsets=(1005,), mask=0x0F)
    writes, _ = await _send(corrupt, first=1000, body=BODY[1000:2000])
    body = b"".join(writes)
    assert [i for i in range(len(body)) if body[i] != BODY[1000 + i]] == [5]
    assert body[5] == BODY[1005] ^ 0x0F
