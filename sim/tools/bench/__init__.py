"""``python -m sim bench NAME``: benchmarks that print figures, never assert on time.

Each benchmark is a module here with ``main(argv) -> int``; targets are ratios
against a baseline measured in the same run, so a noisy machine moves both sides.
"""

import importlib
import sys

BENCHMARKS: dict[str, str] = {
    "flash": "write and read back 4 MiB through the driver: model vs a plain bytearray port",
    "blob": "loopback throughput of a 16 MiB blob: this server vs Azurite",
    "ota": "a 4 MiB OTA with no faults and with 5 scheduled power cuts",
    "sweep": "power-loss sweep speed (runs per second) and the mutation score",
    "hub": "local IoT Hub: connect, twin round trip, 50-device rollout over MQTT/TLS",
    "campaign": "campaign scaling: devices/s, RSS per device, growth from 10 to 100 (1000)",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHMARKS:
        print("usage: python -m sim bench NAME [ARGS...]\n\nbenchmarks:")
        for name, text in BENCHMARKS.items():
            print(f"  {name:<8}  {text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return int(importlib.import_module(f"sim.tools.bench.{argv[0]}").main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
