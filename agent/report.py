"""The reported-property vocabulary: what the agent tells the cloud about an OTA.

The original reports ``{"extFwInfo": {"Status": S, "Error": E}}`` when its state changes,
and ``{"extFwInfo": {"Version": N}}`` after ``applied`` (reference design, "Cloud
contract"); IoT Hub configurations count devices by ``reported.extFwInfo.Status``.
These names and values are kept exactly. Ours are added beside them: ``TargetVersion``
(the instruction the status is about), ``Progress`` (percent), ``Downloaded`` (bytes
committed to flash) and ``Detail`` (a redacted human-readable reason).
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agent.redact import redact

KEY = "extFwInfo"


class Status(StrEnum):
    """``extFwInfo.Status`` values, as the original reports them."""

    DOWNLOADING = "downloading"
    INTERRUPTED = "interrupted"  # a network failure; resumes on the next delivery or retry
    APPLYING = "applying"
    APPLIED = "applied"
    ERROR = "error"  # the job failed (bad image, MCU refused it); waits for a new instruction
    INVALID = "invalid"  # the instruction itself is unusable (malformed, not newer, too big)


class ErrorText(StrEnum):
    """``extFwInfo.Error`` values: the original's six first, then ours."""

    NONE = "None"
    SHA256_VERIFY_FAIL = "SHA256 verify fail"
    HTTP_RESPONSE = "Http Response > 400"
    NETWORK_TIMEOUT = "Network Timeout"
    MCU_DOWNLOAD_FAIL = "MCU Download fail"
    FILE_OPERATION_FAIL = "File operation fail"
    # ours
    INVALID_INSTRUCTION = "Invalid instruction"  # InvalidInstruction; Detail names the field
    NOT_NEWER = "Version not newer"  # rollback or replay refused (versions only increase)
    NO_SPACE = "Insufficient space"  # the image (and the kept backup) cannot both fit
    SIZE_MISMATCH = "Size mismatch"  # the server's length disagrees with extFwInfo.size
    FLASH_UNUSABLE = "Flash unusable"  # at boot: no/foreign chip, stuck BUSY, unmountable


# A status that reports a failure must say why; one that reports progress must not.
_NEEDS_ERROR = frozenset({Status.INTERRUPTED, Status.ERROR, Status.INVALID})


@dataclass(frozen=True)
class Report:
    """One reported state of the OTA job.

    ``installed_version`` is the version the MCU runs, reported as ``Version`` with
    ``applied`` only, as the original does: IoT Hub keeps reported properties until
    they are overwritten, so ``Version`` always reads as "the last version applied".
    ``target_version`` is the instruction's version that ``status`` is about.
    """

    status: Status
    error: ErrorText = ErrorText.NONE
    target_version: int | None = None
    progress: int | None = None
    downloaded: int | None = None
    installed_version: int | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.status, Status):
            raise ValueError(f"status must be a Status, got {self.status!r}")
        if not isinstance(self.error, ErrorText):
            raise ValueError(f"error must be an ErrorText, got {self.error!r}")
        if self.status in _NEEDS_ERROR and self.error is ErrorText.NONE:
            raise ValueError(f"error must say why the status is {self.status.value!r}")
        if self.status not in _NEEDS_ERROR and self.error is not ErrorText.NONE:
            raise ValueError(
                f"error must be None when the status is {self.status.value!r}, "
                f"got {self.error.value!r}"
            )
        _check_count("target_version", self.target_version, minimum=1)
        _check_count("downloaded", self.downloaded, minimum=0)
        _check_count("installed_version", self.installed_version, minimum=0)
        _check_count("progress", self.progress, minimum=0)
        if self.progress is not None and self.progress > 100:
            raise ValueError(f"progress must be a percentage 0..100, got {self.progress}")
        if self.status is Status.APPLIED and self.installed_version is None:
            raise ValueError("installed_version is required when the status is 'applied'")
        if self.status is not Status.APPLIED and self.installed_version is not None:
            raise ValueError("installed_version is reported with 'applied' only")
        if self.detail is not None and not isinstance(self.detail, str):
            raise ValueError(f"detail must be a string or None, got {type(self.detail).__name__}")


def _check_count(field: str, value: object, *, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field} must be an int or None, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{field} must be at least {minimum}, got {value}")


def percent(done: int, total: int) -> int:
    """Whole percent of ``done`` out of ``total``, rounded down (100 only when complete)."""
    if total <= 0:
        raise ValueError(f"total must be positive, got {total}")
    return max(0, min(100, done * 100 // total))


def to_reported(report: Report) -> dict[str, Any]:
    """The reported-properties patch for ``report``.

    ``Status`` and ``Error`` are always sent (the original's pair). Our keys are always
    present, ``null`` when not applicable, because a reported patch merges into the twin
    (JSON merge patch, RFC 7386): ``null`` deletes a stale ``Progress`` from a previous
    job. ``Version`` is sent only with ``applied`` and never deleted.
    """
    body: dict[str, Any] = {
        "Status": report.status.value,
        "Error": report.error.value,
        "TargetVersion": report.target_version,
        "Progress": report.progress,
        "Downloaded": report.downloaded,
        "Detail": None if report.detail is None else redact(report.detail),
    }
    if report.status is Status.APPLIED:
        body["Version"] = report.installed_version
    return {KEY: body}
