"""``python -m deploy ota`` (also ``python -m sim ota`` and the ``ota`` console script):
the operator's tool, the original's ``ota.py`` without its bugs.

``ota FILE VERSION PRODUCT GROUP [-c CONTAINER] [-d DAYS]`` (reference design, "Operator
tooling"): upload the image to Blob storage, sign a SAS for DAYS (365 by default),
compute the SHA-256 (upper case) and size, and create the IoT Hub automatic device
configuration ``ota_v{V}`` with priority V, target condition ``tags.productType='{P}'
AND tags.deviceGroup='{G}'``, content ``properties.desired.extFwInfo`` and metrics
counting devices by ``properties.reported.extFwInfo.Status``.

Both sides use the real SDKs, so the same command works against this project's blob
server + local IoT Hub (``python -m sim hub``), Azurite, and Azure: ``azure-storage-blob``
with ``AZURE_STORAGE_CONNECTION_STRING`` (or ``--storage``) and ``azure-iot-hub``'s
``IoTHubConfigurationManager`` with ``IOTHUB_CONNECTION_STRING`` (or ``--hub``); a hub
with a private CA (the local one) is trusted through ``--hub-ca FILE`` (or
``REQUESTS_CA_BUNDLE``). Without a hub connection string the configuration is written
as JSON (``--hub-json``, what ``az iot hub configuration create`` reads) or printed.

Fixed against the original:

- the blob name carries the version and the hash (``{stem}-v{V}-{sha256[:12]}{suffix}``),
  so a device resuming an earlier download can never splice two images;
- the SAS is read-only (``sp=r``) and scoped to that one blob (``sr=b``), not read + list
  on the container;
- VERSION must exceed every version already deployed to PRODUCT (the ``version`` label
  of the hub's configurations for that product): a rollback is refused;
- ``--dry-run`` says what would be done and changes nothing;
- a SAS is never printed in full (``sig`` redacted), nor a connection string.

Deviation kept from before: each metric query is scoped to its own configuration
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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import BlobSasPermissions, generate_blob_sas
from azure.storage.blob.aio import BlobServiceClient

from agent.redact import redact
from agent.report import Status
from sim.cloud.hub import Configuration, Hub

DEFAULT_CONTAINER = "ota"  # ota.py's default container
DEFAULT_DAYS = 365  # ota.py's default SAS lifetime
STORAGE_ENV = "AZURE_STORAGE_CONNECTION_STRING"
HUB_ENV = "IOTHUB_CONNECTION_STRING"


class DeployError(Exception):
    """The deployment cannot go ahead; the message is one line, with no secret."""


@dataclass(frozen=True)
class Release:
    """What the operator publishes: one image, its version and the devices it is for."""

    image: bytes
    version: int
    product: str
    group: str
    blob_name: str | None = None  # default: derived from file_name, version and hash
    container: str = DEFAULT_CONTAINER
    days: int = DEFAULT_DAYS
    file_name: str = "mcu.bin"

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version <= 0:
            raise ValueError(f"version must be an integer > 0, got {self.version!r}")
        if not isinstance(self.image, bytes) or not self.image:
            raise ValueError("image must be non-empty bytes (size > 0 is part of the contract)")
        for name in ("product", "group"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or "'" in value:
                raise ValueError(f"{name} must be a non-empty string without quotes, got {value!r}")
        if self.blob_name is not None and (
            not isinstance(self.blob_name, str) or not self.blob_name.strip("/")
        ):
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

    @property
    def blob(self) -> str:
        """``{stem}-v{V}-{sha256[:12]}{suffix}``: every version and content its own blob."""
        if self.blob_name is not None:
            return self.blob_name
        name = PurePosixPath(self.file_name or "image.bin")
        return f"{name.stem}-v{self.version}-{self.sha256[:12].lower()}{name.suffix}"


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


# --- storage -------------------------------------------------------------------------


def blob_sas(release: Release, *, account_name: str, account_key: str) -> str:
    """A read-only service SAS for the release's blob alone, valid ``days``."""
    return generate_blob_sas(
        account_name=account_name,
        container_name=release.container,
        blob_name=release.blob,
        account_key=account_key,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(days=release.days),
    )


async def upload(release: Release, storage: str, *, dry_run: bool = False) -> tuple[str, str]:
    """Upload the image (refusing to replace a different one under the same name) and
    sign its SAS. Returns ``(blob url without query, sas without '?')``."""
    async with BlobServiceClient.from_connection_string(storage) as service:
        account_key = getattr(service.credential, "account_key", None)
        account_name = service.account_name
        if not account_key or not account_name:
            raise ValueError(
                "storage connection string must carry AccountName and AccountKey to sign the SAS"
            )
        container = service.get_container_client(release.container)
        blob = container.get_blob_client(release.blob)
        if not dry_run:
            with contextlib.suppress(ResourceExistsError):  # ota.py expects it to exist
                await container.create_container()
            await blob.upload_blob(release.image, overwrite=True)
        return blob.url.split("?", 1)[0], blob_sas(
            release, account_name=account_name, account_key=account_key
        )


# --- the hub -------------------------------------------------------------------------


def deployed_versions(configurations: Iterable[Any], product: str) -> list[int]:
    """Versions of ``product`` already deployed: the ``version`` label (or an ``ota_vN``
    id) of each configuration labelled with that product."""
    versions = []
    for c in configurations:
        labels = getattr(c, "labels", None) or {}
        if labels.get("product") != product:
            continue
        text = labels.get("version") or str(getattr(c, "id", "")).removeprefix("ota_v")
        with contextlib.suppress(ValueError):
            versions.append(int(text))
    return versions


def check_newer(release: Release, versions: Iterable[int]) -> None:
    """Refuse a release that does not exceed every deployed version (no rollback)."""
    newest = max(versions, default=0)
    if release.version <= newest:
        raise DeployError(
            f"VERSION {release.version} does not exceed version {newest} already deployed to "
            f"{release.product!r}: rollback refused (deploy a higher version)"
        )


def _manager(hub: str) -> Any:
    from azure.iot.hub import IoTHubConfigurationManager  # imports uamqp: only when used

    return IoTHubConfigurationManager.from_connection_string(hub)


def hub_check(release: Release, hub: str) -> None:
    """Read the hub's configurations and refuse a rollback or an existing id."""
    configurations = _manager(hub).get_configurations()
    check_newer(release, deployed_versions(configurations, release.product))
    if any(getattr(c, "id", None) == release.config_id for c in configurations):
        raise DeployError(f"configuration {release.config_id} already exists in the hub")


def hub_create(configuration: Configuration, hub: str) -> Any:
    """``IoTHubConfigurationManager.create_configuration`` with the REST body."""
    from azure.iot.hub.models import Configuration as SdkConfiguration

    model = SdkConfiguration.deserialize(configuration.to_json())
    return _manager(hub).create_configuration(model)


async def publish(
    release: Release,
    *,
    storage: str,
    hub: Hub | None = None,
    iothub: str | None = None,
    dry_run: bool = False,
) -> Configuration:
    """Check the hub (no rollback), upload, sign and build the configuration; create it in
    the in-process ``hub`` or through the service SDK on ``iothub`` (a connection
    string). ``dry_run`` reads but writes nothing."""
    if hub is not None:
        check_newer(release, deployed_versions(hub.configurations, release.product))
    if iothub is not None:
        await asyncio.to_thread(hub_check, release, iothub)
    url, sas = await upload(release, storage, dry_run=dry_run)
    configuration = build_configuration(release, url=url, sas=sas)
    if dry_run:
        return configuration
    if hub is not None:
        hub.create_configuration(configuration)
    if iothub is not None:
        await asyncio.to_thread(hub_create, configuration, iothub)
    return configuration


# --- the command line ----------------------------------------------------------------


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only: it carries the SAS signature."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Upload a firmware image, sign a read-only SAS and create the IoT Hub "
        "configuration that targets PRODUCT/GROUP.",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="the image to deploy")
    parser.add_argument("version", metavar="VERSION", type=int, help="the image's version, > 0")
    parser.add_argument("product", metavar="PRODUCT", help="target tags.productType")
    parser.add_argument("group", metavar="GROUP", help="target tags.deviceGroup")
    parser.add_argument("-c", "--container", default=DEFAULT_CONTAINER, help="blob container")
    parser.add_argument("-d", "--days", type=int, default=DEFAULT_DAYS, help="SAS lifetime")
    parser.add_argument("-b", "--blob", help="blob name (default: FILE's stem, version, hash)")
    parser.add_argument(
        "--storage", default=os.environ.get(STORAGE_ENV),
        help=f"storage connection string (default: ${STORAGE_ENV})",
    )  # fmt: skip
    parser.add_argument(
        "--hub", default=os.environ.get(HUB_ENV),
        help=f"IoT Hub service connection string (default: ${HUB_ENV})",
    )  # fmt: skip
    parser.add_argument("--hub-ca", type=Path, help="PEM trusted for the hub's HTTPS")
    parser.add_argument("--hub-json", type=Path, help="also write the configuration as JSON")
    parser.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
    return parser


def main(argv: list[str], *, prog: str = "python -m deploy ota") -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if not args.storage:
        parser.error(f"--storage CONNECTION_STRING is required (or {STORAGE_ENV})")
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
            blob_name=args.blob,
            container=args.container,
            days=args.days,
            file_name=args.file.name,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.hub_ca is not None:
        if not args.hub_ca.is_file():
            parser.error(f"--hub-ca {str(args.hub_ca)!r} is not a file")
        os.environ["REQUESTS_CA_BUNDLE"] = str(args.hub_ca)
    try:
        configuration = asyncio.run(
            publish(release, storage=args.storage, iothub=args.hub, dry_run=args.dry_run)
        )
    except DeployError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the SDKs raise many types; report one redacted line
        if (
            not isinstance(exc, AzureError | ValueError | OSError)
            and "msrest" not in type(exc).__module__
        ):
            raise
        first = (redact(str(exc)).splitlines() or [type(exc).__name__])[0]
        print(f"deploy failed: {first}", file=sys.stderr)
        return 1
    _print_result(release, configuration, args)
    return 0


def _print_result(release: Release, configuration: Configuration, args: argparse.Namespace) -> None:
    info = configuration.content["properties.desired.extFwInfo"]
    would = "would " if args.dry_run else ""
    print(f"{would}upload   {info['url']} ({info['size']} bytes)")
    print(f"sha256     {info['sha256']}")
    print(f"sas        {redact(info['sas'])} (read-only, this blob, {release.days} days)")
    print(f"config     {configuration.id}, priority {configuration.priority}")
    print(f"target     {configuration.target_condition}")
    if args.hub:
        print(f"{would}create   {configuration.id} in the IoT Hub")
    document = json.dumps(configuration.to_json(), indent=2)
    if args.hub_json is not None and not args.dry_run:
        _write_private(args.hub_json, document + "\n")
        print(f"written    {args.hub_json}")
    elif not args.hub:
        print(redact(document))
    if args.dry_run:
        print("dry run: nothing was uploaded or created")


def console() -> int:
    """The ``ota`` console script."""
    return main(sys.argv[1:], prog="ota")
