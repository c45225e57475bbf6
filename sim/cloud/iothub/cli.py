"""``python -m sim hub``: run the local IoT Hub + DPS until interrupted.

The first line of standard output is one JSON object: ``service_connection_string``
(for azure-iot-hub), ``ca_cert`` (the PEM that verifies the hub's TLS),
``gateway_host`` (what devices put in ``GatewayHostName`` / ``gateway_hostname``),
``hub_hostname`` (the ``HostName`` of device connection strings), ``id_scope`` and
``provisioning_host`` (for DPS), and more (see :meth:`LocalIoTHub.info`). It carries a
secret (the service policy key): treat the line as a credential.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from sim.cloud.hub import EVALUATION_INTERVAL_S
from sim.cloud.iothub.dps import Enrollment
from sim.cloud.iothub.sas import new_key
from sim.cloud.iothub.server import LocalIoTHub


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim hub", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to serve on")
    parser.add_argument("--state", type=Path, help="keep registry, twins and configurations here")
    parser.add_argument("--service-port", type=int, default=0, help="HTTPS port (0: any free)")
    parser.add_argument(
        "--evaluation-interval",
        type=float,
        default=EVALUATION_INTERVAL_S,
        help="seconds between configuration evaluations (IoT Hub: about 300)",
    )
    parser.add_argument(
        "--group-enrollment",
        metavar="NAME",
        action="append",
        default=[],
        help="create a symmetric-key DPS enrollment group (its key is in the JSON line)",
    )
    parser.add_argument(
        "--initial-tags",
        default="{}",
        help="JSON object of tags the enrollment groups give their devices",
    )
    return parser


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not 0 <= args.service_port <= 65535:
        parser.error(f"--service-port must be 0..65535, got {args.service_port}")
    if not args.evaluation_interval > 0:
        parser.error("--evaluation-interval must be > 0")
    try:
        tags = json.loads(args.initial_tags)
        if not isinstance(tags, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        parser.error(f"--initial-tags must be a JSON object: {exc}")
    try:
        hub = LocalIoTHub(
            host=args.host,
            service_port=args.service_port,
            state_dir=args.state,
            evaluation_interval_s=args.evaluation_interval,
        )
    except (ValueError, OSError) as exc:
        parser.error(str(exc).splitlines()[0])
    try:
        hub.start()
    except OSError as exc:
        hub.close()
        print(f"cannot listen on {args.host}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    info: dict[str, Any] = hub.info()
    groups = {}
    for name in args.group_enrollment:
        kept = hub.call(lambda h, n=name: hub.dps.groups.get(n))  # from --state
        if kept is None or kept.primary_key is None:
            kept = hub.enroll(
                Enrollment(name, group=True, primary_key=new_key(), initial_tags=tags)
            )
        groups[name] = kept.primary_key
    if groups:
        info["group_enrollments"] = groups
    print(json.dumps(info), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        hub.close()
    return 0
