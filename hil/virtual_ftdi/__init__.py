"""A virtual FT232H for CI: a pyusb backend presenting an FT232H to pyftdi, whose
MPSSE engine drives a W25Q128 model (or any :class:`~.wiring.SpiChip`).

Built from FTDI AN_108 and the FT232H datasheet, and from what pyftdi sends;
pyftdi's own virtual backend (not on PyPI) is not used.
"""

from .backend import VirtualUsbBackend, plugged
from .device import UsbStrings, VirtualFt232h
from .mpsse import MpsseEngine, UnsupportedMpsseCommand
from .wiring import FlashPins, FlashWiring, SpiChip

__all__ = [
    "FlashPins",
    "FlashWiring",
    "MpsseEngine",
    "SpiChip",
    "UnsupportedMpsseCommand",
    "UsbStrings",
    "VirtualFt232h",
    "VirtualUsbBackend",
    "plugged",
]
