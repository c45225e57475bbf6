"""Conditional headers ("Specifying conditional headers for Blob service operations").

Evaluated in RFC 9110 §13.2.2 order: If-Match, else If-Unmodified-Since; then
If-None-Match, else If-Modified-Since. A failed If-Match / If-Unmodified-Since
answers 412 ``ConditionNotMet``; a failed If-None-Match / If-Modified-Since
answers 304 on reads (GET, HEAD) and 412 on writes.
"""

from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from sim.cloud.blobserver.errors import BlobError


def check_conditions(
    headers: Mapping[str, str],
    *,
    etag: str | None,
    last_modified: datetime | None,
    read: bool,
) -> None:
    """Raise :class:`BlobError` (412, or 304 for reads) when a condition fails.

    ``etag`` and ``last_modified`` are None when the blob does not exist.
    """
    if_match = headers.get("If-Match")
    if if_match is not None:
        if etag is None or not _etag_listed(if_match, etag):
            raise BlobError(412, "ConditionNotMet")
    else:
        since = _http_date(headers.get("If-Unmodified-Since"))
        if since is not None and last_modified is not None and last_modified > since:
            raise BlobError(412, "ConditionNotMet")
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        if etag is not None and _etag_listed(if_none_match, etag):
            raise _not_modified(read)
    else:
        since = _http_date(headers.get("If-Modified-Since"))
        if since is not None and last_modified is not None and last_modified <= since:
            raise _not_modified(read)


def _not_modified(read: bool) -> BlobError:
    return BlobError(304, "ConditionNotMet") if read else BlobError(412, "ConditionNotMet")


def _etag_listed(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    if "*" in tags:
        return True
    bare = etag.strip('"')
    return any(t == etag or t.removeprefix("W/").strip('"') == bare for t in tags)


def _http_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # RFC 9110 §13.1.3: an invalid date is ignored
