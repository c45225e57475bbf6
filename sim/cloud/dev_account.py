"""The storage emulators' development account, and connection strings for a local endpoint.

Azurite (and the old storage emulator before it) serves one well-known account,
``devstoreaccount1``, with a published key (Microsoft Learn, "Use the Azurite emulator
for local Azure Storage development": "Connect to Azurite with SDKs and tools"). The key
is public and documented: not a secret, for local emulation only. Both our blob server
and the Azurite runner serve it on loopback, path style, so the SDK needs an explicit
``BlobEndpoint`` in its connection string ("Configure Azure Storage connection strings":
"Create a connection string for an explicit storage endpoint").
"""

DEV_ACCOUNT = "devstoreaccount1"
"""Azurite's (and the old storage emulator's) well-known account name."""
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known account key: public, documented, for local emulation only."""


def connection_string(*, blob_endpoint: str, account: str = DEV_ACCOUNT, key: str = DEV_KEY) -> str:
    """A connection string the Azure SDK accepts (``from_connection_string``), over HTTP."""
    for name, value in (("blob_endpoint", blob_endpoint), ("account", account), ("key", key)):
        if not value or ";" in value:
            shown = "" if name == "key" else f", got {value!r}"  # never echo a key
            raise ValueError(f"{name} must be non-empty and free of ';'{shown}")
    return (
        f"DefaultEndpointsProtocol=http;AccountName={account};"
        f"AccountKey={key};BlobEndpoint={blob_endpoint};"
    )
