"""The cloud seam: merge-patch semantics, the reported-property vocabulary, the Azure
connection configuration, and the azure-iot-device adapter's mapping (with a fake client
and monkeypatched SDK factories: nothing connects anywhere)."""

import asyncio
import base64
import threading
from typing import Any

import pytest
from azure.iot.device import X509
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient
from azure.iot.device.exceptions import ConnectionFailedError
from azure.iot.device.provisioning.models.registration_result import (
    RegistrationResult,
    RegistrationState,
)

from agent.azure import AzureConnectionConfig, AzureIoTTwin, create_client
from agent.report import ErrorText, Report, Status, percent, to_reported
from agent.twin import Twin, TwinError, merge_patch

pytestmark = pytest.mark.sim

KEY = base64.b64encode(b"device-key-0123456789abcdef").decode()
CS = f"HostName=myhub.azure-devices.net;DeviceId=dev-a;SharedAccessKey={KEY}"


# --- merge patch ---------------------------------------------------------------------------


def test_merge_patch_merges_objects_key_by_key() -> None:
    """RFC 7386 section 2: an object in the patch merges into the target's object."""
    got = merge_patch({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}})
    assert got == {"a": {"x": 1, "y": 3}, "b": 1}


def test_merge_patch_null_deletes() -> None:
    """RFC 7386 section 2: null in the patch removes the member."""
    assert merge_patch({"a": 1, "b": 2}, {"a": None}) == {"b": 2}


def test_merge_patch_replaces_non_objects() -> None:
    """RFC 7386 section 2: a non-object value replaces the member, arrays included."""
    assert merge_patch({"a": [1, 2], "b": {"c": 1}}, {"a": [3], "b": 5}) == {"a": [3], "b": 5}


def test_merge_patch_leaves_its_arguments_alone() -> None:
    """The twin's stored state must not change through an alias of a patch."""
    target, patch = {"a": {"x": 1}}, {"a": {"y": 2}}
    merge_patch(target, patch)["a"]["x"] = 99
    assert target == {"a": {"x": 1}} and patch == {"a": {"y": 2}}


# --- reported properties ---------------------------------------------------------------


def test_downloading_report_uses_the_original_key_names() -> None:
    """Reference design, cloud contract: {"extFwInfo": {"Status": S, "Error": E}}; Progress
    and Downloaded are ours (issue 4)."""
    report = Report(Status.DOWNLOADING, target_version=4, progress=37, downloaded=388_000)
    assert to_reported(report) == {
        "extFwInfo": {
            "Status": "downloading",
            "Error": "None",
            "TargetVersion": 4,
            "Progress": 37,
            "Downloaded": 388_000,
            "Detail": None,
        }
    }


def test_version_is_reported_with_applied() -> None:
    """The original reports {"extFwInfo": {"Version": N}} after applied."""
    reported = to_reported(Report(Status.APPLIED, installed_version=4, target_version=4))
    assert reported["extFwInfo"]["Version"] == 4
    assert reported["extFwInfo"]["Status"] == "applied"


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.APPLIED])
def test_version_is_not_touched_by_other_statuses(status: Status) -> None:
    """Reported properties persist until overwritten: only applied writes Version, so it
    always reads as the last version applied (not deleted by a null either)."""
    error = (
        ErrorText.NONE
        if status in (Status.DOWNLOADING, Status.APPLYING)
        else (ErrorText.NETWORK_TIMEOUT)
    )
    assert "Version" not in to_reported(Report(status, error))["extFwInfo"]


def test_unset_extension_keys_are_null_to_clear_stale_values() -> None:
    """A reported patch merges (RFC 7386): null removes the previous job's Progress."""
    body = to_reported(Report(Status.ERROR, ErrorText.SHA256_VERIFY_FAIL))["extFwInfo"]
    assert body["Progress"] is None and body["Downloaded"] is None


def test_original_status_and_error_values_are_kept() -> None:
    """Reference design, cloud contract: the six statuses and six error texts, verbatim
    (IoT Hub configuration metrics count devices by these strings)."""
    assert [s.value for s in Status] == [
        "downloading",
        "interrupted",
        "applying",
        "applied",
        "error",
        "invalid",
    ]
    originals = {
        "SHA256 verify fail",
        "Http Response > 400",
        "Network Timeout",
        "MCU Download fail",
        "File operation fail",
        "None",
    }
    assert originals <= {e.value for e in ErrorText}


def test_report_detail_is_redacted() -> None:
    """Reported properties are readable by every operator: no signature may reach them."""
    report = Report(
        Status.INVALID, ErrorText.INVALID_INSTRUCTION, detail="url: https://a/b/c?sig=SECRET"
    )
    assert "SECRET" not in str(to_reported(report))


@pytest.mark.parametrize("status", [Status.INTERRUPTED, Status.ERROR, Status.INVALID])
def test_failure_status_needs_an_error_text(status: Status) -> None:
    """The original always pairs interrupted/error/invalid with an Error saying why."""
    with pytest.raises(ValueError, match="error must say why"):
        Report(status)


def test_progress_status_cannot_carry_an_error() -> None:
    """downloading with an Error would read as a failure to an operator's metrics query."""
    with pytest.raises(ValueError, match="error must be None"):
        Report(Status.DOWNLOADING, ErrorText.NETWORK_TIMEOUT)


def test_applied_needs_the_installed_version() -> None:
    """applied reports Version (reference design): a report without it is incomplete."""
    with pytest.raises(ValueError, match="installed_version"):
        Report(Status.APPLIED)


@pytest.mark.parametrize(
    ("field", "value"),
    [("progress", 101), ("progress", -1), ("downloaded", -5), ("target_version", 0)],
)
def test_report_rejects_out_of_range_numbers(field: str, value: int) -> None:
    """Progress is a percentage, Downloaded a byte count, TargetVersion > 0."""
    with pytest.raises(ValueError, match=field):
        Report(Status.DOWNLOADING, **{field: value})


def test_report_rejects_a_bool_count() -> None:
    """True is not a byte count."""
    with pytest.raises(ValueError, match="downloaded"):
        Report(Status.DOWNLOADING, downloaded=True)


def test_percent_rounds_down_so_100_means_complete() -> None:
    """Progress 100 only when every byte is in: 999 of 1000 is 99."""
    assert (percent(999, 1000), percent(1000, 1000), percent(0, 5)) == (99, 100, 0)


# --- AzureConnectionConfig -----------------------------------------------------------------


def test_config_accepts_a_device_connection_string() -> None:
    """The SDK's create_from_connection_string form (azure.md)."""
    assert AzureConnectionConfig(connection_string=CS).auth == "connection_string"


def test_config_needs_exactly_one_way_to_authenticate() -> None:
    """Connection string, DPS symmetric key, or DPS X.509: never none, never two."""
    with pytest.raises(ValueError, match="exactly one"):
        AzureConnectionConfig()
    with pytest.raises(ValueError, match="exactly one"):
        AzureConnectionConfig(connection_string=CS, symmetric_key=KEY)


@pytest.mark.parametrize("part", ["HostName", "DeviceId", "SharedAccessKey"])
def test_connection_string_missing_a_part_names_it(part: str) -> None:
    """A device connection string has HostName, DeviceId and SharedAccessKey."""
    cs = ";".join(p for p in CS.split(";") if not p.startswith(part + "="))
    with pytest.raises(ValueError, match=f"connection_string: has no {part}") as caught:
        AzureConnectionConfig(connection_string=cs)
    assert KEY not in str(caught.value)


def test_connection_string_key_must_be_base64_and_is_not_echoed() -> None:
    """The key signs SAS tokens (HMAC over a base64-decoded key); the error hides it."""
    with pytest.raises(ValueError, match="SharedAccessKey: is not a base64 key") as caught:
        AzureConnectionConfig(connection_string=CS.replace(KEY, "not*base64!"))
    assert "not*base64!" not in str(caught.value)


def test_module_connection_string_is_refused() -> None:
    """This agent is a device client; a ModuleId string would need IoTHubModuleClient."""
    with pytest.raises(ValueError, match="module"):
        AzureConnectionConfig(connection_string=CS + ";ModuleId=m")


def test_gateway_conflicting_with_connection_string_is_refused() -> None:
    """Two different gateways is a configuration mistake, not a choice to make silently."""
    with pytest.raises(ValueError, match="gateway_hostname"):
        AzureConnectionConfig(
            connection_string=CS + ";GatewayHostName=edge1", gateway_hostname="edge2"
        )


def test_dps_symmetric_key_needs_scope_and_registration_id() -> None:
    """DPS registration needs id_scope and registration_id (azure.md, DPS)."""
    with pytest.raises(ValueError, match="id_scope"):
        AzureConnectionConfig(registration_id="dev-a", symmetric_key=KEY)
    with pytest.raises(ValueError, match="registration_id"):
        AzureConnectionConfig(id_scope="0ne000", symmetric_key=KEY)


def test_dps_x509_needs_the_key_file() -> None:
    """An X.509 identity is a certificate and its private key."""
    with pytest.raises(ValueError, match="x509_key_file"):
        AzureConnectionConfig(id_scope="0ne000", registration_id="d", x509_cert_file="c.pem")


def test_dps_fields_cannot_go_with_a_connection_string() -> None:
    """A connection string already names the hub; a DPS scope beside it is a mistake."""
    with pytest.raises(ValueError, match="id_scope"):
        AzureConnectionConfig(connection_string=CS, id_scope="0ne000")


def test_gateway_hostname_must_be_a_host_not_a_url() -> None:
    """The SDK takes a host name for gateway_hostname; a URL would never resolve."""
    with pytest.raises(ValueError, match="gateway_hostname"):
        AzureConnectionConfig(connection_string=CS, gateway_hostname="https://edge")


def test_keep_alive_must_be_positive() -> None:
    """MQTT keep-alive is a positive number of seconds (MQTT 3.1.1 section 3.1.2.10)."""
    with pytest.raises(ValueError, match="keep_alive"):
        AzureConnectionConfig(connection_string=CS, keep_alive=0)


def test_config_repr_hides_secrets() -> None:
    """Configs end up in logs: no key, connection string or pass phrase in repr."""
    texts = [
        repr(AzureConnectionConfig(connection_string=CS)),
        repr(AzureConnectionConfig(id_scope="s", registration_id="r", symmetric_key=KEY)),
        repr(
            AzureConnectionConfig(
                id_scope="s",
                registration_id="r",
                x509_cert_file="c",
                x509_key_file="k",
                x509_pass_phrase="hunter2",
            )
        ),
    ]
    assert not any(KEY in t or "hunter2" in t for t in texts)


def test_config_is_frozen() -> None:
    """A configuration is a record: it cannot change after validation."""
    config = AzureConnectionConfig(connection_string=CS)
    with pytest.raises(AttributeError):
        config.gateway_hostname = "x"  # type: ignore[misc]


# --- SDK factory selection ------------------------------------------------------------------


class Recorder:
    """Stands in for an SDK factory classmethod and records how it was called."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.calls: list[tuple[tuple, dict]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return self.result


class FakeProvisioning:
    def __init__(self, result: RegistrationResult) -> None:
        self.result = result

    async def register(self) -> RegistrationResult:
        return self.result


ASSIGNED = RegistrationResult(
    "op-1", "assigned", RegistrationState(device_id="dev-7", assigned_hub="hub7.example.net")
)


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> dict[str, Recorder]:
    """Every SDK factory replaced by a recorder; the real ones would open sockets on use."""
    hub = object()
    recorders = {
        "cs": Recorder(hub),
        "hub_key": Recorder(hub),
        "hub_x509": Recorder(hub),
        "dps_key": Recorder(FakeProvisioning(ASSIGNED)),
        "dps_x509": Recorder(FakeProvisioning(ASSIGNED)),
    }
    for cls, name, key in [
        (IoTHubDeviceClient, "create_from_connection_string", "cs"),
        (IoTHubDeviceClient, "create_from_symmetric_key", "hub_key"),
        (IoTHubDeviceClient, "create_from_x509_certificate", "hub_x509"),
        (ProvisioningDeviceClient, "create_from_symmetric_key", "dps_key"),
        (ProvisioningDeviceClient, "create_from_x509_certificate", "dps_x509"),
    ]:
        monkeypatch.setattr(cls, name, recorders[key])
    return recorders


def _called(sdk: dict[str, Recorder]) -> set[str]:
    return {name for name, rec in sdk.items() if rec.calls}


async def test_connection_string_builds_from_connection_string(sdk: dict[str, Recorder]) -> None:
    """azure.md: IoTHubDeviceClient.create_from_connection_string(cs, **kw)."""
    client = await create_client(AzureConnectionConfig(connection_string=CS))
    assert client is sdk["cs"].result
    assert _called(sdk) == {"cs"}
    args, kwargs = sdk["cs"].calls[0]
    assert args == (CS,) and kwargs["connection_retry"] is True


async def test_gateway_goes_into_the_connection_string(sdk: dict[str, Recorder]) -> None:
    """azure.md: create_from_connection_string refuses a gateway_hostname kwarg and honours
    GatewayHostName= in the string."""
    await create_client(AzureConnectionConfig(connection_string=CS, gateway_hostname="localhost"))
    args, kwargs = sdk["cs"].calls[0]
    assert args == (CS + ";GatewayHostName=localhost",)
    assert "gateway_hostname" not in kwargs


async def test_certificate_is_configuration_read_from_a_pem_file(
    sdk: dict[str, Recorder], tmp_path: Any
) -> None:
    """Weakness #10: the trusted root is configuration (server_verification_cert, PEM text)."""
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    path = tmp_path / "root.pem"
    path.write_text(pem)
    config = AzureConnectionConfig(connection_string=CS, server_verification_cert=str(path))
    await create_client(config)
    assert sdk["cs"].calls[0][1]["server_verification_cert"] == pem


async def test_unreadable_certificate_names_the_field(
    sdk: dict[str, Recorder], tmp_path: Any
) -> None:
    """A missing root file is a configuration error naming server_verification_cert."""
    config = AzureConnectionConfig(
        connection_string=CS, server_verification_cert=str(tmp_path / "absent.pem")
    )
    with pytest.raises(ValueError, match="server_verification_cert"):
        await create_client(config)
    assert not _called(sdk)


async def test_dps_symmetric_key_registers_then_builds_for_the_assigned_hub(
    sdk: dict[str, Recorder],
) -> None:
    """azure.md, DPS: register, then create_from_symmetric_key on assigned_hub/device_id."""
    config = AzureConnectionConfig(
        id_scope="0ne0001", registration_id="reg-7", symmetric_key=KEY, gateway_hostname="gw"
    )
    await create_client(config)
    assert _called(sdk) == {"dps_key", "hub_key"}
    dps_kwargs = sdk["dps_key"].calls[0][1]
    assert dps_kwargs["provisioning_host"] == "global.azure-devices-provisioning.net"
    assert (dps_kwargs["registration_id"], dps_kwargs["id_scope"]) == ("reg-7", "0ne0001")
    assert dps_kwargs["symmetric_key"] == KEY and dps_kwargs["gateway_hostname"] == "gw"
    hub_kwargs = sdk["hub_key"].calls[0][1]
    assert (hub_kwargs["hostname"], hub_kwargs["device_id"]) == ("hub7.example.net", "dev-7")
    assert hub_kwargs["symmetric_key"] == KEY and hub_kwargs["gateway_hostname"] == "gw"


async def test_dps_x509_registers_then_builds_for_the_assigned_hub(
    sdk: dict[str, Recorder],
) -> None:
    """azure.md, DPS with X.509: create_from_x509_certificate for DPS, then for the hub,
    with the same X509 identity."""
    config = AzureConnectionConfig(
        id_scope="0ne0001",
        registration_id="reg-7",
        x509_cert_file="dev.pem",
        x509_key_file="dev.key",
        x509_pass_phrase="pw",
    )
    await create_client(config)
    assert _called(sdk) == {"dps_x509", "hub_x509"}
    x509 = sdk["dps_x509"].calls[0][1]["x509"]
    assert isinstance(x509, X509)
    assert (x509.certificate_file, x509.key_file, x509.pass_phrase) == ("dev.pem", "dev.key", "pw")
    hub_kwargs = sdk["hub_x509"].calls[0][1]
    assert hub_kwargs["x509"] is x509
    assert (hub_kwargs["hostname"], hub_kwargs["device_id"]) == ("hub7.example.net", "dev-7")


async def test_dps_not_assigning_is_a_twin_error(
    sdk: dict[str, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DPS answers "assigned" or a failure status; no hub client is built on failure."""
    sdk["dps_key"].result = FakeProvisioning(RegistrationResult("op", "failed", None))
    config = AzureConnectionConfig(id_scope="s", registration_id="r", symmetric_key=KEY)
    with pytest.raises(TwinError, match="failed"):
        await create_client(config)
    assert not sdk["hub_key"].calls


# --- AzureIoTTwin over a fake client -----------------------------------------------------


class FakeClient:
    """The subset of azure.iot.device.aio.IoTHubDeviceClient the adapter uses."""

    def __init__(self, twin: dict[str, Any]) -> None:
        self.twin = twin
        self.calls: list[str] = []
        self.reported: list[dict[str, Any]] = []
        self.on_twin_desired_properties_patch_received: Any = None
        self.fail: Exception | None = None

    async def connect(self) -> None:
        self.calls.append("connect")
        if self.fail:
            raise self.fail

    async def get_twin(self) -> dict[str, Any]:
        self.calls.append("get_twin")
        return self.twin

    async def patch_twin_reported_properties(self, patch: dict[str, Any]) -> None:
        self.calls.append("patch")
        if self.fail:
            raise self.fail
        self.reported.append(patch)

    async def shutdown(self) -> None:
        self.calls.append("shutdown")


TWIN = {"desired": {"extFwInfo": {"version": 2}, "$version": 5}, "reported": {"$version": 1}}


def make_twin(client: FakeClient) -> tuple[AzureIoTTwin, list[AzureConnectionConfig]]:
    seen: list[AzureConnectionConfig] = []

    async def factory(config: AzureConnectionConfig) -> FakeClient:
        seen.append(config)
        return client

    config = AzureConnectionConfig(
        connection_string=CS, retry_interval_s=0.001, operation_timeout_s=0.05
    )
    return AzureIoTTwin(config, client_factory=factory), seen


async def test_adapter_satisfies_the_twin_protocol() -> None:
    """The agent depends on agent.twin.Twin only."""
    twin, _ = make_twin(FakeClient(TWIN))
    assert isinstance(twin, Twin)


async def test_connect_builds_the_client_and_registers_the_patch_handler() -> None:
    """The SDK delivers patches through on_twin_desired_properties_patch_received (azure.md)."""
    client = FakeClient(TWIN)
    twin, seen = make_twin(client)
    await twin.connect()
    assert client.calls == ["connect"] and len(seen) == 1
    assert callable(client.on_twin_desired_properties_patch_received)
    await twin.close()


async def test_get_desired_returns_the_desired_section() -> None:
    """get_twin returns {"desired": {..., "$version"}, "reported": {...}} (azure.md)."""
    twin, _ = make_twin(FakeClient(TWIN))
    await twin.connect()
    assert await twin.get_desired() == TWIN["desired"]
    await twin.close()


async def test_report_maps_to_patch_twin_reported_properties() -> None:
    """Reported patches go through patch_twin_reported_properties unchanged (azure.md)."""
    client = FakeClient(TWIN)
    twin, _ = make_twin(client)
    await twin.connect()
    patch = to_reported(Report(Status.DOWNLOADING, progress=5))
    await twin.report(patch)
    assert client.reported == [patch]
    await twin.close()


async def test_patch_from_an_sdk_thread_reaches_the_handler_on_the_agents_loop() -> None:
    """The SDK runs a plain-function handler in a worker thread pool (azure-iot-device
    async_handler_manager); the agent's handler must run on its own event loop."""
    client = FakeClient(TWIN)
    twin, _ = make_twin(client)
    got: list[tuple[dict, int]] = []
    done = asyncio.Event()

    def handler(patch: dict) -> None:
        got.append((patch, threading.get_ident()))
        done.set()

    twin.on_desired_patch(handler)
    await twin.connect()
    await twin.get_desired()
    sdk_thread = threading.Thread(
        target=client.on_twin_desired_properties_patch_received, args=({"x": 1, "$version": 6},)
    )
    sdk_thread.start()
    sdk_thread.join()
    await asyncio.wait_for(done.wait(), 10)
    assert got == [({"x": 1, "$version": 6}, threading.get_ident())]
    await twin.close()


async def test_stale_or_repeated_patch_versions_are_dropped() -> None:
    """The SDK's 4-thread handler pool can reorder patches, and its reconnect logic
    re-sends the desired section: only a newer $version than already seen is delivered."""
    client = FakeClient(TWIN)
    twin, _ = make_twin(client)
    got: list[int] = []
    twin.on_desired_patch(lambda patch: got.append(patch["$version"]))
    await twin.connect()
    await twin.get_desired()  # $version 5
    send = client.on_twin_desired_properties_patch_received
    for version in (5, 6, 5, 6, 7):
        send({"$version": version})
    for _ in range(3):
        await asyncio.sleep(0)
    assert got == [6, 7]
    await twin.close()


async def test_connect_failures_are_retried_and_logged_without_the_key(caplog) -> None:
    """The hub may be down when the agent boots, and the agent has no retry around
    connect: the adapter retries (every retry_interval_s) and logs each failure redacted."""
    client = FakeClient(TWIN)
    client.fail = ConnectionFailedError(f"refused with SharedAccessKey={KEY}")
    twin, _ = make_twin(client)
    connecting = asyncio.ensure_future(twin.connect())
    while client.calls.count("connect") < 3:
        await asyncio.sleep(0.001)
    assert not connecting.done()
    client.fail = None
    await asyncio.wait_for(connecting, 5)
    assert KEY not in caplog.text and "SharedAccessKey=REDACTED" in caplog.text
    await twin.close()


async def test_a_failing_report_is_retried_until_it_goes_through() -> None:
    """The agent drops a report whose send raises, so the adapter keeps it: sent again
    until the cloud takes it (reports made while offline arrive, in order)."""
    client = FakeClient(TWIN)
    twin, _ = make_twin(client)
    await twin.connect()
    client.fail = ConnectionFailedError("dropped")
    sending = asyncio.ensure_future(twin.report({"extFwInfo": {"Status": "downloading"}}))
    while client.calls.count("patch") < 3:
        await asyncio.sleep(0.001)
    client.fail = None
    await asyncio.wait_for(sending, 5)
    assert client.reported == [{"extFwInfo": {"Status": "downloading"}}]
    await twin.close()


async def test_a_report_whose_answer_never_comes_is_sent_again() -> None:
    """The SDK waits forever for a lost twin response; each attempt is bounded by
    operation_timeout_s and the patch sent again."""
    client = FakeClient(TWIN)
    hung = asyncio.Event()
    real_patch = client.patch_twin_reported_properties

    async def patch_once_hung(patch: dict[str, Any]) -> None:
        if not hung.is_set():
            hung.set()
            client.calls.append("patch")
            await asyncio.Event().wait()
        await real_patch(patch)

    client.patch_twin_reported_properties = patch_once_hung  # type: ignore[method-assign]
    twin, _ = make_twin(client)
    await twin.connect()
    await asyncio.wait_for(twin.report({"a": 1}), 5)
    assert client.calls.count("patch") == 2 and client.reported == [{"a": 1}]
    await twin.close()


async def test_close_ends_the_retries_with_a_twin_error() -> None:
    client = FakeClient(TWIN)
    twin, _ = make_twin(client)
    await twin.connect()
    client.fail = ConnectionFailedError("dropped")
    sending = asyncio.ensure_future(twin.report({"a": 1}))
    await asyncio.sleep(0.01)
    await twin.close()
    with pytest.raises(TwinError, match="closed"):
        await asyncio.wait_for(sending, 5)


async def test_a_skipped_desired_version_delivers_the_whole_section() -> None:
    """A patch that skips a $version (an earlier one is late: the hub's delay_desired
    fault) must not lose the earlier change: the adapter GETs the twin and hands over the
    whole desired section; the late patch is then dropped as stale."""
    client = FakeClient(TWIN)  # desired $version 5
    twin, _ = make_twin(client)
    got: list[dict] = []
    twin.on_desired_patch(got.append)
    await twin.connect()
    await twin.get_desired()
    client.twin = {"desired": {"a": 6, "b": 7, "$version": 7}, "reported": {}}
    send = client.on_twin_desired_properties_patch_received
    send({"b": 7, "$version": 7})
    for _ in range(20):
        await asyncio.sleep(0)
    send({"a": 6, "$version": 6})
    for _ in range(5):
        await asyncio.sleep(0)
    assert got == [{"a": 6, "b": 7, "$version": 7}]
    await twin.close()


async def test_calls_before_connect_are_twin_errors() -> None:
    """Using the twin before connect is reported as not connected, not AttributeError."""
    twin, _ = make_twin(FakeClient(TWIN))
    with pytest.raises(TwinError, match="not connected"):
        await twin.get_desired()


async def test_close_shuts_the_client_down_once() -> None:
    """shutdown releases the SDK's threads and sockets; a second close is a no-op."""
    client = FakeClient(TWIN)
    twin, _ = make_twin(client)
    await twin.connect()
    await twin.close()
    await twin.close()
    assert client.calls.count("shutdown") == 1
