"""The Device Provisioning Service's device endpoint over MQTT, assigning to the local hub.

From "Communicate with DPS using the MQTT protocol" and "Symmetric key attestation" /
"X.509 certificate attestation" (DPS docs):

- CONNECT: client id = registration id, username ``{id scope}/registrations/
  {registration id}/api-version=...``, password a SAS token for ``{id scope}/
  registrations/{registration id}`` (``skn=registration`` optional: the SDK omits it),
  signed with the individual enrollment's key or, for a group enrollment, with the
  device key derived from the group's key (``HMAC-SHA256(group key, registration id)``);
  or a TLS client certificate with subject CN = registration id, signed by a group's
  CA (or, for an individual enrollment, with the enrolled thumbprint). Anything else:
  CONNACK 5.
- ``$dps/registrations/PUT/iotdps-register/?$rid={rid}`` registers; the answer, on
  ``$dps/registrations/res/{status}/?$rid={rid}``, is the operation. The device is
  created in the hub (device id = registration id) with the enrollment's initial twin
  (tags, desired properties) on its first registration; a later registration keeps the
  twin (the default reprovisioning policy, "re-provision and migrate data").
- ``$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}``
  answers the operation's status.

Deviation: the register request is answered at once with ``200`` and status
``assigned`` (DPS answers ``202 assigning`` and the SDK polls after ``retry-after``, at
least 2 s); the SDK accepts either, and this keeps a 50-device rollout fast.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sim.cloud.hub import Hub, Identity, thumbprint
from sim.cloud.iothub import mqtt, sas
from sim.cloud.iothub.broker import Accepted, Connection
from sim.cloud.iothub.certs import issuer_matches, subject_common_name

log = logging.getLogger(__name__)

REGISTER = "$dps/registrations/PUT/iotdps-register/"
STATUS = "$dps/registrations/GET/iotdps-get-operationstatus/"
RESPONSE = "$dps/registrations/res/"


@dataclass(frozen=True)
class Enrollment:
    """An individual enrollment (``group=False``: ``id`` is the registration id) or an
    enrollment group (``id`` is the group name). Attestation is a symmetric key pair, or
    X.509: a CA certificate (group) or a device certificate thumbprint (individual)."""

    id: str
    group: bool = False
    primary_key: str | None = field(default=None, repr=False)
    secondary_key: str | None = field(default=None, repr=False)
    ca_pem: bytes | None = field(default=None, repr=False)
    thumbprint: str | None = None
    initial_tags: Mapping[str, Any] = field(default_factory=dict)
    initial_desired: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"enrollment id must be a non-empty string, got {self.id!r}")
        symmetric = self.primary_key is not None
        x509 = self.ca_pem is not None or self.thumbprint is not None
        if symmetric == x509:
            raise ValueError("an enrollment needs exactly one attestation: keys or X.509")
        if self.ca_pem is not None and not self.group:
            raise ValueError("a CA certificate attests an enrollment group, not an individual")
        if self.thumbprint is not None and self.group:
            raise ValueError("a thumbprint attests an individual enrollment, not a group")
        for name in ("primary_key", "secondary_key"):
            value = getattr(self, name)
            if value is not None:
                try:
                    sas.sign(value, "")
                except sas.SasError:
                    raise ValueError(f"{name}: is not a base64 key") from None
        if not isinstance(self.initial_tags, Mapping) or not isinstance(
            self.initial_desired, Mapping
        ):
            raise ValueError("initial_tags and initial_desired must be JSON objects")

    @property
    def attestation(self) -> str:
        return "symmetricKey" if self.primary_key is not None else "x509"

    def device_keys(self, registration_id: str) -> tuple[str, ...]:
        """The keys a device of this enrollment signs with (derived for a group)."""
        keys = tuple(k for k in (self.primary_key, self.secondary_key) if k)
        if self.group:
            return tuple(sas.derive_device_key(k, registration_id) for k in keys)
        return keys

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "group": self.group,
            "primary_key": self.primary_key,
            "secondary_key": self.secondary_key,
            "ca_pem": self.ca_pem.decode("ascii") if self.ca_pem else None,
            "thumbprint": self.thumbprint,
            "initial_tags": dict(self.initial_tags),
            "initial_desired": dict(self.initial_desired),
            "enabled": self.enabled,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Enrollment:
        ca = doc.get("ca_pem")
        return cls(
            id=doc["id"],
            group=bool(doc.get("group")),
            primary_key=doc.get("primary_key"),
            secondary_key=doc.get("secondary_key"),
            ca_pem=ca.encode("ascii") if ca else None,
            thumbprint=doc.get("thumbprint"),
            initial_tags=doc.get("initial_tags") or {},
            initial_desired=doc.get("initial_desired") or {},
            enabled=bool(doc.get("enabled", True)),
        )


class Provisioning:
    """DPS for one id scope, assigning every device to ``hub`` (host ``assigned_hub``)."""

    def __init__(self, hub: Hub, *, id_scope: str, assigned_hub: str) -> None:
        self.hub = hub
        self.id_scope = id_scope
        self.assigned_hub = assigned_hub
        self.individual: dict[str, Enrollment] = {}
        self.groups: dict[str, Enrollment] = {}
        self.registrations: dict[str, dict[str, Any]] = {}  # registration id -> state
        self.on_change: Callable[[], None] = lambda: None

    def enroll(self, enrollment: Enrollment) -> Enrollment:
        (self.groups if enrollment.group else self.individual)[enrollment.id] = enrollment
        self.on_change()
        return enrollment

    def owns(self, connect: mqtt.Connect) -> bool:
        return (connect.username or "").startswith(f"{self.id_scope}/registrations/")

    # --- authentication ----------------------------------------------------------------

    def authenticate(self, connection: Connection, connect: mqtt.Connect) -> Accepted | int:
        registration_id = connect.client_id
        parts = (connect.username or "").split("/")
        if len(parts) < 3 or parts[2] != registration_id:
            return mqtt.REFUSED_IDENTIFIER
        enrollment = self._attest(connection, connect, registration_id)
        if enrollment is None:
            log.info("DPS registration %s refused", registration_id)
            return mqtt.REFUSED_NOT_AUTHORIZED
        session = _Registration(self, connection, registration_id, enrollment)
        return Accepted(session, f"dps:{registration_id}")

    def _attest(
        self, connection: Connection, connect: mqtt.Connect, registration_id: str
    ) -> Enrollment | None:
        candidates = (
            [self.individual[registration_id]] if registration_id in self.individual else []
        )
        candidates += list(self.groups.values())
        for enrollment in candidates:
            if not enrollment.enabled:
                continue
            if connect.password is not None and enrollment.attestation == "symmetricKey":
                try:
                    sas.verify(
                        connect.password.decode("utf-8", "replace"),
                        resources=[f"{self.id_scope}/registrations/{registration_id}"],
                        keys=enrollment.device_keys(registration_id),
                        key_name="registration",
                        key_name_required=False,
                    )
                except sas.SasError:
                    continue
                return enrollment
            cert = connection.peer_cert
            if connect.password is None and cert is not None and enrollment.attestation == "x509":
                if subject_common_name(cert) != registration_id:
                    continue
                if (
                    enrollment.group
                    and enrollment.ca_pem
                    and issuer_matches(cert, enrollment.ca_pem)
                ):
                    return enrollment
                if not enrollment.group and enrollment.thumbprint == thumbprint(cert):
                    return enrollment
        return None

    # --- assignment ----------------------------------------------------------------------

    def assign(self, registration_id: str, enrollment: Enrollment) -> dict[str, Any]:
        """Create or update the device in the hub; returns the registration state."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        identity = self._identity(registration_id, enrollment)
        first = not self.hub.has_device(registration_id)
        if first:
            twin = self.hub.add_device(
                registration_id, tags=enrollment.initial_tags, identity=identity
            )
            if enrollment.initial_desired:
                twin.patch_desired(dict(enrollment.initial_desired))
        else:
            self.hub.set_identity(registration_id, identity)
        previous = self.registrations.get(registration_id)
        state = {
            "registrationId": registration_id,
            "createdDateTimeUtc": previous["createdDateTimeUtc"] if previous else now,
            "assignedHub": self.assigned_hub,
            "deviceId": registration_id,
            "status": "assigned",
            "substatus": "initialAssignment" if first else "reprovisionedToInitialAssignment",
            "lastUpdatedDateTimeUtc": now,
            "etag": f'"{uuid.uuid4()}"',
        }
        self.registrations[registration_id] = state
        self.on_change()
        return state

    def _identity(self, registration_id: str, enrollment: Enrollment) -> Identity:
        if enrollment.attestation == "symmetricKey":
            keys = enrollment.device_keys(registration_id)
            return Identity("sas", primary_key=keys[0], secondary_key=keys[-1])
        if enrollment.group:
            return Identity("certificateAuthority")
        return Identity("selfSigned", primary_thumbprint=enrollment.thumbprint)

    def to_state(self) -> dict[str, Any]:
        return {
            "enrollments": [
                e.to_json() for e in (*self.individual.values(), *self.groups.values())
            ],
            "registrations": self.registrations,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        for doc in state.get("enrollments") or []:
            enrollment = Enrollment.from_json(doc)
            (self.groups if enrollment.group else self.individual)[enrollment.id] = enrollment
        self.registrations.update(state.get("registrations") or {})


class _Registration:
    """One device talking to DPS."""

    def __init__(
        self,
        dps: Provisioning,
        connection: Connection,
        registration_id: str,
        enrollment: Enrollment,
    ) -> None:
        self.dps = dps
        self.connection = connection
        self.registration_id = registration_id
        self.enrollment = enrollment
        self.operations: dict[str, dict[str, Any]] = {}

    async def on_publish(self, message: mqtt.Publish) -> None:
        topic = message.topic
        query = urllib.parse.parse_qs(topic.partition("?")[2])
        rid = (query.get("$rid") or [""])[0]
        if topic.startswith(REGISTER):
            self._register(rid, message.payload)
        elif topic.startswith(STATUS):
            operation_id = (query.get("operationId") or [""])[0]
            result = self.operations.get(operation_id)
            if result is None:
                self._respond(404, rid, {"errorCode": 404201, "message": "operation not found"})
            else:
                self._respond(200, rid, result)

    def _register(self, rid: str, payload: bytes) -> None:
        try:
            body = json.loads(payload.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            body = None
        if not isinstance(body, dict) or body.get("registrationId") not in (
            None,
            self.registration_id,
        ):
            self._respond(400, rid, {"errorCode": 400004, "message": "bad registration request"})
            return
        state = self.dps.assign(self.registration_id, self.enrollment)
        operation_id = f"4.{uuid.uuid4().hex[:16]}.{uuid.uuid4()}"
        result = {"operationId": operation_id, "status": "assigned", "registrationState": state}
        self.operations[operation_id] = result
        self._respond(200, rid, result)

    def _respond(self, status: int, rid: str, body: Any) -> None:
        topic = f"{RESPONSE}{status}/?$rid={urllib.parse.quote(rid, safe='')}"
        self.connection.publish(topic, json.dumps(body).encode("utf-8"))

    def on_subscribed(self, topics: list[str]) -> None:
        pass

    def on_close(self) -> None:
        pass
