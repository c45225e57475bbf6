"""``python -m sim COMMAND ...``: the simulator's command line.

Each command lives in its own module exposing ``main(argv) -> int``; this table
names them so that ``python -m sim --help`` can list them without importing all.
"""

import sys

from sim.tools.commands import Command, dispatch

SYNOPSIS = "usage: python -m sim COMMAND [ARGS...]"
COMMANDS: dict[str, Command] = {
    "demo": Command(
        "sim.tools.demo", "run one simulated device through an OTA with faults (the main job)"
    ),
    "selfcheck": Command(
        "sim.tools.selfcheck", "print the simulated chip's identity and timing table"
    ),
    "serprog": Command(
        "sim.tools.serprog.cli", "serve a simulated W25Q128JV over flashrom's serprog protocol"
    ),
    "hub": Command(
        "sim.cloud.iothub.cli", "run the local IoT Hub + DPS for the real Azure SDKs (MQTT/TLS)"
    ),
    "blobserver": Command("sim.cloud.blobserver.cli", "run the fault-injecting Azure Blob server"),
    "bench": Command("sim.tools.bench", "benchmarks: flash, blob, ota, sweep, hub, campaign"),
    "fuzz": Command(
        "sim.tools.fuzz", "explore power cuts, network faults and twin events (--mutant NAME)"
    ),
    "replay": Command(
        "sim.tools.replay", "replay a fuzz finding: the trace around each cut, --trace out.vcd"
    ),
    "ota": Command(
        "deploy.ota", "alias of python -m deploy ota: upload, read-only SAS, IoT Hub configuration"
    ),
    "campaign": Command(
        "sim.tools.campaign", "roll out to a fleet in waves: live status bars, outage, herd, report"
    ),
    "fleet": Command(
        "sim.tools.fleet", "many devices, one simulated IoT Hub, configurations by tags"
    ),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch(SYNOPSIS, COMMANDS, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
