"""``etag_change``: the blob is replaced (new content, new ETag) when the rule fires.

What happens when a new image is uploaded under the same name mid-download, as
the reference design does. Azure changes the ETag on every write (Put Blob), so
a resume with ``If-Match`` on the old ETag must answer 412. Select the request
it happens at with the rule's ``requests`` window (``[N, N]`` replaces once).
"""

import base64
import binascii
import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange


@dataclass(frozen=True)
class EtagChange:
    """Replace the blob with ``content_b64`` (base64), or by default with its first byte's
    lowest bit flipped: the same length, a different SHA-256."""

    name: ClassVar[str] = "etag_change"
    content_b64: str | None = None

    def __post_init__(self) -> None:
        if self.content_b64 is not None:
            try:
                base64.b64decode(self.content_b64, validate=True)
            except (binascii.Error, ValueError, TypeError) as exc:
                raise ValueError(f"{self.name}.content_b64 is not valid base64: {exc}") from None

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        exchange.rewrite = self._new_content

    def _new_content(self, old: bytes) -> bytes:
        if self.content_b64 is not None:
            return base64.b64decode(self.content_b64)
        if not old:
            return b"\x00"
        return bytes([old[0] ^ 0x01]) + old[1:]
