"""How to kill each mutant: the cheapest deterministic exploration that breaks it.

A :class:`Kill` is either a list of scenarios run from zero (``scenarios``) or a
systematic explorer schedule over one scenario (``schedule``, ``stride``,
``first``..``last`` op window). :func:`execute` runs it against an agent factory and
returns the violations of the first failing run (none for a correct agent).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from agent.engine import Agent
from sim.blobserver import BlobServer
from sim.explore import Explorer
from sim.invariants import Violation, check_all
from sim.scenario import Cut, Scenario, run_scenario
from sim.w25q128 import W25Q128

KIB = 1024


@dataclass(frozen=True)
class Kill:
    """A budget of runs that should make a mutant break an invariant."""

    scenarios: tuple[Scenario, ...] = ()
    explore: Scenario | None = None
    schedule: str = "log"
    stride: int = 1
    first: int = 1
    last: int | None = None
    stuck_in_image: bool = False  # stick one bit of the flash under the staged image

    def budget(self) -> str:
        if self.explore is not None:
            window = f"ops {self.first}..{self.last or 'end'}"
            return f"{self.schedule} schedule (stride {self.stride}, {window}) over one scenario"
        return f"{len(self.scenarios)} scenario run(s) from zero"


def _plan(*rules: dict) -> dict:
    return {"rules": list(rules)}


def _rule(fault: str, request: int, **params) -> dict:
    return {
        "fault": fault,
        "params": params,
        "blob": "ota/fw-v2.bin",
        "requests": [request, request],
    }


SMALL = Scenario(image_size=64 * KIB, checkpoint_bytes=16 * KIB)

KILLS: dict[str, Kill] = {
    # a cut late in the download loses far more than one checkpoint
    "no_sync": Kill(explore=SMALL, schedule="log"),
    # the blob held other bytes of the same size until request 2 (a late upload)
    "no_etag": Kill(
        scenarios=(
            dataclasses.replace(
                SMALL,
                fault_plan=_plan(_rule("timeout", 1, timeout_s=0, after_bytes=20 * KIB)),
                late_upload_at_request=2,
            ),
        )
    ),
    # a newer version mid-download; cuts right after it is published
    "record_outside": Kill(
        scenarios=tuple(
            dataclasses.replace(
                SMALL,
                image_size=256 * KIB,
                newer_at_bytes=40 * KIB,
                cuts=(Cut(after_ops=k, fraction=0.5, anchor="newer"),),
            )
            for k in range(1, 13)
        )
    ),
    "range_200_appends": Kill(
        scenarios=(
            dataclasses.replace(
                SMALL,
                fault_plan=_plan(
                    _rule("timeout", 1, timeout_s=0, after_bytes=20 * KIB), _rule("ignore_range", 2)
                ),
            ),
        )
    ),
    "no_416_check": Kill(
        scenarios=(
            dataclasses.replace(
                SMALL,
                fault_plan=_plan(
                    _rule("timeout", 1, timeout_s=0, after_bytes=20 * KIB),
                    _rule("status", 2, status=416),
                ),
            ),
        )
    ),
    "reapply": Kill(scenarios=(dataclasses.replace(SMALL, image_size=4 * KIB, redeliver=True),)),
    "rollback": Kill(scenarios=(dataclasses.replace(SMALL, image_size=4 * KIB, stale=True),)),
    # cut inside the sync that follows the early record: every op of the 2nd..3rd checkpoint
    "record_before_sync": Kill(explore=SMALL, schedule="linear", first=120, last=270),
    # not killed yet: littlefs reads every program back, so a stuck bit is caught on write;
    # killing it needs a bit that rots between the last write and the verify
    "stream_sha": Kill(scenarios=(SMALL,)),
    "page_off_by_one": Kill(scenarios=(dataclasses.replace(SMALL, image_size=4 * KIB),)),
}


def kill_for(name: str) -> Kill:
    return KILLS[name]


async def image_bit(scenario: Scenario, server: BlobServer, tries: int = 6) -> int:
    """A bit address under the staged image, set to 1 in the image, that the correct
    agent's read-back catches. littlefs may move the file when a stuck bit lands in a
    block it checks, so look again from where the image went until the bit hits it."""
    image = scenario.image()
    mid = (len(image) // 2) & ~255
    needle = image[mid : mid + 256]
    stuck: tuple[int, ...] = ()
    for _ in range(tries):
        chip = W25Q128(seed=scenario.chip_seed, timing=scenario.timing)
        result = await run_scenario(
            dataclasses.replace(scenario, stuck_bits=stuck), server=server, chip=chip
        )
        if stuck and result.final_reported.get("Error") == "SHA256 verify fail":
            return stuck[0]
        where = bytes(chip.array).find(needle)
        if where < 0:
            break
        off = next(k for k, byte in enumerate(needle) if byte)
        stuck = ((where + off) * 8 + (8 - needle[off].bit_length()),)
    raise RuntimeError("no stuck bit found that lands under the staged image")


async def execute(
    kill: Kill, factory: Callable[[], Callable[..., Agent]] | None
) -> list[Violation]:
    """Run ``kill`` with agents from ``factory`` (None: the correct agent); the violations
    of the first run that breaks an invariant, or [] when every run passes."""
    if kill.explore is not None:
        async with BlobServer() as server:
            explorer = Explorer(kill.explore, server, agent_factory=factory() if factory else None)
            clean = await explorer.prepare()
            violations = check_all(clean.result)
            if violations:
                return violations
            last = min(kill.last or len(clean.ops), len(clean.ops))
            for i in range(kill.first, last + 1, kill.stride):
                if kill.schedule == "log" and i & (i - 1):
                    continue
                _, result = await explorer.cut_run(i)
                violations = check_all(result)
                if violations:
                    return violations
        return []
    for scenario in kill.scenarios:
        if kill.stuck_in_image:
            async with BlobServer() as server:
                bit = await image_bit(scenario, server)
            scenario = dataclasses.replace(scenario, stuck_bits=(bit,))
        result = await run_scenario(scenario, agent_factory=factory() if factory else None)
        violations = check_all(result)
        if violations:
            return violations
    return []
