"""The eight invariants of a crash-safe OTA, as functions over a finished scenario.

Written once and used by every explorer and by the hypothesis tests (issue 5).
Each function takes a :class:`sim.explore.result.ScenarioResult` and returns the
violations it finds (empty when the invariant holds); :func:`check_all` runs them all.

1. integrity: whatever the MCU installed is byte-for-byte a published image of that
   version; ``applied`` is only reported for what the MCU really holds;
2. liveness: with power and network good again, the device reaches the expected end
   (``applied`` for the final version; ``invalid`` for a stale instruction) within the
   scenario's bounds on boots and device time, without crashing;
3. resume efficiency: a power cut costs at most one checkpoint interval of
   re-downloaded bytes plus the read in hand (the downloader's contract, weakness 1);
4. file-system health: littlefs mounts without formatting, the files that predate
   the OTA (``config/settings.json``, the last good image) are intact;
5. monotonic versions: installs only ever go up; a stale or equal instruction is never
   applied (reference design "versions only increase", weakness 8);
6. honest reporting: statuses follow the state machine, and the last report matches
   the device's real state;
7. converged reporting: after the run settles, what the hub holds as reported agrees with
   what the device really has, whatever the twin channel lost or repeated on the way
   (issue 10: the operator is never left believing something false, e.g. ``downloading``
   after an ``applied``, or a stale ``Version``);
8. readable record: at the run's first boot and at every boot after a cut the progress
   record is readable (:func:`agent.staging.record_on_flash`, looked at without touching
   the chip: :mod:`sim.explore.records`), and once a record has been on flash none is
   missing later (a lost record would have the agent start over and hide it).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sim.explore.result import ScenarioResult
from sim.explore.scenario import BASE_VERSION

INTEGRITY = "integrity"
LIVENESS = "liveness"
RESUME = "resume-efficiency"
FS_HEALTH = "fs-health"
MONOTONIC = "monotonic-versions"
HONEST = "honest-reporting"
CONVERGED = "converged-reporting"
RECORD = "readable-record"


@dataclass(frozen=True)
class Violation:
    """One broken invariant, with what was seen."""

    invariant: str
    message: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"


def integrity(r: ScenarioResult) -> list[Violation]:
    """Every install is a published image of its version; ``applied`` means it."""
    out = []
    for inst in r.installs:
        want = r.images.get(inst.version)
        if want is None or inst.sha256.upper() != want[0] or inst.size != want[1]:
            out.append(
                Violation(
                    INTEGRITY,
                    f"MCU installed version {inst.version} with sha256 {inst.sha256[:16]}... "
                    f"({inst.size} bytes), not the published image",
                )
            )
    last = r.final_reported
    if last.get("Status") == "applied":
        version = last.get("Version")
        want = r.images.get(version) if isinstance(version, int) else None
        if want is None or r.target_sha256 != want[0]:
            out.append(
                Violation(
                    INTEGRITY,
                    f"reported applied version {version} but the MCU holds sha256 "
                    f"{r.target_sha256[:16]}...",
                )
            )
    return out


def liveness(r: ScenarioResult) -> list[Violation]:
    """The expected end state was reached within the bounds, without a crash."""
    if r.crash is not None:
        return [Violation(LIVENESS, f"the agent crashed: {r.crash}")]
    last = r.final_reported
    flash_fault = r.scenario.stuck_bits or r.rot_landed
    if not r.reached and flash_fault and last.get("Status") == "error":
        return []  # a worn or rotted cell under the image: an honest error is the right end
    if not r.reached:
        return [
            Violation(
                LIVENESS,
                f"expected {r.expected_outcome()} for version {r.scenario.final_version} "
                f"within {r.scenario.max_boots} boots; ended with status "
                f"{last.get('Status')!r} error {last.get('Error')!r} after {r.boots} boots, "
                f"{r.device_time_s:.1f} s device time",
            )
        ]
    return []


def resume_efficiency(r: ScenarioResult) -> list[Violation]:
    """Across each cut, the resume point falls back at most one checkpoint interval
    plus the read that was in hand (same blob, same ETag: a replaced blob restarts). The
    resume point is the offset the agent asked for: a server that ignores Range sends
    the prefix again, which is the server's lie, not the agent's loss."""
    out = []
    interval = r.scenario.checkpoint_bytes
    by_boot: dict[int, list] = {}
    for req in r.requests:
        by_boot.setdefault(req.boot, []).append(req)
    for boot in sorted(by_boot):
        after = by_boot.get(boot + 1)
        if not after:
            continue
        before = by_boot[boot][-1]
        first = after[0]
        if first.url != before.url or first.etag != before.etag:
            continue
        reached = before.start + before.consumed
        lost = reached - first.resumed_at
        allowed = interval + before.max_read
        if lost > allowed:
            out.append(
                Violation(
                    RESUME,
                    f"after the cut ending boot {boot} the download resumed at byte "
                    f"{first.resumed_at}, {lost} bytes behind the {reached} read before it "
                    f"(allowed: one {interval}-byte checkpoint + a {before.max_read}-byte read)",
                )
            )
    return out


def fs_health(r: ScenarioResult) -> list[Violation]:
    """littlefs mounts without formatting; the files from before the OTA are intact."""
    fs = r.fs
    if not fs.mounted:
        return [Violation(FS_HEALTH, f"littlefs does not mount: {fs.error}")]
    out = []
    if fs.formatted:
        out.append(Violation(FS_HEALTH, "the file system was formatted"))
    for path, ok in sorted(fs.intact.items()):
        if not ok:
            out.append(Violation(FS_HEALTH, f"{path} is missing or changed"))
    return out


def monotonic_versions(r: ScenarioResult) -> list[Violation]:
    """Installs strictly increase in version; none at or below what ran before."""
    out = []
    installed = BASE_VERSION
    for inst in r.installs[_base_installs(r) :]:
        if inst.version <= installed:
            what = "re-applied" if inst.version == installed else "rolled back to"
            out.append(
                Violation(
                    MONOTONIC,
                    f"{what} version {inst.version} while version {installed} was installed",
                )
            )
        installed = max(installed, inst.version)
    return out


def _base_installs(r: ScenarioResult) -> int:
    n = 0
    for inst in r.installs:
        if inst.version != BASE_VERSION:
            break
        n += 1
    return min(n, 1)


# Within one boot, which status may follow which (reference design "Cloud contract").
_NEXT: dict[str, frozenset[str]] = {
    "downloading": frozenset({"downloading", "interrupted", "applying", "error", "invalid"}),
    "interrupted": frozenset({"downloading", "interrupted", "error", "invalid"}),
    "applying": frozenset({"applied", "error"}),
    "applied": frozenset({"downloading", "invalid", "applied", "error"}),
    "error": frozenset({"downloading", "invalid", "error", "applied"}),
    "invalid": frozenset({"downloading", "invalid", "error", "applied"}),
}


def honest_reporting(r: ScenarioResult) -> list[Violation]:
    """Statuses follow the state machine within each boot (a boot may start anywhere:
    it resumes from flash), ``applying`` never follows ``applied`` without a new
    download, and the last report matches the MCU. A report repeated word for word is a
    retransmission (its acknowledgement was lost), not a step of the state machine."""
    out = []
    marks = set(r.boot_marks)
    prev: str | None = None
    prev_info: dict[str, Any] | None = None
    for i, info in enumerate(r.reports):
        status = info.get("Status")
        if status is None:
            continue
        if i in marks:
            prev = prev_info = None
        if info == prev_info:
            continue
        prev_info = info
        if status not in _NEXT:
            out.append(Violation(HONEST, f"report #{i}: unknown status {status!r}"))
        elif prev is not None and status not in _NEXT[prev]:
            out.append(Violation(HONEST, f"report #{i}: {prev!r} -> {status!r} is not legal"))
        prev = status
    last = r.final_reported
    if r.reached and last.get("Status") in ("applied", "invalid"):
        version = last.get("Version")
        if version != r.target_version:
            out.append(
                Violation(
                    HONEST,
                    f"last report says version {version} but the MCU runs {r.target_version}",
                )
            )
    return out


def reported_converges(r: ScenarioResult) -> list[Violation]:
    """The hub's last word matches the MCU: its ``Version`` (the last version applied, as
    the operator reads it) is what the MCU runs, and once the MCU runs the final version
    the hub says ``applied`` (``invalid``, for a stale instruction after it) with it."""
    hub = r.final_reported
    status, version = hub.get("Status"), hub.get("Version")
    truth = r.target_version
    out = []
    if version is not None and version != truth:
        out.append(Violation(CONVERGED, f"the hub says Version {version} but the MCU runs {truth}"))
    if truth == r.scenario.final_version:
        allowed = ("applied", "invalid") if r.scenario.stale else ("applied",)
        if status not in allowed or version != truth:
            out.append(
                Violation(
                    CONVERGED,
                    f"the MCU runs the final version {truth} but the hub was left with "
                    f"status {status!r}, Version {version!r}",
                )
            )
    return out


def record_readable(r: ScenarioResult) -> list[Violation]:
    """Every look at the progress record found it readable; none found it missing once a
    record had been on flash (before the run, or at an earlier look)."""
    out = []
    seen = r.record_before
    for check in r.record_checks:
        if not check.readable:
            out.append(
                Violation(
                    RECORD,
                    f"at boot {check.boot} the progress record is unreadable: {check.problem}",
                )
            )
        elif check.present:
            seen = True
        elif seen:
            out.append(
                Violation(
                    RECORD,
                    f"at boot {check.boot} the progress record is gone (one was on flash before)",
                )
            )
    return out


INVARIANTS: dict[str, Callable[[ScenarioResult], list[Violation]]] = {
    INTEGRITY: integrity,
    LIVENESS: liveness,
    RESUME: resume_efficiency,
    FS_HEALTH: fs_health,
    MONOTONIC: monotonic_versions,
    HONEST: honest_reporting,
    CONVERGED: reported_converges,
    RECORD: record_readable,
}


def check_all(result: ScenarioResult, names: Collection[str] | None = None) -> list[Violation]:
    """Every violation of every invariant (of those ``names`` only, when given), in the
    order of :data:`INVARIANTS`."""
    selected = INVARIANTS if names is None else {n: INVARIANTS[n] for n in checked(names)}
    return [v for check in selected.values() for v in check(result)]


def checked(names: Collection[str]) -> tuple[str, ...]:
    """``names`` as invariant names in :data:`INVARIANTS` order; an unknown one is a
    ``ValueError`` naming it and the known ones."""
    if isinstance(names, str):
        raise ValueError(f"invariants must be a collection of names, got the string {names!r}")
    unknown = sorted(set(names) - set(INVARIANTS))
    if unknown:
        raise ValueError(
            f"unknown invariant(s) {', '.join(map(repr, unknown))}; known: {', '.join(INVARIANTS)}"
        )
    return tuple(n for n in INVARIANTS if n in names)
