"""The in-process twin with twin-channel faults, on the device's virtual clock.

:class:`FaultyTwin` is :class:`sim.cloud.twin.InProcessTwin` plus the vocabulary of
:mod:`sim.cloud.twin_faults`, applied as the local IoT Hub applies it to an MQTT
connection (``docs/iothub.md``), but with no network: explorers run it because speed
matters. Times are the device's clock (a :class:`sim.clock.VirtualClock`); counts are the
device's messages (twin GETs and reported patches) on one connection:

- ``drop_connection``: after the ``after_messages``-th message on a connection is served,
  or once ``at_s`` has passed, the connection is gone: desired patches in flight are lost
  and every call raises :class:`agent.twin.TwinError` until the device connects again
  (there is no keep-alive in process: a timed drop is noticed at the next call);
- ``refuse_connect``: ``connect`` raises :class:`TwinError` naming the CONNACK code;
- ``lose_reported_ack``: the patch is applied but the call raises after the device's
  ``ack_timeout_s`` (the agent's adapter bounds every call; it waits that long first);
- ``delay_desired``: the patch reaches the device ``delay_s`` later. The twin seam promises
  ``$version`` order (``agent/twin.py``), so later patches queue behind it as on one MQTT
  connection (the network hub lets them overtake; the adapter restores the order);
- ``duplicate_desired``: the patch reaches the device twice;
- ``fail_twin_get``: ``get_desired`` raises :class:`TwinError` naming the status.

A connection a fault dropped is also noticed by the device's own client, which connects
again ``reconnect_after_s`` later (azure-iot-device's ``connection_retry``; refused while
the hub refuses) and, if desired ``$version`` moved meanwhile, delivers the whole desired
section (``docs/iothub.md``): a device that makes no call is not cut off for good.

Delayed patches, timed drops and those reconnects fall due as the clock moves; the twin
looks at every call of the device and at :meth:`tick`; :meth:`next_due` says when the
next one is (a simulation whose device is idle moves its clock there).
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from agent.twin import TwinError
from sim.cloud.twin import InProcessTwin
from sim.cloud.twin_faults import TwinFault, TwinFaults

ACK_TIMEOUT_S = 30.0  # agent.azure.AzureConnectionConfig.operation_timeout_s's default
RECONNECT_AFTER_S = 10.0  # ... and its connection_retry_interval_s
CONNACK = {  # MQTT 3.1.1 section 3.2.2.3, as IoT Hub uses them (docs/iothub.md)
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


class DeviceClock(Protocol):
    def monotonic(self) -> float: ...

    async def asleep(self, seconds: float) -> None: ...


class FaultyTwin(InProcessTwin):
    """One device's in-process twin whose channel breaks as :attr:`faults` says."""

    def __init__(
        self,
        desired: Mapping[str, Any] | None = None,
        *,
        clock: DeviceClock,
        device_id: str = "device",
        ack_timeout_s: float = ACK_TIMEOUT_S,
        reconnect_after_s: float = RECONNECT_AFTER_S,
    ) -> None:
        super().__init__(desired)
        self.clock = clock
        self.device_id = device_id
        self.ack_timeout_s = ack_timeout_s
        self.reconnect_after_s = reconnect_after_s
        self.faults = TwinFaults(clock=clock.monotonic)
        self.messages = 0  # on the current connection
        self.drops = 0
        self.refused = 0
        self.lost_acks = 0
        self._held: deque[tuple[float, dict[str, Any]]] = deque()  # (due, patch)
        self._held_epoch = 0
        self._retry_at: float | None = None  # the client's own reconnect after a drop
        self._device_version = 0  # the newest desired $version the device has had
        self._wakers: set[asyncio.Task[None]] = set()

    def arm(self, faults: Iterable[TwinFault]) -> None:
        """Replace the armed rules with ``faults``, armed now (the event log is kept)."""
        self.faults.clear()
        for fault in faults:
            self.faults.add(fault)

    def tick(self) -> None:
        """Apply what fell due on the clock: timed drops, the client's reconnect, delayed
        desired patches."""
        for fault in self.faults.due_drops():
            if self._connected:
                self._drop()
                self.faults.log_drop(fault, self.device_id)
        now = self.clock.monotonic()
        if self._retry_at is not None and now >= self._retry_at:
            self._client_reconnect()
        if self._held and self._held_epoch != self._epoch:
            self._held.clear()  # they were in flight on a connection that is gone
        while self._held and self._held[0][0] <= now:
            self._release(self._held.popleft()[1])

    def next_due(self) -> float | None:
        """When the next delayed patch or reconnect falls due on the clock (None: nothing
        is pending; timed drops are not events a device waits for)."""
        times = [self._held[0][0]] if self._held and self._held_epoch == self._epoch else []
        if self._retry_at is not None:
            times.append(self._retry_at)
        return min(times, default=None)

    def disconnect(self) -> None:
        super().disconnect()
        self._retry_at = None  # the device went away (power, close): its client with it

    # --- the device side -------------------------------------------------------------

    async def connect(self) -> None:
        self.tick()
        refusal = self.faults.take("refuse_connect", self.device_id)
        if refusal is not None:
            self.refused += 1
            await asyncio.sleep(0)
            why = CONNACK.get(refusal.code, "refused")
            raise TwinError(f"connect refused: CONNACK {refusal.code} ({why})")
        if self._connected:
            self.disconnect()  # a new connection replaces the old one
        self._retry_at = None
        self.messages = 0
        await super().connect()

    async def get_desired(self) -> dict[str, Any]:
        self.tick()
        self._require_connected("get_desired")
        self.messages += 1
        failure = self.faults.take("fail_twin_get", self.device_id)
        desired = self.desired
        if failure is None:
            self._device_version = max(self._device_version, self.desired_version)
        self._after_message()
        await asyncio.sleep(0)
        if failure is not None:
            raise TwinError(f"get_desired: the twin GET was answered {failure.status}")
        return desired

    async def report(self, patch: dict[str, Any]) -> None:
        self.tick()
        self._require_connected("report")
        self.messages += 1
        lost = self.faults.take("lose_reported_ack", self.device_id)
        await super().report(patch)
        self._after_message()
        if lost is not None:
            self.lost_acks += 1
            await self.clock.asleep(self.ack_timeout_s)
            raise TwinError(
                f"report: no acknowledgement within {self.ack_timeout_s:g} s (the patch was kept)"
            )

    # --- internals -------------------------------------------------------------------

    def _after_message(self) -> None:
        if self.faults.drop_after(self.device_id, self.messages) is not None:
            self._drop()

    def _drop(self) -> None:
        self.drops += 1
        self.disconnect()
        if self._handler is not None:
            self._retry_at = self.clock.monotonic() + self.reconnect_after_s
            self._wake_at(self._retry_at)

    def _client_reconnect(self) -> None:
        """What the device's client does on its own after a drop (see the module doc)."""
        if self.faults.take("refuse_connect", self.device_id) is not None:
            self.refused += 1
            self._retry_at = self.clock.monotonic() + self.reconnect_after_s
            self._wake_at(self._retry_at)
            return
        self._retry_at = None
        self.messages = 0
        self.attach(self._handler)
        if self.desired_version > self._device_version:
            self._send(self.desired)

    def _deliver(self, patch: dict[str, Any], epoch: int) -> None:
        version = patch.get("$version")
        if epoch == self._epoch and self._connected and isinstance(version, int):
            self._device_version = max(self._device_version, version)
        super()._deliver(patch, epoch)

    def _send(self, patch: dict[str, Any]) -> None:
        self.tick()
        if not self._connected or self._loop is None or self._handler is None:
            return  # lost to a device that is not there, as in InProcessTwin
        delay = self.faults.take("delay_desired", self.device_id)
        if delay is None and not self._held:
            self._release(patch)
            return
        if self._held_epoch != self._epoch:
            self._held.clear()
        self._held_epoch = self._epoch
        now = self.clock.monotonic()
        due = now + (delay.delay_s if delay is not None else 0.0)
        if self._held:
            due = max(due, self._held[-1][0])  # in order: behind the one held before it
        self._held.append((due, copy.deepcopy(patch)))
        self._wake_at(due)

    def _wake_at(self, due: float) -> None:
        """With loopback time virtual (:mod:`sim.loopback`), make ``due`` a wait of that
        network, so the clock's jump over a quiet loop stops there and :meth:`tick` runs;
        on any other clock the device's own calls and :meth:`tick` find it."""
        network = getattr(self.clock, "network", None)
        if network is None or self._loop is None:
            return

        async def wake() -> None:
            await network.sleep(due - self.clock.monotonic())
            self.tick()

        task = self._loop.create_task(wake())
        self._wakers.add(task)
        task.add_done_callback(self._wakers.discard)

    def cancel_wakers(self) -> None:
        """Drop the wake-ups still scheduled on the network (the run using this twin is
        over: nothing it owed the device can arrive any more)."""
        for task in list(self._wakers):
            task.cancel()
        self._wakers.clear()

    async def close(self) -> None:
        self.cancel_wakers()
        await super().close()

    def _release(self, patch: dict[str, Any]) -> None:
        super()._send(patch)
        if self.faults.take("duplicate_desired", self.device_id) is not None:
            super()._send(copy.deepcopy(patch))
