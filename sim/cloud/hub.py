"""A simulated IoT Hub's service side: the device registry, twins and automatic device
configurations, one copy shared by the in-process path and the network endpoints
(:mod:`sim.cloud.iothub`).

What it models, from Microsoft Learn "Automatic IoT device and module management"
(``iot-hub-automatic-device-management``), "Understand and use device twins" and the IoT
Hub REST API (service, api-version 2021-04-12):

- devices, each with an identity (:class:`Identity`: symmetric keys or X.509, status), a
  twin (:class:`sim.cloud.twin.InProcessTwin`) and tags;
- :class:`Configuration`: id, ``content.deviceContent`` (``properties.desired.X``),
  ``targetCondition``, ``priority``, ``metrics.queries``, ``labels``; only labels,
  metrics, priority and targetCondition can change after creation; each carries an etag;
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

The condition language lives in :mod:`sim.cloud.query`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.twin import merge_patch
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
]

EVALUATION_INTERVAL_S = 300.0  # IoT Hub re-evaluates configurations about every 5 minutes
SCHEMA_VERSION = "1.0"
DESIRED_PREFIX = "properties.desired."

# "Configuration ID ... up to 128 characters ... lowercase letters and the following
# special characters: - + % _ # * ? ! ( ) , : = @ $ '" (automatic device management).
_CONFIG_ID = re.compile(r"[a-z0-9\-+%_#*?!(),:=@$']{1,128}")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$\-]*")
# "A case-sensitive string (up to 128 characters long) of ASCII 7-bit alphanumeric
# characters plus certain special characters: - . % _ * ? ! ( ) , : = @ $ '" (device ids).
_DEVICE_ID = re.compile(r"[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}")

# --- configurations ------------------------------------------------------------------


@dataclass(frozen=True)
class Configuration:
    """An automatic device configuration, as ``IoTHubConfigurationManager.
    create_configuration`` takes it. ``content`` maps ``properties.desired.NAME`` to the
    JSON object written there; ``metrics`` maps a metric name to its query.

    Validated on construction; a bad field raises ``ValueError`` naming it (with the
    REST name, e.g. ``targetCondition``)."""

    id: str
    content: Mapping[str, Any]
    target_condition: str
    priority: int
    metrics: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _CONFIG_ID.fullmatch(self.id):
            raise ValueError(
                f"id must be 1-128 lowercase letters, digits or - + % _ # * ? ! ( ) , : = @ $ ',"
                f" got {self.id!r}"
            )
        if not isinstance(self.content, Mapping) or not self.content:
            raise ValueError("content must map at least one 'properties.desired.NAME' to a value")
        for key, value in self.content.items():
            name = key[len(DESIRED_PREFIX) :] if isinstance(key, str) else ""
            if not key.startswith(DESIRED_PREFIX) or not _IDENT.fullmatch(name):
                raise ValueError(f"content key must be 'properties.desired.NAME', got {key!r}")
            if not isinstance(value, Mapping):
                raise ValueError(f"content[{key!r}] must be a JSON object")
        try:
            parse_condition(self.target_condition)
        except ConditionError as exc:
            raise ValueError(f"targetCondition: {exc}") from None
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ValueError(f"priority must be an integer, got {self.priority!r}")
        if self.priority < 0:
            raise ValueError(f"priority must be >= 0, got {self.priority}")
        if not isinstance(self.metrics, Mapping):
            raise ValueError("metrics must map metric names to queries")
        for name, query in self.metrics.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"metrics: a metric name must be a non-empty string, got {name!r}")
            try:
                parse_metric_query(query)
            except ConditionError as exc:
                raise ValueError(f"metrics[{name!r}]: {exc}") from None
        if not isinstance(self.labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.labels.items()
        ):
            raise ValueError("labels must map strings to strings")
        # frozen: keep private copies so the caller's dicts cannot change us later
        object.__setattr__(self, "content", copy.deepcopy(dict(self.content)))
        object.__setattr__(self, "metrics", dict(self.metrics))
        object.__setattr__(self, "labels", dict(self.labels))

    def desired_patch(self) -> dict[str, Any]:
        """The desired-properties patch this configuration writes to a device."""
        return {k[len(DESIRED_PREFIX) :]: copy.deepcopy(v) for k, v in self.content.items()}

    def to_json(self) -> dict[str, Any]:
        """The REST body (``PUT /configurations/{id}``), which is also what ``az iot hub
        configuration create`` reads from its ``--content``/``--metrics`` files."""
        return {
            "id": self.id,
            "schemaVersion": SCHEMA_VERSION,
            "labels": dict(self.labels),
            "content": {"deviceContent": copy.deepcopy(dict(self.content))},
            "targetCondition": self.target_condition,
            "priority": self.priority,
            "metrics": {"queries": dict(self.metrics)},
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Configuration:
        """The inverse of :meth:`to_json`; a missing field is named in the error."""
        if not isinstance(doc, Mapping):
            raise ValueError(f"configuration must be a JSON object, got {type(doc).__name__}")
        for name in ("id", "content", "targetCondition", "priority"):
            if name not in doc:
                raise ValueError(f"configuration: missing field {name!r}")
        content = doc["content"]
        if not isinstance(content, Mapping) or not isinstance(
            content.get("deviceContent"), Mapping
        ):
            raise ValueError("content must be {'deviceContent': {...}}")
        metrics = doc.get("metrics") or {}
        return cls(
            id=doc["id"],
            content=content["deviceContent"],
            target_condition=doc["targetCondition"],
            priority=doc["priority"],
            metrics=metrics.get("queries") or {} if isinstance(metrics, Mapping) else metrics,
            labels=doc.get("labels") or {},
        )


@dataclass(frozen=True)
class ConfigurationMetrics:
    """A configuration's metrics after an evaluation: ``systemMetrics`` and custom ones."""

    targeted_count: int
    applied_count: int
    queries: Mapping[str, int]


# --- identities ----------------------------------------------------------------------

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


# --- the hub -------------------------------------------------------------------------


@dataclass
class _Device:
    twin: InProcessTwin
    tags: dict[str, Any]
    identity: Identity = field(default_factory=Identity)
    configurations: dict[str, str] = field(default_factory=dict)  # id -> Targeted | Applied
    generation: int = 0
    tags_version: int = 0
    identity_version: int = 1
    connected: bool = False

    @property
    def twin_version(self) -> int:
        """IoT Hub's twin ``version``: grows with every change of tags or properties."""
        return self.tags_version + self.twin.desired_version + self.twin.reported_version - 1


@dataclass
class _Entry:
    configuration: Configuration
    created: int  # creation order: a later one wins a priority tie
    created_time: str = field(default_factory=lambda: _utc_now())
    updated_time: str = field(default_factory=lambda: _utc_now())
    revision: int = 1


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
        self._devices: dict[str, _Device] = {}
        self._configs: dict[str, _Entry] = {}
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
        self._devices[device_id] = _Device(
            twin or InProcessTwin(),
            _tags(tags),
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
        device.tags = _tags(tags)
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
            "etag": _etag(device.identity_version),
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
            "deviceEtag": _etag(device.identity_version),
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
        return _etag(self._device(device_id).twin_version)

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
        self._configs[configuration.id] = _Entry(configuration, self._created)
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
        entry.updated_time = _utc_now()
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
        return _etag(entry.created * 1_000_000 + entry.revision)

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
        return {
            "created": self._created,
            "generations": self._generations,
            "evaluations": self.evaluations,
            "devices": {
                device_id: {
                    "tags": d.tags,
                    "identity": d.identity.to_json(),
                    "status": d.identity.status,
                    "configurations": d.configurations,
                    "generation": d.generation,
                    "tags_version": d.tags_version,
                    "identity_version": d.identity_version,
                    "desired": {k: v for k, v in d.twin.desired.items() if k != "$version"},
                    "desired_version": d.twin.desired_version,
                    "reported": d.twin.reported,
                    "reported_version": d.twin.reported_version,
                }
                for device_id, d in self._devices.items()
            },
            "configurations": [
                {
                    "body": e.configuration.to_json(),
                    "created": e.created,
                    "created_time": e.created_time,
                    "updated_time": e.updated_time,
                    "revision": e.revision,
                }
                for e in self._configs.values()
            ],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Hub:
        """The inverse of :meth:`to_state`."""
        hub = cls()
        hub._created = int(state.get("created", 0))
        hub._generations = int(state.get("generations", 0))
        hub.evaluations = int(state.get("evaluations", 0))
        for device_id, d in (state.get("devices") or {}).items():
            twin = InProcessTwin(d.get("desired") or {})
            twin.desired_version = int(d.get("desired_version", 1))
            twin.reported = copy.deepcopy(d.get("reported") or {})
            twin.reported_version = int(d.get("reported_version", 1))
            identity = d.get("identity") or {}
            hub._devices[device_id] = _Device(
                twin,
                _tags(d.get("tags")),
                Identity.from_json(identity, status=d.get("status", "enabled"))
                if identity.get("type") != "none"
                else Identity(),
                configurations=dict(d.get("configurations") or {}),
                generation=int(d.get("generation", 0)),
                tags_version=int(d.get("tags_version", 0)),
                identity_version=int(d.get("identity_version", 1)),
            )
        for c in state.get("configurations") or []:
            hub._configs[c["body"]["id"]] = _Entry(
                Configuration.from_json(c["body"]),
                int(c["created"]),
                c.get("created_time", _utc_now()),
                c.get("updated_time", _utc_now()),
                int(c.get("revision", 1)),
            )
        return hub

    def _device(self, device_id: str) -> _Device:
        try:
            return self._devices[device_id]
        except KeyError:
            raise KeyError(f"no device {device_id!r} in the hub") from None

    def _entry(self, config_id: str) -> _Entry:
        try:
            return self._configs[config_id]
        except KeyError:
            raise KeyError(f"no configuration {config_id!r} in the hub") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._devices)


def _condition(config: Configuration) -> Condition:
    return cached_condition(config.target_condition)


def _etag(n: int) -> str:
    """An IoT Hub style etag (base64 of a 64-bit counter), e.g. ``AAAAAAAAAAE=``."""
    return base64.b64encode(n.to_bytes(8, "big")).decode("ascii")


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _tags(tags: Mapping[str, Any] | None) -> dict[str, Any]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping) or not all(isinstance(k, str) and k for k in tags):
        raise ValueError("tags must map non-empty strings to JSON values")
    return copy.deepcopy(dict(tags))


def thumbprint(cert_der: bytes) -> str:
    """An X.509 thumbprint as IoT Hub lists it: SHA-1 of the DER, upper-case hex."""
    return hashlib.sha1(cert_der).hexdigest().upper()
