"""The MCU target seam: where a verified image is finally applied."""

from typing import BinaryIO, Protocol, runtime_checkable


@runtime_checkable
class McuTarget(Protocol):
    """The external MCU's programmer (the reference design leaves it a stub).

    ``install`` must be safe to repeat: the agent calls it only while
    ``current_version()`` is below the staged version, and again after a cut
    during a previous ``install``.
    """

    def current_version(self) -> int:
        """The version the MCU runs now; 0 for the factory image."""
        ...

    def install(self, reader: BinaryIO, size: int, version: int) -> None:
        """Program ``size`` bytes read from ``reader`` and make ``version`` current."""
        ...
