"""Authorization: service SAS tokens and Shared Key, checked as Azure Storage checks them.

Service SAS ("Create a service SAS", learn.microsoft.com/rest/api/storageservices/
create-service-sas): the string to sign is, newline-joined,
``sp, st, se, /blob/{account}/{container}[/{blob}], si, sip, spr, sv, sr``, then for
``sv`` >= 2018-11-09 ``snapshot``, for ``sv`` >= 2020-12-06 ``ses``, then
``rscc, rscd, rsce, rscl, rsct``; ``sig`` is base64(HMAC-SHA256(key, string)). The
SDK's ``generate_blob_sas`` / ``generate_container_sas`` sign exactly this.

Shared Key ("Authorize with Shared Key"): ``VERB``, eleven standard headers
(Content-Length empty when 0), the canonicalized ``x-ms-`` headers and the
canonicalized resource with its query parameters.

Query parameter names arrive decoded (``si%67`` is ``sig``); a SAS parameter named
twice once decoded is refused (:func:`single_sas_params`) rather than one of the two
picked. Logs go through :func:`agent.redact.redact`, which decodes names the same way.
"""

import base64
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from sim.cloud.blobserver.errors import BlobError


def sign(key: str, string_to_sign: str) -> str:
    """base64(HMAC-SHA256(base64decode(key), UTF-8 string))."""
    digest = hmac.new(base64.b64decode(key), string_to_sign.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode("ascii")


# --- service SAS -----------------------------------------------------------------

# What each operation needs from ``sp`` (Create a service SAS, "Permissions for a blob").
READ, WRITE, DELETE, LIST, CREATE = "r", "w", "d", "l", "c"


@dataclass(frozen=True)
class Operation:
    """What a request does, for authorization: the resource and the permissions that allow it."""

    container: str
    blob: str | None
    """None for container-level operations (list blobs, container properties)."""
    permissions: str
    """Any one of these letters in ``sp`` allows the operation; "" = needs Shared Key."""


SAS_PARAMETERS = frozenset(
    {"sv", "ss", "srt", "sp", "st", "se", "sip", "spr", "sr", "sig", "si", "snapshot", "ses"}
    | {"rscc", "rscd", "rsce", "rscl", "rsct", "skoid", "sktid", "skt", "ske", "sks", "skv"}
)


def single_sas_params(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The query's parameters (names decoded) as a dict; 403 when a SAS parameter is
    given twice (``sig=a&si%67=b``): the one a proxy logs and the one checked could differ."""
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params and name in SAS_PARAMETERS:
            raise _auth_failed(f"SAS query parameter {name} is given more than once.")
        params.setdefault(name, value)
    return params


def sas_string_to_sign(params: Mapping[str, str], account: str, resource_path: str) -> str:
    """The service SAS string to sign; ``resource_path`` is ``container[/blob]``."""
    version = params.get("sv", "")
    fields = [
        params.get("sp", ""),
        params.get("st", ""),
        params.get("se", ""),
        f"/blob/{account}/{resource_path}",
        params.get("si", ""),
        params.get("sip", ""),
        params.get("spr", ""),
        version,
        params.get("sr", ""),
    ]
    if version >= "2018-11-09":
        fields.append(params.get("snapshot", ""))
    if version >= "2020-12-06":
        fields.append(params.get("ses", ""))
    fields += [params.get(k, "") for k in ("rscc", "rscd", "rsce", "rscl", "rsct")]
    return "\n".join(fields)


def make_service_sas(
    *,
    account: str,
    key: str,
    container: str,
    blob: str | None = None,
    permission: str = "r",
    expiry: datetime,
    start: datetime | None = None,
    version: str = "2025-01-05",
    protocol: str | None = None,
) -> str:
    """A service SAS query string (no leading ``?``), blob-scoped when ``blob`` is given."""
    params: dict[str, str] = {"sv": version}
    if start is not None:
        params["st"] = _iso(start)
    params["se"] = _iso(expiry)
    params["sp"] = permission
    params["sr"] = "b" if blob is not None else "c"
    if protocol:
        params["spr"] = protocol
    path = container if blob is None else f"{container}/{blob}"
    params["sig"] = sign(key, sas_string_to_sign(params, account, path))
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


def check_sas(
    params: Mapping[str, str],
    *,
    account: str,
    key: str,
    operation: Operation,
    client_ip: str | None,
    now: datetime | None = None,
) -> None:
    """Raise 403 with Azure's code when the SAS in ``params`` does not allow ``operation``."""
    now = now or datetime.now(UTC)
    for required in ("sv", "sr", "sig"):
        if not params.get(required):
            raise _auth_failed(f"Missing required SAS query parameter: {required}.")
    if params.get("si"):
        raise _auth_failed("Stored access policies (si) are not supported by this server.")
    resource = params["sr"]
    if resource not in ("b", "c"):
        raise BlobError(403, "AuthorizationResourceTypeMismatch")
    if resource == "b" and operation.blob is None:
        raise BlobError(403, "AuthorizationResourceTypeMismatch")
    path = operation.container
    if resource == "b":
        path = f"{operation.container}/{operation.blob}"
    expected = sign(key, sas_string_to_sign(params, account, path))
    if not hmac.compare_digest(expected.encode(), params["sig"].encode()):
        raise _auth_failed(
            "Signature did not match. String to sign used was "
            + sas_string_to_sign(params, account, path).replace("\n", "\\n")
        )
    start = _parse_time(params.get("st"), "st")
    expiry = _parse_time(params.get("se"), "se")
    if expiry is None:
        raise _auth_failed("Missing required SAS query parameter: se.")
    if (start is not None and now < start) or now >= expiry:
        raise _auth_failed(
            f"Signature not valid in the specified time frame: Start [{params.get('st', '')}]"
            f" - Expiry [{params['se']}] - Current [{_iso(now)}]"
        )
    protocols = params.get("spr")
    if protocols and "http" not in [p.strip() for p in protocols.split(",")]:
        raise BlobError(403, "AuthorizationProtocolMismatch")
    if params.get("sip") and not _ip_allowed(params["sip"], client_ip):
        raise BlobError(403, "AuthorizationSourceIPMismatch")
    granted = params.get("sp", "")
    if not operation.permissions or not any(p in granted for p in operation.permissions):
        raise BlobError(403, "AuthorizationPermissionMismatch")


def _auth_failed(detail: str) -> BlobError:
    return BlobError(403, "AuthenticationFailed", detail={"AuthenticationErrorDetail": detail})


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# SAS times ("Create a service SAS", signedStart/signedExpiry): ISO 8601 in UTC, as a date,
# or with minutes, seconds, or seconds and up to seven fractional digits (the .NET
# round-trip format Azure itself writes). ASCII digits only.
_SAS_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,7}))?)?Z)?"
)


def _parse_time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    match = _SAS_TIME.fullmatch(value.strip(" "))
    try:
        if match is None:
            raise ValueError(value)
        year, month, day, hour, minute, second, fraction = match.groups()
        micro = int((fraction or "0").ljust(7, "0")[:6])  # 100 ns ticks below 1 us dropped
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=UTC,
        )
    except ValueError:
        raise _auth_failed(f"Invalid SAS time in {name}: {value[:40]!r}.") from None


def _ip_allowed(sip: str, client_ip: str | None) -> bool:
    if client_ip is None:
        return False
    try:
        ip = ipaddress.ip_address(client_ip)
        low, _, high = sip.partition("-")
        first = ipaddress.ip_address(low)
        last = ipaddress.ip_address(high) if high else first
    except ValueError:
        return False
    # an IPv4 range never admits an IPv6 client, nor the reverse (comparing them raises)
    v4 = ipaddress.IPv4Address
    if isinstance(ip, v4) and isinstance(first, v4) and isinstance(last, v4):
        return first <= ip <= last
    v6 = ipaddress.IPv6Address
    if isinstance(ip, v6) and isinstance(first, v6) and isinstance(last, v6):
        return first <= ip <= last
    return False


# --- Shared Key ------------------------------------------------------------------

_STANDARD_HEADERS = (
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-MD5",
    "Content-Type",
    "Date",
    "If-Modified-Since",
    "If-Match",
    "If-None-Match",
    "If-Unmodified-Since",
    "Range",
)


def shared_key_string_to_sign(
    method: str,
    headers: Mapping[str, str],
    *,
    account: str,
    path: str,
    query: Mapping[str, str],
    hyphen_blind: bool = False,
) -> str:
    """The Shared Key string to sign for a request (version 2009-09-19 and later).

    ``path`` is the raw request path (``/account/container/blob``). ``x-ms-`` headers
    are sorted by name; the Python SDK sorts them as Windows' culture-aware compare
    does, which skips hyphens, so ``hyphen_blind`` offers that order too.
    """
    values = []
    for name in _STANDARD_HEADERS:
        value = headers.get(name, "")
        if name == "Content-Length" and value == "0":
            value = ""
        values.append(value)
    x_ms = sorted(
        ((k.lower(), v.strip()) for k, v in headers.items() if k.lower().startswith("x-ms-")),
        key=(lambda kv: (kv[0].replace("-", ""), kv[0])) if hyphen_blind else (lambda kv: kv[0]),
    )
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in x_ms)
    resource = f"/{account}{path}"
    for name in sorted(query, key=str.lower):
        resource += f"\n{name.lower()}:{unquote(query[name])}"
    return f"{method}\n" + "\n".join(values) + "\n" + canonical_headers + resource


def check_shared_key(
    authorization: str,
    method: str,
    headers: Mapping[str, str],
    *,
    account: str,
    key: str,
    path: str,
    query: Mapping[str, str],
) -> None:
    """Raise 403 ``AuthenticationFailed`` unless ``authorization`` signs this request."""
    scheme, _, credential = authorization.partition(" ")
    name, _, signature = credential.strip().partition(":")
    if scheme != "SharedKey" or name != account or not signature:
        raise _auth_failed("The Authorization header is not a SharedKey for this account.")
    for blind in (False, True):
        expected = sign(
            key,
            shared_key_string_to_sign(
                method, headers, account=account, path=path, query=query, hyphen_blind=blind
            ),
        )
        if hmac.compare_digest(expected.encode(), signature.encode()):
            return
    raise _auth_failed(
        "The MAC signature found in the HTTP request is not the same as any computed signature."
    )
