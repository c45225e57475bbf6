"""The event log: one record per request the server answered (or broke), and the record
kept while a request is served that becomes it."""

from dataclasses import asdict, dataclass, field
from typing import Any

from sim.cloud.blobserver.shaping import Progress


@dataclass
class ServedRequest:
    """A request in service: its number, what it asked, what it got so far."""

    number: int = 0
    range: str | None = None
    status: int | None = None
    faults: list[str] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)


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
