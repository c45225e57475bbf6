"""Connection strings for the development account (sim/cloud/dev_account.py)."""

import pytest
from azure.storage.blob import BlobServiceClient

from sim.cloud.dev_account import DEV_ACCOUNT, DEV_KEY, connection_string

pytestmark = pytest.mark.sim

ENDPOINT = "http://127.0.0.1:10000/devstoreaccount1"


def test_the_sdk_reads_account_key_and_endpoint_from_the_connection_string():
    """Azure Storage docs, "Configure connection strings": explicit BlobEndpoint, path style."""
    with BlobServiceClient.from_connection_string(
        connection_string(blob_endpoint=ENDPOINT)
    ) as service:
        assert service.account_name == DEV_ACCOUNT
        assert service.credential.account_key == DEV_KEY
        assert service.url.rstrip("/") == ENDPOINT


def test_a_key_that_would_break_the_string_is_refused_without_echoing_it():
    """';' separates the string's settings; the key is never shown in the error."""
    with pytest.raises(ValueError, match=r"^key must be non-empty") as caught:
        connection_string(blob_endpoint=ENDPOINT, key="c2VjcmV0;x")
    assert "c2VjcmV0" not in str(caught.value)


def test_an_empty_endpoint_is_refused_by_name():
    """Without BlobEndpoint the SDK would go to the public cloud, never to loopback."""
    with pytest.raises(ValueError, match=r"^blob_endpoint "):
        connection_string(blob_endpoint="")
