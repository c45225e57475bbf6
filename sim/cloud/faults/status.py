"""``status``: answer an error status instead of serving the request.

Codes and messages follow Azure Storage's common and Blob error codes
(learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes,
blob-service-error-codes); 503 ``ServerBusy`` is how the service throttles, and
``Retry-After`` tells a well-behaved client when to come back.
"""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.fault import check_int

DEFAULT_CODES: dict[int, str] = {
    400: "InvalidInput",
    403: "AuthenticationFailed",
    404: "BlobNotFound",
    409: "LeaseIdMissing",
    412: "ConditionNotMet",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServerBusy",
}


@dataclass(frozen=True)
class Status:
    """Answer ``status`` with Azure's XML error body, ``code`` (default per status)."""

    name: ClassVar[str] = "status"
    status: int
    retry_after_s: int | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise ValueError(f"{self.name}.status must be an integer, got {self.status!r}")
        if not 400 <= self.status <= 599:
            raise ValueError(f"{self.name}.status must be a 4xx or 5xx code, got {self.status}")
        if self.retry_after_s is not None:
            check_int(self.name, "retry_after_s", self.retry_after_s)
        if self.code is not None and (not isinstance(self.code, str) or not self.code.isalnum()):
            raise ValueError(
                f"{self.name}.code must be an alphanumeric error code, got {self.code!r}"
            )

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        exchange.status = self.status
        exchange.error_code = self.code or DEFAULT_CODES.get(self.status, "InternalError")
        exchange.retry_after_s = self.retry_after_s
