"""The operator's tool (``python -m deploy ota``) against the blob server over loopback.

Reference design, "Operator tooling": ``ota.py FILE VERSION PRODUCT GROUP [-c CONTAINER]
[-d DAYS]`` uploads the blob, signs a SAS for DAYS (365 by default; here read-only and
for the one blob, named by version and hash), computes SHA-256 (upper case) and size,
and creates the configuration ``ota_v{V}`` with priority V and target condition
``tags.productType='{P}' AND tags.deviceGroup='{G}'``. The CLI runs in a worker thread
(its own ``asyncio.run``) while the blob server serves on the test's loop.
"""

import asyncio
import hashlib
import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import aiohttp
import pytest

from agent.hosts import LOOPBACK_HOSTS
from agent.instruction import parse_instruction
from deploy.ota import DeployError, Release, main, publish
from sim.cloud.azurite import Azurite, find_azurite
from sim.cloud.blobserver import BlobServer
from sim.cloud.hub import Configuration, Hub

pytestmark = pytest.mark.sim

IMAGE = random.Random(14).randbytes(70_000)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def server():
    async with BlobServer() as srv:
        yield srv


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "mcu.bin"
    path.write_bytes(IMAGE)
    return path


async def _ota(*argv: str) -> int:
    return await asyncio.to_thread(main, [str(a) for a in argv])


def _ext_fw_info(config_json: Path) -> dict:
    config = Configuration.from_json(json.loads(config_json.read_text()))
    return config.content["properties.desired.extFwInfo"]


async def _get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


async def test_ota_configuration_sas_downloads_the_exact_image(server, image_file, tmp_path):
    """The configuration's url + '?' + sas fetches the uploaded image, and its sha256
    (upper case) and size describe it (reference design, cloud contract)."""
    out = tmp_path / "ota_v7.json"
    status = await _ota(
        image_file, 7, "washer", "field_test", "--storage", server.connection_string,
        "--hub-json", out,
    )  # fmt: skip
    assert status == 0
    info = _ext_fw_info(out)
    code, body = await _get(f"{info['url']}?{info['sas']}")
    assert code == 200
    assert body == IMAGE
    assert info["sha256"] == hashlib.sha256(body).hexdigest().upper()
    assert info["size"] == len(body)
    assert info["version"] == 7


async def test_ota_configuration_has_id_priority_and_target_of_ota_py(server, image_file, tmp_path):
    """id ``ota_v{V}``, priority V, target ``tags.productType='{P}' AND
    tags.deviceGroup='{G}'``, metrics counting by reported extFwInfo.Status."""
    out = tmp_path / "c.json"
    await _ota(
        image_file, 5, "washer", "lab", "--storage", server.connection_string, "--hub-json", out
    )
    doc = json.loads(out.read_text())
    assert doc["id"] == "ota_v5"
    assert doc["priority"] == 5
    assert doc["targetCondition"] == "tags.productType='washer' AND tags.deviceGroup='lab'"
    assert "properties.reported.extFwInfo.Status='applied'" in doc["metrics"]["queries"]["applied"]


async def test_the_instruction_it_publishes_is_one_the_agent_accepts(server, image_file, tmp_path):
    """The content is exactly the desired ``extFwInfo`` the agent parses (all five fields)."""
    out = tmp_path / "c.json"
    await _ota(
        image_file, 3, "washer", "lab", "--storage", server.connection_string, "--hub-json", out
    )
    instruction = parse_instruction(
        {"extFwInfo": _ext_fw_info(out)}, allow_http_loopback=True, storage_hosts=LOOPBACK_HOSTS
    )
    assert instruction is not None
    assert (instruction.version, instruction.size) == (3, len(IMAGE))
    assert instruction.sha256 == hashlib.sha256(IMAGE).digest()


async def test_blob_sas_is_read_only_and_scoped_to_the_blob(server, image_file, tmp_path):
    """Fixed against ota.py (which signed read + list on the whole container): a service
    SAS for the one blob (sr=b) with read only (sp=r), expiring after DAYS; it cannot
    list the container."""
    out = tmp_path / "c.json"
    await _ota(
        image_file, 1, "washer", "lab", "-d", 30, "--storage", server.connection_string,
        "--hub-json", out,
    )  # fmt: skip
    info = _ext_fw_info(out)
    sas = parse_qs(info["sas"])
    assert sas["sr"] == ["b"]
    assert sas["sp"] == ["r"]
    expiry = datetime.fromisoformat(sas["se"][0].replace("Z", "+00:00"))
    assert abs(expiry - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    container = info["url"].rsplit("/", 1)[0]
    code, _ = await _get(f"{container}?restype=container&comp=list&{info['sas']}")
    assert code == 403


async def test_every_version_gets_its_own_blob_named_by_version_and_hash(
    server, image_file, tmp_path
):
    """Fixed against ota.py (one name overwritten): ``mcu-v{V}-{sha[:12]}.bin``, so a
    device resuming version 1's download never receives version 2's bytes."""
    await _ota(image_file, 1, "washer", "lab", "--storage", server.connection_string,
               "--hub-json", tmp_path / "1.json")  # fmt: skip
    newer = random.Random(15).randbytes(10_000)
    image_file.write_bytes(newer)
    await _ota(image_file, 2, "washer", "lab", "--storage", server.connection_string,
               "--hub-json", tmp_path / "2.json")  # fmt: skip
    first, second = _ext_fw_info(tmp_path / "1.json"), _ext_fw_info(tmp_path / "2.json")
    sha = hashlib.sha256(newer).hexdigest()[:12]
    assert second["url"].endswith(f"/ota/mcu-v2-{sha}.bin") and first["url"] != second["url"]
    assert await _get(f"{second['url']}?{second['sas']}") == (200, newer)
    assert await _get(f"{first['url']}?{first['sas']}") == (200, IMAGE)


async def test_dry_run_uploads_nothing(server, image_file, capsys):
    """--dry-run prints what it would do (SAS redacted) and writes nothing."""
    assert await _ota(image_file, 1, "washer", "lab", "--storage",
                      server.connection_string, "--dry-run") == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "would upload" in out and "dry run: nothing was uploaded" in out
    assert "sig=REDACTED" in out
    assert not any(e.method == "PUT" for e in server.events)


async def test_a_lower_version_is_refused_as_a_rollback(server):
    """VERSION must exceed every version deployed to the product."""
    hub = Hub()
    await publish(Release(image=IMAGE, version=3, product="washer", group="a"),
                  storage=server.connection_string, hub=hub)  # fmt: skip
    for version in (3, 2):
        with pytest.raises(DeployError, match="rollback refused"):
            await publish(Release(image=IMAGE, version=version, product="washer", group="b"),
                          storage=server.connection_string, hub=hub)  # fmt: skip
    await publish(Release(image=IMAGE, version=1, product="dryer", group="a"),
                  storage=server.connection_string, hub=hub)  # fmt: skip


async def test_output_never_shows_the_sas_signature(server, image_file, tmp_path, capsys):
    """A SAS is a bearer secret (Azure "Create a service SAS"): printed output redacts
    ``sig``, both with --hub-json and when the configuration is printed instead."""
    out = tmp_path / "c.json"
    await _ota(
        image_file, 1, "washer", "lab", "--storage", server.connection_string, "--hub-json", out
    )
    await _ota(image_file, 2, "washer", "lab", "--storage", server.connection_string)
    signature = parse_qs(_ext_fw_info(out)["sas"])["sig"][0]
    printed = capsys.readouterr()
    assert signature not in printed.out + printed.err
    assert printed.out.count("sig=REDACTED") == 3  # the sas line of each run, the printed JSON


def test_version_zero_is_refused_with_a_clear_error(image_file):
    """ "VERSION: Version of the file, must > 0" (ota.py usage); checked before any upload,
    here through ``python -m sim ota`` as an operator runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "sim", "ota", str(image_file), "0", "washer", "lab",
         "--storage", "UseDevelopmentStorage=true"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "version must be an integer > 0, got 0" in result.stderr


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("version", -1, "version must be an integer > 0"),
        ("days", 0, "days must be an integer > 0"),
        ("product", "wash'er", "product must be a non-empty string without quotes"),
        ("image", b"", "image must be non-empty"),
    ],
)
def test_release_refuses_a_bad_field_naming_it(field, value, named):
    """Bad input is refused before anything is uploaded, naming the field."""
    fields = {"image": IMAGE, "version": 1, "product": "washer", "group": "lab"}
    Release(**fields)  # the baseline is valid
    with pytest.raises(ValueError, match=named):
        Release(**{**fields, field: value})


async def test_publish_creates_the_configuration_in_an_in_process_hub(server):
    """``publish(..., hub=hub)`` is ``create_configuration`` on a simulated hub; the next
    evaluation writes the instruction to the targeted twin only."""
    hub = Hub()
    hub.add_device("gw-1", tags={"productType": "washer", "deviceGroup": "lab"})
    hub.add_device("gw-2", tags={"productType": "washer", "deviceGroup": "field_test"})
    release = Release(image=IMAGE, version=4, product="washer", group="lab")
    config = await publish(release, storage=server.connection_string, hub=hub)
    assert hub.get_configuration("ota_v4") == config
    hub.evaluate()
    assert hub.twin("gw-1").desired["extFwInfo"]["version"] == 4
    assert "extFwInfo" not in hub.twin("gw-2").desired


async def test_a_storage_string_without_an_account_key_is_refused_without_echoing_it(
    image_file, capsys
):
    """Signing a SAS needs the account key ("Create a service SAS"); a SAS-only connection
    string is refused with status 1, naming what is missing and never showing its ``sig``."""
    storage = (
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;SharedAccessSignature=sv=1&sig=SeCrEt"
    )
    assert await _ota(image_file, 1, "washer", "lab", "--storage", storage) == 1
    err = capsys.readouterr().err
    assert "must carry AccountName and AccountKey" in err
    assert "SeCrEt" not in err


@pytest.mark.skipif(find_azurite()[0] is None, reason=find_azurite()[1])
async def test_the_same_tool_publishes_to_azurite(image_file, tmp_path):
    """The upload and SAS go through the real SDK, so Azurite (the official emulator)
    serves the image to the configuration's url + sas just as our blob server does."""
    out = tmp_path / "c.json"
    async with Azurite(tmp_path / "azurite", in_memory=True) as azurite:
        status = await _ota(
            image_file, 2, "washer", "lab", "--storage", azurite.connection_string,
            "--hub-json", out,
        )  # fmt: skip
        assert status == 0
        info = _ext_fw_info(out)
        assert await _get(f"{info['url']}?{info['sas']}") == (200, IMAGE)
