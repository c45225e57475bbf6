"""Run Azurite, Microsoft's official Azure Storage emulator, as a loopback child process.

Azurite is the reference the blob server is compared with (differential tests and the
blob benchmark). ``./bootstrap`` installs it with npm into ``./node_modules``; when
Node.js or the package is missing, :func:`find_azurite` says so and callers skip.
Options are those of ``azurite-blob --help`` (Azurite 3.x).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from sim.cloud.dev_account import DEV_ACCOUNT, DEV_KEY, connection_string

AZURITE_ACCOUNT = DEV_ACCOUNT
AZURITE_KEY = DEV_KEY  # Azurite's well-known development key (public, documented; not a secret)

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_LOCAL_EXECUTABLE = _PROJECT_ROOT / "node_modules" / ".bin" / "azurite-blob"
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
_PORT_ATTEMPTS = 3  # a port picked by binding 0 can be taken again before Azurite binds it


class AzuriteError(RuntimeError):
    """Azurite could not be found, did not start, or exited on its own."""


def find_azurite() -> tuple[Path | None, str]:
    """The ``azurite-blob`` executable, or ``None`` and the reason it cannot run.

    Looks in ``./node_modules/.bin`` (where ``./bootstrap`` installs it), then on ``PATH``.
    """
    if shutil.which("node") is None:
        return None, "Node.js is missing (install nodejs, then run ./bootstrap)"
    if os.access(_LOCAL_EXECUTABLE, os.X_OK):
        return _LOCAL_EXECUTABLE, f"found {_LOCAL_EXECUTABLE}"
    on_path = shutil.which("azurite-blob")
    if on_path is not None:
        return Path(on_path), f"found {on_path}"
    return None, f"Azurite is not installed ({_LOCAL_EXECUTABLE} missing): run ./bootstrap"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Azurite:
    """An ``azurite-blob`` process serving ``devstoreaccount1`` on ``host:port``.

    Use as a context manager (``with`` or ``async with``): entering starts the process
    and returns once it accepts connections; leaving terminates it and waits for it.
    ``port=0`` picks a free port. ``in_memory=True`` keeps blobs in memory
    (``--inMemoryPersistence``) instead of under ``location``; Azurite's own log goes to
    ``location/azurite.log`` either way. Telemetry is disabled (loopback only).
    """

    def __init__(
        self,
        location: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        in_memory: bool = False,
        executable: Path | None = None,
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in 0..65535, got {port!r}")
        if not host:
            raise ValueError("host must be a non-empty address")
        self.location = Path(location)
        self.host = host
        self.in_memory = in_memory
        self._requested_port = port
        self._executable = executable
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port Azurite listens on (only while running)."""
        if self._port is None:
            raise AzuriteError("Azurite is not running")
        return self._port

    @property
    def url(self) -> str:
        """The account's blob endpoint, path style: ``http://HOST:PORT/devstoreaccount1``."""
        return f"http://{self.host}:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        """A connection string the Azure SDK accepts (``from_connection_string``)."""
        return connection_string(blob_endpoint=self.url, account=AZURITE_ACCOUNT, key=AZURITE_KEY)

    @property
    def log_path(self) -> Path:
        return self.location / "azurite.log"

    def start(self) -> None:
        """Start Azurite and wait until it accepts connections (at most 30 s)."""
        if self._proc is not None:
            raise AzuriteError("Azurite is already running")
        executable = self._executable
        if executable is None:
            executable, reason = find_azurite()
            if executable is None:
                raise AzuriteError(reason)
        self.location.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._requested_port else _PORT_ATTEMPTS
        for attempt in range(attempts):
            port = self._requested_port or _free_port(self.host)
            if self._launch(executable, port):
                return
            if "EADDRINUSE" not in self._log_tail() or attempt == attempts - 1:
                break
        raise AzuriteError(f"Azurite did not start; its log ends with:\n{self._log_tail()}")

    def _launch(self, executable: Path, port: int) -> bool:
        args = [
            str(executable),
            "--blobHost", self.host,
            "--blobPort", str(port),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]  # fmt: skip
        # Azurite refuses --location together with --inMemoryPersistence
        args += ["--inMemoryPersistence"] if self.in_memory else ["--location", str(self.location)]
        with self.log_path.open("wb") as log:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, port), timeout=1.0):
                    self._proc, self._port = proc, port
                    return True
            except OSError:
                pass
            try:  # waits on the child, returning early if it exits
                proc.wait(timeout=0.05)
                return False
            except subprocess.TimeoutExpired:
                continue
        self._terminate(proc)
        raise AzuriteError(f"Azurite did not listen on {self.host}:{port} in {_START_TIMEOUT_S} s")

    def stop(self) -> None:
        """Terminate Azurite (SIGTERM, then SIGKILL after 10 s) and reap it."""
        proc, self._proc, self._port = self._proc, None, None
        if proc is not None:
            self._terminate(proc)

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Azurite:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Azurite:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
