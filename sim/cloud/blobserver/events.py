"""The event log: one record per request the server answered (or broke)."""

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """What happened to one request, for tests and the ``/_faults/events`` API.

    Query strings never appear here, so no SAS ``sig`` can be recorded.
    """

    request: int
    """1-based request number, in order of arrival (control API calls excluded)."""
    method: str
    blob: str
    """``container/name``, or ``container`` for container operations, or "" for the account."""
    range: str | None
    """The range header as asked (``x-ms-range`` if present, else ``Range``)."""
    status: int | None
    """The status sent, None when no status line was sent (down, stall before headers)."""
    bytes_sent: int
    """Body bytes written to the connection."""
    faults: tuple[str, ...] = ()
    """The faults applied, as ``rule-id:fault-name``, in plan order."""
    outcome: str = "ok"
    """How the connection ended: ``ok``, ``closed``, ``reset``, ``dropped``, ``stalled``,
    ``client-gone``."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["faults"] = list(self.faults)
        return data
