"""What a campaign learns from each device: its requests carry its id and device time,
its reports are stamped with device time.

The headers are simulation instrumentation, added by the campaign's HTTP session around
the agent (never by the agent): the storage side needs them to put a request in device
time (:mod:`sim.campaign.storage`), and ``x-sim-seq`` orders a device's requests and
reports in one sequence, so a request can be told to follow an ``interrupted`` report.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from agent.clock import Clock
from sim.campaign.plan import Outage
from sim.cloud.faulty_twin import FaultyTwin
from sim.device import reported_status

DEVICE_HEADER = "x-sim-device"
TIME_HEADER = "x-sim-device-time"
SEQ_HEADER = "x-sim-seq"


@dataclass
class Report:
    """One reported patch as the hub received it, with the device's time and sequence."""

    t: float
    seq: int
    extfw: dict[str, Any]

    @property
    def status(self) -> str | None:
        value = self.extfw.get("Status")
        return value if isinstance(value, str) else None


@dataclass
class Probe:
    """One device's sequence counter and clock, shared by its HTTP session and its twin.

    With an ``outage``, a response still streaming when device time reaches its start is
    broken there (the account going down takes its open connections with it); requests
    sent inside it are refused by the storage side (:mod:`sim.campaign.storage`)."""

    device_id: str
    clock: Clock
    outage: Outage | None = None
    seq: int = 0
    requests: int = 0
    broken_streams: int = 0
    boots: list[tuple[int, float]] = field(default_factory=list)  # (seq, device time)

    def boot(self) -> None:
        """Mark a boot in the device's sequence (a cut's reboot is a retry path too)."""
        self.boots.append((self.next_seq(), self.clock.monotonic()))

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def _stamp(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        self.requests += 1
        request.headers[DEVICE_HEADER] = self.device_id
        request.headers[TIME_HEADER] = repr(self.clock.monotonic())
        request.headers[SEQ_HEADER] = str(self.next_seq())
        sent_at = self.clock.monotonic()
        response = await handler(request)
        if self.outage is not None and sent_at < self.outage.start:
            response.content = _BrokenByOutage(response, self)  # type: ignore[assignment]
        return response

    def session(self) -> aiohttp.ClientSession:
        """The agent's HTTP session (``Board.session_factory``)."""
        return aiohttp.ClientSession(middlewares=(self._stamp,))


class _BrokenByOutage:
    """A response body that breaks the connection once device time reaches the outage."""

    def __init__(self, response: aiohttp.ClientResponse, probe: Probe) -> None:
        self._inner = response.content
        self._response = response
        self._probe = probe

    async def read(self, n: int = -1) -> bytes:
        outage = self._probe.outage
        if outage is not None and self._probe.clock.monotonic() >= outage.start:
            self._probe.broken_streams += 1
            self._response.close()
            raise aiohttp.ServerDisconnectedError("the storage account went down (outage)")
        return await self._inner.read(n)

    def __getattr__(self, name: str) -> Any:  # everything else aiohttp asks of its body
        return getattr(self._inner, name)


class TimedTwin(FaultyTwin):
    """The device's in-process twin, keeping every reported ``extFwInfo`` with its device
    time; its channel breaks as the rules given to :meth:`arm` say
    (:mod:`sim.cloud.faulty_twin`; none by default). ``on_owed`` is called whenever the
    channel schedules something for later (a delayed patch, the client's reconnect)."""

    def __init__(
        self,
        probe: Probe,
        on_report: Callable[[Report], None] | None = None,
        *,
        on_owed: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(clock=probe.clock, device_id=probe.device_id)
        self.probe = probe
        self.timeline: list[Report] = []
        self._on_report = on_report
        self._on_owed = on_owed

    async def report(self, patch: dict[str, Any]) -> None:
        self._require_connected("report")
        extfw = reported_status(patch)
        if not extfw:
            await super().report(patch)
            return
        entry = Report(self.probe.clock.monotonic(), self.probe.next_seq(), copy.deepcopy(extfw))
        version = self.reported_version
        try:
            await super().report(patch)
        finally:
            if self.reported_version != version:  # the hub has it, acknowledged or not
                self.timeline.append(entry)
                if self._on_report is not None:
                    self._on_report(entry)

    def _wake_at(self, due: float) -> None:
        super()._wake_at(due)
        if self._on_owed is not None:
            self._on_owed()


@dataclass(frozen=True)
class Arrival:
    """One request as the storage side saw it (from the probe's headers)."""

    device_id: str
    t: float
    seq: int
    outcome: str  # "ok" (answered), "outage" (reset: the account is down)
    status: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device_id,
            "t": round(self.t, 6),
            "seq": self.seq,
            "outcome": self.outcome,
            "status": self.status,
        }
