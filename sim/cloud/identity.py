"""Device identities in an IoT Hub registry: how a device authenticates (IoT Hub
``authentication.type``, REST ``Device`` model) and X.509 thumbprints."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

AUTH_KINDS = ("none", "sas", "selfSigned", "certificateAuthority")


@dataclass(frozen=True)
class Identity:
    """How a device authenticates (IoT Hub ``authentication.type``): ``sas`` with two
    symmetric keys, ``selfSigned`` by X.509 thumbprints, ``certificateAuthority`` (any
    certificate chained to a registered CA, subject CN = device id), or ``none`` (an
    in-process device that never connects over the network). ``status`` is ``enabled``
    or ``disabled`` (a disabled device is refused at connect)."""

    kind: str = "none"
    primary_key: str | None = field(default=None, repr=False)
    secondary_key: str | None = field(default=None, repr=False)
    primary_thumbprint: str | None = None
    secondary_thumbprint: str | None = None
    status: str = "enabled"

    def __post_init__(self) -> None:
        if self.kind not in AUTH_KINDS:
            raise ValueError(f"authentication type must be one of {AUTH_KINDS}, got {self.kind!r}")
        if self.status not in ("enabled", "disabled"):
            raise ValueError(f"status must be 'enabled' or 'disabled', got {self.status!r}")
        if self.kind == "sas":
            for name in ("primary_key", "secondary_key"):
                value = getattr(self, name)
                try:
                    if not isinstance(value, str) or not base64.b64decode(value, validate=True):
                        raise ValueError
                except ValueError:
                    raise ValueError(f"symmetricKey.{name}: must be a base64 key") from None
        if self.kind == "selfSigned" and not self.primary_thumbprint:
            raise ValueError("x509Thumbprint.primaryThumbprint: required for selfSigned")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k in (self.primary_key, self.secondary_key) if k)

    def to_json(self) -> dict[str, Any]:
        """``authentication`` as the REST API shows it (``Device`` model)."""
        return {
            "type": self.kind,
            "symmetricKey": {"primaryKey": self.primary_key, "secondaryKey": self.secondary_key},
            "x509Thumbprint": {
                "primaryThumbprint": self.primary_thumbprint,
                "secondaryThumbprint": self.secondary_thumbprint,
            },
        }

    @classmethod
    def from_json(cls, auth: Mapping[str, Any] | None, *, status: str = "enabled") -> Identity:
        """From a REST ``authentication`` object; a ``sas`` device without keys gets fresh
        ones, as IoT Hub generates them."""
        from sim.cloud.iothub.sas import new_key

        auth = auth or {}
        kind = auth.get("type") or "sas"
        keys = auth.get("symmetricKey") or {}
        prints = auth.get("x509Thumbprint") or {}
        primary, secondary = keys.get("primaryKey"), keys.get("secondaryKey")
        if kind == "sas":
            primary, secondary = primary or new_key(), secondary or new_key()
        return cls(
            kind=kind,
            primary_key=primary,
            secondary_key=secondary,
            primary_thumbprint=prints.get("primaryThumbprint"),
            secondary_thumbprint=prints.get("secondaryThumbprint"),
            status=status,
        )


def thumbprint(cert_der: bytes) -> str:
    """An X.509 thumbprint as IoT Hub lists it: SHA-1 of the DER, upper-case hex."""
    return hashlib.sha1(cert_der).hexdigest().upper()
