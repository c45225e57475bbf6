"""IoT Hub's device endpoint over MQTT: authentication and the twin topics.

From "Communicate with an IoT hub using the MQTT protocol" (IoT Hub docs):

- CONNECT: client id = device id, username ``{hub host}/{device id}/?api-version=...``,
  password a SAS token for ``{hub host}/devices/{device id}`` signed with one of the
  device's keys, or no password and a TLS client certificate (X.509: a registered
  thumbprint, or a chain to a registered CA with subject CN = device id). Refusals:
  CONNACK 5 (not authorized) for an unknown device, a wrong key, an expired token or
  another device's token; 3 (server unavailable) for a disabled device; 2 (identifier
  rejected) when the client id and the username name different devices. The device SDK
  maps 4 and 5 to ``CredentialError`` and 3 to a retried connection failure.
- ``$iothub/twin/GET/?$rid={rid}`` -> ``$iothub/twin/res/200/?$rid={rid}`` with
  ``{"desired": {...}, "reported": {...}}`` (both with ``$version``);
- ``$iothub/twin/PATCH/properties/reported/?$rid={rid}`` (a JSON object) -> ``$iothub/
  twin/res/204/?$rid={rid}&$version={new reported $version}``; 400 for a body that is not
  a JSON object;
- desired changes pushed on ``$iothub/twin/PATCH/properties/desired/?$version={v}`` to a
  subscribed, connected device (nothing is queued for an offline device: the SDK GETs the
  twin after every reconnect);
- a device that connects again replaces its earlier connection, which is closed.

The twin itself is the registry's :class:`sim.cloud.twin.InProcessTwin`: this session is
its device side, so the in-process path and the network path share every twin rule.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from typing import TYPE_CHECKING, Any

from sim.cloud.hub import Hub, thumbprint
from sim.cloud.iothub import mqtt, sas
from sim.cloud.iothub.broker import Accepted, Connection
from sim.cloud.iothub.certs import issuer_matches, subject_common_name
from sim.cloud.twin_faults import TwinFaults

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

TWIN_GET = "$iothub/twin/GET/"
TWIN_REPORTED = "$iothub/twin/PATCH/properties/reported/"
TWIN_RES = "$iothub/twin/res/"
TWIN_DESIRED = "$iothub/twin/PATCH/properties/desired/"


def _rid(topic: str) -> str | None:
    _, _, query = topic.partition("?")
    values = urllib.parse.parse_qs(query).get("$rid")
    return values[0] if values else None


class DeviceEndpoint:
    """Authenticates device connections against ``hub`` and keeps one session per device."""

    def __init__(
        self,
        hub: Hub,
        *,
        hostname: str,
        faults: TwinFaults,
        device_cas: Callable[[], list[bytes]],
    ) -> None:
        self.hub = hub
        self.hostname = hostname
        self.faults = faults
        self.device_cas = device_cas
        self.sessions: dict[str, DeviceSession] = {}
        self.refused: list[tuple[str, int]] = []  # (device id, CONNACK code), for tests

    def owns(self, connect: mqtt.Connect) -> bool:
        username = connect.username or ""
        return username.lower().startswith(self.hostname.lower() + "/")

    def authenticate(self, connection: Connection, connect: mqtt.Connect) -> Accepted | int:
        code = self._check(connection, connect)
        device_id = connect.client_id
        if code:
            self.refused.append((device_id, code))
            log.info("device %s refused with CONNACK %d", device_id, code)
            return code
        refusal = self.faults.take("refuse_connect", device_id)
        if refusal is not None:
            self.refused.append((device_id, refusal.code))
            return refusal.code
        earlier = self.sessions.get(device_id)
        if earlier is not None:
            earlier.connection.close()  # IoT Hub drops the older connection of a device id
        session = DeviceSession(self, connection, device_id)
        self.sessions[device_id] = session
        session.open()
        return Accepted(session, f"hub:{device_id}")

    def _check(self, connection: Connection, connect: mqtt.Connect) -> int:
        parts = (connect.username or "").split("/")
        if len(parts) < 3 or parts[0].lower() != self.hostname.lower():
            return mqtt.REFUSED_NOT_AUTHORIZED
        device_id = parts[1]
        if device_id != connect.client_id:
            return mqtt.REFUSED_IDENTIFIER
        if not self.hub.has_device(device_id):
            return mqtt.REFUSED_NOT_AUTHORIZED
        identity = self.hub.identity(device_id)
        if identity.status != "enabled":
            return mqtt.REFUSED_SERVER_UNAVAILABLE
        if connect.password is not None:
            if identity.kind != "sas":
                return mqtt.REFUSED_NOT_AUTHORIZED
            try:
                sas.verify(
                    connect.password.decode("utf-8", "replace"),
                    resources=[f"{self.hostname}/devices/{device_id}"],
                    keys=identity.keys,
                )
            except sas.SasError as exc:
                log.info("device %s: SAS refused: %s", device_id, exc)
                return mqtt.REFUSED_NOT_AUTHORIZED
            return mqtt.ACCEPTED
        cert = connection.peer_cert
        if cert is None:
            return mqtt.REFUSED_NOT_AUTHORIZED
        if identity.kind == "selfSigned":
            prints = {identity.primary_thumbprint, identity.secondary_thumbprint}
            ok = thumbprint(cert) in {p.upper() for p in prints if p}
        elif identity.kind == "certificateAuthority":
            ok = subject_common_name(cert) == device_id and any(
                issuer_matches(cert, ca) for ca in self.device_cas()
            )
        else:
            ok = False
        return mqtt.ACCEPTED if ok else mqtt.REFUSED_NOT_AUTHORIZED

    def drop(self, device_id: str | None) -> list[str]:
        """Close the connection of ``device_id`` (every device when None)."""
        targets = list(self.sessions) if device_id is None else [device_id]
        dropped = []
        for target in targets:
            session = self.sessions.get(target)
            if session is not None:
                session.connection.close()
                dropped.append(target)
        return dropped

    def forget(self, session: DeviceSession) -> None:
        if self.sessions.get(session.device_id) is session:
            del self.sessions[session.device_id]


class DeviceSession:
    """One connected device: the device side of its registry twin."""

    def __init__(self, endpoint: DeviceEndpoint, connection: Connection, device_id: str) -> None:
        self.endpoint = endpoint
        self.connection = connection
        self.device_id = device_id
        self.twin = endpoint.hub.twin(device_id)

    @property
    def faults(self) -> TwinFaults:
        return self.endpoint.faults

    def open(self) -> None:
        """Become the twin's connected device (its desired patches now come here)."""
        self.twin.attach(self._on_desired)
        self.endpoint.hub.set_connected(self.device_id, True)

    def on_close(self) -> None:
        self.endpoint.forget(self)
        if self.endpoint.sessions.get(self.device_id) is None:
            self.twin.disconnect()
            self.endpoint.hub.set_connected(self.device_id, False)

    def on_subscribed(self, topics: list[str]) -> None:
        pass

    # --- device -> hub -----------------------------------------------------------------

    async def on_publish(self, message: mqtt.Publish) -> None:
        topic = message.topic
        if topic.startswith(TWIN_GET):
            self._twin_get(_rid(topic))
        elif topic.startswith(TWIN_REPORTED):
            await self._reported(_rid(topic), message.payload)
        else:
            log.debug("%s: publish to %s ignored", self.device_id, topic)
        drop = self.faults.drop_after(self.device_id, self.connection.inbound_publishes)
        if drop is not None:
            log.info("%s: fault %s drops the connection", self.device_id, drop.id)
            self.connection.close()

    def _twin_get(self, rid: str | None) -> None:
        failure = self.faults.take("fail_twin_get", self.device_id)
        if failure is not None:
            self._respond(failure.status, rid, {"errorCode": failure.status * 1000, "message": ""})
            return
        self._respond(200, rid, self.twin.full_twin())

    async def _reported(self, rid: str | None, payload: bytes) -> None:
        try:
            patch = json.loads(payload.decode("utf-8")) if payload.strip() else None
        except (UnicodeDecodeError, ValueError):
            patch = None
        if not isinstance(patch, dict):
            self._respond(400, rid, {"errorCode": 400004, "message": "body is not a JSON object"})
            return
        patch.pop("$version", None)
        await self.twin.report(patch)
        if self.faults.take("lose_reported_ack", self.device_id) is not None:
            log.info("%s: fault loses the response to reported patch $rid=%s", self.device_id, rid)
            return
        self._respond(204, rid, None, version=self.twin.reported_version)

    def _respond(
        self, status: int, rid: str | None, body: Any, *, version: int | None = None
    ) -> None:
        query = [("$rid", rid or "")]
        if version is not None:
            query.append(("$version", str(version)))
        topic = f"{TWIN_RES}{status}/?{urllib.parse.urlencode(query, safe='$')}"
        payload = b"" if body is None else json.dumps(body).encode("utf-8")
        self.connection.publish(topic, payload)

    # --- hub -> device -----------------------------------------------------------------

    def _on_desired(self, patch: dict[str, Any]) -> None:
        """The twin's handler: a desired change goes out on the PATCH topic."""
        topic = f"{TWIN_DESIRED}?$version={patch.get('$version')}"
        payload = json.dumps(patch).encode("utf-8")
        delay = self.faults.take("delay_desired", self.device_id)
        if delay is not None:
            asyncio.get_running_loop().call_later(
                delay.delay_s, self.connection.publish, topic, payload
            )
            return
        self.connection.publish(topic, payload)
        if self.faults.take("duplicate_desired", self.device_id) is not None:
            self.connection.publish(topic, payload)
