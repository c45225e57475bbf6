"""``python -m hil COMMAND --rig FILE``: bench tools.

``probe``: identity, SFDP, status registers, unique ID and a short timing run.
``diff``: the differential check, the rig's chip against a fresh model.
"""

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "probe": ("hil.probe", "identify the rig's flash and time one sector erase and program"),
    "diff": ("hil.diff", "run a fixed sequence on the rig and on the model; print differences"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m hil COMMAND --rig FILE [--report DIR]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] not in COMMANDS:
        print(f"unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return int(importlib.import_module(COMMANDS[args[0]][0]).main(args[1:]))


if __name__ == "__main__":
    sys.exit(main())
