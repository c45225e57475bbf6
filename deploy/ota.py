"""``python -m sim ota``: the operator's tool, the equivalent of the original's ``ota.py``.

``ota.py FILE VERSION PRODUCT GROUP [-c CONTAINER] [-d DAYS]`` (reference design,
"Operator tooling"): upload the image to Blob storage (one blob name for every version,
overwritten), make a container SAS with read + list for DAYS (365 by default), compute the
SHA-256 (upper case) and size, and create the IoT Hub configuration ``ota_v{V}`` with
priority V, target condition ``tags.productType='{P}' AND tags.deviceGroup='{G}'``,
content ``properties.desired.extFwInfo`` and metrics counting devices by
``properties.reported.extFwInfo.Status``.

The upload uses the real ``azure-storage-blob`` SDK, so the same command works against our
blob server, Azurite or Azure (``--storage CONNECTION_STRING``). The configuration is
written as JSON (``--hub-json``: the REST body ``IoTHubConfigurationManager.
create_configuration`` sends and ``az iot hub configuration create`` reads), or created in
a :class:`sim.cloud.hub.Hub` in process through :func:`publish`. The SAS signature is a bearer
secret: it goes into the configuration and nowhere else (output is redacted).

Deviation from the original: each metric query is scoped to its own configuration
(``configurations.[[ota_vN]].status='Applied'``), so a fleet running several versions
counts each version's devices, not every device in the hub with that status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from azure.storage.blob.aio import BlobServiceClient

from agent.redact import redact
from agent.report import Status
from sim.cloud.hub import Configuration, Hub

DEFAULT_CONTAINER = "ota"  # ota.py's default container
DEFAULT_DAYS = 365  # ota.py's default SAS lifetime


@dataclass(frozen=True)
class Release:
    """What the operator publishes: one image, its version and the devices it is for."""

    image: bytes
    version: int
    product: str
    group: str
    blob_name: str = "mcu.bin"
    container: str = DEFAULT_CONTAINER
    days: int = DEFAULT_DAYS

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version <= 0:
            raise ValueError(f"version must be an integer > 0, got {self.version!r}")
        if not isinstance(self.image, bytes) or not self.image:
            raise ValueError("image must be non-empty bytes (size > 0 is part of the contract)")
        for name in ("product", "group"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or "'" in value:
                raise ValueError(f"{name} must be a non-empty string without quotes, got {value!r}")
        if not isinstance(self.blob_name, str) or not self.blob_name.strip("/"):
            raise ValueError(f"blob_name must be a non-empty name, got {self.blob_name!r}")
        if not isinstance(self.container, str) or not self.container:
            raise ValueError(f"container must be a non-empty name, got {self.container!r}")
        if isinstance(self.days, bool) or not isinstance(self.days, int) or self.days <= 0:
            raise ValueError(f"days must be an integer > 0, got {self.days!r}")

    @property
    def config_id(self) -> str:
        return f"ota_v{self.version}"

    @property
    def target_condition(self) -> str:
        return f"tags.productType='{self.product}' AND tags.deviceGroup='{self.group}'"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.image).hexdigest().upper()


def build_configuration(release: Release, *, url: str, sas: str) -> Configuration:
    """The configuration ``ota.py`` creates for ``release``, its blob ``url`` and ``sas``."""
    scope = f"configurations.[[{release.config_id}]].status='Applied'"
    queries = {
        status.value: (
            "SELECT deviceId FROM devices WHERE "
            f"{scope} AND properties.reported.extFwInfo.Status='{status.value}'"
        )
        for status in Status
    }
    return Configuration(
        id=release.config_id,
        content={
            "properties.desired.extFwInfo": {
                "version": release.version,
                "size": len(release.image),
                "url": url,
                "sas": sas,
                "sha256": release.sha256,
            }
        },
        target_condition=release.target_condition,
        priority=release.version,
        metrics=queries,
        labels={
            "version": str(release.version),
            "product": release.product,
            "group": release.group,
        },
    )


async def upload(release: Release, storage: str) -> tuple[str, str]:
    """Upload the image (overwrite) and make a container SAS (read + list, ``days``).
    Returns ``(blob url without query, sas without '?')``."""
    async with BlobServiceClient.from_connection_string(storage) as service:
        account_key = getattr(service.credential, "account_key", None)
        account_name = service.account_name
        if not account_key or not account_name:
            raise ValueError(
                "storage connection string must carry AccountName and AccountKey to sign the SAS"
            )
        container = service.get_container_client(release.container)
        with contextlib.suppress(ResourceExistsError):  # ota.py expects it to exist
            await container.create_container()
        blob = container.get_blob_client(release.blob_name)
        await blob.upload_blob(release.image, overwrite=True)
        sas = generate_container_sas(
            account_name=account_name,
            container_name=release.container,
            account_key=account_key,
            permission=ContainerSasPermissions(read=True, list=True),
            expiry=datetime.now(UTC) + timedelta(days=release.days),
        )
        return blob.url.split("?", 1)[0], sas


async def publish(release: Release, *, storage: str, hub: Hub | None = None) -> Configuration:
    """Upload, sign and build the configuration; create it in ``hub`` when given."""
    url, sas = await upload(release, storage)
    configuration = build_configuration(release, url=url, sas=sas)
    if hub is not None:
        hub.create_configuration(configuration)
    return configuration


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only: it carries the SAS signature."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sim ota",
        description="Upload a firmware image, make a SAS and build the IoT Hub configuration.",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="the image to deploy")
    parser.add_argument("version", metavar="VERSION", type=int, help="the image's version, > 0")
    parser.add_argument("product", metavar="PRODUCT", help="target tags.productType")
    parser.add_argument("group", metavar="GROUP", help="target tags.deviceGroup")
    parser.add_argument("-c", "--container", default=DEFAULT_CONTAINER, help="blob container")
    parser.add_argument("-d", "--days", type=int, default=DEFAULT_DAYS, help="SAS lifetime")
    parser.add_argument(
        "-b", "--blob", help="blob name (default: FILE's name; keep it the same for every version)"
    )
    parser.add_argument(
        "--storage",
        default=os.environ.get("AZURE_STORAGE_CONNECTION_STRING"),
        help="storage connection string (default: $AZURE_STORAGE_CONNECTION_STRING)",
    )
    parser.add_argument("--hub-json", type=Path, help="write the configuration here as JSON")
    return parser


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.storage:
        parser.error("--storage CONNECTION_STRING is required (or AZURE_STORAGE_CONNECTION_STRING)")
    try:
        image = args.file.read_bytes()
    except OSError as exc:
        parser.error(f"cannot read FILE {str(args.file)!r}: {exc.strerror}")
    try:
        release = Release(
            image=image,
            version=args.version,
            product=args.product,
            group=args.group,
            blob_name=args.blob or args.file.name,
            container=args.container,
            days=args.days,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        configuration = asyncio.run(publish(release, storage=args.storage))
    except (AzureError, ValueError) as exc:
        print(f"upload failed: {redact(str(exc)).splitlines()[0]}", file=sys.stderr)
        return 1
    info = configuration.content["properties.desired.extFwInfo"]
    print(f"uploaded   {info['url']} ({info['size']} bytes)")
    print(f"sha256     {info['sha256']}")
    print(f"sas        {redact(info['sas'])} (read+list, {release.days} days)")
    print(f"config     {configuration.id}, priority {configuration.priority}")
    print(f"target     {configuration.target_condition}")
    document = json.dumps(configuration.to_json(), indent=2)
    if args.hub_json is not None:
        _write_private(args.hub_json, document + "\n")
        print(f"written    {args.hub_json}")
    else:
        print(redact(document))
    return 0
