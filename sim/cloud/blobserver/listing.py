"""XML bodies of List Blobs and Put Block List ("List Blobs", "Put Block List" REST docs)."""

import base64
from collections.abc import Iterable
from email.utils import format_datetime
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from sim.cloud.blobserver.errors import BlobError
from sim.cloud.blobserver.store import StoredBlob


def list_blobs_xml(
    endpoint: str, container: str, prefix: str, blobs: Iterable[StoredBlob]
) -> bytes:
    """``EnumerationResults`` for one page holding every matching blob (no NextMarker)."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<EnumerationResults ServiceEndpoint="{escape(endpoint)}/" '
        f'ContainerName="{escape(container)}">',
        f"<Prefix>{escape(prefix)}</Prefix><Blobs>",
    ]
    for blob in blobs:
        md5 = base64.b64encode(blob.content_md5).decode() if blob.content_md5 else ""
        parts.append(
            f"<Blob><Name>{escape(blob.name)}</Name><Properties>"
            f"<Creation-Time>{format_datetime(blob.created, usegmt=True)}</Creation-Time>"
            f"<Last-Modified>{format_datetime(blob.last_modified, usegmt=True)}</Last-Modified>"
            f"<Etag>{escape(blob.etag)}</Etag>"
            f"<Content-Length>{blob.size}</Content-Length>"
            f"<Content-Type>{escape(blob.content_type)}</Content-Type>"
            f"<Content-MD5>{md5}</Content-MD5>"
            "<BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier>"
            "<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
            "<ServerEncrypted>true</ServerEncrypted></Properties></Blob>"
        )
    parts.append("</Blobs><NextMarker /></EnumerationResults>")
    return "".join(parts).encode("utf-8")


def parse_block_list(body: bytes) -> list[tuple[str, str]]:
    """``(kind, block_id)`` pairs of a ``BlockList`` (kind: Latest, Committed, Uncommitted)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise BlobError(400, "InvalidXmlDocument") from None
    if root.tag != "BlockList":
        raise BlobError(400, "InvalidXmlDocument")
    blocks = []
    for element in root:
        if element.tag not in ("Latest", "Committed", "Uncommitted") or not element.text:
            raise BlobError(400, "InvalidXmlDocument")
        blocks.append((element.tag, element.text.strip()))
    return blocks
