"""MCU targets for the standalone agent: a command, or a plugin of one's own.

``--target command:PROGRAM ARGS...`` runs the programmer as a process: the verified image on
its standard input, ``OTA_VERSION`` and ``OTA_SIZE`` in its environment; exit status 0
means the MCU now runs that version, which :class:`CommandTarget` then records in its
version file (written atomically, so a power cut leaves the old version or the new one).
``--target plugin:MODULE:NAME`` calls ``NAME()`` from an importable module and uses what it
returns as the :class:`agent.target.McuTarget`.
"""

from __future__ import annotations

import importlib
import os
import shlex
import subprocess
from pathlib import Path
from typing import BinaryIO

from agent.target import McuTarget

INSTALL_TIMEOUT_S = 3600.0  # a programmer that has not finished in an hour has hung


class TargetError(Exception):
    """The programmer command failed or the plugin could not be loaded."""


class CommandTarget:
    """An :class:`~agent.target.McuTarget` whose install is a program of one's own."""

    def __init__(self, command: list[str], version_file: Path) -> None:
        if not command:
            raise ValueError("the target command is empty")
        self.command = list(command)
        self.version_file = Path(version_file)

    def current_version(self) -> int:
        try:
            text = self.version_file.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0  # the factory image
        if not text.isdigit():
            raise TargetError(f"{self.version_file}: not a version number: {text[:20]!r}")
        return int(text)

    def install(self, reader: BinaryIO, size: int, version: int) -> None:
        image = reader.read(size)
        if len(image) != size:
            raise TargetError(f"image ended after {len(image)} of {size} bytes")
        env = {**os.environ, "OTA_VERSION": str(version), "OTA_SIZE": str(size)}
        try:
            proc = subprocess.run(
                self.command, input=image, env=env, capture_output=True, timeout=INSTALL_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TargetError(f"target command {self.command[0]!r}: {exc}") from None
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
            raise TargetError(
                f"target command exited {proc.returncode}: {tail[0] if tail else 'no message'}"
            )
        tmp = self.version_file.with_suffix(".tmp")
        tmp.write_text(f"{version}\n", encoding="ascii")
        os.replace(tmp, self.version_file)


def load_target(spec: str, *, version_file: Path) -> McuTarget:
    """``command:PROGRAM ARGS`` or ``plugin:MODULE:NAME`` as a target."""
    kind, _, rest = spec.partition(":")
    if kind == "command" and rest.strip():
        return CommandTarget(shlex.split(rest), version_file)
    if kind == "plugin" and rest.count(":") == 1:
        module_name, name = rest.split(":")
        try:
            factory = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as exc:
            raise TargetError(f"--target {spec}: {exc}") from None
        target = factory()
        if not isinstance(target, McuTarget):
            raise TargetError(f"--target {spec}: {name}() did not return an McuTarget")
        return target
    raise TargetError(f"--target {spec!r}: expected command:PROGRAM ... or plugin:MODULE:NAME")
