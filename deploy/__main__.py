"""``python -m deploy COMMAND ...``: the operator's tools.

They run against real Azure as well as the simulators, so this package carries its own
small command line rather than the simulator's command table.
"""

import sys

from deploy import ota

SYNOPSIS = "usage: python -m deploy COMMAND [ARGS...]"
COMMANDS = {
    "ota": (ota.main, "upload an image, sign a read-only SAS, create the IoT Hub configuration"),
}


def usage() -> str:
    lines = [SYNOPSIS, "", "commands:"]
    lines += [f"  {name}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    entry, _ = COMMANDS[argv[0]]
    return int(entry(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
