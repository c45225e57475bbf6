"""A simulated gateway's twin over the real cloud path: the agent's own
:class:`agent.azure.AzureIoTTwin` (azure-iot-device over MQTT/TLS) to a
:class:`LocalIoTHub`, plus the cloud-side view :class:`sim.device.SimDevice` watches
(what the hub holds as reported, every reported patch it received, the desired section).

The view reads the hub's registry on the hub's loop; the agent only ever talks MQTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Callable
from typing import Any

from agent.azure import AzureConnectionConfig, AzureIoTTwin
from sim.cloud.iothub.server import LocalIoTHub

POLL_S = 0.005


class HubTwin(AzureIoTTwin):
    """:class:`AzureIoTTwin` for ``device_id`` on ``hub``, observable like
    :class:`sim.cloud.twin.InProcessTwin` (``reported``, ``reported_log``, ``desired``,
    ``wait_reported``, ``disconnect``)."""

    def __init__(self, config: AzureConnectionConfig, *, hub: LocalIoTHub, device_id: str) -> None:
        super().__init__(config)
        self.hub = hub
        self.device_id = device_id

    @classmethod
    def provisioned(
        cls,
        hub: LocalIoTHub,
        registration_id: str,
        *,
        symmetric_key: str,
        **options: Any,
    ) -> HubTwin:
        """A device provisioned through the hub's DPS with a symmetric key.

        The SDK's own reconnect is off: the agent's twin link reconnects (agent/twin_link.py),
        and a simulated power cut discards the client as the gateway's process would be,
        so no orphaned client is left to reconnect and contend for the device's identity.
        """
        options.setdefault("connection_retry", False)
        options.setdefault("connection_retry_interval_s", 1)
        options.setdefault("retry_interval_s", 0.2)
        options.setdefault("operation_timeout_s", 5.0)
        config = AzureConnectionConfig(
            id_scope=hub.id_scope,
            registration_id=registration_id,
            symmetric_key=symmetric_key,
            provisioning_host=hub.host,
            gateway_hostname=hub.host,
            server_verification_cert=str(hub.ca_cert),
            **options,
        )
        return cls(config, hub=hub, device_id=registration_id)

    def _cloud(self, fn: Callable[[Any], Any]) -> Any:
        def read(h: Any) -> Any:
            return (
                copy.deepcopy(fn(h.twin(self.device_id))) if h.has_device(self.device_id) else None
            )

        return self.hub.call(read)

    @property
    def reported(self) -> dict[str, Any]:
        return self._cloud(lambda t: t.reported) or {}

    @property
    def reported_log(self) -> list[dict[str, Any]]:
        return self._cloud(lambda t: t.reported_log) or []

    @property
    def desired(self) -> dict[str, Any]:
        return self._cloud(lambda t: t.desired) or {}

    async def wait_reported(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Wait until the hub's reported section satisfies ``predicate``."""
        while True:
            reported = await self.hub.acall(
                lambda h: (
                    copy.deepcopy(h.twin(self.device_id).reported)
                    if h.has_device(self.device_id)
                    else {}
                )
            )
            if predicate(reported):
                return reported
            await asyncio.sleep(POLL_S)

    def disconnect(self) -> None:
        """The gateway lost power: its TCP connection is gone and so is the process that
        held the SDK client (the next boot's agent builds a new one and connects)."""
        self.hub.drop(self.device_id)
        client, self._client = self._client, None
        if client is not None:
            task = asyncio.ensure_future(_discard(client))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())


async def _discard(client: Any) -> None:
    """Stop a client whose gateway lost power (its threads would be gone with it)."""
    with contextlib.suppress(Exception):
        await client.shutdown()
