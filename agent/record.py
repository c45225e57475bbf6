"""The OTA progress record, kept in littlefs beside the image it describes.

The reference design keeps its record outside the file system, so after a cut the
record and the image can disagree (reference-design.md, weakness 7). Here the record
is a small file in the same littlefs, replaced with :meth:`Storage.write_atomic`
(write a copy, commit it, rename it over: one atomic littlefs metadata commit), so a
reboot always finds the old record or the new one, never a blend.

On flash it is JSON: ``{"schema": 1, "crc32": N, "record": {...}}``, the CRC-32 taken
over the record's canonical JSON. The rename already rules out half-written files;
the schema and CRC turn anything else (a foreign file, a bit flip, a newer agent's
format) into a clear :class:`RecordError` instead of a crash or a silent misreading.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

from agent.storage import Storage

__all__ = [
    "SCHEMA",
    "Job",
    "Record",
    "RecordError",
    "State",
    "load_record",
    "save_record",
]

SCHEMA = 1
MAX_RECORD_BYTES = 4096  # a real record is a few hundred bytes; refuse to parse more

_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")


class RecordError(ValueError):
    """The stored record cannot be trusted: the message says why."""


class State(enum.StrEnum):
    """Where the job stands. Each state says what a reboot must do next."""

    IDLE = "idle"  # no job: nothing to resume
    DOWNLOADING = "downloading"  # resume from ``committed`` bytes (If-Match ``etag``)
    VERIFIED = "verified"  # the image is complete and its SHA-256 matched
    APPLYING = "applying"  # install began: repeat it while the target is older
    APPLIED = "applied"  # the job's version is installed
    FAILED = "failed"  # given up on this job (``error``); wait for a new instruction


@dataclass(frozen=True)
class Job:
    """What identifies an OTA job: never its SAS, which is a secret and rotates.

    ``sha256`` is 64 hex digits, stored uppercase as the cloud contract writes it;
    ``url`` is the blob URL without a query; ``etag`` is the blob's ETag first seen
    (``None`` before the first response), used as ``If-Match`` on resume.
    """

    version: int
    sha256: str
    size: int
    url: str
    etag: str | None = None

    def __post_init__(self) -> None:
        _check_int("job.version", self.version, minimum=1)
        _check_int("job.size", self.size, minimum=1)
        if not isinstance(self.sha256, str) or not _HEX64.fullmatch(self.sha256):
            raise ValueError(f"job.sha256 must be 64 hex digits, got {self.sha256!r}")
        object.__setattr__(self, "sha256", self.sha256.upper())
        if not isinstance(self.url, str) or not self.url:
            raise ValueError(f"job.url must be a non-empty string, got {self.url!r}")
        if "?" in self.url or "#" in self.url or "sig=" in self.url.lower():
            raise ValueError(
                "job.url must be the blob URL without a query: the SAS is never stored"
            )
        if self.etag is not None and (
            not isinstance(self.etag, str)
            or not 0 < len(self.etag) <= 256
            or not self.etag.isprintable()
        ):
            raise ValueError("job.etag must be a printable string of 1..256 chars or None")

    def identity(self) -> tuple[int, bytes, int, str]:
        """``(version, sha256 bytes, size, url)``, comparable with
        :meth:`agent.instruction.Instruction.identity`."""
        return (self.version, bytes.fromhex(self.sha256), self.size, self.url)


@dataclass(frozen=True)
class Record:
    """The agent's durable state: the installed version and the job in hand.

    ``installed_version`` is the last version applied (0 for the factory image).
    ``committed`` counts the image bytes known to be committed on flash. The
    constructor refuses combinations no correct agent writes (naming the field), so
    a record read back is one of the states documented on :class:`State`.
    """

    installed_version: int = 0
    state: State = State.IDLE
    job: Job | None = None
    committed: int = 0
    error: str = ""

    def __post_init__(self) -> None:
        _check_int("installed_version", self.installed_version, minimum=0)
        try:
            object.__setattr__(self, "state", State(self.state))
        except ValueError:
            states = [s.value for s in State]
            raise ValueError(f"state must be one of {states}, got {self.state!r}") from None
        _check_int("committed", self.committed, minimum=0)
        if not isinstance(self.error, str):
            raise ValueError(f"error must be a string, got {self.error!r}")
        if (self.state is State.FAILED) != bool(self.error):
            raise ValueError("error must be given exactly when state is 'failed'")
        job, state = self.job, self.state
        if state is State.IDLE:
            if job is not None or self.committed:
                raise ValueError("an idle record has no job and no committed bytes")
            return
        if not isinstance(job, Job):
            raise ValueError(f"job is required in state {state.value!r}")
        if self.committed > job.size:
            raise ValueError(f"committed ({self.committed}) exceeds job.size ({job.size})")
        if state in (State.VERIFIED, State.APPLYING, State.APPLIED) and self.committed != job.size:
            raise ValueError(
                f"committed ({self.committed}) must equal job.size ({job.size}) "
                f"in state {state.value!r}"
            )
        if state is State.APPLIED:
            if job.version != self.installed_version:
                raise ValueError(
                    f"installed_version ({self.installed_version}) must equal job.version "
                    f"({job.version}) once applied"
                )
        elif job.version <= self.installed_version:
            raise ValueError(
                f"job.version ({job.version}) must be above installed_version "
                f"({self.installed_version}): versions only increase"
            )

    # -- transitions: each returns a new, validated record ----------------------

    def begin(self, job: Job) -> Record:
        """Start ``job`` from byte 0, superseding any job in hand."""
        return Record(self.installed_version, State.DOWNLOADING, job, 0)

    def progressed(self, committed: int, *, etag: str | None = None) -> Record:
        """``committed`` bytes are on flash (and the blob's ETag, when first seen)."""
        job = self._job()
        if etag is not None and etag != job.etag:
            job = dataclasses.replace(job, etag=etag)
        return Record(self.installed_version, State.DOWNLOADING, job, committed)

    def verified(self) -> Record:
        job = self._job()
        return Record(self.installed_version, State.VERIFIED, job, job.size)

    def applying(self) -> Record:
        job = self._job()
        return Record(self.installed_version, State.APPLYING, job, job.size)

    def applied(self) -> Record:
        job = self._job()
        return Record(job.version, State.APPLIED, job, job.size)

    def failed(self, error: str, *, committed: int | None = None) -> Record:
        """Give up on the job with ``error`` (the report's ``Error`` text); ``committed``
        says how much of the image flash still holds (0 once the staged file is gone)."""
        kept = self.committed if committed is None else committed
        return Record(self.installed_version, State.FAILED, self._job(), kept, error)

    def _job(self) -> Job:
        if self.job is None:
            raise ValueError(f"no job in hand (state {self.state.value!r})")
        return self.job

    # -- the on-flash form ----------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "installed_version": self.installed_version,
            "state": self.state.value,
            "job": None if self.job is None else dataclasses.asdict(self.job),
            "committed": self.committed,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Any) -> Record:
        """Build a record from :meth:`to_json` output; ``ValueError`` naming the field."""
        if not isinstance(data, dict):
            raise ValueError(f"record must be an object, got {type(data).__name__}")
        _check_keys("record", data, {"installed_version", "state", "job", "committed", "error"})
        job_data = data["job"]
        job = None
        if job_data is not None:
            if not isinstance(job_data, dict):
                raise ValueError(f"job must be an object or null, got {type(job_data).__name__}")
            _check_keys("job", job_data, {f.name for f in dataclasses.fields(Job)})
            job = Job(**job_data)
        return cls(
            installed_version=data["installed_version"],
            state=data["state"],
            job=job,
            committed=data["committed"],
            error=data["error"],
        )


def encode(record: Record) -> bytes:
    """The file's bytes: schema, CRC-32 of the canonical record JSON, the record."""
    body = record.to_json()
    crc = zlib.crc32(_canonical(body))
    return _canonical({"schema": SCHEMA, "crc32": crc, "record": body}) + b"\n"


def decode(raw: bytes, *, source: str = "record") -> Record:
    """Parse :func:`encode` output; anything else raises :class:`RecordError`."""
    where = f"progress record {source!r}"
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordError(f"{where} is {len(raw)} bytes, more than {MAX_RECORD_BYTES}")
    try:
        outer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{where} is not JSON: {exc}") from exc
    if not isinstance(outer, dict) or not {"schema", "crc32", "record"} <= outer.keys():
        raise RecordError(f"{where} lacks the schema/crc32/record envelope")
    if outer["schema"] != SCHEMA:
        raise RecordError(
            f"{where} has schema {outer['schema']!r}; this agent reads schema {SCHEMA}"
        )
    crc = zlib.crc32(_canonical(outer["record"]))
    if outer["crc32"] != crc:
        raise RecordError(f"{where} fails its CRC-32 (stored {outer['crc32']!r}, computed {crc})")
    try:
        return Record.from_json(outer["record"])
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{where} holds an impossible record: {exc}") from exc


def load_record(storage: Storage, path: str) -> Record | None:
    """The stored record, or ``None`` when there is none (first boot).

    Raises :class:`RecordError` for a file that is not a valid record (the caller
    decides: typically report it and start over from the target's version), and
    lets :class:`agent.errors.PowerLoss` through.
    """
    if not storage.exists(path):
        return None
    size = storage.size(path)
    if size > MAX_RECORD_BYTES:
        raise RecordError(f"progress record {path!r} is {size} bytes, more than {MAX_RECORD_BYTES}")
    return decode(storage.read_file(path), source=path)


def save_record(storage: Storage, record: Record, path: str) -> None:
    """Replace the stored record atomically: a cut leaves the old one or this one."""
    storage.write_atomic(path, encode(record))


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _check_keys(name: str, data: dict[str, Any], expected: set[str]) -> None:
    missing, extra = expected - data.keys(), data.keys() - expected
    if missing or extra:
        raise ValueError(
            f"{name} keys: missing {sorted(missing) or 'none'}, "
            f"unexpected {sorted(extra) or 'none'}"
        )
