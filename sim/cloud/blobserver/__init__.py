"""A fault-injecting Azure-Blob-compatible server (aiohttp) for the downloader's tests.

Speaks enough of the Blob REST API that the real ``azure-storage-blob`` SDK and
the agent cannot tell it from the service (service SAS, Shared Key, ranges,
conditions), and breaks on a seeded schedule (:mod:`sim.cloud.faults`). See
:class:`BlobServer`; ``python -m sim blobserver`` runs it from the command line.
"""

from sim.cloud.blobserver.events import Event
from sim.cloud.blobserver.server import DEV_ACCOUNT, DEV_KEY, BlobServer

__all__ = ["DEV_ACCOUNT", "DEV_KEY", "BlobServer", "Event"]
