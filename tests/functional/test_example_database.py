"""A failure hypothesis finds in one process replays in another through a shared Redis
(issue 11 "Shared examples"; hypothesis ``RedisExampleDatabase``).

A real ``redis-server`` (Debian's, installed by ./bootstrap) listens on a unix socket in
the test's own directory (no TCP port: nothing to collide with under ``pytest -n``).
The first process runs a property that fails and saves its shrunk example; the second
runs the same property with generation switched off (``Phase.reuse`` only), so it can
fail only by replaying what the first one saved.
"""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.common.examples import example_database

pytestmark = pytest.mark.sim

ROOT = Path(__file__).resolve().parents[2]
PROPERTY = """
import sys
from hypothesis import Phase, given, settings, strategies as st
from tests.common.examples import example_database

phases = [Phase.reuse] if sys.argv[1] == "replay" else list(Phase)

@settings(database=example_database(sys.argv[2]), phases=phases, max_examples=500,
          derandomize=False, deadline=None)
@given(st.integers(min_value=0, max_value=10**6))
def test_below_a_thousand(x):
    print("tried", x)
    assert x < 1000

import unittest

try:
    test_below_a_thousand()
except AssertionError:
    print("FAILED")
except unittest.SkipTest:
    print("NOTHING TO REPLAY")
else:
    print("PASSED")
"""


@pytest.fixture
def redis_url(tmp_path):
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian package redis-server: ./bootstrap)")
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("redis-server did not start")
            time.sleep(0.02)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _run(mode: str, url: str, tmp_path: Path) -> str:
    script = tmp_path / "prop.py"
    script.write_text(PROPERTY)
    done = subprocess.run(
        [sys.executable, str(script), mode, url],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_failure_saved_by_one_process_replays_in_another(redis_url, tmp_path):
    first = _run("search", redis_url, tmp_path)
    assert "FAILED" in first
    saved = example_database(redis_url)
    assert any(True for _ in saved.redis.scan_iter())  # the example is in Redis
    second = _run("replay", redis_url, tmp_path)
    assert "FAILED" in second
    assert "tried 1000" in second  # the shrunk example, replayed, not searched for


def test_replay_without_the_shared_database_finds_nothing(redis_url, tmp_path):
    """The control: with Redis empty the replay-only process has nothing to run."""
    assert "NOTHING TO REPLAY" in _run("replay", redis_url, tmp_path)


def test_a_bad_database_name_is_named():
    with pytest.raises(ValueError, match="HYPOTHESIS_DATABASE"):
        example_database("ftp://nowhere")
