"""Proof that the invariants can fail: each agent mutant breaks one within its budget.

The mutants carry the original design's weaknesses and classic bugs
(``docs/reference-design.md``; issue 5 "Proof that the tests can fail");
each kill is the cheapest deterministic exploration found for it
(``sim/explore/mutants/kills.py``), and the correct agent must pass the same runs.
"""

import pytest

from sim.explore.mutants import MUTANTS
from sim.explore.mutants.kills import execute

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("name", list(MUTANTS))
async def test_mutant_breaks_an_invariant_within_its_budget(name):
    """Issue 5: "a test runs the explorers against each mutant and asserts that at least
    one invariant is violated within a stated budget"."""
    mutant = MUTANTS[name]
    violations = await execute(mutant.kill, mutant.factory)
    assert violations, f"{name} ({mutant.bug}) survived {mutant.kill.budget()}"


@pytest.mark.parametrize("name", list(MUTANTS))
async def test_correct_agent_passes_every_mutant_kill(name):
    """Issue 5: "... and that the correct agent violates none" on the same runs."""
    violations = await execute(MUTANTS[name].kill, None)
    assert violations == [], [str(v) for v in violations]


def test_every_mutant_has_a_bug_and_a_budget():
    """The registry names each mutant's bug and its kill (reference-design weaknesses)."""
    for name, mutant in MUTANTS.items():
        assert mutant.name == name and mutant.bug
        assert mutant.kill.scenarios or mutant.kill.explore is not None
