"""A pyusb backend whose only device is a :class:`VirtualFt232h`.

pyusb talks to USB through a backend object (``usb.backend.IBackend``); pyftdi
loads one by importing each module named in ``UsbTools.BACKENDS`` and calling its
``get_backend()``. :func:`plugged` points that tuple at this module for the
duration of a ``with`` block, so ``SpiController().configure("ftdi://ftdi:232h/1")``
runs pyftdi's real URL parsing, enumeration and MPSSE code against the virtual chip.
"""

import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

import usb.backend
import usb.core
from pyftdi.usbtools import UsbTools

from .device import (
    EP_IN,
    EP_OUT,
    FT232H_BCD,
    FT232H_PID,
    FTDI_VID,
    GET_DESCRIPTOR,
    MAX_PACKET,
    UsbStall,
    VirtualFt232h,
)

_REQ_TYPE_MASK, _REQ_STANDARD, _REQ_VENDOR = 0x60, 0x00, 0x40
_DIR_IN = 0x80
_EPIPE = 32  # libusb reports a stall as LIBUSB_ERROR_PIPE; errno EPIPE


@dataclass
class _Handle:
    device: VirtualFt232h
    claimed: set[int] = field(default_factory=set)


class VirtualUsbBackend(usb.backend.IBackend):
    """Enumerates one virtual FT232H on bus 1, address ``address``."""

    def __init__(self, device: VirtualFt232h, *, address: int = 1) -> None:
        self.device = device
        self.address = address
        self.configuration = 0
        self.open_handles = 0

    def enumerate_devices(self) -> Iterator[VirtualFt232h]:
        yield self.device

    def get_parent(self, dev: VirtualFt232h) -> None:
        return None

    def get_device_descriptor(self, dev: VirtualFt232h) -> SimpleNamespace:
        return SimpleNamespace(
            bLength=18,
            bDescriptorType=0x01,
            bcdUSB=0x0200,
            bDeviceClass=0,
            bDeviceSubClass=0,
            bDeviceProtocol=0,
            bMaxPacketSize0=64,
            idVendor=FTDI_VID,
            idProduct=FT232H_PID,
            bcdDevice=FT232H_BCD,
            iManufacturer=1,
            iProduct=2,
            iSerialNumber=3,
            bNumConfigurations=1,
            address=self.address,
            bus=1,
            port_number=1,
            port_numbers=(1,),
            speed=3,  # usb.util.SPEED_HIGH
        )

    def get_configuration_descriptor(self, dev: VirtualFt232h, config: int) -> SimpleNamespace:
        if config != 0:
            raise IndexError(f"no configuration {config}")
        return SimpleNamespace(
            bLength=9,
            bDescriptorType=0x02,
            wTotalLength=9 + 9 + 7 + 7,
            bNumInterfaces=1,
            bConfigurationValue=1,
            iConfiguration=0,
            bmAttributes=0x80,  # bus powered
            bMaxPower=50,  # 100 mA, in 2 mA units
            extra_descriptors=[],
        )

    def get_interface_descriptor(
        self, dev: VirtualFt232h, intf: int, alt: int, config: int
    ) -> SimpleNamespace:
        if (intf, alt, config) != (0, 0, 0):
            raise IndexError(f"no interface {intf} alt {alt} in configuration {config}")
        return SimpleNamespace(
            bLength=9,
            bDescriptorType=0x04,
            bInterfaceNumber=0,
            bAlternateSetting=0,
            bNumEndpoints=2,
            bInterfaceClass=0xFF,
            bInterfaceSubClass=0xFF,
            bInterfaceProtocol=0xFF,
            iInterface=2,
            extra_descriptors=[],
        )

    def get_endpoint_descriptor(
        self, dev: VirtualFt232h, ep: int, intf: int, alt: int, config: int
    ) -> SimpleNamespace:
        if (intf, alt, config) != (0, 0, 0) or ep not in (0, 1):
            raise IndexError(f"no endpoint {ep} on interface {intf}")
        return SimpleNamespace(
            bLength=7,
            bDescriptorType=0x05,
            bEndpointAddress=(EP_IN, EP_OUT)[ep],
            bmAttributes=0x02,  # bulk
            wMaxPacketSize=MAX_PACKET,
            bInterval=0,
            bRefresh=0,
            bSynchAddress=0,
            extra_descriptors=[],
        )

    def open_device(self, dev: VirtualFt232h) -> _Handle:
        self.open_handles += 1
        return _Handle(dev)

    def close_device(self, dev_handle: _Handle) -> None:
        self.open_handles -= 1

    def set_configuration(self, dev_handle: _Handle, config_value: int) -> None:
        if config_value not in (0, 1):
            raise usb.core.USBError("invalid configuration", _EPIPE, _EPIPE)
        self.configuration = config_value

    def get_configuration(self, dev_handle: _Handle) -> int:
        return self.configuration

    def set_interface_altsetting(self, dev_handle: _Handle, intf: int, altsetting: int) -> None:
        if (intf, altsetting) != (0, 0):
            raise usb.core.USBError("no such alternate setting", _EPIPE, _EPIPE)

    def claim_interface(self, dev_handle: _Handle, intf: int) -> None:
        dev_handle.claimed.add(intf)

    def release_interface(self, dev_handle: _Handle, intf: int) -> None:
        dev_handle.claimed.discard(intf)

    def is_kernel_driver_active(self, dev_handle: _Handle, intf: int) -> bool:
        return False

    def detach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        return None

    def attach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        return None

    def reset_device(self, dev_handle: _Handle) -> None:
        dev_handle.device.engine.reset()

    def clear_halt(self, dev_handle: _Handle, ep: int) -> None:
        return None

    def bulk_write(
        self, dev_handle: _Handle, ep: int, intf: int, data: array.array, timeout: int
    ) -> int:
        if ep != EP_OUT:
            raise usb.core.USBError(f"endpoint 0x{ep:02X} is not bulk OUT", _EPIPE, _EPIPE)
        return dev_handle.device.bulk_out(data.tobytes())

    def bulk_read(
        self, dev_handle: _Handle, ep: int, intf: int, buff: array.array, timeout: int
    ) -> int:
        if ep != EP_IN:
            raise usb.core.USBError(f"endpoint 0x{ep:02X} is not bulk IN", _EPIPE, _EPIPE)
        data = dev_handle.device.bulk_in(len(buff) * buff.itemsize)
        buff[: len(data)] = array.array("B", data)
        return len(data)

    def ctrl_transfer(
        self,
        dev_handle: _Handle,
        bmRequestType: int,
        bRequest: int,
        wValue: int,
        wIndex: int,
        data: array.array,
        timeout: int,
    ) -> int:
        device = dev_handle.device
        kind = bmRequestType & _REQ_TYPE_MASK
        try:
            if bmRequestType & _DIR_IN:
                if kind == _REQ_STANDARD and bRequest == GET_DESCRIPTOR and wValue >> 8 == 3:
                    answer = device.string_descriptor(wValue & 0xFF)
                elif kind == _REQ_VENDOR:
                    answer = device.control_in(bRequest, wValue, wIndex, len(data))
                else:
                    raise UsbStall(f"unsupported IN request {bmRequestType:02X}/{bRequest:02X}")
                answer = answer[: len(data)]
                data[: len(answer)] = array.array("B", answer)
                return len(answer)
            if kind != _REQ_VENDOR:
                raise UsbStall(f"unsupported OUT request {bmRequestType:02X}/{bRequest:02X}")
            return device.control_out(bRequest, wValue, wIndex, data.tobytes())
        except UsbStall as stall:
            raise usb.core.USBError(str(stall), _EPIPE, _EPIPE) from None


_plugged: VirtualUsbBackend | None = None


def get_backend() -> VirtualUsbBackend | None:
    """The backend pyftdi loads through ``UsbTools.BACKENDS`` (None when unplugged)."""
    return _plugged


@contextmanager
def plugged(device: VirtualFt232h) -> Iterator[VirtualUsbBackend]:
    """Make ``device`` the only USB device pyftdi sees until the block ends.

    pyftdi caches enumerations and open devices in class attributes of
    ``UsbTools``; they are flushed on entry and exit so that neither a real
    adapter nor an earlier virtual one leaks across.
    """
    global _plugged
    if _plugged is not None:
        raise RuntimeError("a virtual FT232H is already plugged in")
    saved = UsbTools.BACKENDS
    UsbTools.flush_cache()
    UsbTools.BACKENDS = (__name__,)
    _plugged = VirtualUsbBackend(device)
    try:
        yield _plugged
    finally:
        UsbTools.release_all_devices(VirtualFt232h)
        UsbTools.flush_cache()
        UsbTools.BACKENDS = saved
        _plugged = None
