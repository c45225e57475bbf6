"""Which hosts the agent may download an image from: the storage allow-list.

The original's app manifest restricts outgoing connections to named hosts (Azure
Sphere "AllowedConnections"); here the agent's configuration carries the same list
(:attr:`agent.config.AgentConfig.storage_hosts`). An entry is one of:

* a host name, matched exactly (``fw.example.com``);
* ``*.`` and a domain, matching exactly one more label (``*.blob.core.windows.net``
  matches ``{account}.blob.core.windows.net``, as a TLS wildcard does, RFC 6125 6.4.3),
  never an IDNA A-label (``xn--...``);
* an IP address or network (``127.0.0.0/8``, ``::1``).

A host is compared as a resolver would use it, so nothing else can slip past: names
must be ASCII letters, digits and inner hyphens (RFC 1123 2.1), because an IDNA
resolver folds a fullwidth dot or letter into ASCII and would reach a host the list
never named; IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``) are their IPv4 address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

AZURE_BLOB_HOSTS: tuple[str, ...] = ("*.blob.core.windows.net",)
"""The default: Azure Blob storage's public endpoints ("Storage account overview",
standard endpoints ``https://{account}.blob.core.windows.net``)."""

LOOPBACK_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.0/8", "::1")
"""Loopback only (RFC 1122 3.2.1.3, RFC 4291 2.5.3): what simulation passes."""

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def ip_of(host: str) -> IpAddress | None:
    """The address ``host`` is written as (IPv4-mapped IPv6 as IPv4), or None for a name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback_host(host: str) -> bool:
    """True for the name ``localhost``, 127.0.0.0/8 and ``::1`` (also IPv4-mapped), only.

    Names under ``.localhost`` are not taken: RFC 6761 6.3 asks resolvers to keep them
    on loopback, but a resolver that does not would send them to DNS.
    """
    host = host.lower()
    if host == "localhost":
        return True
    ip = ip_of(host)
    return ip is not None and ip.is_loopback


def name_problem(host: str) -> str | None:
    """Why ``host`` (not an IP address) is not a plain DNS name, or None if it is one."""
    if not host.isascii():
        return "has a character outside ASCII (a look-alike host)"
    if len(host) > 253:
        return "is longer than 253 characters"
    labels = host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return "is not a host name of letters, digits and inner hyphens"
    return None


@dataclass(frozen=True)
class HostPattern:
    """One allow-list entry, parsed (see the module doc)."""

    text: str
    name: str | None = None
    suffix: str | None = None  # "*.example.com" -> ".example.com"
    network: IpNetwork | None = None

    @classmethod
    def parse(cls, entry: str) -> HostPattern:
        """Parse ``entry``; ``ValueError`` naming ``storage_hosts`` when it is malformed."""
        if not isinstance(entry, str) or not entry:
            raise ValueError(f"storage_hosts: an entry must be a non-empty string, got {entry!r}")
        text = entry.strip().lower()
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            pass
        else:
            return cls(entry, network=network)
        if "/" in text or ":" in text:
            raise ValueError(f"storage_hosts: {entry!r} is not an IP address or network")
        wildcard = text.startswith("*.")
        domain = text[2:] if wildcard else text
        problem = name_problem(domain)
        if problem is not None or "*" in domain:
            raise ValueError(
                f"storage_hosts: {entry!r} must be a host name, '*.' and a domain, or an IP network"
            )
        if wildcard and "." not in domain:
            raise ValueError(f"storage_hosts: {entry!r} is a wildcard over a top-level domain")
        return cls(entry, suffix="." + domain) if wildcard else cls(entry, name=domain)

    def matches(self, host: str) -> bool:
        """Whether ``host`` (lowercase, brackets removed) is allowed by this entry."""
        ip = ip_of(host)
        if self.network is not None:
            return ip is not None and ip.version == self.network.version and ip in self.network
        if ip is not None:
            return False
        if self.name is not None:
            return host == self.name
        assert self.suffix is not None
        head = host.removesuffix(self.suffix)
        # a wildcard never stands for an IDNA A-label (RFC 6125 6.4.3): "xn--" spells a
        # look-alike of a name in another script
        return head != host and bool(_LABEL.fullmatch(head)) and not head.startswith("xn--")


@dataclass(frozen=True)
class StorageHosts:
    """The allow-list as parsed patterns; ``allows(host)`` decides."""

    patterns: tuple[HostPattern, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> StorageHosts:
        if isinstance(entries, str):
            raise ValueError("storage_hosts must be a sequence of entries, not one string")
        patterns = tuple(HostPattern.parse(entry) for entry in entries)
        if not patterns:
            raise ValueError("storage_hosts must name at least one host")
        return cls(patterns)

    def allows(self, host: str) -> bool:
        return any(pattern.matches(host) for pattern in self.patterns)

    def describe(self) -> str:
        return ", ".join(pattern.text for pattern in self.patterns)
