"""The twin seam: the device twin, desired properties in and reported properties out.

:class:`Twin` is what the agent needs from IoT Hub ("Understand and use device twins in
IoT Hub"). :class:`sim.cloud.twin.InProcessTwin` implements it for simulation;
:class:`agent.azure.AzureIoTTwin` over azure-iot-device's ``IoTHubDeviceClient``.
"""

import copy
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

PatchHandler = Callable[[dict[str, Any]], None]
"""Called on the agent's event loop with each desired patch (root object with ``$version``)."""


class TwinError(Exception):
    """The twin could not be reached or refused the operation (disconnected, auth, timeout).

    The agent treats it as "try again later", never as a reason to stop.
    """


@runtime_checkable
class Twin(Protocol):
    """A device twin as the agent sees it.

    Contract: ``on_desired_patch`` may be called before ``connect``; after ``connect``,
    ``get_desired`` returns the whole desired section (with ``$version``) and patches arrive
    at the handler in ``$version`` order, on the agent's event loop. After a reconnect the
    whole desired section may be delivered again as a patch (the Azure Sphere SDK of the
    original always does; azure-iot-device does when ``$version`` moved): the handler
    must treat a repeat of the same instruction as a continuation, not a new job.
    """

    async def connect(self) -> None:
        """Open the connection; raises :class:`TwinError` when the cloud is unreachable."""
        ...

    async def get_desired(self) -> dict[str, Any]:
        """The whole desired section, ``{"extFwInfo": {...}, "$version": n}``."""
        ...

    def on_desired_patch(self, handler: PatchHandler) -> None:
        """Register the one handler for desired patches (replaces any earlier one)."""
        ...

    async def report(self, patch: dict[str, Any]) -> None:
        """Send a reported-properties patch (JSON merge patch: ``None`` deletes a key)."""
        ...

    async def close(self) -> None:
        """Disconnect and release the connection; safe to call twice."""
        ...


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Apply ``patch`` to ``target`` as a JSON merge patch (RFC 7386) and return the result.

    IoT Hub merges desired and reported patches this way: objects merge key by key,
    ``null`` deletes, anything else replaces. Neither argument is modified.
    """
    result = copy.deepcopy(dict(target))
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            base = result.get(key)
            result[key] = merge_patch(base if isinstance(base, Mapping) else {}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result
