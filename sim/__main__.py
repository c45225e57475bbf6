"""``python -m sim COMMAND ...``: the simulator's command line.

Each command lives in its own module exposing ``main(argv) -> int``; this table
names them so that ``python -m sim --help`` can list them without importing all.
"""

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("sim.demo", "run one simulated device through an OTA with faults (the main job)"),
    "selfcheck": ("sim.selfcheck", "print the simulated chip's identity and timing table"),
    "serprog": ("sim.serprog", "serve a simulated W25Q128JV over flashrom's serprog protocol"),
    "blobserver": ("sim.blobserver.cli", "run the fault-injecting Azure Blob server"),
    "bench": ("sim.bench", "benchmarks: flash, blob, ota"),
    "fuzz": ("sim.fuzz", "explore power-loss points and network faults"),
    "replay": ("sim.fuzz", "replay a failing scenario from its JSON"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m sim COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    if name == "replay":
        return int(module.replay_main(rest))
    return int(module.main(rest))


if __name__ == "__main__":
    sys.exit(main())
