"""The README's commands work as written: the curl fault example, tox, Azurite for ota.

The curl example (``"requests":[2,2]``) landed on the upload's PUT, not on a download;
``tox`` is not on PATH after the quick start; ``python -m sim ota`` against a plain
Azurite needs ``--skipApiVersionCheck`` and ``--disableTelemetry``. Each example is
read from README.md itself, so the document and its test cannot drift apart.
"""

import asyncio
import json
import re
import shlex
import sys
from pathlib import Path

import aiohttp
import pytest

from deploy.ota import Release, upload
from sim.cloud.azurite import find_azurite
from sim.device import applied
from tests.common.agent import BLOB, make_image, rig

pytestmark = pytest.mark.sim

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def curl_rule() -> dict:
    """The JSON body of the README's ``curl -X POST .../_faults -d '...'`` example."""
    match = re.search(r"curl -X POST \S+/_faults \\\n\s+-d '([^']+)'", README)
    assert match, "the README has no curl fault example"
    return json.loads(match.group(1))


async def test_the_readme_curl_example_cuts_a_download_after_an_upload():
    """After the operator's upload (``python -m sim ota``'s own code, over HTTP), the
    README's rule cuts the device's first download after 64 KiB and lets the retry
    through: the image is applied."""
    image = make_image(50, 256 * 1024)
    release = Release(image=image, version=1, product="washer", group="lab", blob_name=BLOB)
    async with rig() as r, aiohttp.ClientSession() as session:
        await upload(release, r.server.connection_string)
        uploads = len(r.server.events)
        async with session.post(r.server.control_url, json=curl_rule()) as response:
            assert response.status == 201, await response.text()
        r.publish(1, image)
        result = await r.run(applied(1))
    assert result.reached
    cut = [e for e in r.server.events if e.faults]
    first_get = next(e for e in r.server.events if e.method == "GET")
    assert cut == [first_get] and first_get.request == uploads + 1
    assert first_get.bytes_sent == 65536 and first_get.outcome == "closed"
    assert r.device.target.image == image


def test_the_readme_says_where_tox_is_after_the_quick_start():
    """The quick start installs tox into .venv (the ``dev`` extra), not on PATH: every
    tox command in the README is spelled ``.venv/bin/tox``."""
    assert ".venv/bin/tox" in README
    for line in README.splitlines():
        if re.search(r"(^|[\s`])tox -e", line):
            assert ".venv/bin/tox -e" in line, line
    assert re.search(r'"tox>=', (ROOT / "pyproject.toml").read_text())
    assert "'.[dev]'" in (ROOT / "bootstrap").read_text()


async def test_python_m_sim_ota_works_against_azurite_started_as_the_readme_says(tmp_path):
    line = next(ln for ln in README.splitlines() if "azurite-blob" in ln and "--blobHost" in ln)
    args = shlex.split(line)
    assert "--skipApiVersionCheck" in args and "--disableTelemetry" in args
    executable, why = find_azurite()
    if executable is None:
        pytest.skip(why)
    args[0] = str(executable)
    args[args.index("--blobPort") + 1] = "0"
    args[args.index("--location") + 1] = str(tmp_path / "azurite")
    azurite = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        port = None
        while port is None:
            out = (await asyncio.wait_for(azurite.stdout.readline(), 30)).decode()
            assert out, "Azurite exited"
            if found := re.search(r"listens on http://127\.0\.0\.1:(\d+)", out):
                port = int(found.group(1))
        from sim.cloud.dev_account import connection_string

        conn = connection_string(blob_endpoint=f"http://127.0.0.1:{port}/devstoreaccount1")
        image = tmp_path / "fw.bin"
        image.write_bytes(make_image(51, 4096))
        ota = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sim",
            "ota",
            str(image),
            "3",
            "washer",
            "lab",
            "--storage",
            conn,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(ota.communicate(), 60)
        assert ota.returncode == 0, err.decode()
    finally:
        azurite.terminate()
        await azurite.wait()
