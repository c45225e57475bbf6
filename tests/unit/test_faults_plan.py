"""Fault plans: data loaded from JSON, rules selecting requests, seeded probability."""

import json
from pathlib import Path

import pytest

from sim.cloud.faults import FAULTS
from sim.cloud.faults.latency import Latency
from sim.cloud.faults.limit_data import LimitData
from sim.cloud.faults.plan import FaultPlan, RequestInfo, Rule, load_plan, loads_plan

pytestmark = pytest.mark.sim

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "faults"


def _get(number, blob="fw/a.bin", span=(0, 99), method="GET"):
    return RequestInfo(number=number, method=method, blob=blob, span=span)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.name)
def test_example_plans_load_and_round_trip(path):
    """Every example plan in fixtures/faults is valid and survives to_dict/from_dict."""
    plan = load_plan(path)
    assert plan.rules
    assert FaultPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_rules_without_an_id_get_one_named_for_their_fault():
    """Ids address rules in the control API (toxiproxy names toxics the same way)."""
    plan = FaultPlan(rules=(Rule(fault=LimitData(bytes=1)), Rule(fault=LimitData(bytes=2))))
    assert [r.id for r in plan.rules] == ["limit_data-1", "limit_data-2"]


def test_duplicate_rule_ids_are_refused():
    """Two rules with one id could not be deleted one at a time."""
    rule = Rule(fault=LimitData(bytes=1), id="cut")
    with pytest.raises(ValueError, match="'cut' is used twice"):
        FaultPlan(rules=(rule, rule))


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"fault": "nope"}, r"plan.rules\[0\].fault: 'nope' is not one of"),
        ({"fault": "limit_data", "params": {"bytes": 1, "extra": 2}}, r"params: unknown keys"),
        ({"fault": "noop", "requests": [0, 3]}, r"plan.rules\[0\].requests\[0\]"),
        ({"fault": "noop", "requests": [5, 3]}, r"plan.rules\[0\].requests\[1\]"),
        ({"fault": "noop", "offsets": [10]}, "offsets: must be a pair"),
        ({"fault": "noop", "probability": 1.5}, r"plan.rules\[0\].probability"),
        ({"fault": "noop", "methods": ["FETCH"]}, r"plan.rules\[0\].methods\[0\]"),
        ({"fault": "noop", "colour": "red"}, "unknown keys"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule_and_key(rule, message):
    """Errors name the rule's index and the key at fault."""
    with pytest.raises(ValueError, match=r"plan.rules\[0\]") as caught:
        FaultPlan.from_dict({"rules": [rule]})
    assert caught.match(message)


def test_invalid_json_is_reported_as_such():
    with pytest.raises(ValueError, match="not valid JSON"):
        loads_plan("{rules: ")


def test_yaml_plans_need_pyyaml_or_say_so(tmp_path):
    """YAML is optional (no YAML library is a dependency); without it the error says so."""
    path = tmp_path / "plan.yaml"
    path.write_text("rules: []\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="PyYAML"):
            load_plan(path)
    else:
        assert load_plan(path) == FaultPlan()


def test_a_rule_selects_by_blob_glob():
    rule = Rule(fault=LimitData(bytes=1), blob="firmware/*.bin")
    assert rule.matches(_get(1, blob="firmware/v2.bin"))
    assert not rule.matches(_get(1, blob="other/v2.bin"))


def test_a_rule_selects_by_request_number_window():
    rule = Rule(fault=LimitData(bytes=1), requests=(3, 4))
    assert [n for n in range(1, 7) if rule.matches(_get(n))] == [3, 4]


def test_a_rule_selects_by_byte_window_of_the_response():
    """offsets [lo, hi) select responses whose blob span overlaps the window."""
    rule = Rule(fault=LimitData(bytes=1), offsets=(1000, 2000))
    assert rule.matches(_get(1, span=(1500, 5000)))
    assert rule.matches(_get(1, span=(0, 1000)))
    assert not rule.matches(_get(1, span=(0, 999)))
    assert not rule.matches(_get(1, span=(2000, 3000)))
    assert not rule.matches(_get(1, span=None))


def test_a_rule_selects_by_method_get_and_head_by_default():
    """Uploads are not faulted unless a rule asks for PUT (or '*')."""
    rule = Rule(fault=LimitData(bytes=1))
    assert rule.matches(_get(1, method="HEAD"))
    assert not rule.matches(_get(1, method="PUT"))
    assert Rule(fault=LimitData(bytes=1), methods=("*",)).matches(_get(1, method="PUT"))


def test_probability_is_reproducible_from_the_seed():
    """Same plan, seed and request sequence: same faults (issue 3, determinism)."""
    plan = FaultPlan(rules=(Rule(fault=Latency(latency_s=0.0), probability=0.3),))

    def fired(seed):
        return [bool(plan.select(seed, _get(n))) for n in range(1, 201)]

    assert fired(11) == fired(11)
    assert fired(11) != fired(12)
    assert 30 <= sum(fired(11)) <= 90  # about 30 % of 200


def test_probability_of_one_rule_does_not_depend_on_other_rules():
    """Adding a rule does not shift another rule's draws: each draws from its own source."""
    lone = FaultPlan(rules=(Rule(fault=Latency(latency_s=0.0), id="a", probability=0.5),))
    both = lone.with_rule(Rule(fault=FAULTS["noop"](), id="b", probability=0.5))

    def fired_a(plan):
        return [any(r.id == "a" for r, _ in plan.select(3, _get(n))) for n in range(1, 101)]

    assert fired_a(lone) == fired_a(both)


def test_without_removes_one_rule_and_refuses_unknown_ids():
    plan = FaultPlan(rules=(Rule(fault=LimitData(bytes=1), id="x"),))
    assert plan.without("x") == FaultPlan()
    with pytest.raises(KeyError):
        plan.without("y")
