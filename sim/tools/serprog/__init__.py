"""A serprog bridge: any SPI port served to flashrom over TCP.

flashrom's serprog programmer (``flashrom -p serprog:ip=HOST:PORT``) speaks the
*Serial Flasher Protocol Specification, version 1* (flashrom source tree,
``Documentation/serprog-protocol.txt``, also shipped as
``/usr/share/doc/flashrom/serprog-protocol.txt.gz``). Every command is one opcode
byte and fixed parameters; the answer is ACK (06h) plus data, or NAK (15h).
Multi-byte values are little-endian; lengths and addresses are 24-bit.

This bridge serves the SPI bus only (Q_BUSTYPE answers SPI): ``O_SPIOP`` sends
``slen`` bytes and reads ``rlen`` bytes in one /CS assertion, i.e. one
``port.exchange(out, rlen)``. The operation buffer (``O_INIT``/``O_DELAY``/
``O_EXEC``) holds delays only: flashrom streams its waits (WIP polling, status
register writes) to the programmer when ``O_DELAY`` is advertised instead of
sleeping itself, and the bridge turns them into time on the injected clock; on a
:class:`sim.clock.VirtualClock` that costs no real time. Each ``O_SPIOP`` also
costs ``turnaround_s`` on that clock, the programmer's round trip (a USB
full-speed serprog adapter answers once per 1 ms frame).

Deliberate choices, each allowed by the specification:

- Parallel/LPC/FWH commands (``Q_CHIPSIZE``, ``R_BYTE``, ``R_NBYTES``,
  ``O_WRITEB``, ``O_WRITEN``) are not in the command map and are NAKed.
- An opcode not in the command map is answered with one NAK and none of the bytes
  after it are consumed (its parameters are unknown), as serprog firmware does;
  flashrom resynchronises with NOPs and ``SYNCNOP``.
- An ``O_SPIOP`` longer than the advertised maximum, sent while the pin drivers are
  disabled (``S_PIN_STATE`` 0), or failing because the device lost power
  (:class:`agent.errors.PowerLoss`) has its data consumed and is answered NAK.

Connections are served one at a time, in order; the port (and the chip behind it)
persists between them. A client that sends no command, or reads none of its answer,
for ``idle_timeout_s`` is dropped, so the next one waiting is served. ``python -m sim
serprog`` serves a simulated W25Q128JV; with ``--image`` its array is the file and its
registers and wear are in ``FILE.nv.json``, written (atomically) after every command
that changed them, so even ``kill -9`` loses nothing.

The parts: the command bytes, constants and framing :mod:`sim.tools.serprog.protocol`;
one connection's protocol state :mod:`sim.tools.serprog.session`
(:class:`~sim.tools.serprog.session.SerprogSession`); the TCP server, one client at a
time with the idle timeout :mod:`sim.tools.serprog.server`
(:class:`~sim.tools.serprog.server.SerprogServer`); ``python -m sim serprog`` and its
image and register sidecar :mod:`sim.tools.serprog.cli`. ``sim.tools.serprog.
SerprogServer`` stays the import path other packages use for the bridge.
"""

from sim.tools.serprog.server import SerprogServer

__all__ = ["SerprogServer"]
