"""Twin-channel faults: what a hostile network or a struggling IoT Hub does to the link
between a device and its twin. One vocabulary for both twins: the local IoT Hub applies
it to MQTT connections (:mod:`sim.cloud.iothub.device_endpoint`), the in-process twin of
the explorers on the device's virtual clock (:mod:`sim.cloud.faulty_twin`).

The vocabulary (one :class:`TwinFault` each, optionally for one device):

- ``drop_connection``: close the device's connection after its ``after_messages``-th
  message (a twin GET or reported patch; the hub counts PUBLISHes) on one connection,
  or ``at_s`` seconds after the rule is armed;
- ``refuse_connect``: answer CONNACK ``code`` (3, server unavailable, by default: IoT Hub
  down) to ``count`` connects, or to every connect for ``for_s`` seconds;
- ``lose_reported_ack``: apply a reported patch but never send its ``204`` response;
- ``delay_desired``: send a desired patch ``delay_s`` late;
- ``duplicate_desired``: send a desired patch twice;
- ``fail_twin_get``: answer a twin GET with ``status`` (500 by default).

Every kind but ``drop_connection`` may take ``at_s``: the rule rests until ``at_s``
seconds after it was armed (a ``refuse_connect`` window then runs from ``at_s`` to
``at_s + for_s``: the hub goes down later). Every fault except the timed ones fires
``count`` times (1 by default) and then rests. Each firing is logged in
:attr:`TwinFaults.events`. The object is thread-safe: a test or a scenario on another
thread adds rules while the hub's event loop consults them. ``clock`` (seconds,
monotonic) is injectable so a caller on a virtual clock schedules timed faults on it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

KINDS = (
    "drop_connection",
    "refuse_connect",
    "lose_reported_ack",
    "delay_desired",
    "duplicate_desired",
    "fail_twin_get",
)
_PARAMS = {"after_messages", "at_s", "for_s", "count", "delay_s", "status", "code"}


@dataclass(frozen=True)
class TwinFault:
    """One rule; validated on construction (a bad field raises ``ValueError`` naming it)."""

    kind: str
    device: str | None = None  # None: every device
    after_messages: int | None = None
    at_s: float | None = None
    for_s: float | None = None
    count: int = 1
    delay_s: float = 0.0
    status: int = 500
    code: int = 3
    id: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.device is not None and (not isinstance(self.device, str) or not self.device):
            raise ValueError(f"device must be a device id or omitted, got {self.device!r}")
        for name in ("after_messages", "count"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("at_s", "for_s", "delay_s"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if self.kind == "drop_connection" and (self.after_messages is None) == (self.at_s is None):
            raise ValueError("drop_connection takes exactly one of after_messages or at_s")
        if self.kind != "drop_connection" and self.after_messages is not None:
            raise ValueError(f"after_messages is for drop_connection, not {self.kind}")
        if self.kind == "delay_desired" and not self.delay_s:
            raise ValueError("delay_desired needs delay_s > 0")
        if self.kind == "fail_twin_get" and not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error status 400..599, got {self.status}")
        if self.kind == "refuse_connect" and self.code not in (1, 2, 3, 4, 5):
            raise ValueError(f"code must be a CONNACK refusal code 1..5, got {self.code}")

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TwinFault:
        """``{"fault": KIND, "device": ID, PARAM: VALUE...}`` (the control API's body)."""
        if not isinstance(doc, Mapping):
            raise ValueError("a fault must be a JSON object")
        unknown = set(doc) - _PARAMS - {"fault", "device", "id"}
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if "fault" not in doc:
            raise ValueError("a fault needs 'fault': one of " + ", ".join(KINDS))
        params = {k: v for k, v in doc.items() if k in _PARAMS}
        return cls(kind=doc["fault"], device=doc.get("device"), id=doc.get("id") or "", **params)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "fault": self.kind, "device": self.device}
        for name in sorted(_PARAMS):
            out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class FaultEvent:
    """One firing: which rule, on which device, when (on the faults' clock)."""

    rule: str
    kind: str
    device: str
    at: float


@dataclass
class _Armed:
    fault: TwinFault
    armed_at: float
    left: int
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class TwinFaults:
    """The hub's twin-channel fault rules and their event log."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._rules: list[_Armed] = []
        self._ids = itertools.count(1)
        self.events: list[FaultEvent] = []

    # --- the Python API --------------------------------------------------------------

    def add(self, fault: TwinFault) -> TwinFault:
        """Arm ``fault`` now; returns it with its id."""
        if not isinstance(fault, TwinFault):
            raise ValueError(f"expected a TwinFault, got {type(fault).__name__}")
        with self._lock:
            if not fault.id:
                fault = replace(fault, id=f"{fault.kind}-{next(self._ids)}")
            elif any(r.fault.id == fault.id for r in self._rules):
                raise ValueError(f"fault id {fault.id!r} is already armed")
            self._rules.append(_Armed(fault, self.clock(), fault.count))
        return fault

    def drop_connection(
        self,
        device: str | None = None,
        *,
        after_messages: int | None = None,
        at_s: float | None = None,
        count: int = 1,
    ) -> TwinFault:
        return self.add(
            TwinFault(
                "drop_connection", device, after_messages=after_messages, at_s=at_s, count=count
            )
        )

    def refuse_connects(
        self,
        device: str | None = None,
        *,
        count: int = 1,
        for_s: float | None = None,
        at_s: float | None = None,
        code: int = 3,
    ) -> TwinFault:
        return self.add(
            TwinFault("refuse_connect", device, count=count, for_s=for_s, at_s=at_s, code=code)
        )

    def lose_reported_ack(self, device: str | None = None, *, count: int = 1) -> TwinFault:
        return self.add(TwinFault("lose_reported_ack", device, count=count))

    def delay_desired(
        self, device: str | None = None, *, delay_s: float, count: int = 1
    ) -> TwinFault:
        return self.add(TwinFault("delay_desired", device, delay_s=delay_s, count=count))

    def duplicate_desired(self, device: str | None = None, *, count: int = 1) -> TwinFault:
        return self.add(TwinFault("duplicate_desired", device, count=count))

    def fail_twin_get(
        self, device: str | None = None, *, status: int = 500, count: int = 1
    ) -> TwinFault:
        return self.add(TwinFault("fail_twin_get", device, status=status, count=count))

    def remove(self, rule_id: str) -> None:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.fault.id != rule_id]
            if len(self._rules) == before:
                raise KeyError(f"no fault {rule_id!r}")

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[TwinFault]:
        with self._lock:
            return [r.fault for r in self._rules if not r.done]

    def fired(self, kind: str | None = None, device: str | None = None) -> list[FaultEvent]:
        """Events so far, optionally of one kind and/or device."""
        with self._lock:
            return [
                e
                for e in self.events
                if (kind is None or e.kind == kind) and (device is None or e.device == device)
            ]

    # --- hooks the endpoints consult (on the hub's loop) ---------------------------

    def take(self, kind: str, device: str) -> TwinFault | None:
        """Consume one firing of the first armed ``kind`` rule for ``device``."""
        with self._lock:
            for rule in self._rules:
                if rule.done or rule.fault.kind != kind or not _for(rule.fault, device):
                    continue
                if rule.fault.at_s is not None:
                    if kind == "drop_connection":
                        continue
                    if self.clock() - rule.armed_at < rule.fault.at_s:
                        continue  # not yet
                if kind == "refuse_connect" and rule.fault.for_s is not None:
                    since = self.clock() - rule.armed_at - (rule.fault.at_s or 0.0)
                    if since >= rule.fault.for_s:
                        rule.done = True
                        continue
                    self._log(rule, device)
                    return rule.fault
                return self._fire(rule, device)
        return None

    def drop_after(self, device: str, inbound_on_connection: int) -> TwinFault | None:
        """A message-count drop due for ``device`` after this many PUBLISHes."""
        with self._lock:
            for rule in self._rules:
                f = rule.fault
                if (
                    not rule.done
                    and f.kind == "drop_connection"
                    and f.after_messages is not None
                    and _for(f, device)
                    and inbound_on_connection >= f.after_messages
                ):
                    return self._fire(rule, device)
        return None

    def due_drops(self) -> list[TwinFault]:
        """Timed drops whose moment has come (each is then spent)."""
        now = self.clock()
        with self._lock:
            due = []
            for rule in self._rules:
                f = rule.fault
                if (
                    not rule.done
                    and f.kind == "drop_connection"
                    and f.at_s is not None
                    and now - rule.armed_at >= f.at_s
                ):
                    rule.done = True
                    due.append(f)
            return due

    def log_drop(self, fault: TwinFault, device: str) -> None:
        with self._lock:
            self.events.append(FaultEvent(fault.id, fault.kind, device, self.clock()))

    def _fire(self, rule: _Armed, device: str) -> TwinFault:
        rule.left -= 1
        if rule.left <= 0:
            rule.done = True
        self._log(rule, device)
        return rule.fault

    def _log(self, rule: _Armed, device: str) -> None:
        self.events.append(FaultEvent(rule.fault.id, rule.fault.kind, device, self.clock()))


def _for(fault: TwinFault, device: str) -> bool:
    return fault.device is None or fault.device == device
