"""The shaping of one response, as the faults matched for its request leave it.

The blob server builds an :class:`Exchange` for every request, lets each matched
fault edit it, and then serves the request the way it says. Faults therefore
compose (latency plus a bandwidth cap plus a cut after N bytes) without knowing
about each other or about aiohttp.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Ending = Literal["normal", "close", "reset"]


@dataclass
class Exchange:
    """What the server does for one request; every field's default is "no fault"."""

    drop: bool = False
    """Close the connection at once, before any byte of the response (``down``)."""
    delay_s: float = 0.0
    """Wait this long before the status line (``latency``)."""
    stall_s: float | None = None
    """Hold the connection open sending nothing, then close it; 0 = until the client leaves."""
    stall_after_bytes: int | None = None
    """Body bytes sent before the stall starts; None stalls before the status line."""
    status: int | None = None
    """Answer this error status instead of serving the request (``status``)."""
    error_code: str | None = None
    retry_after_s: int | None = None
    rewrite: Callable[[bytes], bytes] | None = None
    """Replace the blob's content (and so its ETag) before serving (``etag_change``)."""
    ignore_range: bool = False
    """Answer 200 with the whole blob whatever range was asked (``ignore_range``)."""
    content_range_shift: int = 0
    """Added to the start and end announced in Content-Range (``bad_content_range``)."""
    content_range_total: int | None = None
    """Total announced in Content-Range instead of the blob's length."""
    rate_bps: float | None = None
    """Body bandwidth cap in bytes per second (``bandwidth``)."""
    slice_size: int | None = None
    """Average size of each body write (``slicer``)."""
    slice_variation: int = 0
    slice_delay_s: float = 0.0
    stop_after: int | None = None
    """Body bytes sent before the connection ends as ``ending`` says."""
    ending: Ending = "normal"
    """How the connection ends after the body: kept alive, closed (FIN), or reset (RST)."""
    reset_delay_s: float = 0.0
    missing_bytes: int = 0
    """Bytes announced in Content-Length but never sent; the connection then closes."""
    corrupt: dict[int, int] = field(default_factory=dict)
    """Blob offset -> XOR mask applied to the byte served from that offset (``corrupt``)."""
    close_delay_s: float = 0.0
    """Wait this long after the last body byte before closing the connection (``slow_close``)."""

    def stall(self, seconds: float, after_bytes: int | None) -> None:
        """Stall after ``after_bytes`` (None: before the status line); the earliest stall
        of several faults wins, as :meth:`cut` does for cuts."""
        if self.stall_s is not None and (
            self.stall_after_bytes is None
            or (after_bytes is not None and after_bytes >= self.stall_after_bytes)
        ):
            return
        self.stall_s, self.stall_after_bytes = seconds, after_bytes

    def cut(self, after_bytes: int, ending: Ending) -> None:
        """End the body after ``after_bytes``; the earliest cut of several faults wins."""
        if self.stop_after is None or after_bytes < self.stop_after:
            self.stop_after = after_bytes
            self.ending = ending
