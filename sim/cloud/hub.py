"""A simulated IoT Hub's service side: the device registry, twins and automatic device
configurations, one copy shared by the in-process path and the network endpoints
(:mod:`sim.cloud.iothub`).

What it models, from Microsoft Learn "Automatic IoT device and module management"
(``iot-hub-automatic-device-management``), "Understand and use device twins" and the IoT
Hub REST API (service, api-version 2021-04-12):

- devices, each with an identity (:class:`sim.cloud.identity.Identity`: symmetric keys or
  X.509, status), a twin (:class:`sim.cloud.twin.InProcessTwin`) and tags
  (:mod:`sim.cloud.hub_records`);
- configurations (:class:`sim.cloud.configuration.Configuration`), each with an etag;
- :meth:`Hub.evaluate`: among the configurations whose target condition matches a
  device, the highest priority wins, and on a tie the most recently created; the
  winner's content is written to the device's desired properties once. IoT Hub does this
  when a configuration is created and then about every 5 minutes
  (:data:`EVALUATION_INTERVAL_S`); in process the caller decides when, on its virtual
  clock; the network hub on a timer;
- system metrics ``targetedCount`` (twins matching the condition) and ``appliedCount``
  (twins the configuration modified), and custom metric queries counted over every twin;
- ``configurations.[[id]].status`` (``Targeted`` / ``Applied``) on each twin, as IoT Hub
  keeps it, so a metric can be scoped to one configuration.

The condition language lives in :mod:`sim.cloud.query`; saving and loading the whole
registry (the local IoT Hub's ``--state``) in :mod:`sim.cloud.hub_state`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any

from agent.twin import merge_patch
from sim.cloud import hub_state
from sim.cloud.configuration import Configuration, ConfigurationMetrics
from sim.cloud.hub_records import ConfigurationEntry, DeviceRecord, clean_tags, etag, utc_now
from sim.cloud.identity import Identity, thumbprint
from sim.cloud.query import (
    Condition,
    ConditionError,
    cached_condition,
    cached_metric_query,
    parse_condition,
    parse_metric_query,
    parse_query,
)
from sim.cloud.twin import InProcessTwin

__all__ = [
    "EVALUATION_INTERVAL_S",
    "Condition",
    "ConditionError",
    "Configuration",
    "ConfigurationMetrics",
    "Hub",
    "Identity",
    "parse_condition",
    "parse_metric_query",
    "thumbprint",
]

EVALUATION_INTERVAL_S = 300.0  # IoT Hub re-evaluates configurations about every 5 minutes

# "A case-sensitive string (up to 128 characters long) of ASCII 7-bit alphanumeric
# characters plus certain special characters: - . % _ * ? ! ( ) , : = @ $ '" (device ids).
_DEVICE_ID = re.compile(r"[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}")


class Hub:
    """An IoT Hub's device registry, twins and configurations, in process.

    ::

        hub = Hub()
        twin = hub.add_device("dev-1", tags={"productType": "washer"})
        hub.create_configuration(cfg)
        hub.evaluate()      # the caller's virtual schedule: every EVALUATION_INTERVAL_S
        hub.metrics(cfg.id).applied_count

    The network hub (:class:`sim.cloud.iothub.LocalIoTHub`) serves this same object to
    the device SDK and the service SDK, and calls it on its own event loop only.
    """

    def __init__(self) -> None:
        self._devices: dict[str, DeviceRecord] = {}
        self._configs: dict[str, ConfigurationEntry] = {}
        self._created = 0
        self._generations = 0
        self.evaluations = 0

    # --- devices ---------------------------------------------------------------------

    def add_device(
        self,
        device_id: str,
        *,
        tags: Mapping[str, Any] | None = None,
        twin: InProcessTwin | None = None,
        identity: Identity | None = None,
    ) -> InProcessTwin:
        """Register a device (with its twin, a new one by default); returns the twin."""
        if not isinstance(device_id, str) or not _DEVICE_ID.fullmatch(device_id):
            raise ValueError(
                "device_id must be 1-128 ASCII letters, digits or - . % _ * ? ! ( ) , : = @ $ ',"
                f" got {device_id!r}"
            )
        if device_id in self._devices:
            raise ValueError(f"device_id {device_id!r} is already registered")
        if identity is not None and not isinstance(identity, Identity):
            raise ValueError(f"identity must be an Identity, got {type(identity).__name__}")
        self._generations += 1
        self._devices[device_id] = DeviceRecord(
            twin or InProcessTwin(),
            clean_tags(tags),
            identity or Identity(),
            generation=self._generations,
        )
        return self._devices[device_id].twin

    def delete_device(self, device_id: str) -> None:
        """Remove a device and its twin (a connected device is dropped by the endpoint)."""
        device = self._device(device_id)
        device.twin.disconnect()
        del self._devices[device_id]

    def has_device(self, device_id: str) -> bool:
        return device_id in self._devices

    def identity(self, device_id: str) -> Identity:
        return self._device(device_id).identity

    def set_identity(self, device_id: str, identity: Identity) -> None:
        device = self._device(device_id)
        device.identity = identity
        device.identity_version += 1

    def set_tags(self, device_id: str, tags: Mapping[str, Any]) -> None:
        """Replace a device's tags; the next :meth:`evaluate` retargets it."""
        device = self._device(device_id)
        device.tags = clean_tags(tags)
        device.tags_version += 1

    def set_connected(self, device_id: str, connected: bool) -> None:
        """The device endpoint's word on ``connectionState``."""
        if device_id in self._devices:
            self._devices[device_id].connected = connected

    def twin(self, device_id: str) -> InProcessTwin:
        return self._device(device_id).twin

    @property
    def device_ids(self) -> list[str]:
        return list(self._devices)

    def twin_document(self, device_id: str) -> dict[str, Any]:
        """The twin as queries see it: ``deviceId``, ``tags``, ``properties`` and
        ``configurations`` (``{id: {"status": "Targeted" | "Applied"}}``)."""
        device = self._device(device_id)
        return {
            "deviceId": device_id,
            "tags": copy.deepcopy(device.tags),
            "properties": {"desired": device.twin.desired, "reported": device.twin.reported},
            "configurations": {k: {"status": v} for k, v in device.configurations.items()},
        }

    # --- the REST shapes (service API, api-version 2021-04-12) -----------------------

    def device_json(self, device_id: str) -> dict[str, Any]:
        """``GET /devices/{id}``: the ``Device`` model, keys included (the service
        policy may read them)."""
        device = self._device(device_id)
        return {
            "deviceId": device_id,
            "generationId": f"{device.generation:018d}",
            "etag": etag(device.identity_version),
            "connectionState": "Connected" if device.connected else "Disconnected",
            "status": device.identity.status,
            "statusReason": None,
            "connectionStateUpdatedTime": "0001-01-01T00:00:00Z",
            "statusUpdatedTime": "0001-01-01T00:00:00Z",
            "lastActivityTime": "0001-01-01T00:00:00Z",
            "cloudToDeviceMessageCount": 0,
            "authentication": device.identity.to_json(),
            "capabilities": {"iotEdge": False},
        }

    def twin_json(self, device_id: str) -> dict[str, Any]:
        """``GET /twins/{id}``: the ``Twin`` model."""
        device = self._device(device_id)
        twin = device.twin
        desired = twin.desired
        reported = {**copy.deepcopy(twin.reported), "$version": twin.reported_version}
        return {
            "deviceId": device_id,
            "etag": self.twin_etag(device_id),
            "deviceEtag": etag(device.identity_version),
            "status": device.identity.status,
            "connectionState": "Connected" if device.connected else "Disconnected",
            "authenticationType": device.identity.kind,
            "version": device.twin_version,
            "tags": copy.deepcopy(device.tags),
            "properties": {"desired": desired, "reported": reported},
            "configurations": {k: {"status": v} for k, v in device.configurations.items()},
            "capabilities": {"iotEdge": False},
        }

    def twin_etag(self, device_id: str) -> str:
        return etag(self._device(device_id).twin_version)

    def update_twin(
        self, device_id: str, body: Mapping[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        """``PATCH /twins/{id}`` (merge tags and desired) or ``PUT`` (``replace``: tags and
        desired replaced). Reported properties belong to the device and are ignored, as
        IoT Hub ignores them. Returns the new twin."""
        device = self._device(device_id)
        if not isinstance(body, Mapping):
            raise ValueError("twin must be a JSON object")
        tags = body.get("tags")
        properties = body.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise ValueError("properties must be a JSON object")
        desired = properties.get("desired")
        if tags is not None or replace:
            if tags is not None and not isinstance(tags, Mapping):
                raise ValueError("tags must be a JSON object")
            new_tags = dict(tags or {}) if replace else merge_patch(device.tags, tags or {})
            self.set_tags(device_id, new_tags)
        if desired is not None or replace:
            if desired is not None and not isinstance(desired, Mapping):
                raise ValueError("properties.desired must be a JSON object")
            clean = {k: v for k, v in (desired or {}).items() if not k.startswith("$")}
            if replace:
                device.twin.set_desired(clean)
            elif clean:
                device.twin.patch_desired(clean)
        return self.twin_json(device_id)

    def query(self, text: str) -> list[dict[str, Any]]:
        """``POST /devices/query``: the twins (or ``{"deviceId"}``) matching ``text``."""
        query = parse_query(text)
        out = []
        for device_id in self._devices:
            if query.matches(self.twin_document(device_id)):
                out.append(
                    self.twin_json(device_id) if query.select == "*" else {"deviceId": device_id}
                )
        return out

    # --- configurations ------------------------------------------------------------

    def create_configuration(self, configuration: Configuration) -> Configuration:
        """Add a configuration; it takes effect at the next :meth:`evaluate`."""
        if not isinstance(configuration, Configuration):
            raise ValueError(f"expected a Configuration, got {type(configuration).__name__}")
        if configuration.id in self._configs:
            raise ValueError(f"configuration id {configuration.id!r} already exists")
        self._created += 1
        self._configs[configuration.id] = ConfigurationEntry(configuration, self._created)
        return configuration

    def update_configuration(self, configuration: Configuration) -> Configuration:
        """Replace labels, metrics, priority and targetCondition of an existing
        configuration; a changed ``content`` is refused, as IoT Hub refuses it."""
        entry = self._entry(configuration.id)
        if configuration.content != entry.configuration.content:
            raise ValueError(
                f"content of configuration {configuration.id!r} cannot be updated after "
                "creation (only labels, metrics, priority and targetCondition can)"
            )
        entry.configuration = configuration
        entry.revision += 1
        entry.updated_time = utc_now()
        return configuration

    def delete_configuration(self, config_id: str) -> None:
        """Remove a configuration; devices keep the desired values it wrote."""
        self._entry(config_id)
        del self._configs[config_id]
        for device in self._devices.values():
            device.configurations.pop(config_id, None)

    def get_configuration(self, config_id: str) -> Configuration:
        return self._entry(config_id).configuration

    def has_configuration(self, config_id: str) -> bool:
        return config_id in self._configs

    def configuration_etag(self, config_id: str) -> str:
        entry = self._entry(config_id)
        return etag(entry.created * 1_000_000 + entry.revision)

    def configuration_json(self, config_id: str) -> dict[str, Any]:
        """``GET /configurations/{id}``: the body as created, plus times, etag and the
        metrics' current results."""
        entry = self._entry(config_id)
        config = entry.configuration
        m = self.metrics(config_id)
        body = config.to_json()
        body["content"].update({"modulesContent": {}, "moduleContent": {}})
        body.update(
            {
                "createdTimeUtc": entry.created_time,
                "lastUpdatedTimeUtc": entry.updated_time,
                "etag": self.configuration_etag(config_id),
                "systemMetrics": {
                    "results": {
                        "targetedCount": m.targeted_count,
                        "appliedCount": m.applied_count,
                    },
                    "queries": {
                        "targetedCount": "select deviceId from devices where "
                        + config.target_condition,
                        "appliedCount": "select deviceId from devices where "
                        f"configurations.[[{config.id}]].status = 'Applied'",
                    },
                },
                "metrics": {"results": dict(m.queries), "queries": dict(config.metrics)},
            }
        )
        return body

    @property
    def configurations(self) -> list[Configuration]:
        """In creation order."""
        return [e.configuration for e in self._configs.values()]

    # --- evaluation and metrics ----------------------------------------------------

    def evaluate(self) -> dict[str, str]:
        """One evaluation pass: target every device, apply each device's winning
        configuration once. Returns ``{device_id: config_id}`` for the devices whose
        desired properties were written in this pass."""
        self.evaluations += 1
        written: dict[str, str] = {}
        for device_id, device in self._devices.items():
            doc = self.twin_document(device_id)
            matching = [
                e for e in self._configs.values() if _condition(e.configuration).matches(doc)
            ]
            winner = max(
                matching, key=lambda e: (e.configuration.priority, e.created), default=None
            )
            previously = {k for k, v in device.configurations.items() if v == "Applied"}
            device.configurations = {e.configuration.id: "Targeted" for e in matching}
            if winner is None:
                continue
            config = winner.configuration
            device.configurations[config.id] = "Applied"
            if config.id not in previously:
                device.twin.patch_desired(config.desired_patch())
                written[device_id] = config.id
        return written

    def metrics(self, config_id: str) -> ConfigurationMetrics:
        """``targetedCount``/``appliedCount`` as of the last :meth:`evaluate`, and each
        custom query counted over every twin now (IoT Hub runs them hub-wide)."""
        config = self._entry(config_id).configuration
        statuses = [d.configurations.get(config_id) for d in self._devices.values()]
        docs = [self.twin_document(i) for i in self._devices]
        counts = {
            name: sum(cached_metric_query(q).matches(doc) for doc in docs)
            for name, q in config.metrics.items()
        }
        return ConfigurationMetrics(
            targeted_count=sum(s is not None for s in statuses),
            applied_count=statuses.count("Applied"),
            queries=counts,
        )

    # --- persistence -----------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Everything a restart must keep, as JSON-able data (keys included: the state
        directory is private)."""
        return hub_state.dump(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Hub:
        """The inverse of :meth:`to_state`."""
        return hub_state.load(cls(), state)

    def _device(self, device_id: str) -> DeviceRecord:
        try:
            return self._devices[device_id]
        except KeyError:
            raise KeyError(f"no device {device_id!r} in the hub") from None

    def _entry(self, config_id: str) -> ConfigurationEntry:
        try:
            return self._configs[config_id]
        except KeyError:
            raise KeyError(f"no configuration {config_id!r} in the hub") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._devices)


def _condition(config: Configuration) -> Condition:
    return cached_condition(config.target_condition)
