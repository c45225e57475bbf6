"""``python -m sim blobserver``: the command starts a server, loads a plan, refuses bad input."""

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from sim.cloud.blobserver.cli import main

pytestmark = pytest.mark.sim

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_plan_file_is_refused_naming_it(capsys):
    assert main(["--port", "0", "--faults", "/nonexistent/plan.json"]) == 2
    assert "/nonexistent/plan.json" in capsys.readouterr().err


def test_a_bad_plan_is_refused_naming_the_rule(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"rules": [{"fault": "limit_data", "params": {"bytes": -1}}]}))
    assert main(["--port", "0", "--faults", str(plan)]) == 2
    assert "plan.rules[0]" in capsys.readouterr().err


async def test_the_command_serves_with_the_plan_it_was_given():
    """The command prints its endpoint, serves the Blob API and reports its plan under /_faults."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sim",
        "blobserver",
        "--port",
        "0",
        "--seed",
        "4",
        "--faults",
        str(ROOT / "fixtures" / "faults" / "http-lies.json"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith("blob endpoint")
        endpoint = line.split()[-1]
        control = endpoint.rsplit("/", 1)[0] + "/_faults"
        async with aiohttp.ClientSession() as session, session.get(control) as response:
            rules = (await response.json())["rules"]
        assert [r["id"] for r in rules][:2] == ["no-ranges", "wrong-start"]
    finally:
        process.send_signal(signal.SIGTERM)
        await process.communicate()
    assert process.returncode == 0
