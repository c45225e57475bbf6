"""The --root directory store: every valid blob name is its own file, writes are whole
or absent, and contents are streamed, never held in memory whole.

Azure keeps ``a`` and ``a/b``, ``al/b`` and ``al//b`` as distinct blobs and takes
names of up to 1024 characters ("Naming and referencing containers, blobs and
metadata"); a file system has folders, 255-byte names and no empty path segments.
Put Blob's largest body is 5000 MiB from version 2019-12-12 ("Put Blob"), and Put
Block keeps at most 100,000 uncommitted blocks per blob for a week ("Put Block").
"""

import asyncio
import hashlib
import random
import tracemalloc

import aiohttp
import pytest

from sim.cloud.blobserver import BlobServer
from sim.cloud.blobserver.staged_blocks import StagedBlocks

pytestmark = pytest.mark.sim

VERSION = "2025-01-05"


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


def url(srv, name, permission="rcw"):
    from urllib.parse import quote

    sas = srv.make_sas("firmware", name, permission=permission)
    return f"{srv.url}/firmware/{quote(name, safe='/')}?{sas}"


async def put(session, srv, name, data, **headers):
    headers = {"x-ms-version": VERSION, "x-ms-blob-type": "BlockBlob", **headers}
    async with session.put(url(srv, name), data=data, headers=headers) as response:
        return response.status, response.headers, await response.read()


async def get(session, srv, name):
    async with session.get(url(srv, name), headers={"x-ms-version": VERSION}) as response:
        return response.status, await response.read()


def leftovers(root):
    return sorted(p.name for p in root.rglob("*") if "partial" in p.name)


@pytest.fixture
async def rooted(tmp_path):
    async with BlobServer(root=tmp_path) as srv:
        srv.put_blob("firmware", "seed.bin", b"x")
        yield srv


@pytest.mark.parametrize(("first", "second"), [("a", "a/b"), ("a/b", "a"), ("al/b", "al//b")])
async def test_names_azure_keeps_apart_are_distinct_files(rooted, session, first, second):
    """``PUT a`` then ``PUT a/b`` (or the reverse) answered 500 and left a .partial;
    ``al//b`` overwrote ``al/b``. Both are kept, each with its own content."""
    for name in (first, second):
        status, _, _ = await put(session, rooted, name, name.encode())
        assert status == 201, name
    for name in (first, second):
        assert await get(session, rooted, name) == (200, name.encode())
    assert leftovers(rooted.service.store.root) == []
    listed = [b.name for b in rooted.service.store.list("firmware")]
    assert sorted(listed) == sorted(["seed.bin", first, second])


@pytest.mark.parametrize(
    "name",
    [
        "n" * 300,
        "é" * 1024,
        "dir/" * 200 + "x",
        ".hidden",
        "..leading",
        "100% sure #1 ~ ?.bin".replace("?", "q"),
        "~" + "0" * 64,
        "#0123456789abcdef.partial",
    ],
    ids=[
        "300-chars",
        "1024-two-byte-chars",
        "deep",
        "dot",
        "dotdot-prefix",
        "specials",
        "looks-hashed",
        "looks-partial",
    ],
)
async def test_every_valid_name_round_trips(rooted, session, name):
    """A 300-character name answered 500 (file name too long); names that look like the
    store's own files are blobs like any other."""
    data = hashlib.sha256(name.encode()).digest()
    status, _, _ = await put(session, rooted, name, data)
    assert status == 201
    assert await get(session, rooted, name) == (200, data)
    assert name in [b.name for b in rooted.service.store.list("firmware")]
    async with session.delete(url(rooted, name, "d"), headers={"x-ms-version": VERSION}) as r:
        assert r.status == 202
    status, _ = await get(session, rooted, name)
    assert status == 404


async def test_a_failed_write_leaves_no_partial_file_and_the_old_blob(rooted, session):
    """A Put Blob whose Content-MD5 does not match is refused (400) after the body was
    streamed to a temporary file: that file is removed and the old blob still served."""
    assert (await put(session, rooted, "fw.bin", b"old"))[0] == 201
    status, _, _ = await put(
        session, rooted, "fw.bin", b"new", **{"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="}
    )
    assert status == 400
    assert await get(session, rooted, "fw.bin") == (200, b"old")
    assert leftovers(rooted.service.store.root) == []


async def test_a_client_that_leaves_mid_body_leaves_no_partial_file(rooted):
    """The upload is cut (the client goes away after half its body): nothing is kept."""
    host, port = "127.0.0.1", rooted.port
    _, writer = await asyncio.open_connection(host, port)
    path = url(rooted, "cut.bin").split(str(port), 1)[1]
    writer.write(
        f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nx-ms-version: {VERSION}\r\n"
        f"x-ms-blob-type: BlockBlob\r\nContent-Length: 100000\r\n\r\n".encode()
        + b"x" * 50000
    )
    await writer.drain()
    writer.close()
    for _ in range(200):
        if any(e.blob == "firmware/cut.bin" for e in rooted.events):
            break
        await asyncio.sleep(0.01)
    assert leftovers(rooted.service.store.root) == []
    assert rooted.service.store.get("firmware", "cut.bin") is None


async def test_a_stale_partial_file_from_a_killed_server_is_removed_at_start(tmp_path):
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "#0123456789abcdef.partial").write_bytes(b"half")
    (tmp_path / "firmware" / "keep.txt").write_bytes(b"mine")
    async with BlobServer(root=tmp_path):
        pass
    assert sorted(p.name for p in (tmp_path / "firmware").iterdir()) == ["keep.txt"]


async def test_a_put_blob_in_root_mode_is_streamed_not_held_in_memory(rooted, session):
    """A Put Blob stayed whole in memory (the body read at once, the directory store
    caching whole files). 32 MiB go up and come back down while Python allocates
    well under a quarter of that (tracemalloc counts every allocation: no timing)."""
    size, chunk = 32 * 1024 * 1024, 256 * 1024
    digest = hashlib.sha256()
    block = random.Random(3).randbytes(chunk)

    async def body():
        for _ in range(size // chunk):
            yield block

    for _ in range(size // chunk):
        digest.update(block)
    tracemalloc.start()
    try:
        status, _, _ = await put(
            session, rooted, "big.bin", body(), **{"Content-Length": str(size)}
        )
        assert status == 201
        down = hashlib.sha256()
        async with session.get(url(rooted, "big.bin"), headers={"x-ms-version": VERSION}) as r:
            async for piece in r.content.iter_chunked(chunk):
                down.update(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert down.digest() == digest.digest()
    assert peak < size // 4, f"peak {peak} bytes for a {size}-byte blob"


@pytest.mark.parametrize(
    ("version", "limit"), [("2025-01-05", 5000), ("2019-07-07", 256), ("2015-12-11", 64)]
)
async def test_a_content_length_over_put_blobs_maximum_is_refused_before_the_body(
    rooted, version, limit
):
    """413 RequestBodyTooLarge, naming the limit, as soon as the headers arrive: the
    server does not wait for (or read) a body it would refuse."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rooted.port)
    path = url(rooted, "huge.bin").split(str(rooted.port), 1)[1]
    writer.write(
        f"PUT {path} HTTP/1.1\r\nHost: h\r\nx-ms-version: {version}\r\n"
        f"x-ms-blob-type: BlockBlob\r\nContent-Length: {limit * 1024 * 1024 + 1}\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    body = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 413")
    assert b"RequestBodyTooLarge" in head + body and str(limit * 1024 * 1024).encode() in body


async def test_the_memory_store_refuses_a_put_blob_it_could_not_hold(session):
    async with BlobServer() as srv:
        srv.put_blob("firmware", "x", b"x")
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        path = url(srv, "huge.bin").split(str(srv.port), 1)[1]
        writer.write(
            f"PUT {path} HTTP/1.1\r\nHost: h\r\nx-ms-version: {VERSION}\r\n"
            f"x-ms-blob-type: BlockBlob\r\nContent-Length: {600 * 1024 * 1024}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.close()
    assert head.startswith(b"HTTP/1.1 413")


def test_uncommitted_blocks_are_capped_per_blob_and_in_bytes():
    from sim.cloud.blobserver.errors import BlobError

    staged = StagedBlocks(max_blocks=3, max_bytes=10)
    for i in range(3):
        staged.stage_block("c", "b", f"id{i}", b"12")
    staged.stage_block("c", "b", "id0", b"34")  # replacing a block is not a new one
    with pytest.raises(BlobError) as caught:
        staged.stage_block("c", "b", "id3", b"5")
    assert (caught.value.status, caught.value.code) == (409, "BlockCountExceedsLimit")
    staged.stage_block("c", "other", "id0", b"1234")
    with pytest.raises(BlobError) as caught:
        staged.stage_block("c", "third", "id0", b"12345")
    assert (caught.value.status, caught.value.code) == (413, "RequestBodyTooLarge")
    assert staged.total_bytes == 10


def test_uncommitted_blocks_expire_a_week_after_the_blob_was_last_touched():
    now = [0.0]
    staged = StagedBlocks(clock=lambda: now[0])
    staged.stage_block("c", "b", "id0", b"12")
    now[0] = 6 * 24 * 3600.0
    assert staged.staged("c", "b") == {"id0": b"12"}  # touched again
    now[0] += 7 * 24 * 3600.0 - 1
    assert staged.staged("c", "b") == {"id0": b"12"}
    now[0] += 7 * 24 * 3600.0
    assert staged.staged("c", "b") == {} and staged.total_bytes == 0


async def test_the_event_log_is_a_ring_of_the_last_events(session):
    """≈230 bytes an event grew without bound (3.3 MB after 22k requests): the server
    keeps the last ``event_log_size``."""
    async with BlobServer(event_log_size=5) as srv:
        srv.put_blob("firmware", "fw.bin", b"x")
        for _ in range(8):
            await get(session, srv, "fw.bin")
        assert [e.request for e in srv.events] == [4, 5, 6, 7, 8]
        async with session.get(srv.control_url + "/events") as response:
            assert [e["request"] for e in await response.json()] == [4, 5, 6, 7, 8]
    with pytest.raises(ValueError, match="event_log_size"):
        BlobServer(event_log_size=0)
