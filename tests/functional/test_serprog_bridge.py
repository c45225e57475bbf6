"""The serprog bridge as a long-running service: clients that hang, kill -9, bad files.

One idle client, or one that never reads its 16 MiB answer, blocked every other client
forever; the ``.nv.json`` sidecar (status registers, security registers, wear) was
written only on a clean exit, and not atomically; a truncated sidecar or a bad
``--image`` ended in a traceback. The bridge now serves clients one at a time and drops
one idle for ``idle_timeout_s`` (no command, or not reading its answer), writes the
sidecar atomically whenever its state changes, and refuses bad files with one line
naming the file (exit status 2).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.chip.w25q128 import W25Q128
from sim.clock import VirtualClock
from sim.ports.model import SimSpiPort
from sim.tools.serprog import SerprogServer
from sim.tools.serprog.cli import main

pytestmark = pytest.mark.sim

ROOT = Path(__file__).resolve().parents[2]
WALL_LIMIT_S = 20.0  # guards a hung test only: no verdict depends on how fast
ACK = 0x06
SIZE = 16 * 1024 * 1024


def spi_op(out: bytes, rlen: int) -> bytes:
    return bytes([0x13]) + len(out).to_bytes(3, "little") + rlen.to_bytes(3, "little") + out


def nop_answered(address) -> bool:
    with socket.create_connection(address, timeout=WALL_LIMIT_S) as sock:
        sock.sendall(b"\x00")
        return sock.recv(1) == bytes([ACK])


@pytest.fixture
def bridge():
    clock = VirtualClock()
    port = SimSpiPort(W25Q128(clock=clock))
    with SerprogServer(port, clock=clock, idle_timeout_s=0.3) as srv:
        yield srv


def test_an_idle_client_does_not_block_the_next_one_forever(bridge):
    """A client that connects and sends nothing is dropped after the idle timeout;
    the client waiting behind it is then served."""
    with socket.create_connection(bridge.address, timeout=WALL_LIMIT_S) as idle:
        assert nop_answered(bridge.address)
        assert idle.recv(1) == b""  # the bridge closed it


def test_a_client_that_never_reads_its_answer_does_not_block_the_next_one(bridge):
    """A client asks for the whole 16 MiB array and reads none of it: its send stalls,
    it is dropped after the idle timeout, and the next client is served."""
    greedy = socket.create_connection(bridge.address, timeout=WALL_LIMIT_S)
    greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        greedy.sendall(spi_op(b"\x03\x00\x00\x00", SIZE - 1))
        assert nop_answered(bridge.address)
    finally:
        greedy.close()


def test_the_idle_timeout_is_validated():
    with pytest.raises(ValueError, match="idle_timeout_s"):
        SerprogServer(SimSpiPort(W25Q128()), idle_timeout_s=0)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        assert chunk, f"closed after {got!r}"
        got += chunk
    return got


def _program_and_protect(address) -> None:
    """Write-enable, Write Status Register-1 with BP bits (a non-volatile change), wait
    tW on the bridge's clock (O_DELAY, O_EXEC), and read SR1 back, as flashrom does."""
    with socket.create_connection(address, timeout=WALL_LIMIT_S) as sock:
        sock.sendall(spi_op(b"\x06", 0) + spi_op(b"\x01\x1c", 0))
        assert recv_exact(sock, 2) == bytes([ACK, ACK])
        sock.sendall(b"\x0e" + (20_000).to_bytes(4, "little") + b"\x0f")
        assert recv_exact(sock, 2) == bytes([ACK, ACK])
        sock.sendall(spi_op(b"\x05", 1))
        answer = recv_exact(sock, 2)
        assert answer[0] == ACK and answer[1] & 0x1C == 0x1C


def test_the_sidecar_survives_kill_9(tmp_path):
    """A status register written over serprog is in the sidecar as soon as the command
    is answered: ``kill -9`` of the bridge loses nothing."""
    image = tmp_path / "chip.bin"
    process = subprocess.Popen(
        [sys.executable, "-m", "sim", "serprog", "--listen", "127.0.0.1:0", "--image", str(image)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = process.stdout.readline()
        host, port = line.split()[-1].rsplit(":", 1)
        _program_and_protect((host, int(port)))
        deadline = time.monotonic() + WALL_LIMIT_S
        sidecar = image.with_name(image.name + ".nv.json")
        while time.monotonic() < deadline:
            if sidecar.exists() and json.loads(sidecar.read_text())["status"][0] & 0x1C:
                break
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert json.loads(sidecar.read_text())["status"][0] & 0x1C == 0x1C
    assert not list(tmp_path.glob("*.tmp"))
    chip = W25Q128(image=image)
    try:
        assert chip.snapshot().status_nv[0] & 0x1C == 0x1C
    finally:
        chip.close()


def test_the_sidecar_is_written_atomically(tmp_path, monkeypatch):
    """The sidecar is replaced by a rename (write a temporary file, then os.replace):
    a reader never sees half a file."""
    image = tmp_path / "chip.bin"
    chip = W25Q128(image=image)
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((Path(src).name, Path(dst).name))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    chip.flush()
    chip.close()
    assert any(dst == "chip.bin.nv.json" and src != dst for src, dst in replaced)


def _run(capsys, *args):
    code = main(["--listen", "127.0.0.1:0", "--once", *args])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda d: (d / "small.bin").write_bytes(b"\xff" * 100) and d / "small.bin", "16777216"),
        (lambda d: (d / "folder").mkdir() or d / "folder", "directory"),
        (lambda d: d / "missing" / "chip.bin", "does not exist"),
    ],
    ids=["100-bytes", "directory", "missing-folder"],
)
def test_a_bad_image_is_one_line_naming_the_file(tmp_path, capsys, make, what):
    path = make(tmp_path)
    code, err = _run(capsys, "--image", str(path))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err and what in err


@pytest.mark.parametrize(
    "content",
    ['{"status": [0, 2', "", '{"status": [0]}', '{"status": "x", "security": 1, "wear": 2}'],
    ids=["truncated", "empty", "short", "wrong-types"],
)
def test_a_bad_sidecar_is_one_line_naming_the_file(tmp_path, capsys, content):
    image = tmp_path / "chip.bin"
    W25Q128(image=image).close()
    sidecar = image.with_name("chip.bin.nv.json")
    sidecar.write_text(content)
    code, err = _run(capsys, "--image", str(image))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(sidecar) in err
