"""IoT Hub automatic device configurations, as the service API and the deploy tool hold
them (Microsoft Learn "Automatic IoT device and module management",
``iot-hub-automatic-device-management``; IoT Hub REST API, api-version 2021-04-12).

A :class:`Configuration` has an id, ``content.deviceContent`` (``properties.desired.X``),
``targetCondition``, ``priority``, ``metrics.queries`` and ``labels``; only labels,
metrics, priority and targetCondition can change after creation. How a hub evaluates
them is :meth:`sim.cloud.hub.Hub.evaluate`; the condition language is
:mod:`sim.cloud.query`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sim.cloud.query import ConditionError, parse_condition, parse_metric_query

SCHEMA_VERSION = "1.0"
DESIRED_PREFIX = "properties.desired."

# "Configuration ID ... up to 128 characters ... lowercase letters and the following
# special characters: - + % _ # * ? ! ( ) , : = @ $ '" (automatic device management).
_CONFIG_ID = re.compile(r"[a-z0-9\-+%_#*?!(),:=@$']{1,128}")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$\-]*")


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
