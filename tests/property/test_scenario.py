"""Scenarios round-trip through JSON and random ones keep every invariant (hypothesis).

Strategies draw image sizes (1 byte, page and block boundaries +-1, rarely larger),
cut schedules (operation index, fraction), chip timing and instruction sequences
(issue 5 "Randomised, with hypothesis"); failing examples shrink to a reproducer.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.invariants import check_all
from sim.scenario import Cut, Scenario, run_scenario

pytestmark = pytest.mark.sim

SIZES = st.one_of(
    st.sampled_from([1, 255, 256, 257, 4095, 4096, 4097, 16383, 16384, 16385]),
    st.integers(min_value=1, max_value=40_000),
)
CUTS = st.lists(
    st.builds(
        Cut,
        after_ops=st.integers(min_value=1, max_value=200),
        fraction=st.floats(min_value=0.0, max_value=1.0),
        boot=st.integers(min_value=1, max_value=2),
    ),
    max_size=2,
).map(tuple)
SCENARIOS = st.builds(
    Scenario,
    image_size=SIZES,
    image_seed=st.integers(min_value=0, max_value=1000),
    cuts=CUTS,
    timing=st.sampled_from(["typical", "max", "random"]),
    chip_seed=st.integers(min_value=0, max_value=1000),
    redeliver=st.booleans(),
    stale=st.booleans(),
)


@given(SCENARIOS)
def test_scenario_round_trips_through_json(scenario):
    """A finding must replay exactly from its JSON (issue 5 "replayable reproducer")."""
    assert Scenario.from_json(scenario.to_json()) == scenario


def test_bad_field_is_named():
    """Bad input gets a clear error naming the field."""
    with pytest.raises(ValueError, match="image_size"):
        Scenario(image_size=0)
    with pytest.raises(ValueError, match="fraction"):
        Cut(after_ops=1, fraction=2.0)
    with pytest.raises(ValueError, match="unknown keys"):
        Scenario.from_dict({"image_size": 5, "bogus": 1})


@settings(max_examples=12)
@given(SCENARIOS)
async def test_random_scenarios_keep_every_invariant(scenario):
    """Any cuts, timing and instruction sequence: all six invariants hold."""
    result = await run_scenario(scenario)
    assert check_all(result) == [], [str(v) for v in check_all(result)]
