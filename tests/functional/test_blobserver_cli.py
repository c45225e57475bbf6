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
    """The command prints its endpoint and where the control API listens (a port of its
    own, on loopback), serves the Blob API and reports its plan under /_faults."""
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
        lines = [(await asyncio.wait_for(process.stdout.readline(), 20)).decode()]
        while not lines[-1].startswith("fault control"):
            lines.append((await asyncio.wait_for(process.stdout.readline(), 20)).decode())
        assert lines[0].startswith("blob endpoint")
        endpoint, control = lines[0].split()[-1], lines[-1].split()[2]
        assert control.startswith("http://127.0.0.1:") and control.endswith("/_faults")
        assert control.rsplit(":", 1)[1] != endpoint.split(":")[2]
        async with aiohttp.ClientSession() as session, session.get(control) as response:
            rules = (await response.json())["rules"]
        assert [r["id"] for r in rules][:2] == ["no-ranges", "wrong-start"]
    finally:
        process.send_signal(signal.SIGTERM)
        await process.communicate()
    assert process.returncode == 0


@pytest.mark.parametrize(
    "plan",
    [
        '{"rules": [{"fault": ["latency"]}]}',
        '{"rules": [{"fault": "noop", "methods": 5}]}',
        '{"rules": [{"fault": "timeout", "params": false}]}',
        '{"rules": [{"fault": "timeout", "params": ""}]}',
        '{"rules": [{"fault": "bandwidth", "params": {"rate_bps": NaN}}]}',
        '{"rules": [{"fault": "noop", "requests": [1, 2, 3]}]}',
        '["not", "a", "plan"]',
        "{not json",
    ],
)
def test_a_bad_plan_file_exits_2_with_one_line_naming_the_file(tmp_path, capsys, plan):
    """``--faults bad.json`` used to exit 1 with a traceback (or load ``"params": false``
    as ``{}``); every bad plan is now one line on stderr, status 2."""
    path = tmp_path / "bad.json"
    path.write_text(plan)
    assert main(["--port", "0", "--faults", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err


def test_a_control_host_that_is_not_loopback_needs_expose_control(capsys):
    assert main(["--port", "0", "--control-host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "--expose-control" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "args", [["--event-log-size", "0"], ["--header-timeout", "0"], ["--body-timeout", "-1"]]
)
def test_bounds_of_a_long_running_server_are_options_checked_at_start(capsys, args):
    assert main(["--port", "0", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and args[0].lstrip("-").split("-")[0] in err
