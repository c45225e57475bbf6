"""The real azure-storage-blob SDK against the blob server: round trips and SAS refusals.

Issue 3: "Round trips with the real azure-storage-blob SDK: upload, SAS
generation, download, ranged download, properties; forged and expired SAS
refused". The asyncio SDK is used so client and server share the test's loop.
"""

import random
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import generate_blob_sas, generate_container_sas
from azure.storage.blob.aio import BlobClient, BlobServiceClient, ContainerClient

from sim.cloud.blobserver import DEV_ACCOUNT, DEV_KEY, BlobServer

pytestmark = pytest.mark.sim

IMAGE = random.Random(9).randbytes(300_000)


@pytest.fixture
async def server():
    async with BlobServer() as srv:
        srv.put_blob("firmware", "fw.bin", IMAGE)
        yield srv


def _sas(**overrides):
    args = dict(
        account_name=DEV_ACCOUNT,
        container_name="firmware",
        blob_name="fw.bin",
        account_key=DEV_KEY,
        permission="r",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    args.update(overrides)
    return generate_blob_sas(**args)


async def _download(server, sas, name="fw.bin"):
    async with BlobClient.from_blob_url(server.blob_url("firmware", name) + "?" + sas) as client:
        return await (await client.download_blob()).readall()


async def _refusal(server, sas, name="fw.bin"):
    with pytest.raises(HttpResponseError) as caught:
        await _download(server, sas, name)
    return caught.value.status_code, caught.value.error_code


async def test_sdk_uploads_downloads_and_reads_properties():
    """Shared Key: create container, Put Blob, Get Blob (whole and ranged), properties."""
    async with (
        BlobServer() as srv,
        BlobServiceClient.from_connection_string(srv.connection_string) as service,
    ):
        container = await service.create_container("images")
        await container.upload_blob("v1.bin", IMAGE)
        blob = container.get_blob_client("v1.bin")
        properties = await blob.get_blob_properties()
        assert properties.size == len(IMAGE)
        assert properties.blob_type == "BlockBlob"
        assert properties.etag.strip('"') == srv.service.store.get("images", "v1.bin").etag.strip(
            '"'
        )
        assert await (await blob.download_blob()).readall() == IMAGE
        ranged = await (await blob.download_blob(offset=1000, length=5000)).readall()
        assert ranged == IMAGE[1000:6000]


async def test_sdk_uses_put_block_and_put_block_list_above_its_single_put_size():
    """Blobs above max_single_put_size go up as blocks (Put Block / Put Block List)."""
    async with (
        BlobServer() as srv,
        BlobServiceClient.from_connection_string(
            srv.connection_string, max_single_put_size=64 * 1024, max_block_size=40 * 1024
        ) as service,
    ):
        container = await service.create_container("images")
        await container.upload_blob("big.bin", IMAGE)
        puts = [e for e in srv.events if e.method == "PUT" and e.blob == "images/big.bin"]
        assert len(puts) == -(-len(IMAGE) // (40 * 1024)) + 1  # blocks, then the block list
        downloaded = await (await container.download_blob("big.bin")).readall()
        assert downloaded == IMAGE


async def test_sdk_chunked_download_uses_many_ranges():
    """The SDK downloads in x-ms-range chunks; every chunk is served right."""
    async with (
        BlobServer() as srv,
        BlobServiceClient.from_connection_string(
            srv.connection_string, max_single_get_size=32 * 1024, max_chunk_get_size=32 * 1024
        ) as service,
    ):
        srv.put_blob("firmware", "fw.bin", IMAGE)
        blob = service.get_blob_client("firmware", "fw.bin")
        assert await (await blob.download_blob()).readall() == IMAGE
        assert sum(1 for e in srv.events if e.status == 206) >= len(IMAGE) // (32 * 1024)


async def test_sdk_lists_and_deletes_blobs():
    async with (
        BlobServer() as srv,
        BlobServiceClient.from_connection_string(srv.connection_string) as service,
    ):
        srv.put_blob("firmware", "a.bin", b"a")
        srv.put_blob("firmware", "b.bin", b"bb")
        container = service.get_container_client("firmware")
        assert [b.name async for b in container.list_blobs()] == ["a.bin", "b.bin"]
        await container.delete_blob("a.bin")
        assert [(b.name, b.size) async for b in container.list_blobs()] == [("b.bin", 2)]


async def test_blob_sas_from_the_sdk_is_accepted(server):
    """generate_blob_sas signs Azure's string-to-sign; the server checks the same string."""
    assert await _download(server, _sas()) == IMAGE


async def test_container_sas_from_the_sdk_is_accepted(server):
    sas = generate_container_sas(
        DEV_ACCOUNT,
        "firmware",
        account_key=DEV_KEY,
        permission="rl",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    assert await _download(server, sas) == IMAGE
    async with ContainerClient.from_container_url(f"{server.url}/firmware?{sas}") as container:
        assert [b.name async for b in container.list_blobs()] == ["fw.bin"]


async def test_server_made_sas_is_accepted(server):
    """srv.make_sas signs like the SDK does."""
    assert await _download(server, server.make_sas("firmware", "fw.bin")) == IMAGE


async def test_forged_sas_is_refused(server):
    """A signature made with another key: 403 AuthenticationFailed."""
    forged = _sas(account_key="A" * 86 + "==")
    assert await _refusal(server, forged) == (403, "AuthenticationFailed")


async def test_tampered_permission_is_refused(server):
    """Changing sp after signing breaks the signature."""
    assert await _refusal(server, _sas().replace("sp=r", "sp=rw")) == (403, "AuthenticationFailed")


async def test_expired_sas_is_refused(server):
    expired = _sas(expiry=datetime.now(UTC) - timedelta(minutes=1))
    assert await _refusal(server, expired) == (403, "AuthenticationFailed")


async def test_not_yet_valid_sas_is_refused(server):
    later = _sas(
        start=datetime.now(UTC) + timedelta(hours=1), expiry=datetime.now(UTC) + timedelta(hours=2)
    )
    assert await _refusal(server, later) == (403, "AuthenticationFailed")


async def test_sas_without_read_permission_is_refused(server):
    """sp=w cannot read: 403 AuthorizationPermissionMismatch."""
    assert await _refusal(server, _sas(permission="w")) == (403, "AuthorizationPermissionMismatch")


async def test_blob_sas_for_another_blob_is_refused(server):
    """The signed resource is the blob's path; another blob's path does not match."""
    server.put_blob("firmware", "other.bin", b"x")
    assert await _refusal(server, _sas(), name="other.bin") == (403, "AuthenticationFailed")


async def test_blob_sas_cannot_list_the_container(server):
    """sr=b on a container operation: 403 AuthorizationResourceTypeMismatch."""
    async with ContainerClient.from_container_url(f"{server.url}/firmware?{_sas()}") as container:
        with pytest.raises(HttpResponseError) as caught:
            [b async for b in container.list_blobs()]
    assert caught.value.error_code == "AuthorizationResourceTypeMismatch"


async def test_https_only_sas_is_refused_over_http(server):
    """spr=https on an http request: 403 AuthorizationProtocolMismatch."""
    assert await _refusal(server, _sas(protocol="https")) == (403, "AuthorizationProtocolMismatch")


async def test_wrong_account_key_is_refused_for_shared_key():
    async with BlobServer() as srv:
        bad = srv.connection_string.replace(DEV_KEY, "B" * 86 + "==")
        async with BlobServiceClient.from_connection_string(bad) as service:
            with pytest.raises(HttpResponseError) as caught:
                await service.create_container("images")
    assert (caught.value.status_code, caught.value.error_code) == (403, "AuthenticationFailed")


async def test_sdk_lists_only_the_blobs_under_a_prefix():
    """List Blobs: ``prefix`` returns only blobs whose names begin with it."""
    async with (
        BlobServer() as srv,
        BlobServiceClient.from_connection_string(srv.connection_string) as service,
    ):
        for name in ("v1/fw.bin", "v2/fw.bin", "v2/notes.txt"):
            srv.put_blob("firmware", name, b"x")
        container = service.get_container_client("firmware")
        names = [b.name async for b in container.list_blobs(name_starts_with="v2/")]
        assert names == ["v2/fw.bin", "v2/notes.txt"]


async def test_sdk_deletes_a_container_and_then_finds_it_gone():
    """Delete Container, then Get Container Properties: 404 ContainerNotFound."""
    async with (
        BlobServer() as srv,
        BlobServiceClient.from_connection_string(srv.connection_string) as service,
    ):
        srv.put_blob("firmware", "fw.bin", b"x")
        container = service.get_container_client("firmware")
        await container.delete_container()
        with pytest.raises(HttpResponseError) as caught:
            await container.get_container_properties()
    assert (caught.value.status_code, caught.value.error_code) == (404, "ContainerNotFound")


async def test_create_only_sas_writes_a_new_blob_but_cannot_overwrite(server):
    """Create a service SAS, permission c: "write a new blob"; it cannot overwrite an
    existing one (403 AuthorizationPermissionMismatch)."""
    new_sas = _sas(blob_name="new.bin", permission="c")
    async with BlobClient.from_blob_url(
        server.blob_url("firmware", "new.bin") + "?" + new_sas
    ) as c:
        await c.upload_blob(b"new image")
    assert server.service.store.get("firmware", "new.bin").data == b"new image"
    async with BlobClient.from_blob_url(
        server.blob_url("firmware", "fw.bin") + "?" + _sas(permission="c")
    ) as client:
        with pytest.raises(HttpResponseError) as caught:
            await client.upload_blob(b"evil", overwrite=True)
    assert caught.value.error_code == "AuthorizationPermissionMismatch"
