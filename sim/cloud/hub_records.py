"""What a hub's registry keeps per device and per configuration, and the small encodings
IoT Hub shows them in (etags, times, tags)."""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sim.cloud.configuration import Configuration
from sim.cloud.identity import Identity
from sim.cloud.twin import InProcessTwin


@dataclass
class DeviceRecord:
    """One registered device: its twin, tags, identity and configuration statuses."""

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
class ConfigurationEntry:
    """One configuration in the hub, with its creation order, times and revision."""

    configuration: Configuration
    created: int  # creation order: a later one wins a priority tie
    created_time: str = field(default_factory=lambda: utc_now())
    updated_time: str = field(default_factory=lambda: utc_now())
    revision: int = 1


def etag(n: int) -> str:
    """An IoT Hub style etag (base64 of a 64-bit counter), e.g. ``AAAAAAAAAAE=``."""
    return base64.b64encode(n.to_bytes(8, "big")).decode("ascii")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def clean_tags(tags: Mapping[str, Any] | None) -> dict[str, Any]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping) or not all(isinstance(k, str) and k for k in tags):
        raise ValueError("tags must map non-empty strings to JSON values")
    return copy.deepcopy(dict(tags))
