"""What the package ships besides code: rig files and fault plans (``sim/data/``).

An installed copy has no checkout around it, so ``--rig virtual`` and ``--faults
flaky-network`` name these files; a path to a file of one's own works everywhere as
before. In a checkout ``fixtures/rigs`` and ``fixtures/faults`` are links to the same
folders, so the README's and CI's ``--rig fixtures/rigs/virtual.toml`` keeps working.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

KINDS = {"rig": ("rigs", ".toml"), "fault plan": ("faults", ".json")}


def _folder(kind: str) -> Path:
    folder, _ = KINDS[kind]
    return Path(str(resources.files("sim") / "data" / folder))


def names(kind: str) -> list[str]:
    """The packaged files of ``kind`` (``"rig"`` or ``"fault plan"``), by name."""
    return sorted(p.stem for p in _folder(kind).glob(f"*{KINDS[kind][1]}"))


def resolve(kind: str, text: str) -> Path:
    """``text`` as a path when such a file exists or it looks like one, else the packaged
    file of that name; a name that is neither is returned as a path (its reader reports
    it missing, naming the packaged ones it could have been)."""
    path = Path(text)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    packaged = _folder(kind) / f"{text}{KINDS[kind][1]}"
    return packaged if packaged.is_file() else path


def rig_path(text: str) -> Path:
    """A rig file: a path, or a packaged rig's name (``virtual``, ``ft232h-example``)."""
    return resolve("rig", text)


def fault_plan_path(text: str) -> Path:
    """A fault plan: a path, or a packaged plan's name (``flaky-network``, ...)."""
    return resolve("fault plan", text)
