"""Half-sent requests are timed out: a server people leave running does not keep them.

150 connections that sent half a request head stayed open forever (aiohttp's own
keep-alive timer is an hour by default) and a body that stops arriving held its
handler forever. Here a request head must be complete within ``header_timeout_s`` and
a body must keep arriving (``body_timeout_s`` between reads); other clients are served
meanwhile. Each test waits for the server to close, bounded by a generous wall limit:
the verdict is whether it closed, never how fast.
"""

import asyncio

import aiohttp
import pytest

from sim.cloud.blobserver import BlobServer

pytestmark = pytest.mark.sim

VERSION = "2025-01-05"
WALL_LIMIT_S = 20.0


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), WALL_LIMIT_S)


async def test_half_sent_request_heads_are_dropped_while_others_are_served(tmp_path):
    async with BlobServer(header_timeout_s=0.3) as srv, aiohttp.ClientSession() as session:
        srv.put_blob("firmware", "fw.bin", b"image")
        conns = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(40)]
        for _, writer in conns:
            writer.write(b"GET /devstoreaccount1/firmware/fw.bin HTTP/1.1\r\nHost: h\r\nx-ms-")
            await writer.drain()
        url = srv.blob_url("firmware", "fw.bin") + "?" + srv.make_sas("firmware")
        async with session.get(url, headers={"x-ms-version": VERSION}) as response:
            assert (response.status, await response.read()) == (200, b"image")
        answers = await asyncio.gather(*(closed_by_server(reader) for reader, _ in conns))
        for _, writer in conns:
            writer.close()
    assert answers == [b""] * len(conns)


async def test_a_body_that_stops_arriving_is_dropped_and_nothing_is_kept(tmp_path):
    async with BlobServer(root=tmp_path, body_timeout_s=0.3) as srv:
        srv.put_blob("firmware", "seed.bin", b"x")
        sas = srv.make_sas("firmware", "slow.bin", permission="cw")
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(
            f"PUT /devstoreaccount1/firmware/slow.bin?{sas} HTTP/1.1\r\nHost: h\r\n"
            f"x-ms-version: {VERSION}\r\nx-ms-blob-type: BlockBlob\r\n"
            "Content-Length: 100000\r\n\r\n".encode()
            + b"x" * 1000
        )
        await writer.drain()
        assert await closed_by_server(reader) == b""
        writer.close()
        for _ in range(500):
            if srv.events:
                break
            await asyncio.sleep(0.01)
    event = srv.events[-1]
    assert (event.blob, event.outcome) == ("firmware/slow.bin", "timed-out")
    assert not [p for p in tmp_path.rglob("*") if "partial" in p.name]
    assert not (tmp_path / "firmware" / "slow.bin").exists()


@pytest.mark.parametrize("field", ["header_timeout_s", "body_timeout_s"])
def test_timeouts_must_be_positive(field):
    with pytest.raises(ValueError, match=field):
        BlobServer(**{field: 0})
