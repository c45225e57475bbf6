"""The simulated IoT Hub: configurations, targeting, priority, metrics, condition language.

Rules from Microsoft Learn "Automatic IoT device and module management using the Azure
portal / CLI" (targeting, priority, tie-break, what can be updated, system metrics) and
"IoT Hub query language for device and module twins" (conditions, metric queries).
"""

import pytest

from sim.cloud.hub import ConditionError, Configuration, Hub, parse_condition, parse_metric_query

pytestmark = pytest.mark.sim

WASHER_FIELD = "tags.productType='washer' AND tags.deviceGroup='field_test'"


def _config(config_id="ota_v1", *, version=1, condition=WASHER_FIELD, priority=None, **kw):
    return Configuration(
        id=config_id,
        content={"properties.desired.extFwInfo": {"version": version}},
        target_condition=condition,
        priority=version if priority is None else priority,
        **kw,
    )


def _hub(**devices):
    hub = Hub()
    for device_id, tags in devices.items():
        hub.add_device(device_id, tags=tags)
    return hub


def _desired_version(hub, device_id):
    return hub.twin(device_id).desired.get("extFwInfo", {}).get("version")


def test_configuration_reaches_only_devices_whose_tags_match_its_target_condition():
    """ "The target condition ... determines which devices the configuration applies to"."""
    hub = _hub(
        a={"productType": "washer", "deviceGroup": "field_test"},
        b={"productType": "washer", "deviceGroup": "lab"},
        c={"productType": "dryer", "deviceGroup": "field_test"},
        d={},
    )
    hub.create_configuration(_config())
    written = hub.evaluate()
    assert written == {"a": "ota_v1"}
    assert [_desired_version(hub, d) for d in "abcd"] == [1, None, None, None]


def test_nothing_is_written_until_the_hub_evaluates():
    """Configurations take effect when IoT Hub evaluates them (at creation and then about
    every 5 minutes): here only when evaluate() runs."""
    hub = _hub(a={"productType": "washer", "deviceGroup": "field_test"})
    hub.create_configuration(_config())
    assert _desired_version(hub, "a") is None
    hub.evaluate()
    assert _desired_version(hub, "a") == 1


def test_highest_priority_wins_among_matching_configurations():
    """ "If a device is targeted by two or more configurations, the highest priority wins"."""
    hub = _hub(a={"productType": "washer", "deviceGroup": "field_test"})
    hub.create_configuration(_config("high", version=5, priority=9))
    hub.create_configuration(_config("low", version=6, priority=2))
    hub.evaluate()
    assert _desired_version(hub, "a") == 5
    assert hub.twin_document("a")["configurations"] == {
        "high": {"status": "Applied"},
        "low": {"status": "Targeted"},
    }


def test_priority_tie_goes_to_the_most_recently_created_configuration():
    """ "When two configurations have the same priority, the one created most recently
    wins"."""
    hub = _hub(a={"productType": "washer", "deviceGroup": "field_test"})
    hub.create_configuration(_config("older", version=1, priority=3))
    hub.create_configuration(_config("newer", version=2, priority=3))
    hub.evaluate()
    assert _desired_version(hub, "a") == 2


def test_winning_content_is_written_once_not_on_every_evaluation():
    """IoT Hub applies a configuration's content once; re-evaluations leave the twin's
    desired $version alone while the winner is unchanged."""
    hub = _hub(a={"productType": "washer", "deviceGroup": "field_test"})
    hub.create_configuration(_config())
    hub.evaluate()
    version = hub.twin("a").desired_version
    assert hub.evaluate() == {}
    assert hub.twin("a").desired_version == version


def test_a_newer_higher_priority_configuration_overwrites_the_applied_one():
    """A configuration created later with a higher priority takes over at the next
    evaluation (how ota_v2 replaces ota_v1)."""
    hub = _hub(a={"productType": "washer", "deviceGroup": "field_test"})
    hub.create_configuration(_config("ota_v1", version=1))
    hub.evaluate()
    hub.create_configuration(_config("ota_v2", version=2))
    assert hub.evaluate() == {"a": "ota_v2"}
    assert _desired_version(hub, "a") == 2


def test_retagged_device_leaves_one_target_and_joins_another():
    """Tags can change at any time; the next evaluation retargets the device."""
    hub = _hub(a={"productType": "washer", "deviceGroup": "field_test"})
    hub.create_configuration(_config("ota_v1", version=1))
    hub.create_configuration(
        _config("ota_v2", version=2, condition="tags.deviceGroup='pilot'", priority=0)
    )
    hub.evaluate()
    hub.set_tags("a", {"productType": "washer", "deviceGroup": "pilot"})
    hub.evaluate()
    assert _desired_version(hub, "a") == 2
    assert hub.metrics("ota_v1").targeted_count == 0


def test_only_labels_metrics_priority_and_target_condition_can_be_updated():
    """ "Only labels, metrics, priority and target condition can be updated" after creation."""
    hub = Hub()
    hub.create_configuration(_config())
    hub.update_configuration(_config(priority=7, labels={"ring": "1"}))
    assert hub.get_configuration("ota_v1").priority == 7
    with pytest.raises(ValueError, match="content of configuration 'ota_v1' cannot be updated"):
        hub.update_configuration(_config(version=2, priority=1))


def test_system_metrics_count_targeted_and_applied_devices():
    """systemMetrics: targetedCount = twins matching the condition, appliedCount = twins
    the configuration modified (a higher-priority one can hold a targeted device)."""
    hub = _hub(
        a={"productType": "washer", "deviceGroup": "field_test"},
        b={"productType": "washer", "deviceGroup": "field_test", "pinned": "yes"},
        c={"productType": "dryer", "deviceGroup": "field_test"},
    )
    hub.create_configuration(_config("ota_v1", version=1))
    hub.create_configuration(_config("pin", version=9, condition="tags.pinned='yes'", priority=99))
    hub.evaluate()
    metrics = hub.metrics("ota_v1")
    assert (metrics.targeted_count, metrics.applied_count) == (2, 1)


async def test_custom_metrics_count_twins_by_reported_status():
    """Custom metrics count the twins a ``SELECT deviceId FROM devices WHERE ...`` query
    returns; ota.py's count devices by properties.reported.extFwInfo.Status."""
    hub = _hub(**{d: {"productType": "washer", "deviceGroup": "field_test"} for d in "abc"})
    query = "SELECT deviceId FROM devices WHERE properties.reported.extFwInfo.Status='{}'"
    hub.create_configuration(
        _config(metrics={s: query.format(s) for s in ("applied", "downloading", "error")})
    )
    hub.evaluate()
    for device_id, status in zip("abc", ("applied", "applied", "downloading"), strict=True):
        twin = hub.twin(device_id)
        await twin.connect()
        await twin.report({"extFwInfo": {"Status": status}})
    assert dict(hub.metrics("ota_v1").queries) == {"applied": 2, "downloading": 1, "error": 0}


def test_metric_scoped_to_a_configuration_counts_only_its_applied_devices():
    """``configurations.[[ID]].status='Applied'`` is on every twin the configuration
    modified (IoT Hub query language, automatic device management metrics)."""
    hub = _hub(
        a={"productType": "washer", "deviceGroup": "field_test"},
        b={"productType": "washer", "deviceGroup": "lab"},
    )
    hub.create_configuration(
        _config(metrics={"mine": "configurations.[[ota_v1]].status='Applied'"})
    )
    hub.evaluate()
    assert hub.metrics("ota_v1").queries["mine"] == 1


def test_condition_language_supports_or_and_parentheses_with_and_binding_tighter():
    """AND binds tighter than OR; parentheses group (IoT Hub query language, WHERE)."""
    loose = parse_condition("tags.p='w' AND tags.g='a' OR tags.g='b'")
    grouped = parse_condition("tags.p='w' AND (tags.g='a' OR tags.g='b')")
    dryer_b = {"tags": {"p": "d", "g": "b"}}
    assert loose.matches(dryer_b)
    assert not grouped.matches(dryer_b)
    assert grouped.matches({"tags": {"p": "w", "g": "b"}})


def test_a_missing_or_non_string_property_never_matches():
    """A comparison with an undefined property is false (query language: undefined)."""
    condition = parse_condition("properties.reported.extFwInfo.Status='applied'")
    assert not condition.matches({"properties": {"reported": {}}})
    assert not condition.matches({"properties": {"reported": {"extFwInfo": "applied"}}})
    assert condition.matches({"properties": {"reported": {"extFwInfo": {"Status": "applied"}}}})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ("tags.a!='x'", "only '=' comparisons are supported"),
        ("tags.a=5", "expected a 'quoted string'"),
        ("tags.a='x' AND", "unexpected end"),
        ("tags.a='x' tags.b='y'", "unexpected 'tags'"),
        ("deviceId='gw-1'", "unsupported property 'deviceId'"),
        ("properties.desired.extFwInfo.version='1'", "unsupported property"),
        ("NOT tags.a='x'", "'NOT' is not supported"),
        ("(tags.a='x'", "unexpected end"),
        ("configurations.ota_v1.status='Applied'", "configurations.[[ID]]"),
    ],
)
def test_conditions_outside_the_supported_subset_are_refused_naming_the_problem(text, problem):
    """Anything beyond ``path='string'``, AND, OR and parentheses is refused clearly rather
    than evaluated wrongly."""
    with pytest.raises(ConditionError, match=r"condition .*" + problem.replace("[", r"\[")):
        parse_condition(text)


def test_metric_query_must_select_device_ids_from_devices():
    """Only ``SELECT deviceId FROM devices WHERE ...`` (or a bare condition) is counted."""
    assert parse_metric_query("SELECT deviceId FROM devices WHERE tags.a='x'").matches(
        {"tags": {"a": "x"}}
    )
    with pytest.raises(ConditionError, match="only 'SELECT deviceId FROM devices WHERE"):
        parse_metric_query("SELECT COUNT() FROM devices")


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("id", "OTA_V1", "id must be"),
        ("content", {"extFwInfo": {}}, "content key must be 'properties.desired.NAME'"),
        ("content", {"properties.desired.extFwInfo": 5}, "must be a JSON object"),
        ("target_condition", "tags.a=1", "targetCondition:"),
        ("priority", -1, "priority must be >= 0"),
        ("priority", True, "priority must be an integer"),
        ("metrics", {"x": "tags.a"}, r"metrics\['x'\]"),
        ("labels", {"v": 1}, "labels must map strings to strings"),
    ],
)
def test_configuration_refuses_a_bad_field_naming_it(field, value, named):
    """Configurations are validated on construction; the error names the field."""
    fields = {
        "id": "ota_v1",
        "content": {"properties.desired.extFwInfo": {"version": 1}},
        "target_condition": WASHER_FIELD,
        "priority": 1,
    }
    Configuration(**fields)  # the baseline is valid: only the one bad field fails
    with pytest.raises(ValueError, match=named):
        Configuration(**{**fields, field: value})


def test_configuration_json_round_trips_in_the_rest_shape():
    """``to_json`` is the REST body (content.deviceContent, metrics.queries);
    ``from_json`` reads it back to an equal configuration."""
    config = _config(metrics={"applied": "tags.a='x'"}, labels={"v": "1"})
    doc = config.to_json()
    assert doc["content"]["deviceContent"]["properties.desired.extFwInfo"] == {"version": 1}
    assert doc["metrics"] == {"queries": {"applied": "tags.a='x'"}}
    assert doc["schemaVersion"] == "1.0"
    assert Configuration.from_json(doc) == config


def test_duplicate_device_and_configuration_ids_are_refused():
    """Ids are unique within a hub."""
    hub = _hub(a={})
    hub.create_configuration(_config())
    with pytest.raises(ValueError, match="already registered"):
        hub.add_device("a")
    with pytest.raises(ValueError, match="already exists"):
        hub.create_configuration(_config())
