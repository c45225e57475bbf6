"""DPS registration with the real ProvisioningDeviceClient, and the service REST API with
the real azure-iot-hub SDK (IoTHubConfigurationManager, IoTHubRegistryManager)."""

import pytest
from azure.iot.device import X509, ProvisioningDeviceClient
from azure.iot.device.exceptions import CredentialError
from azure.iot.hub import IoTHubConfigurationManager, IoTHubRegistryManager
from azure.iot.hub.models import (
    Configuration,
    ConfigurationContent,
    ConfigurationMetrics,
    QuerySpecification,
    Twin,
    TwinProperties,
)
from msrest.exceptions import HttpOperationError

from sim.cloud.iothub import Enrollment
from sim.cloud.iothub.sas import derive_device_key, new_key

pytestmark = pytest.mark.sim

TAGS = {"productType": "washer", "deviceGroup": "field_test"}


def _register(hub, registration_id, **credentials):
    if "x509" in credentials:
        client = ProvisioningDeviceClient.create_from_x509_certificate(
            provisioning_host=hub.host,
            registration_id=registration_id,
            id_scope=hub.id_scope,
            server_verification_cert=hub.ca_cert.read_text(),
            **credentials,
        )
    else:
        client = ProvisioningDeviceClient.create_from_symmetric_key(
            provisioning_host=hub.host,
            registration_id=registration_id,
            id_scope=hub.id_scope,
            server_verification_cert=hub.ca_cert.read_text(),
            **credentials,
        )
    return client.register()  # it disconnects when done


def test_group_enrollment_with_a_derived_key_assigns_the_device_with_initial_tags(iothub):
    """DPS symmetric key attestation: a group device signs with HMAC(group key, reg id);
    it is created in the hub with the group's initial tags, device id = registration id."""
    group_key = new_key()
    iothub.enroll(Enrollment("washers", group=True, primary_key=group_key, initial_tags=TAGS))
    result = _register(iothub, "gw-07", symmetric_key=derive_device_key(group_key, "gw-07"))
    assert result.status == "assigned"
    assert result.registration_state.assigned_hub == iothub.hostname
    assert result.registration_state.device_id == "gw-07"
    assert iothub.twin("gw-07")["tags"] == TAGS
    with pytest.raises(CredentialError):  # the group key itself is not a device key
        _register(iothub, "gw-08", symmetric_key=group_key)


def test_individual_enrollment_and_a_second_registration_keeps_the_twin(iothub):
    """An individual enrollment's own key registers; registering again is a
    reprovisioning that keeps the twin (migrate data, the default policy)."""
    key = new_key()
    iothub.enroll(Enrollment("solo", primary_key=key, initial_tags={"deviceGroup": "pilot"}))
    assert _register(iothub, "solo", symmetric_key=key).status == "assigned"
    iothub.call(lambda h: h.set_tags("solo", {"deviceGroup": "moved"}))
    again = _register(iothub, "solo", symmetric_key=key)
    assert again.registration_state.sub_status == "reprovisionedToInitialAssignment"
    assert iothub.twin("solo")["tags"] == {"deviceGroup": "moved"}


def test_x509_group_enrollment_by_ca(iothub, tmp_path):
    """DPS X.509 CA attestation: a certificate with CN = registration id signed by the
    group's CA registers; the hub device authenticates by that CA."""
    iothub.enroll(Enrollment("tenant", group=True, ca_pem=iothub.device_ca.cert_pem))
    cert, key = iothub.device_ca.issue_client("gw-x1").write(tmp_path, "gw-x1")
    result = _register(iothub, "gw-x1", x509=X509(str(cert), str(key)))
    assert result.status == "assigned"
    assert iothub.twin("gw-x1")["authenticationType"] == "certificateAuthority"


def _configuration(cid, priority, content, condition="tags.productType='washer'"):
    return Configuration(
        id=cid,
        schema_version="1.0",
        labels={"by": "test"},
        content=ConfigurationContent(device_content={"properties.desired.extFwInfo": content}),
        target_condition=condition,
        priority=priority,
        metrics=ConfigurationMetrics(
            queries={"reported": "SELECT deviceId FROM devices WHERE properties.reported.x='y'"}
        ),
    )


def test_configuration_crud_etags_and_evaluation_at_creation(iothub):
    """Configurations: created and evaluated at once (highest priority wins, the most
    recent on a tie), systemMetrics counted; an update needs the current etag; content
    cannot change; a second create of the same id conflicts; delete removes it."""
    for i in range(3):
        iothub.add_device(f"w{i}", tags={"productType": "washer"})
    iothub.add_device("d0", tags={"productType": "dryer"})
    cm = IoTHubConfigurationManager.from_connection_string(iothub.service_connection_string)
    low = cm.create_configuration(_configuration("low", 1, {"version": 1}))
    assert low.system_metrics.results == {"targetedCount": 3, "appliedCount": 3}
    cm.create_configuration(_configuration("tie-a", 5, {"version": 2}))
    cm.create_configuration(_configuration("tie-b", 5, {"version": 3}))
    assert iothub.twin("w0")["properties"]["desired"]["extFwInfo"] == {"version": 3}
    assert "extFwInfo" not in iothub.twin("d0")["properties"]["desired"]
    got = cm.get_configuration("tie-b")
    assert got.system_metrics.results == {"targetedCount": 3, "appliedCount": 3}
    assert cm.get_configuration("low").system_metrics.results["appliedCount"] == 0
    got.priority = 9
    got.labels = {"by": "update"}
    updated = cm.update_configuration(got, got.etag)
    assert updated.priority == 9 and updated.etag != got.etag
    with pytest.raises(HttpOperationError, match="Precondition Failed"):
        cm.update_configuration(got, got.etag)  # stale etag
    updated.content = ConfigurationContent(device_content={"properties.desired.extFwInfo": {}})
    with pytest.raises(HttpOperationError, match="Bad Request"):
        cm.update_configuration(updated, "*")
    with pytest.raises(HttpOperationError, match="Conflict"):
        cm.create_configuration(_configuration("low", 1, {"version": 1}))
    cm.delete_configuration("low")
    assert sorted(c.id for c in cm.get_configurations()) == ["tie-a", "tie-b"]


def test_registry_devices_twins_and_query(iothub):
    """Device create/get/delete with keys; twin update merges tags and desired and pushes
    desired; If-Match on twins; SELECT * / deviceId FROM devices WHERE ..."""
    rm = IoTHubRegistryManager.from_connection_string(iothub.service_connection_string)
    key = new_key()
    created = rm.create_device_with_sas("svc-dev", key, new_key(), "enabled")
    assert created.authentication.symmetric_key.primary_key == key
    assert rm.get_device("svc-dev").device_id == "svc-dev"
    twin = rm.get_twin("svc-dev")
    patch = Twin(tags=TAGS, properties=TwinProperties(desired={"extFwInfo": {"version": 4}}))
    updated = rm.update_twin("svc-dev", patch, twin.etag)
    assert updated.tags == TAGS and updated.properties.desired["extFwInfo"] == {"version": 4}
    with pytest.raises(HttpOperationError, match="Precondition Failed"):
        rm.update_twin("svc-dev", Twin(tags={"a": "b"}), twin.etag)
    iothub.add_device("other", tags={"productType": "dryer"})
    query = "SELECT * FROM devices WHERE tags.productType='washer'"
    found = rm.query_iot_hub(QuerySpecification(query=query))
    assert [t.device_id for t in found.items] == ["svc-dev"]
    rm.delete_device("svc-dev")
    with pytest.raises(HttpOperationError, match="Not Found"):
        rm.get_device("svc-dev")


def test_a_wrong_service_key_is_refused_with_401(iothub):
    """The service endpoint checks the shared access policy's signature."""
    host_and_policy = iothub.service_connection_string.split(";SharedAccessKey=")[0]
    wrong = f"{host_and_policy};SharedAccessKey={new_key()}"
    cm = IoTHubConfigurationManager.from_connection_string(wrong)
    with pytest.raises(HttpOperationError, match="Unauthorized"):
        cm.get_configurations()
