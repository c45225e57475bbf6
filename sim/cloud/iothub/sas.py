"""Shared access signatures as IoT Hub and DPS check them ("Control access to IoT Hub by
using shared access signatures"; DPS "Symmetric key attestation").

A token is ``SharedAccessSignature sr={URL-encoded resource}&sig={URL-encoded
base64(HMAC-SHA256(base64decode(key), sr + "\\n" + se))}&se={expiry}[&skn={policy}]``.
Resources: ``{hub host}/devices/{id}`` (a device), ``{hub host}`` (a service policy),
``{id scope}/registrations/{registration id}`` (DPS, policy ``registration``). A DPS group
enrollment derives each device's key as ``base64(HMAC-SHA256(base64decode(group key),
registration id))``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Iterable


class SasError(Exception):
    """The token is refused; the message says why and never quotes the signature."""


def sign(key_b64: str, message: str) -> str:
    """``base64(HMAC-SHA256(base64decode(key), message))``."""
    try:
        key = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SasError("the key is not base64") from None
    digest = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def derive_device_key(group_key: str, registration_id: str) -> str:
    """The symmetric key DPS expects from a device of a group enrollment."""
    return sign(group_key, registration_id)


def make_token(resource: str, key: str, *, ttl_s: float = 3600, key_name: str | None = None) -> str:
    """A token for ``resource`` (not URL-encoded), as the SDKs make them."""
    sr = urllib.parse.quote(resource, safe="")
    se = str(int(time.time() + ttl_s))
    sig = urllib.parse.quote(sign(key, f"{sr}\n{se}"), safe="")
    token = f"SharedAccessSignature sr={sr}&sig={sig}&se={se}"
    return f"{token}&skn={key_name}" if key_name else token


def parse_token(token: str) -> dict[str, str]:
    """The token's fields, values as sent (``sr`` still URL-encoded)."""
    prefix = "SharedAccessSignature "
    if not token.startswith(prefix):
        raise SasError("not a SharedAccessSignature token")
    fields: dict[str, str] = {}
    for part in token[len(prefix) :].split("&"):
        name, sep, value = part.partition("=")
        if not sep or name in fields:
            raise SasError("malformed token (fields must be name=value, each once)")
        fields[name] = value
    for name in ("sr", "sig", "se"):
        if name not in fields:
            raise SasError(f"token has no {name}")
    return fields


def verify(
    token: str,
    *,
    resources: Iterable[str],
    keys: Iterable[str],
    key_name: str | None = None,
    key_name_required: bool = True,
    now: float | None = None,
) -> None:
    """Accept ``token`` if it names one of ``resources`` (case-insensitively, as IoT Hub
    compares host names), is not expired, carries ``skn == key_name`` when a policy is
    required (DPS takes ``skn=registration`` or none: the device SDK sends none), and is
    signed by one of ``keys``; raise :class:`SasError` otherwise."""
    fields = parse_token(token)
    resource = urllib.parse.unquote(fields["sr"]).lower().rstrip("/")
    if resource not in {r.lower().rstrip("/") for r in resources}:
        raise SasError("token is for another resource")
    try:
        expiry = int(fields["se"])
    except ValueError:
        raise SasError("token expiry is not an integer") from None
    if expiry <= (time.time() if now is None else now):
        raise SasError("token has expired")
    skn = fields.get("skn")
    if key_name is not None and (skn != key_name if key_name_required or skn else False):
        raise SasError("token names another shared access policy")
    signature = urllib.parse.unquote(fields["sig"])
    message = f"{fields['sr']}\n{fields['se']}"
    for key in keys:
        if hmac.compare_digest(sign(key, message), signature):
            return
    raise SasError("signature does not match the key")


def new_key() -> str:
    """A fresh 32-byte symmetric key, base64 (what IoT Hub generates for a device)."""
    import secrets

    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")
