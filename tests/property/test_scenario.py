"""Scenarios round-trip through JSON and random ones keep every invariant (hypothesis).

Strategies draw image sizes (1 byte, page and block boundaries +-1, rarely 1-3 MiB),
cut schedules (operation index, fraction, boot), network fault plans from the blob
server's vocabulary (``sim/cloud/faults``) with request windows, a late upload (the blob
replaced mid-download, ``etag_change``), chip timing and instruction sequences (a
newer version mid-download, re-delivery, a stale version): issue 5 "Randomised, with
hypothesis". Failing examples shrink to a reproducer. The number of examples comes
from the hypothesis profile (``conftest.py``: ``ci`` brief, ``fuzz`` long).
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.explore.invariants import check_all
from sim.explore.runner import run_scenario
from sim.explore.scenario import Cut, Scenario

pytestmark = pytest.mark.sim

KIB, MIB = 1024, 1024 * 1024
BOUNDARIES = [1, 255, 256, 257, 4095, 4096, 4097, 16383, 16384, 16385, 65535, 65536, 65537]
SMALL_SIZES = st.one_of(st.sampled_from(BOUNDARIES), st.integers(min_value=1, max_value=40_000))
# about one draw in 25 is a multi-MiB image (2-4 s a run); the index shrinks towards small
SIZES = st.integers(min_value=0, max_value=24).flatmap(
    lambda k: st.integers(min_value=1 * MIB, max_value=3 * MIB) if k == 24 else SMALL_SIZES
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

# The blob server's vocabulary (sim/cloud/faults): each a fault name and its parameters.
# Pauses are real time on the server, so latencies stay in milliseconds; a stall
# (``timeout`` 0) costs the agent's 30 s low-speed window, 30 ms of wall time.
FAULT_PARAMS = st.one_of(
    st.tuples(
        st.just("reset_peer"), st.fixed_dictionaries({"after_bytes": st.integers(0, 64 * KIB)})
    ),
    st.tuples(st.just("limit_data"), st.fixed_dictionaries({"bytes": st.integers(0, 64 * KIB)})),
    st.tuples(
        st.just("status"),
        st.one_of(
            st.fixed_dictionaries({"status": st.sampled_from([500, 502, 416])}),
            st.fixed_dictionaries(
                {"status": st.sampled_from([503, 429]), "retry_after_s": st.integers(0, 120)}
            ),
        ),
    ),
    st.tuples(st.just("ignore_range"), st.just({})),
    st.tuples(st.just("bad_content_range"), st.fixed_dictionaries({"shift": st.integers(1, 4096)})),
    st.tuples(st.just("short_body"), st.fixed_dictionaries({"missing": st.integers(1, 4096)})),
    st.tuples(
        st.just("timeout"),
        st.fixed_dictionaries(
            {"timeout_s": st.just(0), "after_bytes": st.none() | st.integers(0, 64 * KIB)}
        ),
    ),
    st.tuples(
        st.just("latency"),
        st.fixed_dictionaries(
            {"latency_s": st.sampled_from([0.0, 0.001, 0.005]), "jitter_s": st.just(0.001)}
        ),
    ),
)


@st.composite
def fault_rules(draw):
    """One rule: a fault over a window of 1-3 requests among the first few."""
    name, params = draw(FAULT_PARAMS)
    first = draw(st.integers(min_value=1, max_value=5))
    last = first + draw(st.integers(min_value=0, max_value=2))
    return {"fault": name, "params": params, "blob": "ota/*", "requests": [first, last]}


@st.composite
def scenarios(draw, sizes=SIZES, faults=False):
    """A whole scenario; a late upload comes with a stall of the request before it, so
    the wrong bytes are never complete (else a correct agent rightly fails verify)."""
    size = draw(sizes)
    rules = draw(st.lists(fault_rules(), max_size=3)) if faults else []
    late = draw(st.none() | st.integers(min_value=2, max_value=3)) if faults else None
    if late is not None:
        # The first request serves a prefix of the wrong bytes, the others until the
        # upload none: ``after_bytes`` counts response bytes, so a window of partial
        # stalls could still add up to the whole wrong image, which a correct agent
        # rightly rejects (SHA256 verify fail) instead of applying.
        blob = "ota/fw-v2.bin"
        prefix = {"timeout_s": 0, "after_bytes": draw(st.integers(0, size - 1))}
        rules.insert(0, {"fault": "timeout", "params": prefix, "blob": blob, "requests": [1, 1]})
        if late > 2:
            nothing = {"timeout_s": 0, "after_bytes": 0}
            stall = {"fault": "timeout", "params": nothing, "blob": blob}
            rules.insert(1, {**stall, "requests": [2, late - 1]})
    newer = draw(st.none() | st.integers(min_value=0, max_value=size))
    return Scenario(
        image_size=size,
        image_seed=draw(st.integers(min_value=0, max_value=1000)),
        cuts=draw(CUTS),
        fault_plan={"rules": rules} if rules else {},
        late_upload_at_request=late,
        newer_at_bytes=newer,
        timing=draw(st.sampled_from(["typical", "max", "random"])),
        chip_seed=draw(st.integers(min_value=0, max_value=1000)),
        seed=draw(st.integers(min_value=0, max_value=1000)),
        redeliver=draw(st.booleans()),
        stale=draw(st.booleans()),
    )


@given(scenarios(faults=True))
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
    with pytest.raises(ValueError, match="limit_data"):
        Scenario(fault_plan={"rules": [{"fault": "limit_data", "params": {"bytes": -1}}]})


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


async def test_a_fault_plan_is_played_against_the_scenario_requests():
    """Request windows count from the scenario's first request (the base OTA before it
    is not counted): a 503 on request 1 is seen by the device, then it resumes."""
    rule = {"fault": "status", "params": {"status": 503, "retry_after_s": 1}, "requests": [1, 1]}
    result = await run_scenario(Scenario(image_size=4096, fault_plan={"rules": [rule]}))
    assert [r.status for r in result.requests][:2] == [503, 200]
    assert result.faulted_requests == 1
    assert check_all(result) == []


@given(scenarios())
async def test_random_scenarios_keep_every_invariant(scenario):
    """Any image size, cuts, timing and instruction sequence: all six invariants hold."""
    result = await run_scenario(scenario)
    assert check_all(result) == [], [str(v) for v in check_all(result)]


@given(scenarios(faults=True))
async def test_random_fault_plans_keep_every_invariant(scenario):
    """Network faults from the blob server's vocabulary with cuts at the same time."""
    result = await run_scenario(scenario)
    assert check_all(result) == [], [str(v) for v in check_all(result)]


async def test_replay_trace_shows_the_operations_before_the_cut_itself():
    """Issue 5: replay prints "the flash operation trace around the cut": the torn page
    program is flagged just before the loss, and the next boot's reads come after it."""
    scenario = Scenario(image_size=16 * KIB, cuts=(Cut(op="page_program", nth=5, fraction=0.5),))
    result = await run_scenario(scenario, trace=True)
    lost = next(i for i, line in enumerate(result.trace) if "<power lost" in line)
    flagged = [line for line in result.trace[:lost] if "<- cut" in line]
    assert len(flagged) == 1 and "page_program" in flagged[0]
    assert result.trace[lost + 1].strip() == "next boot:"
