"""``python -m sim hub --state DIR`` as a user runs it: a process whose first line of
standard output is the hub's JSON object; with ``--state`` the registry, twins and
configurations survive a restart (issue 10, "The local IoT Hub"), read back with the
real azure-iot-hub and azure-iot-device SDKs."""

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from azure.iot.device import IoTHubDeviceClient
from azure.iot.hub import IoTHubConfigurationManager, IoTHubRegistryManager
from azure.iot.hub.models import (
    Configuration,
    ConfigurationContent,
    ConfigurationMetrics,
    Twin,
    TwinProperties,
)

from sim.cloud.iothub import free_loopback_address
from sim.cloud.iothub.sas import new_key

pytestmark = pytest.mark.sim

ROOT = Path(__file__).resolve().parents[2]
TAGS = {"productType": "washer", "deviceGroup": "field_test"}
FIRST_LINE_S = 30.0


class HubProcess:
    """``python -m sim hub`` in a child process: its JSON line, and SIGTERM to stop."""

    def __init__(self, host: str, state: Path) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sim", "hub", "--host", host, "--state", str(state),
             "--group-enrollment", "washers", "--initial-tags", json.dumps(TAGS)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        ready, _, _ = select.select([self.process.stdout], [], [], FIRST_LINE_S)
        if not ready:
            self.stop()
            raise TimeoutError(f"no JSON line within {FIRST_LINE_S} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the hub exited: {self.process.communicate()[1][-2000:]}")
        self.info = json.loads(line)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=30)
        assert "Traceback" not in err, err
        return self.process.returncode


def _configuration() -> Configuration:
    return Configuration(
        id="ota_v7",
        schema_version="1.0",
        labels={"by": "test"},
        content=ConfigurationContent(
            device_content={"properties.desired.extFwInfo": {"version": 7, "size": 1}}
        ),
        target_condition="tags.productType='washer' and tags.deviceGroup='field_test'",
        priority=7,
        metrics=ConfigurationMetrics(
            queries={
                "applied": "SELECT deviceId FROM devices WHERE properties.reported.v = 'seven'"
            }
        ),
    )


def test_state_keeps_registry_twins_and_configurations_across_a_restart(tmp_path, monkeypatch):
    host = free_loopback_address()
    state = tmp_path / "hub-state"
    key = new_key()

    hub = HubProcess(host, state)
    try:
        info = hub.info
        for name in ("service_connection_string", "ca_cert", "gateway_host", "id_scope"):
            assert info[name], name
        assert info["provisioning_host"] == info["gateway_host"] == host
        assert info["state_dir"] == str(state)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", info["ca_cert"])
        rm = IoTHubRegistryManager.from_connection_string(info["service_connection_string"])
        rm.create_device_with_sas("gw-kept", key, new_key(), "enabled")
        patch = Twin(tags=TAGS, properties=TwinProperties(desired={"note": "by the operator"}))
        rm.update_twin("gw-kept", patch, "*")
        cm = IoTHubConfigurationManager.from_connection_string(info["service_connection_string"])
        cm.create_configuration(_configuration())
        device = IoTHubDeviceClient.create_from_connection_string(
            f"HostName={info['hub_hostname']};DeviceId=gw-kept;SharedAccessKey={key};"
            f"GatewayHostName={host}",
            server_verification_cert=Path(info["ca_cert"]).read_text(),
            connection_retry=False,
        )
        try:
            device.patch_twin_reported_properties({"v": "seven"})
        finally:
            device.shutdown()
        before = rm.get_twin("gw-kept")
    finally:
        assert hub.stop() == 0

    again = HubProcess(host, state)
    try:
        info2 = again.info
        assert info2["id_scope"] == info["id_scope"]
        assert info2["group_enrollments"] == info["group_enrollments"]  # the same group key
        assert Path(info2["ca_cert"]).read_text() == Path(info["ca_cert"]).read_text()
        policy = info["service_connection_string"].rsplit("SharedAccessKey=", 1)[1]
        assert info2["service_connection_string"].endswith(f"SharedAccessKey={policy}")
        rm = IoTHubRegistryManager.from_connection_string(info2["service_connection_string"])
        assert rm.get_device("gw-kept").authentication.symmetric_key.primary_key == key
        twin = rm.get_twin("gw-kept")
        assert twin.tags == TAGS
        assert twin.properties.desired["note"] == "by the operator"
        assert twin.properties.desired["extFwInfo"] == {"version": 7, "size": 1}
        assert twin.properties.desired["$version"] == before.properties.desired["$version"]
        assert twin.properties.reported["v"] == "seven"
        cm = IoTHubConfigurationManager.from_connection_string(info2["service_connection_string"])
        kept = cm.get_configuration("ota_v7")
        assert kept.priority == 7 and kept.target_condition == _configuration().target_condition
        assert kept.content.device_content == _configuration().content.device_content
        assert kept.metrics.results["applied"] == 1
        assert kept.system_metrics.results == {"targetedCount": 1, "appliedCount": 1}
        device = IoTHubDeviceClient.create_from_connection_string(
            f"HostName={info2['hub_hostname']};DeviceId=gw-kept;SharedAccessKey={key};"
            f"GatewayHostName={host}",
            server_verification_cert=Path(info2["ca_cert"]).read_text(),
            connection_retry=False,
        )
        try:
            assert device.get_twin()["desired"]["extFwInfo"]["version"] == 7
        finally:
            device.shutdown()
    finally:
        assert again.stop() == 0


def test_without_state_a_restart_starts_empty(tmp_path, monkeypatch):
    """The contrast that shows the first test measures --state: a hub without it forgets."""
    host = free_loopback_address()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for attempt in range(2):
        process = subprocess.Popen(
            [sys.executable, "-m", "sim", "hub", "--host", host],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ready, _, _ = select.select([process.stdout], [], [], FIRST_LINE_S)
            assert ready
            info = json.loads(process.stdout.readline())
            assert info["state_dir"] is None
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", info["ca_cert"])
            rm = IoTHubRegistryManager.from_connection_string(info["service_connection_string"])
            if attempt == 0:
                rm.create_device_with_sas("gw-gone", new_key(), new_key(), "enabled")
            else:
                assert [d.device_id for d in rm.get_devices()] == []
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
