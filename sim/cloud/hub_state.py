"""A hub's registry, twins and configurations as JSON-able data, and back: what the local
IoT Hub writes to its state directory so a restart keeps them (``python -m sim hub
--state DIR``). Keys are included: the state directory is private."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from sim.cloud.configuration import Configuration
from sim.cloud.hub_records import ConfigurationEntry, DeviceRecord, clean_tags, utc_now
from sim.cloud.identity import Identity
from sim.cloud.twin import InProcessTwin


class Registry(Protocol):
    """What is kept of a :class:`sim.cloud.hub.Hub`: its devices with their twins and
    identities, its configurations, and the counters that order them."""

    _created: int
    _generations: int
    evaluations: int
    _devices: dict[str, DeviceRecord]
    _configs: dict[str, ConfigurationEntry]


R = TypeVar("R", bound=Registry)


def dump(hub: Registry) -> dict[str, Any]:
    """Everything a restart must keep (:meth:`Hub.to_state`)."""
    return {
        "created": hub._created,
        "generations": hub._generations,
        "evaluations": hub.evaluations,
        "devices": {device_id: _device(d) for device_id, d in hub._devices.items()},
        "configurations": [
            {
                "body": e.configuration.to_json(),
                "created": e.created,
                "created_time": e.created_time,
                "updated_time": e.updated_time,
                "revision": e.revision,
            }
            for e in hub._configs.values()
        ],
    }


def load(hub: R, state: Mapping[str, Any]) -> R:
    """Fill the new, empty ``hub`` from ``state`` (:meth:`Hub.from_state`)."""
    hub._created = int(state.get("created", 0))
    hub._generations = int(state.get("generations", 0))
    hub.evaluations = int(state.get("evaluations", 0))
    for device_id, d in (state.get("devices") or {}).items():
        twin = InProcessTwin(d.get("desired") or {})
        twin.desired_version = int(d.get("desired_version", 1))
        twin.reported = copy.deepcopy(d.get("reported") or {})
        twin.reported_version = int(d.get("reported_version", 1))
        identity = d.get("identity") or {}
        hub._devices[device_id] = DeviceRecord(
            twin,
            clean_tags(d.get("tags")),
            Identity.from_json(identity, status=d.get("status", "enabled"))
            if identity.get("type") != "none"
            else Identity(),
            configurations=dict(d.get("configurations") or {}),
            generation=int(d.get("generation", 0)),
            tags_version=int(d.get("tags_version", 0)),
            identity_version=int(d.get("identity_version", 1)),
        )
    for c in state.get("configurations") or []:
        hub._configs[c["body"]["id"]] = ConfigurationEntry(
            Configuration.from_json(c["body"]),
            int(c["created"]),
            c.get("created_time", utc_now()),
            c.get("updated_time", utc_now()),
            int(c.get("revision", 1)),
        )
    return hub


def _device(d: DeviceRecord) -> dict[str, Any]:
    return {
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
