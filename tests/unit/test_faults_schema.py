"""Fault rules and plans are validated against one JSON Schema (``sim.cloud.faults.schema``).

Whatever a plan file or a control-API client sends, the answer is a ``ValueError`` of
one line naming the field (``plan.rules[0].methods[1]``) and, for a choice, the allowed
values; never a TypeError, never a silent default. NaN and Infinity are not JSON
(RFC 8259 section 6) and no fault parameter may be non-finite.
"""

import json
import math

import pytest

from sim.cloud.faults import FAULTS
from sim.cloud.faults.plan import FaultPlan, Rule, load_plan, loads_plan
from sim.cloud.faults.schema import PLAN_SCHEMA

pytestmark = pytest.mark.sim


def refused(rule: object) -> str:
    with pytest.raises(ValueError) as caught:
        FaultPlan.from_dict({"rules": [rule]})
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("rule", "field", "allowed"),
    [
        ({"fault": ["latency"]}, "plan.rules[0].fault", "limit_data"),
        ({"fault": {"name": "latency"}}, "plan.rules[0].fault", "limit_data"),
        ({"fault": "meteor"}, "plan.rules[0].fault", "limit_data"),
        ({"fault": "noop", "methods": 5}, "plan.rules[0].methods", "GET"),
        ({"fault": "noop", "methods": [1, 2]}, "plan.rules[0].methods[0]", "GET"),
        ({"fault": "noop", "methods": None}, "plan.rules[0].methods", "GET"),
        ({"fault": "noop", "methods": ["GET", "FETCH"]}, "plan.rules[0].methods[1]", "HEAD"),
        ({"fault": "noop", "methods": []}, "plan.rules[0].methods", "GET"),
        ({"fault": "noop", "requests": "2"}, "plan.rules[0].requests", "array"),
        ({"fault": "noop", "requests": [0, 3]}, "plan.rules[0].requests[0]", "1"),
        ({"fault": "noop", "requests": [5, 3]}, "plan.rules[0].requests[1]", "5"),
        ({"fault": "noop", "requests": [1, 2, 3]}, "plan.rules[0].requests", "2"),
        ({"fault": "noop", "offsets": [10]}, "plan.rules[0].offsets", "2"),
        ({"fault": "noop", "probability": 1.5}, "plan.rules[0].probability", "1"),
        ({"fault": "noop", "probability": True}, "plan.rules[0].probability", "number"),
        ({"fault": "noop", "blob": 7}, "plan.rules[0].blob", "string"),
        ({"fault": "noop", "id": "a/b"}, "plan.rules[0].id", "/"),
        ({"fault": "noop", "id": "events"}, "plan.rules[0].id", "events"),
        ({"fault": "noop", "colour": "red"}, "plan.rules[0]", "colour"),
        ({"fault": "limit_data", "params": False}, "plan.rules[0].params", "object"),
        ({"fault": "limit_data", "params": ""}, "plan.rules[0].params", "object"),
        ({"fault": "limit_data", "params": []}, "plan.rules[0].params", "object"),
        ({"fault": "timeout", "params": False}, "plan.rules[0].params", "object"),
        ({"fault": "noop", "params": ""}, "plan.rules[0].params", "object"),
        ({"fault": "noop", "params": 0}, "plan.rules[0].params", "object"),
        ({"fault": "limit_data"}, "plan.rules[0].params", "bytes"),
        ({"fault": "limit_data", "params": {}}, "plan.rules[0].params", "bytes"),
        (
            {"fault": "limit_data", "params": {"bytes": "5"}},
            "plan.rules[0].params.bytes",
            "integer",
        ),
        ({"fault": "limit_data", "params": {"bytes": 1, "x": 2}}, "plan.rules[0].params", "x"),
        ({"fault": "limit_data", "params": {"bytes": -1}}, "plan.rules[0].params", "bytes"),
        (
            {"fault": "corrupt", "params": {"offsets": [1, "2"]}},
            "plan.rules[0].params.offsets[1]",
            "integer",
        ),
        (
            {"fault": "status", "params": {"status": 503, "code": 7}},
            "plan.rules[0].params.code",
            "string",
        ),
        ("noop", "plan.rules[0]", "object"),
        (None, "plan.rules[0]", "object"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_field_and_what_is_allowed(rule, field, allowed):
    message = refused(rule)
    assert message.startswith(field), message
    assert allowed in message, message


@pytest.mark.parametrize("plan", [[], "rules", {"rules": {}}, {"rules": [], "x": 1}, None])
def test_a_bad_plan_is_refused_naming_what_is_wrong(plan):
    with pytest.raises(ValueError, match=r"^plan") as caught:
        FaultPlan.from_dict(plan)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant):
    """Python's json module reads ``NaN`` and ``Infinity``; RFC 8259 6 does not."""
    text = '{"rules": [{"fault": "bandwidth", "params": {"rate_bps": CONST}}]}'
    text = text.replace("CONST", constant)
    with pytest.raises(ValueError, match=constant.lstrip("-")):
        loads_plan(text)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("bandwidth", {"rate_bps": math.nan}),
        ("bandwidth", {"rate_bps": math.inf}),
        ("latency", {"latency_s": math.nan}),
        ("latency", {"latency_s": 1.0, "jitter_s": math.inf}),
        ("timeout", {"timeout_s": math.nan}),
        ("slow_close", {"delay_s": math.inf}),
        ("reset_peer", {"delay_s": math.nan}),
        ("slicer", {"average_size": 10, "delay_s": math.nan}),
    ],
)
def test_a_non_finite_parameter_is_refused_from_python_too(name, params):
    """A NaN bandwidth made every GET answer 206 with no body: refused at construction,
    whatever the way in (a plan, the control API, or Python)."""
    with pytest.raises(ValueError, match=f"{name}\\."):
        FAULTS[name](**params)


def test_a_rule_built_in_python_with_bad_methods_is_a_value_error():
    """The Python API refuses what the schema refuses, with ValueError, never TypeError."""
    for methods in (5, [1], None, ()):
        with pytest.raises(ValueError, match=r"rule\.methods"):
            Rule(fault=FAULTS["noop"](), methods=methods)  # type: ignore[arg-type]


def test_a_plan_file_with_bad_params_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"rules": [{"fault": "limit_data", "params": False}]}))
    with pytest.raises(ValueError) as caught:
        load_plan(path)
    assert str(path) in str(caught.value) and "plan.rules[0].params" in str(caught.value)


def test_the_schema_names_every_registered_fault():
    """One schema: the fault enum and the per-fault params are built from FAULTS."""
    rule = PLAN_SCHEMA["$defs"]["rule"]
    assert set(rule["properties"]["fault"]["enum"]) == set(FAULTS)
    assert len(rule["allOf"]) == len(FAULTS)


def test_every_example_plan_is_valid_against_the_schema():
    from pathlib import Path

    import jsonschema

    for path in sorted(
        (Path(__file__).resolve().parents[2] / "fixtures" / "faults").glob("*.json")
    ):
        jsonschema.validate(json.loads(path.read_text()), PLAN_SCHEMA)
