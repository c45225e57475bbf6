"""The re-join shortcut is honest: a cut run stopped where it re-joins the clean run gets
the verdict the same cut run gets when it runs to the end (issue 11 "Prove the shortcut
honest"), for the correct agent and for every known mutant (``sim/explore/mutants``).

Each case sweeps one scenario twice over the same cut points: every run to the end
(``full_sample=1``), then every run that re-joins stopped there (``full_sample=0``);
the violated invariants must be the same at every point, and the second sweep must
really have taken the shortcut.
"""

import dataclasses

import pytest

from sim.cloud.blobserver import BlobServer
from sim.explore.explorers import Explorer
from sim.explore.invariants import check_all
from sim.explore.mutants import MUTANTS
from sim.explore.scenario import Scenario

pytestmark = pytest.mark.sim

SCENARIO = Scenario(image_size=64 * 1024, checkpoint_bytes=16 * 1024)  # the kills' own
STRIDE = 23


def _points(name: str | None, n_ops: int) -> list[int]:
    """A strided sweep, plus the mutant's own kill window where it has one."""
    points = set(range(1, n_ops + 1, STRIDE))
    kill = MUTANTS[name].kill if name else None
    if kill is not None and kill.explore is not None:
        last = min(kill.last or n_ops, n_ops)
        window = range(kill.first, last + 1, kill.stride)
        points |= {i for i in window if kill.schedule != "log" or not i & (i - 1)}
    return sorted(points)


async def _verdicts(name: str | None, sample: float) -> tuple[dict[int, set[str]], int]:
    factory = MUTANTS[name].factory() if name else None
    scenario = dataclasses.replace(SCENARIO, mutant=name)
    async with BlobServer() as server:
        explorer = Explorer(scenario, server, agent_factory=factory, full_sample=sample)
        clean = await explorer.prepare()
        verdicts, rejoined = {}, 0
        for i in _points(name, len(clean.ops)):
            _, result = await explorer.cut_run(i)
            verdicts[i] = {v.invariant for v in check_all(result)}
            rejoined += result.rejoined_at is not None
    return verdicts, rejoined


@pytest.mark.parametrize("name", [None, *MUTANTS])
async def test_shortcut_runs_give_the_verdicts_of_full_runs(name):
    full, full_rejoined = await _verdicts(name, 1.0)
    short, short_rejoined = await _verdicts(name, 0.0)
    assert full_rejoined == 0
    assert short == full
    if name != "record_outside":  # its record lives outside littlefs: no flash state re-joins
        assert short_rejoined > 0, "no cut run took the shortcut: the comparison shows nothing"
    kill = MUTANTS[name].kill if name else None
    if kill is not None and kill.explore is not None:  # the explorer kills it: so must both
        assert any(full.values()), f"{name} survived its own kill window"


def test_the_sample_is_seeded_per_cut_point():
    """The runs that go to the end are the same in every process (deterministic draw)."""
    explorer = Explorer.__new__(Explorer)
    explorer.scenario, explorer.full_sample = SCENARIO, 0.3
    draws = [explorer.runs_full(i, 1.0, None) for i in range(1, 400)]
    again = [explorer.runs_full(i, 1.0, None) for i in range(1, 400)]
    assert draws == again and 60 < sum(draws) < 180
