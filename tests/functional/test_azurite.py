"""The Azurite runner (sim/cloud/azurite.py): found or explained, started on a free port, reaped.

Azurite's options are those of ``azurite-blob --help`` (Azurite 3.x).
"""

import os
import socket
from pathlib import Path

import pytest

from sim.cloud import azurite as runner
from sim.cloud.azurite import Azurite, AzuriteError, find_azurite

pytestmark = pytest.mark.sim


def test_find_azurite_names_node_when_node_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Node.js there is no Azurite; the reason says what to install."""
    monkeypatch.setattr(runner.shutil, "which", lambda name: None)
    executable, reason = find_azurite()
    assert executable is None
    assert "Node.js" in reason


def test_find_azurite_points_at_bootstrap_when_the_package_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With Node.js but no package, the reason names ./bootstrap, which installs it."""
    monkeypatch.setattr(
        runner.shutil, "which", lambda name: "/usr/bin/node" if name == "node" else None
    )
    monkeypatch.setattr(runner, "_LOCAL_EXECUTABLE", tmp_path / "azurite-blob")
    executable, reason = find_azurite()
    assert executable is None
    assert "./bootstrap" in reason


@pytest.mark.parametrize("port", [-1, 65536, "10000"])
def test_refuses_a_port_outside_0_to_65535(tmp_path: Path, port: object) -> None:
    """A bad port is refused when the runner is built, naming the field."""
    with pytest.raises(ValueError, match="port"):
        Azurite(tmp_path, port=port)  # type: ignore[arg-type]


def test_start_without_azurite_raises_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Starting where Azurite cannot run fails with find_azurite's reason, starts nothing."""
    monkeypatch.setattr(runner.shutil, "which", lambda name: None)
    with pytest.raises(AzuriteError, match=r"Node\.js"), Azurite(tmp_path):
        pass


@pytest.mark.skipif(find_azurite()[0] is None, reason=find_azurite()[1])
def test_listens_while_entered_and_leaves_no_process(tmp_path: Path) -> None:
    """Entering returns once Azurite accepts connections; leaving terminates and reaps it."""
    with Azurite(tmp_path) as server:
        pid = server._proc.pid  # type: ignore[union-attr]
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
        assert server.url == f"http://127.0.0.1:{server.port}/devstoreaccount1"
    assert not os.path.exists(f"/proc/{pid}")
    with pytest.raises(AzuriteError):
        _ = server.port
