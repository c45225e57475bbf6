"""Range and x-ms-range for Get Blob ("Specifying the range header for Blob service
operations", learn.microsoft.com/rest/api/storageservices).

Two forms only: ``bytes=start-end`` and, from version 2011-08-18, ``bytes=start-``.
``x-ms-range`` wins over ``Range``. A start at or past the end of the blob answers
416 ``InvalidRange`` with ``Content-Range: bytes */LEN``; an end past the blob is
clipped. Anything else (suffix ranges, several ranges, end before start, junk) is
malformed and answers 400 ``InvalidHeaderValue`` naming the header.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sim.cloud.blobserver.errors import BlobError

# DIGIT is %x30-39 (RFC 9110 5.6.1): "\d" would take Arabic-Indic or fullwidth digits
_RANGE = re.compile(r"bytes=([0-9]{1,19})-([0-9]{1,19})?")


@dataclass(frozen=True)
class ByteRange:
    """An asked range: ``start`` and inclusive ``end`` (None = to the end of the blob)."""

    start: int
    end: int | None
    header: str
    """The header it came from (``x-ms-range`` or ``Range``), for error messages."""

    def resolve(self, length: int) -> tuple[int, int]:
        """The served ``[first, last]`` for a blob of ``length`` bytes, or 416."""
        if self.start >= length:
            raise BlobError(416, "InvalidRange", headers={"Content-Range": f"bytes */{length}"})
        last = length - 1 if self.end is None else min(self.end, length - 1)
        return self.start, last


def requested_range(headers: Mapping[str, str]) -> ByteRange | None:
    """The range asked by a request's headers, None for none; 400 when malformed."""
    for name in ("x-ms-range", "Range"):
        value = headers.get(name)
        if value is not None:
            return parse_range(value, header=name)
    return None


def parse_range(value: str, *, header: str = "Range") -> ByteRange:
    """Parse one ``bytes=`` range; raise 400 ``InvalidHeaderValue`` naming ``header``."""
    match = _RANGE.fullmatch(value.strip(" \t"))
    if match is None:
        raise _invalid(header, value)
    start = int(match.group(1))
    end = None if match.group(2) is None else int(match.group(2))
    if end is not None and end < start:
        raise _invalid(header, value)
    return ByteRange(start=start, end=end, header=header)


def _invalid(header: str, value: str) -> BlobError:
    return BlobError(
        400,
        "InvalidHeaderValue",
        detail={"HeaderName": header, "HeaderValue": value[:128]},
    )
