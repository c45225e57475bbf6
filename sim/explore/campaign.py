"""The explorer's default campaign: every layer of the OTA under power cuts, network
faults, HTTP lies, twin events and timing modes, as one deterministic list of runs.

``python -m sim fuzz`` with no options plays it. The list is built from families, each
from the vocabulary of one layer:

* ``sweep``: a cut after every state-changing flash operation of a clean OTA (littlefs's
  runner and MCUboot's simulator: ``linear``), each run from the clean run's snapshot;
* ``torn``: cuts inside operations at a fraction (datasheet 8.2.13, 8.2.15), and pairs:
  a second cut in the next boot (littlefs's runner ``exhaustive`` to depth 2);
* ``network``: each network fault and HTTP lie of the blob server (``sim/cloud/faults``)
  on the request that resumes a stalled download, and a blob replaced mid-download;
* ``twin``: a re-delivery after ``applied``, a stale version, a newer version
  superseding the download (with a cut in each operation after it), a malformed
  instruction mid-job;
* ``flash``: bits rotting before the verify, cells stuck at 0, image sizes on page and
  block boundaries;
* ``aimed``: cuts aimed at the Nth command of each operation kind, in every chip timing
  mode (typical, max, random);
* ``channel``: each twin-channel fault (a dropped or refused MQTT link, a lost
  acknowledgement, a delayed or duplicated desired patch, a failed twin GET:
  :mod:`sim.cloud.twin_faults`) with a power cut, and with a stalled download;
* ``random``: seeded random mixes of all of the above.

Each item has an estimated cost; ``budget_s`` (seconds of one core) keeps a
representative mix: the families are interleaved and the list is cut where the budget
runs out. The list depends only on its inputs, so the findings are the same on one
worker, many or a cluster (:mod:`sim.distribute`). More families join through
:data:`EXTRA_FAMILIES`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sim.cloud.twin_faults import KINDS
from sim.explore.channel import random_channel_faults, random_twin_fault
from sim.explore.scenario import TIMINGS, ChannelFault, Cut, Scenario
from sim.ports.aimed_cut import OPCODES

KIB = 1024
BASE = Scenario(image_size=64 * KIB, checkpoint_bytes=16 * KIB)
BLOB = "ota/fw-v2.bin"
DEFAULT_BUDGET_S = 60.0

# estimated seconds of one core per item (a cut run that re-joins, a run from zero, a
# run with a 30 s stall window, which the virtual clock lets pass in its own time)
COST = {"cut": 0.006, "pair": 0.06, "scenario": 0.08, "stalled": 0.12}


@dataclass(frozen=True)
class Item:
    """One run of the campaign: a cut run of the base scenario, or a scenario from zero."""

    family: str
    kind: str  # "cut" | "pair" | "scenario" | "stalled"
    index: int = 0
    fraction: float = 1.0
    second: int | None = None
    scenario: dict[str, Any] | None = None

    @property
    def cost(self) -> float:
        return COST[self.kind]


def _rule(fault: str, request: int, **params: Any) -> dict[str, Any]:
    return {"fault": fault, "params": params, "blob": BLOB, "requests": [request, request]}


def _stall(after: int = 20 * KIB) -> dict[str, Any]:
    """The first request stalls after ``after`` bytes: the download resumes on request 2."""
    return _rule("timeout", 1, timeout_s=0, after_bytes=after)


def _scenario(family: str, kind: str = "scenario", **changes: Any) -> Item:
    scenario = dataclasses.replace(BASE, **changes)
    return Item(family, kind, scenario=scenario.to_dict())


# the blob server's vocabulary: each fault on the resuming request (``corrupt`` is left
# out: no downloader can tell flipped bytes before the verify, and the honest end, an
# error, is not the applied version the invariants expect)
NETWORK_FAULTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("ignore_range", {}),
    ("status", {"status": 416}),
    ("status", {"status": 503, "retry_after_s": 5}),
    ("status", {"status": 500}),
    ("status", {"status": 429, "retry_after_s": 1}),
    ("bad_content_range", {"shift": 512}),
    ("short_body", {"missing": 1000}),
    ("reset_peer", {"after_bytes": 8 * KIB}),
    ("limit_data", {"bytes": 4 * KIB}),
    ("timeout", {"timeout_s": 0, "after_bytes": 0}),
    ("timeout", {"timeout_s": 0}),
    ("down", {}),
    ("latency", {"latency_s": 2.0, "jitter_s": 0.5}),
    ("bandwidth", {"rate_bps": 64 * KIB}),
    ("slicer", {"average_size": 700, "size_variation": 300, "delay_s": 0.01}),
    ("slow_close", {"delay_s": 1.0}),
)


def network() -> Iterator[Item]:
    for fault, params in NETWORK_FAULTS:
        plan = {"rules": [_stall(), _rule(fault, 2, **params)]}
        yield _scenario("network", "stalled", fault_plan=plan)
    yield _scenario(
        "network", "stalled", fault_plan={"rules": [_stall()]}, late_upload_at_request=2
    )


def twin() -> Iterator[Item]:
    yield _scenario("twin", image_size=4 * KIB, redeliver=True)
    yield _scenario("twin", image_size=4 * KIB, stale=True)
    for at in (0, 20 * KIB, 60 * KIB):
        yield _scenario("twin", invalid_at_bytes=at)
    stalled = {"rules": [_stall(40 * KIB)]}
    yield _scenario("twin", "stalled", newer_at_bytes=40 * KIB, fault_plan=stalled)
    yield _scenario("twin", newer_at_bytes=40 * KIB)
    # a cut in each operation after the supersede: the old job closed, the new recorded
    for k in range(1, 49):
        cut = Cut(after_ops=k, fraction=0.5, anchor="newer")
        yield _scenario("twin", "stalled", newer_at_bytes=40 * KIB, fault_plan=stalled, cuts=(cut,))


def flash() -> Iterator[Item]:
    for byte in (1 * KIB, 32 * KIB, 63 * KIB):
        yield _scenario("flash", rot_bits=(byte * 8 + 3,))
    for size in (1, 255, 256, 257, 4095, 4096, 4097, 16 * KIB + 1):
        yield _scenario("flash", image_size=size)
    yield _scenario("flash", stuck_bits=(8 * 4096 * 8 + 5,))


def aimed() -> Iterator[Item]:
    kinds = [k for k in ("page_program", "sector_erase") if k in OPCODES]
    for timing in TIMINGS:
        for kind in kinds:
            for nth, fraction in ((1, 0.0), (7, 0.5), (40, 1.0), (90, 0.3)):
                cut = Cut(op=kind, nth=nth, fraction=fraction)
                yield _scenario("aimed", timing=timing, cuts=(cut,), chip_seed=nth)


def sweep(n_ops: int) -> Iterator[Item]:
    for i in range(1, n_ops + 1):
        yield Item("sweep", "cut", index=i)


def torn(n_ops: int) -> Iterator[Item]:
    for i in range(1, n_ops + 1, 2):
        yield Item("torn", "cut", index=i, fraction=0.5)
    for i in range(2, n_ops + 1, 9):
        yield Item("torn", "cut", index=i, fraction=0.1 if i % 2 else 0.9)
    for i in range(5, n_ops + 1, 37):
        yield Item("torn", "pair", index=i, second=1 + i % 29)


def random_mixes(seed: int) -> Iterator[Item]:
    rng = random.Random(f"campaign:{seed}")
    while True:
        yield _scenario("random", "stalled", **random_changes(rng))


def random_changes(rng: random.Random) -> dict[str, Any]:
    """One random mix: size, cuts, a fault or two, maybe an instruction event, timing."""
    size = rng.choice([rng.randint(1, 64 * KIB), rng.choice([256, 4096, 16 * KIB, 64 * KIB])])
    cuts = tuple(
        Cut(after_ops=rng.randint(1, 200), fraction=rng.random(), boot=b)
        for b in range(1, rng.randint(1, 3))
    )
    rules = []
    for _ in range(rng.randint(0, 2)):
        fault, params = rng.choice(NETWORK_FAULTS)
        first = rng.randint(1, 4)
        rules.append(
            {"fault": fault, "params": params, "blob": "ota/*", "requests": [first, first]}
        )
    event = rng.choice(["none", "newer", "redeliver", "stale", "invalid"])
    changes: dict[str, Any] = {
        "image_size": size,
        "image_seed": rng.randint(0, 1000),
        "cuts": cuts,
        "fault_plan": {"rules": rules} if rules else {},
        "timing": rng.choice(TIMINGS),
        "chip_seed": rng.randint(0, 1000),
        "seed": rng.randint(0, 1000),
        "twin_faults": random_channel_faults(rng),
    }
    if event == "newer":
        changes["newer_at_bytes"] = rng.randint(0, size)
    elif event == "invalid":
        changes["invalid_at_bytes"] = rng.randint(0, size)
    elif event != "none":
        changes[event] = True
    return changes


def channel() -> Iterator[Item]:
    """Each twin-channel fault (:mod:`sim.cloud.twin_faults`) with a power cut mid-download
    and, apart, with the blob server's stall: the link and the flash break together."""
    for kind in KINDS:
        fault = random_twin_fault(random.Random(f"channel:{kind}"))
        for boot in (1, 2):
            armed = (ChannelFault(fault, boot=boot),)
            yield _scenario("channel", twin_faults=armed, cuts=(Cut(after_ops=60, fraction=0.5),))
            yield _scenario(
                "channel", "stalled", twin_faults=armed, fault_plan={"rules": [_stall()]}
            )


EXTRA_FAMILIES: dict[str, Callable[[], Iterator[Item]]] = {}  # families a user adds


def plan(n_ops: int, *, budget_s: float = DEFAULT_BUDGET_S, seed: int = 1) -> list[Item]:
    """The campaign for a base OTA of ``n_ops`` operations within ``budget_s`` of one core."""
    if budget_s <= 0:
        raise ValueError(f"budget must be a positive number of seconds, got {budget_s!r}")
    families: list[Iterator[Item]] = [
        sweep(n_ops),
        network(),
        twin(),
        flash(),
        aimed(),
        torn(n_ops),
        channel(),
        *(make() for make in EXTRA_FAMILIES.values()),
    ]
    chosen: list[Item] = []
    spent = 0.0
    while families and spent < budget_s:  # one of each family in turn: a representative mix
        for family in list(families):
            item = next(family, None)
            if item is None:
                families.remove(family)
                continue
            chosen.append(item)
            spent += item.cost
    randoms = random_mixes(seed)
    while spent < budget_s:
        item = next(randoms)
        chosen.append(item)
        spent += item.cost
    return chosen
