"""Twin-channel faults in a campaign: the ``"twin"`` section of ``--faults PLAN``, played on
each device's in-process twin (:class:`sim.cloud.faulty_twin.FaultyTwin`) in device time.

A rule is the vocabulary of :mod:`sim.cloud.twin_faults` (``{"fault": KIND, PARAM: ...}``,
:meth:`TwinFault.from_json`) plus one campaign key, ``share``: the fraction of the fleet
the rule hits, (0, 1], 1 by default. Which devices a share hits is drawn per device from
the campaign's seed, the rule's place in the section and the device's index, so the same
seed hits the same devices wherever they run. ``device`` narrows a rule to one device.

Every device that a rule hits has its own copy of it, armed at device time 0: ``at_s``
and ``for_s`` are device time (``{"fault": "refuse_connect", "at_s": 61, "for_s": 90}``
is the hub down from 61 s for 90 s on every device), and ``count`` and message counts
are per device.

A device waiting for the cloud (:attr:`agent.engine.Agent.idle`) while its channel still
owes it something (a delayed desired patch, its client's reconnect after a drop) has its
clock moved to that moment by :class:`IdleTime`, as the time would have passed on a real
gateway; nothing else of that device runs while it is idle, so where it lands does not
depend on when the campaign's loop gets round to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sim.cloud.twin_faults import TwinFault

POLL_S = 0.01  # how often owed devices are looked at (detection only, never a verdict)


@dataclass(frozen=True)
class FleetTwinFault:
    """One rule of a campaign's ``"twin"`` section (see the module doc)."""

    fault: TwinFault
    share: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.fault, TwinFault):
            raise ValueError(f"twin fault must be a TwinFault, got {self.fault!r}")
        share = self.share
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
            raise ValueError(f"share must be a fraction of the fleet in (0, 1], got {share!r}")

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FleetTwinFault:
        if not isinstance(doc, Mapping):
            raise ValueError("a twin fault must be a JSON object")
        rest = {k: v for k, v in doc.items() if k != "share"}
        return cls(TwinFault.from_json(rest), doc.get("share", 1.0))

    def to_json(self) -> dict[str, Any]:
        return {**self.fault.to_json(), "share": self.share}

    def hits(self, *, seed: int, rule: int, device_id: str, device_index: int) -> bool:
        """Whether this rule (``rule``-th of its section) applies to the device."""
        if self.fault.device is not None and self.fault.device != device_id:
            return False
        if self.share >= 1:
            return True
        draw = random.Random(f"twin:{seed}:{rule}:{device_index}").random()
        return draw < self.share


def parse_twin_section(rules: Sequence[Any]) -> tuple[FleetTwinFault, ...]:
    """The ``"twin"`` list of a plan file; an error names the rule by its place."""
    if isinstance(rules, str | bytes) or not isinstance(rules, Sequence):
        raise ValueError("'twin' must be a list of rule objects")
    parsed = []
    for i, doc in enumerate(rules):
        try:
            parsed.append(FleetTwinFault.from_json(doc))
        except ValueError as exc:
            raise ValueError(f"twin[{i}]: {exc}") from None
    return tuple(parsed)


def faults_for(
    rules: Sequence[FleetTwinFault], *, seed: int, device_id: str, device_index: int
) -> list[TwinFault]:
    """The rules one device arms, in section order."""
    return [
        r.fault
        for i, r in enumerate(rules)
        if r.hits(seed=seed, rule=i, device_id=device_id, device_index=device_index)
    ]


class OwedDevice(Protocol):
    """What :class:`IdleTime` needs of a device: its channel's next due moment, whether it
    is idle, and a way to move its clock there (with the cuts re-armed after the jump)."""

    def channel_due(self) -> float | None: ...

    def idle(self) -> bool: ...

    def pass_idle_time(self, until: float) -> None: ...


class IdleTime:
    """One shard's watcher of the devices whose channel owes them something."""

    def __init__(self) -> None:
        self._owed: dict[int, OwedDevice] = {}
        self._task: asyncio.Task[None] | None = None

    def owe(self, device: OwedDevice) -> None:
        """``device``'s channel scheduled something (its twin's ``_wake_at``)."""
        self._owed[id(device)] = device
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while self._owed:
            await asyncio.sleep(POLL_S)
            for key, device in list(self._owed.items()):
                due = device.channel_due()
                if due is None:
                    del self._owed[key]
                elif device.idle():
                    device.pass_idle_time(due)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
