"""The OTA instruction: the twin's desired ``extFwInfo``, parsed and validated.

The cloud contract (reference design, ``docs/reference-design.md``): the desired
property ``extFwInfo = {"version": int, "size": int, "url": "https://{account}.blob.core.
windows.net/{container}/{blob}", "sas": "<SAS without the leading ?>", "sha256": "<hex>"}``,
all five required, version > 0 and size > 0. The original crashed on a patch missing a key
(its weakness #3); here every malformed instruction raises :class:`InvalidInstruction`,
which the agent reports as ``invalid``.
"""

import functools
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from agent.hosts import (
    AZURE_BLOB_HOSTS,
    LOOPBACK_HOSTS,
    StorageHosts,
    ip_of,
    is_loopback_host,
    name_problem,
)
from agent.redact import redact

log = logging.getLogger(__name__)

KEY = "extFwInfo"
FIELDS = ("version", "size", "url", "sas", "sha256")
VERSION_MAX = 2**31 - 1  # the original keeps the version in a C int

__all__ = [
    "AZURE_BLOB_HOSTS",
    "KEY",
    "LOOPBACK_HOSTS",
    "VERSION_MAX",
    "Instruction",
    "InvalidInstruction",
    "is_loopback_host",
    "parse_instruction",
]

_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
# Characters never valid unescaped in a URL or a query string (RFC 3986 section 2).
_FORBIDDEN = re.compile(r"[\s\"<>\\^`{|}\x00-\x1f\x7f]")


class InvalidInstruction(ValueError):
    """The twin's ``extFwInfo`` is malformed. The message names the field
    (``extFwInfo.size``) and what is wrong; it never contains a SAS signature."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = redact(problem)
        super().__init__(f"{field}: {self.problem}")


@dataclass(frozen=True, repr=False)
class Instruction:
    """One OTA job as the operator published it.

    ``url`` is the blob's URL without a query; ``sas`` is the query string that grants
    read access (without the ``?``). The SAS is a bearer secret: it is left out of
    ``repr`` and only :meth:`download_url` ever contains its signature.
    """

    version: int
    size: int
    url: str
    sas: str
    sha256: bytes

    def __post_init__(self) -> None:
        _check_version(self.version)
        _check_int(f"{KEY}.size", self.size)
        if not isinstance(self.sha256, bytes) or len(self.sha256) != 32:
            raise InvalidInstruction(f"{KEY}.sha256", "must be 32 raw bytes")
        _check_url(self.url, allow_http_loopback=True, hosts=None)
        _check_sas(self.sas)

    def download_url(self) -> str:
        """The URL to GET: ``url`` + ``?`` + ``sas``. Contains the secret: never log it."""
        return f"{self.url}?{self.sas}"

    def redacted_url(self) -> str:
        """:meth:`download_url` with the signature replaced, for logs and reports."""
        return redact(self.download_url())

    def identity(self) -> tuple[int, bytes, int, str]:
        """What identifies the job: ``(version, sha256, size, url)``. The SAS is not part
        of it, so a rotated SAS for the same blob continues the same job."""
        return (self.version, self.sha256, self.size, self.url)

    def __repr__(self) -> str:
        return (
            f"Instruction(version={self.version}, size={self.size}, url={self.url!r}, "
            f"sha256={self.sha256.hex().upper()})"
        )


def parse_instruction(
    doc: Mapping[str, Any],
    *,
    max_size: int | None = None,
    allow_http_loopback: bool = False,
    storage_hosts: Iterable[str] = AZURE_BLOB_HOSTS,
) -> Instruction | None:
    """Parse the ``extFwInfo`` of a twin document.

    ``doc`` is a full twin (``{"desired": {...}, "reported": {...}}``, as ``get_twin``
    returns it), a desired section (``{"extFwInfo": {...}, "$version": n}``) or a desired
    patch (the same shape; IoT Hub delivers patches as the root object).

    Returns ``None`` when the document says nothing about firmware: no ``extFwInfo`` (a
    patch about another property), or ``extFwInfo`` set to ``null`` (JSON merge-patch
    deletion: the operator withdrew the instruction; an agent keeps what it has).

    Raises :class:`InvalidInstruction` for every malformed instruction: a missing key,
    a wrong type (``true`` or ``"5"`` is not an integer), ``version`` or ``size`` not
    positive, ``version`` above :data:`VERSION_MAX` (a C int, as the original stores it),
    ``size`` above ``max_size`` (the free space), a ``sha256`` that is not 64 hex digits
    (either case; the original's operator tool sends upper case), a URL that is not
    ``https`` (plain ``http`` only to a loopback host, and only with
    ``allow_http_loopback``), a URL whose host is not in ``storage_hosts``
    (:mod:`agent.hosts`; default Azure Blob's endpoints) or is not plain ASCII, a port 0,
    a URL with a query, fragment, credentials, a ``.``/``..`` segment or without a
    ``/{container}/{blob}`` path, and a SAS that is not a query string with one ``sig``
    (and no parameter named twice). A malformed ``storage_hosts`` raises ``ValueError``.

    A patch carries only what changed: an agent that wants to accept a partial update
    merges it into its last desired section (:func:`agent.twin.merge_patch`) and parses
    the result. Unknown keys inside ``extFwInfo`` are ignored with a warning.
    """
    if max_size is not None and (
        isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0
    ):
        raise ValueError(f"max_size must be a non-negative int or None, got {max_size!r}")
    hosts = allow_list(storage_hosts_entries(storage_hosts))
    if not isinstance(doc, Mapping):
        raise InvalidInstruction("twin", f"must be a JSON object, got {_type(doc)}")
    section: Any = doc
    if "desired" in doc:
        section = doc["desired"]
        if not isinstance(section, Mapping):
            raise InvalidInstruction("desired", f"must be a JSON object, got {_type(section)}")
    info = section.get(KEY)
    if info is None:
        return None
    if not isinstance(info, Mapping):
        raise InvalidInstruction(KEY, f"must be a JSON object, got {_type(info)}")

    missing = [name for name in FIELDS if name not in info]
    if missing:
        raise InvalidInstruction(f"{KEY}.{missing[0]}", f"missing (required: {', '.join(FIELDS)})")
    extra = sorted(str(k) for k in info if k not in FIELDS)
    if extra:
        log.warning("ignoring unknown keys in %s: %s", KEY, redact(", ".join(extra)))

    version = info["version"]
    _check_version(version)
    size = info["size"]
    _check_int(f"{KEY}.size", size)
    if max_size is not None and size > max_size:
        raise InvalidInstruction(
            f"{KEY}.size", f"{size} bytes does not fit in the {max_size} bytes free"
        )
    sha256 = _parse_sha256(info["sha256"])
    url = info["url"]
    _check_url(url, allow_http_loopback=allow_http_loopback, hosts=hosts)
    sas = info["sas"]
    if isinstance(sas, str) and sas.startswith("?"):
        sas = sas[1:]  # the portal's "SAS token" box copies it with the "?"
    _check_sas(sas)
    return Instruction(version=version, size=size, url=url, sas=sas, sha256=sha256)


def _type(value: object) -> str:
    """The JSON name of ``value``'s type, for messages (never the value itself)."""
    names = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return names.get(type(value), type(value).__name__)


def _check_int(field: str, value: object) -> None:
    # bool is an int subclass in Python; JSON true is not a version.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInstruction(field, f"must be an integer, got {_type(value)}")
    if value <= 0:
        raise InvalidInstruction(field, f"must be greater than 0, got {value}")


def _check_version(value: object) -> None:
    field = f"{KEY}.version"
    _check_int(field, value)
    assert isinstance(value, int)
    if value > VERSION_MAX:
        raise InvalidInstruction(
            field,
            f"must be at most {VERSION_MAX} (the device keeps it in a C int), got a larger one",
        )


def storage_hosts_entries(entries: Iterable[str]) -> tuple[str, ...]:
    """``entries`` as a tuple, refusing one bare string (a common slip: ``("a.b")``)."""
    if isinstance(entries, str):
        raise ValueError("storage_hosts must be a sequence of entries, not one string")
    return tuple(entries)


def _parse_sha256(value: object) -> bytes:
    field = f"{KEY}.sha256"
    if not isinstance(value, str):
        raise InvalidInstruction(field, f"must be a string of 64 hex digits, got {_type(value)}")
    if len(value) != 64:
        raise InvalidInstruction(field, f"must be 64 hex digits, got {len(value)} characters")
    if not _HEX64.fullmatch(value):
        raise InvalidInstruction(field, "must be 64 hex digits, has a non-hex character")
    return bytes.fromhex(value)


def _check_url(url: object, *, allow_http_loopback: bool, hosts: StorageHosts | None) -> None:
    """Check ``url`` (``hosts`` None: any syntactically sound host, for direct construction)."""
    field = f"{KEY}.url"
    if not isinstance(url, str):
        raise InvalidInstruction(field, f"must be a string, got {_type(url)}")
    if not url:
        raise InvalidInstruction(field, "is empty")
    if _FORBIDDEN.search(url):
        raise InvalidInstruction(field, "contains whitespace or a character not allowed in a URL")
    try:
        parts: SplitResult = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise InvalidInstruction(field, f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise InvalidInstruction(field, f"must use https, got {scheme or 'no'} scheme")
    if not host:
        raise InvalidInstruction(field, "has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInstruction(field, "must not carry credentials (user@host)")
    if parts.query or url.endswith("?"):
        raise InvalidInstruction(field, "must not have a query: the SAS goes in extFwInfo.sas")
    if parts.fragment or "#" in url:
        raise InvalidInstruction(field, "must not have a fragment")
    if ip_of(host) is None and (problem := name_problem(host)) is not None:
        raise InvalidInstruction(field, f"{url!r}: host {host!r} {problem}")
    if port == 0:
        raise InvalidInstruction(field, f"{url!r}: port 0 is not a port a server listens on")
    if hosts is not None and not hosts.allows(host):
        raise InvalidInstruction(
            field,
            f"{url!r}: host {host!r} is not an allowed storage host (allowed: {hosts.describe()})",
        )
    if scheme == "http":
        if not is_loopback_host(host):
            raise InvalidInstruction(
                field, "must use https (plain http is allowed only to a loopback host)"
            )
        if not allow_http_loopback:
            raise InvalidInstruction(
                field, "must use https (plain http to loopback is not enabled on this device)"
            )
    raw_segments = parts.path.split("/")[1:]
    if any(unquote(segment) in (".", "..") for segment in raw_segments):
        raise InvalidInstruction(
            field, f"{url!r}: a '.' or '..' path segment would be resolved to another blob"
        )
    segments = [s for s in raw_segments if s]
    if len(segments) < 2 or parts.path.endswith("/"):
        raise InvalidInstruction(field, "must name a blob: https://{host}/{container}/{blob}")


@functools.lru_cache(maxsize=32)
def allow_list(entries: tuple[str, ...]) -> StorageHosts:
    """The parsed allow-list for ``entries`` (``ValueError`` naming a malformed one)."""
    return StorageHosts.parse(entries)


def _check_sas(sas: object) -> None:
    field = f"{KEY}.sas"
    if not isinstance(sas, str):
        raise InvalidInstruction(field, f"must be a string, got {_type(sas)}")
    if not sas:
        raise InvalidInstruction(field, "is empty")
    if _FORBIDDEN.search(sas) or "#" in sas or "?" in sas:
        raise InvalidInstruction(field, "contains a character not allowed in a query string")
    try:
        pairs = parse_qsl(sas, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InvalidInstruction(
            field, "is not a query string (name=value pairs joined by &)"
        ) from None
    names = [name for name, _ in pairs]
    twice = sorted({name for name in names if names.count(name) > 1 and name != "sig"})
    if twice:
        raise InvalidInstruction(
            field, f"names {redact(twice[0])!r} more than once (names are compared decoded)"
        )
    sigs = [value for name, value in pairs if name == "sig"]
    if not sigs:
        raise InvalidInstruction(field, "has no sig (signature) parameter")
    if len(sigs) > 1:
        raise InvalidInstruction(field, "has more than one sig parameter")
    if not sigs[0]:
        raise InvalidInstruction(field, "has an empty sig parameter")
