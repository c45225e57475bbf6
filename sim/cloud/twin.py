"""An in-process device twin for simulation, and the operator's side of it.

:class:`InProcessTwin` implements :class:`agent.twin.Twin` the way IoT Hub behaves
("Understand and use device twins"): desired and reported sections merge patches (JSON
merge patch, RFC 7386; ``None`` deletes), desired ``$version`` grows by one per change,
the device gets the whole desired section on request and each change as a patch while
connected; patches sent while it is disconnected are lost to it, and on reconnect the
whole desired section is delivered again (as the original's Azure Sphere SDK does).
"""

import asyncio
import copy
import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from agent.twin import PatchHandler, TwinError, merge_patch

log = logging.getLogger(__name__)


class InProcessTwin:
    """One device's twin, with the cloud side (``set_desired``, ``patch_desired``,
    ``reported``) and the device side (the :class:`agent.twin.Twin` methods).

    Patches reach the handler through the event loop (``call_soon``), in ``$version``
    order, never re-entrantly from the operator's call. A handler that raises does not
    stop delivery: the exception is logged and kept in ``handler_errors``.
    """

    def __init__(self, desired: Mapping[str, Any] | None = None) -> None:
        self._desired: dict[str, Any] = copy.deepcopy(dict(desired or {}))
        self._desired.pop("$version", None)
        self.desired_version = 1  # a new twin's desired $version (IoT Hub starts at 1)
        self.reported: dict[str, Any] = {}
        self.reported_version = 1
        self.reported_log: list[dict[str, Any]] = []
        self.delivered_log: list[dict[str, Any]] = []
        self.handler_errors: list[BaseException] = []
        self.connect_count = 0
        self._handler: PatchHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = False
        self._epoch = 0  # bumped on every disconnect: patches in flight then are lost
        self._waiters: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Future[None]]] = []

    # --- the device side (agent.twin.Twin) ---------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def on_desired_patch(self, handler: PatchHandler) -> None:
        self._handler = handler

    async def connect(self) -> None:
        self.attach(self._handler)

    def attach(self, handler: PatchHandler | None) -> None:
        """Connect now, from the running loop, with ``handler`` for desired patches: what
        :meth:`connect` does, for a device side that is not a coroutine (the local IoT
        Hub's MQTT session of this device)."""
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._connected = True
        self.connect_count += 1

    async def get_desired(self) -> dict[str, Any]:
        self._require_connected("get_desired")
        await asyncio.sleep(0)
        return self.desired

    async def report(self, patch: dict[str, Any]) -> None:
        self._require_connected("report")
        if not isinstance(patch, Mapping):
            raise TypeError(f"reported patch must be a dict, got {type(patch).__name__}")
        self.reported_log.append(copy.deepcopy(dict(patch)))
        self.reported = merge_patch(self.reported, patch)
        self.reported_version += 1
        self._wake_waiters()
        await asyncio.sleep(0)

    async def close(self) -> None:
        self.disconnect()
        self._handler = None

    # --- the network between them -------------------------------------------------------

    def disconnect(self) -> None:
        """Drop the connection: patches in flight and sent meanwhile never arrive."""
        self._connected = False
        self._epoch += 1

    async def reconnect(self, *, redeliver: bool = True) -> None:
        """Come back after :meth:`disconnect`; with ``redeliver`` the whole desired section
        is delivered to the handler as a patch (azure-iot-device does so only when
        ``$version`` moved while away: pass ``redeliver=False`` to model an unchanged one)."""
        self.disconnect()
        await self.connect()
        if redeliver:
            self._send(self.desired)

    # --- the cloud side (the operator, or the test) ---------------------------------------

    @property
    def desired(self) -> dict[str, Any]:
        """A copy of the whole desired section, with ``$version``."""
        return {**copy.deepcopy(self._desired), "$version": self.desired_version}

    def full_twin(self) -> dict[str, Any]:
        """The twin as ``get_twin`` returns it: ``{"desired": ..., "reported": ...}``."""
        reported = {**copy.deepcopy(self.reported), "$version": self.reported_version}
        return {"desired": self.desired, "reported": reported}

    def patch_desired(self, patch: Mapping[str, Any]) -> int:
        """Merge ``patch`` into desired, bump ``$version``, send the patch as given (plus
        ``$version``) to a connected device. Returns the new ``$version``."""
        if not isinstance(patch, Mapping):
            raise TypeError(f"desired patch must be a mapping, got {type(patch).__name__}")
        body = {k: v for k, v in patch.items() if k != "$version"}
        self._desired = merge_patch(self._desired, body)
        self.desired_version += 1
        self._send({**copy.deepcopy(body), "$version": self.desired_version})
        return self.desired_version

    def set_desired(self, desired: Mapping[str, Any]) -> int:
        """Replace the whole desired section; the device gets a patch with the new values
        and ``None`` for every key removed. Returns the new ``$version``."""
        new = {k: copy.deepcopy(v) for k, v in desired.items() if k != "$version"}
        patch: dict[str, Any] = {k: None for k in self._desired if k not in new}
        patch.update(new)
        self._desired = new
        self.desired_version += 1
        self._send({**copy.deepcopy(patch), "$version": self.desired_version})
        return self.desired_version

    async def wait_reported(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Wait until ``predicate(reported)`` holds; returns a copy of ``reported``."""
        if predicate(self.reported):
            return copy.deepcopy(self.reported)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        await future
        return copy.deepcopy(self.reported)

    # --- internals ----------------------------------------------------------------------

    def _require_connected(self, what: str) -> None:
        if not self._connected:
            raise TwinError(f"{what}: the twin is not connected")

    def _send(self, patch: dict[str, Any]) -> None:
        if not self._connected or self._loop is None or self._handler is None:
            return
        self._loop.call_soon(self._deliver, patch, self._epoch)

    def _deliver(self, patch: dict[str, Any], epoch: int) -> None:
        if epoch != self._epoch or not self._connected or self._handler is None:
            return
        self.delivered_log.append(copy.deepcopy(patch))
        try:
            self._handler(patch)
        except Exception as exc:  # the agent's bug must not stop the cloud
            log.exception("desired patch handler raised")
            self.handler_errors.append(exc)

    def _wake_waiters(self) -> None:
        remaining = []
        for predicate, future in self._waiters:
            if future.done():
                continue
            if predicate(self.reported):
                future.set_result(None)
            else:
                remaining.append((predicate, future))
        self._waiters = remaining


def ota_desired_patch(*, version: int, image: bytes, url: str, sas: str) -> dict[str, Any]:
    """What the original's ``ota.py`` publishes for ``image``: the desired ``extFwInfo``
    with its size, SHA-256 in upper-case hex (as ``ota.py`` computes it), URL and SAS.

    The caller makes the URL and SAS (from the blob server it runs); nothing is checked
    here, so tests can publish malformed instructions on purpose.
    """
    return {
        "extFwInfo": {
            "version": version,
            "size": len(image),
            "url": url,
            "sas": sas,
            "sha256": hashlib.sha256(image).hexdigest().upper(),
        }
    }


def publish_ota(twin: InProcessTwin, *, version: int, image: bytes, url: str, sas: str) -> int:
    """The operator publishes an OTA to ``twin``; returns the desired ``$version``."""
    return twin.patch_desired(ota_desired_patch(version=version, image=image, url=url, sas=sas))
