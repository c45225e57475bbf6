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
    with pytest.raises(ValueError, match="rot_bits"):
        Scenario(image_size=4, rot_bits=(32,))


async def test_a_bit_rotting_before_the_verify_is_caught_by_the_read_back():
    """A retention error after the image was written (datasheet 9.6 data retention): the
    agent verifies what flash holds (reference design, weakness "SHA over the stream"),
    so it reports ``SHA256 verify fail`` and installs nothing; that honest error is
    the right end, so every invariant holds."""
    scenario = Scenario(image_size=64 * 1024, rot_bits=(32 * 1024 * 8 + 3,))
    result = await run_scenario(scenario)
    assert result.rot_landed >= 1
    assert result.final_reported.get("Error") == "SHA256 verify fail"
    assert [inst.version for inst in result.installs] == [1]
    assert check_all(result) == [], [str(v) for v in check_all(result)]


@settings(max_examples=12)
@given(SCENARIOS)
async def test_random_scenarios_keep_every_invariant(scenario):
    """Any cuts, timing and instruction sequence: all six invariants hold."""
    result = await run_scenario(scenario)
    assert check_all(result) == [], [str(v) for v in check_all(result)]
