"""How an agent is set up: :class:`AgentConfig`, every field the original design's value
or a safe one (the littlefs geometry, the download policy, where images may come from,
the reporting step and the retry intervals)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.download import DownloadPolicy
from agent.hosts import AZURE_BLOB_HOSTS
from agent.instruction import allow_list, storage_hosts_entries
from agent.storage import Geometry


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """How an agent is set up; every field has the original design's value or a safe one."""

    geometry: Geometry = field(default_factory=Geometry)
    download: DownloadPolicy = field(default_factory=DownloadPolicy)
    allow_http_loopback: bool = False
    # where images may come from (agent.hosts): Azure Blob's endpoints; simulation and
    # tests pass agent.hosts.LOOPBACK_HOSTS for their loopback blob server
    storage_hosts: tuple[str, ...] = AZURE_BLOB_HOSTS
    progress_step_percent: int = 5
    retry_interval_s: float = 60.0  # after `interrupted`, try again on our own (jittered)
    storage_retry_s: float = 300.0  # a chip unusable at boot is tried again this often
    space_reserve_blocks: int = 8  # littlefs metadata and copy-on-write headroom
    format_blank: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.progress_step_percent <= 100:
            raise ValueError(
                f"progress_step_percent must be 1..100, got {self.progress_step_percent}"
            )
        if self.retry_interval_s < 0:
            raise ValueError(f"retry_interval_s must be >= 0, got {self.retry_interval_s}")
        if not self.storage_retry_s > 0:
            raise ValueError(f"storage_retry_s must be > 0, got {self.storage_retry_s}")
        if self.space_reserve_blocks < 0:
            raise ValueError(f"space_reserve_blocks must be >= 0, got {self.space_reserve_blocks}")
        object.__setattr__(self, "storage_hosts", storage_hosts_entries(self.storage_hosts))
        allow_list(self.storage_hosts)  # a malformed entry is refused here, not per instruction
