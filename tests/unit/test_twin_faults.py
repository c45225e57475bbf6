"""The twin-channel fault vocabulary (sim/cloud/twin_faults.py), one definition for the
local IoT Hub and the in-process twin: validation, counts, and ``at_s`` as the moment a
rule starts (a hub that goes down later, for a window)."""

import pytest

from sim.cloud.twin_faults import KINDS, TwinFault, TwinFaults

pytestmark = pytest.mark.sim


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"kind": "unplug"}, "fault must be one of"),
        ({"kind": "drop_connection"}, "exactly one of after_messages or at_s"),
        ({"kind": "drop_connection", "after_messages": 2, "at_s": 1.0}, "exactly one"),
        ({"kind": "lose_reported_ack", "after_messages": 2}, "after_messages is for drop"),
        ({"kind": "delay_desired"}, "delay_s > 0"),
        ({"kind": "fail_twin_get", "status": 204}, "status must be an HTTP error"),
        ({"kind": "refuse_connect", "code": 0}, "CONNACK refusal code"),
        ({"kind": "refuse_connect", "for_s": -1}, "for_s must be a number of seconds"),
        ({"kind": "duplicate_desired", "count": 0}, "count must be an integer >= 1"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_field(fields, named):
    with pytest.raises(ValueError, match=named):
        TwinFault(**fields)


def test_json_round_trip_of_every_kind():
    """The control API's body (POST /_faults) and a scenario's twin_faults share it."""
    examples = {
        "drop_connection": {"after_messages": 3},
        "refuse_connect": {"for_s": 5.0, "at_s": 2.0},
        "lose_reported_ack": {"count": 2},
        "delay_desired": {"delay_s": 1.5},
        "duplicate_desired": {},
        "fail_twin_get": {"status": 503},
    }
    assert set(examples) == set(KINDS)
    for kind, params in examples.items():
        fault = TwinFault(kind, **params)
        assert TwinFault.from_json(fault.to_json()) == fault
    with pytest.raises(ValueError, match="unknown fault field"):
        TwinFault.from_json({"fault": "duplicate_desired", "boot": 2})


def test_a_rule_with_at_s_rests_until_its_moment():
    clock = Clock()
    faults = TwinFaults(clock=clock)
    faults.add(TwinFault("fail_twin_get", at_s=10.0))
    assert faults.take("fail_twin_get", "d") is None
    clock.now = 10.0
    assert faults.take("fail_twin_get", "d") is not None
    assert faults.take("fail_twin_get", "d") is None  # count 1: spent


def test_a_refusal_window_runs_from_at_s_for_for_s():
    """Hub down later: connects are refused in [at_s, at_s + for_s) and then the rule ends."""
    clock = Clock()
    faults = TwinFaults(clock=clock)
    faults.refuse_connects(at_s=5.0, for_s=20.0)
    seen = []
    for t in (0.0, 4.9, 5.0, 15.0, 24.9, 25.0, 30.0):
        clock.now = t
        seen.append(faults.take("refuse_connect", "d") is not None)
    assert seen == [False, False, True, True, True, False, False]
    assert faults.rules == []


def test_message_count_drop_fires_once_per_count():
    faults = TwinFaults(clock=Clock())
    faults.drop_connection("d", after_messages=2, count=2)
    assert faults.drop_after("other", 5) is None
    assert faults.drop_after("d", 1) is None
    assert faults.drop_after("d", 2) is not None
    assert faults.drop_after("d", 2) is not None
    assert faults.drop_after("d", 9) is None
    assert [e.kind for e in faults.fired(device="d")] == ["drop_connection"] * 2
