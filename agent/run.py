"""``python -m agent run`` (console script ``ota-agent``): the OTA agent as a gateway program.

Where each seam comes from:

* **flash**: ``--rig FILE`` opens the rig's FT232H with pyftdi (:mod:`agent.ftdi`);
  ``--spi serprog://HOST:PORT`` speaks serprog to a programmer or to the simulator's bridge
  (:mod:`agent.serprog`). ``--clock bus`` spends every wait on that programmer (the
  simulator's virtual time); the default ``real`` is the gateway's monotonic clock;
* **cloud**: ``--connection-string`` (or ``OTA_CONNECTION_STRING``), or DPS with a
  symmetric key (``--id-scope``, ``--registration-id``, ``OTA_DPS_SYMMETRIC_KEY``), to a real
  IoT Hub or the local one (``python -m sim hub``), through azure-iot-device
  (:mod:`agent.azure`); or ``--link HOST:PORT``, a harness's twin and MCU (:mod:`agent.link`);
* **MCU**: ``--target command:PROGRAM ...`` or ``plugin:MODULE:NAME`` (:mod:`agent.targets`),
  or the link's;
* **configuration**: ``--config FILE.json`` (the fields of :class:`agent.config.AgentConfig`,
  nested for ``geometry`` and ``download``).

Exit status: 0 after SIGTERM/SIGINT, 2 for bad input (one line naming it), 3 when the flash
lost power (under a harness the process is killed at the cut anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib
import json
import logging
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any, cast

from agent.clock import Clock, MonotonicClock
from agent.download import DownloadPolicy
from agent.engine import Agent, AgentConfig
from agent.errors import PowerLoss
from agent.instruction import storage_hosts_entries
from agent.protocol import AgentFactory, Board
from agent.spi import SpiPort
from agent.storage import Geometry
from agent.target import McuTarget
from agent.twin import Twin

EXIT_USAGE, EXIT_POWER_LOST = 2, 3
log = logging.getLogger("agent.run")


class UsageError(Exception):
    """Bad input, in one line."""


def config_to_dict(config: AgentConfig) -> dict[str, Any]:
    """An :class:`AgentConfig` as the JSON ``--config`` reads."""
    return dataclasses.asdict(config)


def config_from_dict(data: dict[str, Any]) -> AgentConfig:
    """The inverse of :func:`config_to_dict`; unknown keys name themselves."""
    if not isinstance(data, dict):
        raise UsageError("--config: the file must hold a JSON object")
    data = dict(data)
    try:
        geometry = Geometry(**data.pop("geometry", {}))
        download = DownloadPolicy(**data.pop("download", {}))
        if "storage_hosts" in data:  # a JSON list
            data["storage_hosts"] = storage_hosts_entries(data["storage_hosts"])
        return AgentConfig(geometry=geometry, download=download, **data)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--config: {exc}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m agent run",
        description="run the OTA agent on a gateway: flash over SPI, the twin, the MCU",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    flash = p.add_mutually_exclusive_group(required=True)
    flash.add_argument("--rig", metavar="FILE", help="rig file: the FT232H and its wiring")
    flash.add_argument("--spi", metavar="serprog://HOST:PORT", help="a serprog programmer")
    p.add_argument("--frequency", type=float, default=8e6, help="SCK in Hz (--spi)")
    p.add_argument(
        "--clock",
        choices=("real", "bus"),
        default="real",
        help="bus: every wait is an O_DELAY the serprog programmer spends (the simulator)",
    )
    cloud = p.add_mutually_exclusive_group()
    cloud.add_argument("--connection-string", help="IoT Hub device connection string")
    cloud.add_argument("--id-scope", help="DPS ID scope (with --registration-id)")
    cloud.add_argument("--link", metavar="HOST:PORT", help="a harness's twin and MCU")
    p.add_argument("--registration-id", help="DPS registration ID")
    p.add_argument("--provisioning-host", default="global.azure-devices-provisioning.net")
    p.add_argument("--ca-cert", metavar="PEM", help="trusted roots for the hub's TLS")
    p.add_argument("--gateway-hostname", help="connect to this host instead of the hub's")
    p.add_argument(
        "--target",
        metavar="SPEC",
        help="command:PROGRAM ARGS (image on stdin) or plugin:MODULE:NAME; default with --link",
    )
    p.add_argument("--version-file", type=Path, default=Path("mcu-version"), help="command:")
    p.add_argument("--config", type=Path, metavar="FILE.json", help="AgentConfig as JSON")
    p.add_argument("--config-json", metavar="JSON", help="the same, inline")
    p.add_argument("--allow-http-loopback", action="store_true", help="accept http://127.x URLs")
    p.add_argument(
        "--storage-host",
        action="append",
        metavar="ENTRY",
        help="a host images may come from (name, *.domain, address or network; repeat); "
        "default: Azure Blob's *.blob.core.windows.net",
    )
    p.add_argument(
        "--agent",
        metavar="MODULE:NAME",
        help="an agent.protocol.AgentFactory to run instead of this project's agent",
    )
    p.add_argument("--seed", type=int, default=None, help="seed the agent's jitter")
    p.add_argument("-v", "--verbose", action="store_true", help="log the agent's steps")
    return p


def _config(args: argparse.Namespace) -> AgentConfig:
    data: dict[str, Any] = {}
    try:
        if args.config is not None:
            data = json.loads(args.config.read_text(encoding="utf-8"))
        elif args.config_json is not None:
            data = json.loads(args.config_json)
    except OSError as exc:
        raise UsageError(f"--config: {args.config}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--config: not JSON ({exc.msg} at line {exc.lineno})") from None
    if args.allow_http_loopback:
        data = {**data, "allow_http_loopback": True}
    if args.storage_host:
        data = {**data, "storage_hosts": list(args.storage_host)}
    return config_from_dict(data)


def _flash(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[SpiPort, Clock]:
    if args.spi is not None:
        from agent.serprog import SerprogError, open_serprog

        try:
            serprog, bus = open_serprog(args.spi, frequency=args.frequency)
        except (ValueError, SerprogError) as exc:
            raise UsageError(f"--spi: {exc}") from None
        stack.callback(serprog.close)
        return serprog, bus if args.clock == "bus" else MonotonicClock()
    if args.clock == "bus":
        raise UsageError("--clock bus needs --spi serprog://...: an FT232H has no bus clock")
    from agent.ftdi import open_controller
    from agent.rig import Rig, RigError

    try:
        rig = Rig.load(args.rig)
    except RigError as exc:
        raise UsageError(str(exc)) from None
    if rig.virtual:
        raise UsageError(
            f"{args.rig}: a virtual rig has no adapter; serve the model with "
            "python -m sim serprog and use --spi serprog://HOST:PORT"
        )
    try:
        controller, port = open_controller(rig)
    except Exception as exc:  # pyftdi: UsbToolsError, FtdiError, ValueError for a bad URL
        raise UsageError(f"{args.rig}: FTDI adapter {rig.url} not available: {exc}") from None
    stack.callback(controller.close)
    return port, MonotonicClock()


def _cloud(args: argparse.Namespace) -> tuple[Twin, McuTarget | None]:
    if args.link is not None:
        from agent.link import GatewayLink
        from agent.twin import TwinError

        try:
            link = GatewayLink(args.link)
        except (ValueError, TwinError) as exc:
            raise UsageError(f"--link: {exc}") from None
        return link, link
    from agent.azure import AzureConnectionConfig, AzureIoTTwin

    secret = args.connection_string or os.environ.get("OTA_CONNECTION_STRING")
    key = os.environ.get("OTA_DPS_SYMMETRIC_KEY")
    try:
        if args.id_scope is not None:
            config = AzureConnectionConfig(
                id_scope=args.id_scope,
                registration_id=args.registration_id,
                symmetric_key=key,
                provisioning_host=args.provisioning_host,
                server_verification_cert=args.ca_cert,
                gateway_hostname=args.gateway_hostname,
            )
        elif secret:
            config = AzureConnectionConfig(
                connection_string=secret,
                server_verification_cert=args.ca_cert,
                gateway_hostname=args.gateway_hostname,
            )
        else:
            raise UsageError(
                "no cloud: give --connection-string (or OTA_CONNECTION_STRING), --id-scope "
                "with --registration-id and OTA_DPS_SYMMETRIC_KEY, or --link HOST:PORT"
            )
    except ValueError as exc:  # the config names the field, never the secret's value
        raise UsageError(str(exc)) from None
    return AzureIoTTwin(config), None


def _target(args: argparse.Namespace, linked: McuTarget | None) -> McuTarget:
    if args.target is None:
        if linked is None:
            raise UsageError("--target is required without --link (command:... or plugin:...)")
        return linked
    from agent.targets import TargetError, load_target

    try:
        return load_target(args.target, version_file=args.version_file)
    except (TargetError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _factory(spec: str | None) -> AgentFactory:
    if spec is None:
        return Agent.from_board
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise UsageError(f"--agent {spec!r}: expected MODULE:NAME")
    try:
        factory = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--agent {spec}: {exc}") from None
    if not callable(factory):
        raise UsageError(f"--agent {spec}: {name} is not callable")
    return cast(AgentFactory, factory)


async def _serve(board: Board, factory: AgentFactory) -> None:
    task = asyncio.ensure_future(factory(board).run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    with contextlib.ExitStack() as stack:
        try:
            config = _config(args)
            port, clock = _flash(args, stack)
            twin, linked = _cloud(args)
            target = _target(args, linked)
            factory = _factory(args.agent)
        except UsageError as exc:
            print(f"python -m agent run: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        rng = random.Random(args.seed)
        board = Board(spi=port, clock=clock, twin=twin, target=target, config=config, rng=rng)
        try:
            asyncio.run(_serve(board, factory))
        except PowerLoss as exc:
            print(f"python -m agent run: power lost: {exc}", file=sys.stderr)
            return EXIT_POWER_LOST
    return 0
