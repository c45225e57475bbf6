"""A bit-accurate model of the Winbond W25Q128JV 16 MiB SPI NOR flash, at the SPI byte level.

``select()`` / ``transfer(data)`` / ``deselect()`` clock whole bytes full duplex, as on
the wire; :class:`sim.ports.model.SimSpiPort` puts pyftdi's ``SpiPort`` interface on top.
This module is the command machine and its time. Power and cuts are
:mod:`sim.chip.power`; the commands' effects live in the other parts: reads, programs and
erases :mod:`sim.chip.array`, status registers and protection :mod:`sim.chip.status`
(table :mod:`sim.chip.protect`), security registers :mod:`sim.chip.security`, identity
:mod:`sim.chip.identity`, suspend, resume, power-down and reset :mod:`sim.chip.control`;
busy times :mod:`sim.chip.timing`, SFDP :mod:`sim.chip.sfdp`, the non-volatile store
:mod:`sim.chip.store`. The rules and their datasheet sections: ``docs/w25q128jv.md``.

Power cuts (:meth:`W25Q128.schedule_cut`, :meth:`W25Q128.power_off`) tear the operation
in flight at its progress ``f`` (elapsed busy time / its duration). Distributions, all
drawn from a ``random.Random`` seeded from ``seed``:

* Page Program (and security program): each bit the program would take 1 -> 0 is cleared
  independently with probability ``f``; no other bit changes.
* Erase (and security erase): each bit still 0 in the unit becomes 1 independently with
  probability ``f``; bits already 1 stay 1 (the model has no pre-program phase).
* Status write: the new value with probability ``f``, else the old one, for all registers.

Wear: each sector counts its erases. With ``wear_failure=True``, every erase past
``endurance`` sticks one more seeded random bit of that sector at 0 (it no longer erases).

Where the model departs from the datasheet on purpose (dual/quad I/O declined, a reset
accepted while BUSY, protection refusals leaving WEL set...) is listed in
``docs/w25q128jv.md`` ("Deviations").
"""

import os
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import array as _array

from agent.errors import PowerLoss
from agent.w25q128jv import (
    ALLOWED_WHILE_BUSY,
    CHIP_ERASES,
    ERASE_UNITS,
    READ_STATUS,
    SECTORS,
    SIZE,
    WRITE_STATUS,
    Op,
)
from sim.chip import sfdp
from sim.chip.array import ArrayCommands
from sim.chip.control import ControlCommands
from sim.chip.identity import IdentityReads
from sim.chip.power import INF, PowerSupply
from sim.chip.sectors import SectorArray
from sim.chip.security import SecurityRegisters
from sim.chip.state import ChipCounters, ChipCut, ChipSnapshot, Operation
from sim.chip.status import BUSY_BIT, QE_BIT, WEL_BIT, StatusRegisters
from sim.chip.store import NvStore
from sim.chip.timing import DATASHEET, MODES, Timing
from sim.clock import VirtualClock

__all__ = ["W25Q128", "ChipCounters", "ChipCut", "ChipPowerLoss", "ChipSnapshot", "Timing"]

_Bytes = bytes | bytearray | memoryview  # what a transfer or an exchange may carry
_FF = b"\xff" * 65536
_FF_VIEW = memoryview(_FF)
_RDSR1, _READ, _WREN = int(Op.READ_STATUS1), int(Op.READ_DATA), int(Op.WRITE_ENABLE)
_HOT_LEN = {_RDSR1: 1, _READ: 4, _WREN: 1}  # transact's direct answers: opcode -> len(out)
_RESET, _ENABLE_RESET, _RELEASE = (
    Op.RESET_DEVICE.value,
    Op.ENABLE_RESET.value,
    Op.RELEASE_POWER_DOWN.value,
)
REFUSED_SUSPENDED = frozenset(  # erases, status writes, security program/erase, locks, power-down
    {*ERASE_UNITS, *CHIP_ERASES, *WRITE_STATUS, Op.ERASE_SECURITY, Op.PROGRAM_SECURITY}
    | {Op.POWER_DOWN, Op.INDIVIDUAL_BLOCK_LOCK, Op.INDIVIDUAL_BLOCK_UNLOCK}
    | {Op.GLOBAL_BLOCK_LOCK, Op.GLOBAL_BLOCK_UNLOCK}
)


class ChipPowerLoss(PowerLoss):
    """An exchange reached the simulated chip while it had no power."""


class W25Q128(
    PowerSupply,
    ArrayCommands,
    StatusRegisters,
    SecurityRegisters,
    ControlCommands,
    IdentityReads,
):
    """The chip: /CS select, full-duplex byte transfer, deselect; see the module doc."""

    _reset_enabled: bool  # 66h came just before; 99h resets only then (8.2.43)

    def __init__(
        self,
        clock: VirtualClock | None = None,
        *,
        seed: int = 0,
        timing: str = "typical",
        image: str | os.PathLike | None = None,
        endurance: int = 100_000,
        wear_failure: bool = False,
        jedec_id: bytes = b"\xef\x40\x18",
    ) -> None:
        if timing not in MODES:
            raise ValueError(f"timing must be one of {MODES}, got {timing!r}")
        if isinstance(endurance, bool) or not isinstance(endurance, int) or endurance < 1:
            raise ValueError(f"endurance must be a positive int, got {endurance!r}")
        if not isinstance(jedec_id, bytes | bytearray) or len(jedec_id) != 3:
            raise ValueError(f"jedec_id must be 3 bytes, got {jedec_id!r}")
        self.clock = clock if clock is not None else VirtualClock()
        self._now = self.clock.monotonic
        self.seed, self.timing, self.table = seed, timing, DATASHEET
        self.endurance, self.wear_failure = endurance, wear_failure
        self.jedec_id = bytes(jedec_id)
        self.device_id = self.jedec_id[2] - 1  # 90h/ABh: 17h for the 128 Mbit part
        self.qe_fixed = self.jedec_id[1] == 0x40  # IQ parts: QE = 1, not writable
        self._rng_time = random.Random(f"{seed}:timing")
        self._rng_tear = random.Random(f"{seed}:tear")
        self._rng_wear = random.Random(f"{seed}:wear")
        self._durations = {
            name: row.typical_s if timing == "typical" else row.max_s
            for name, row in self.table.rows()
        }
        uid = random.Random(f"{seed}:uid").getrandbits(64).to_bytes(8, "big")
        self._store = NvStore(image, [0x00, QE_BIT if self.qe_fixed else 0x00, 0x60], uid)
        self._array = self._store.array
        self.sfdp = sfdp.build(self.table)
        self.counters = ChipCounters()
        self.wp = True  # the /WP pin: True = driven high (not asserted)
        self._plan: ChipCut | None = None
        self._plan_count = 0
        self._cut_time = INF
        self._powered = True
        self._commands = self._command_table()
        self._power_on_state()

    # ----- public surface ------------------------------------------------------------------

    @property
    def array(self) -> SectorArray:
        """The 16 MiB contents, a backdoor for tests (reads and writes like a ``bytearray``;
        no program or erase is counted); writes through it are seen by the next snapshot."""
        return self._array

    @property
    def unique_id(self) -> bytes:
        return self._store.unique_id

    @property
    def wear(self) -> "_array.array[int]":
        """Erase count per 4 KiB sector (non-volatile, an ``array('I')``)."""
        self._settle()
        return self._store.wear

    @property
    def powered(self) -> bool:
        self._settle()
        return self._powered

    @property
    def busy(self) -> bool:
        """SR1 BUSY, from the virtual clock (7.1.1)."""
        self._settle()
        return self._op is not None

    def select(self) -> None:
        """/CS low: start a transaction."""
        if self.clock.monotonic() >= self._next_event:
            self._settle()
        if not self._powered:
            raise ChipPowerLoss("the flash chip is unpowered")
        self._cs, self._head, self._need, self._ppos = True, b"", 1, 0
        self._handler, self._latch = self._fill, None

    def transfer(self, data: bytes | bytearray | memoryview) -> bytes:
        """Clock ``data`` in on MOSI; return as many bytes clocked out on MISO."""
        if self.clock.monotonic() >= self._next_event:
            self._settle()
        if not self._powered:
            raise ChipPowerLoss("the flash chip is unpowered")
        if not self._cs:
            raise RuntimeError("transfer() without select(): /CS is high")
        return self._clock_bytes(data)

    def deselect(self) -> None:
        """/CS high: latch the command just sent (program, erase, status write...)."""
        if not self._cs:
            return
        self._cs = False
        if self.clock.monotonic() >= self._next_event:
            self._settle()
        if self._powered and self._latch is not None and len(self._head) >= self._need:
            self._latch()

    def exchange(self, data: bytes | bytearray, start: bool = True, stop: bool = True) -> bytes:
        """``select`` (if ``start``), ``transfer(data)``, ``deselect`` (if ``stop``) in one call."""
        if self.clock.monotonic() >= self._next_event:
            self._settle()
        if not self._powered:
            raise ChipPowerLoss("the flash chip is unpowered")
        if not (start and stop and data):
            if start:
                self._cs, self._head, self._need, self._ppos = True, b"", 1, 0
                self._handler, self._latch = self._fill, None
            elif not self._cs:
                raise RuntimeError("exchange(start=False) without a transaction: /CS is high")
            out = self._clock_bytes(data) if data else b""
            if stop:
                self._cs = False
                if self._latch is not None and len(self._head) >= self._need:
                    self._latch()
            return out
        # one whole transaction: the hot path, kept flat
        opcode = data[0]
        if opcode != _RESET:
            self._reset_enabled = self._reset_enabled and opcode == _ENABLE_RESET
        cmd = self._commands.get(opcode)
        if cmd is None or self._op is not None or self._pd or self._suspended is not None:
            cmd = self._refuse(opcode, cmd)
        handler, latch, need, counted = cmd
        if counted:
            self.counters.ops[counted] += 1
        n = len(data)
        self._cs = False
        self._head = data[:need] if type(data) is bytes else bytes(data[:need])
        if n <= need:
            self._ppos = 0
            out = _FF[:n]
        else:
            self._ppos = n - need
            out = _FF[:need] + handler(data[need:], 0)
        if latch is not None and n >= need:
            latch()
        return out

    def transact(self, out: bytes | bytearray, readlen: int) -> bytes:
        """One whole half-duplex transaction: /CS low, ``out`` in, ``readlen`` bytes out
        (MOSI held high meanwhile), /CS high; returns those ``readlen`` bytes.

        The same as ``exchange(out + b"\\xff" * readlen)[len(out):]`` without building
        either buffer: the port's fast path for the driver's reads, polls and programs.
        The driver's three most frequent commands (05h poll, 03h read, 06h write enable)
        are answered here directly when the chip is idle; the rest take the command table."""
        if self._now() >= self._next_event:
            self._settle()
        if not self._powered:
            raise ChipPowerLoss("the flash chip is unpowered")
        opcode = out[0]
        if not self._pd and len(out) == _HOT_LEN.get(opcode, 0):
            self._reset_enabled = False
            if opcode == _RDSR1:  # allowed while BUSY and suspended (8.2.4)
                value = self._sr[0] | (WEL_BIT if self._wel else 0)
                return bytes((value | BUSY_BIT if self._op is not None else value,)) * readlen
            if self._op is None and self._suspended is None:
                if opcode == _READ:
                    a = out[1] << 16 | out[2] << 8 | out[3]
                    if a + readlen <= SIZE:
                        self.counters.ops["read"] += 1
                        return self._array.read(a, readlen)
                elif not readlen:  # 06h
                    self._wel = True
                    return b""
        return self._transact(out, readlen)

    def _transact(self, out: bytes | bytearray, readlen: int) -> bytes:
        """:meth:`transact` through the command table."""
        opcode = out[0]
        if opcode != _RESET:
            self._reset_enabled = self._reset_enabled and opcode == _ENABLE_RESET
        cmd = self._commands.get(opcode)
        if cmd is None or self._op is not None or self._pd or self._suspended is not None:
            cmd = self._refuse(opcode, cmd)
        handler, latch, need, counted = cmd
        if counted:
            self.counters.ops[counted] += 1
        sent = len(out)
        n = sent + readlen
        self._cs = False
        self._head = out[:need] if type(out) is bytes else bytes(out[:need])
        got = b""
        if n <= need:
            self._ppos = 0
            got = _FF[:readlen]
        else:
            self._ppos = n - need
            if sent == need:  # a command, then the bytes clocked in: a read or a poll
                got = handler(_FF_VIEW[:readlen] if readlen <= 65536 else b"\xff" * readlen, 0)
            elif readlen == 0:  # a command with data: a program, a status write
                handler(out[need:], 0)
            else:
                data = bytes(out) + (_FF[:readlen] if readlen <= 65536 else b"\xff" * readlen)
                got = (_FF[:need] + handler(data[need:], 0))[sent:]
        if latch is not None and n >= need:
            latch()
        return got

    def snapshot(self) -> ChipSnapshot:
        """The whole non-volatile state: array, NV status bits, security registers, wear."""
        self._settle()
        return self._store.snapshot()

    def restore(self, snap: ChipSnapshot) -> None:
        """Put back ``snap``'s non-volatile state; the chip is then powered, idle, volatile
        state as at power-on. An armed cut stays armed."""
        if not isinstance(snap, ChipSnapshot):
            raise TypeError(f"snap must be a ChipSnapshot, got {type(snap).__name__}")
        self._store.restore(snap)
        self._powered = True
        self._power_on_state()

    def flush(self) -> None:
        """Write a file-backed chip's array and non-volatile registers to its image."""
        self._store.flush()

    def save_nv(self) -> bool:
        """Write a file-backed chip's registers and wear to its sidecar if they changed
        (atomically); the array itself is a shared mapping of the image, always current."""
        return self._store.save_nv()

    def close(self) -> None:
        """Flush and unmap a file-backed array (the chip is unusable afterwards)."""
        self._store.close()

    # ----- time, operations, power -----------------------------------------------------------

    def _power_on_state(self) -> None:
        """Volatile state after power-on or reset (7.1, 8.2.43)."""
        self._sr = list(self._store.status)
        self._wel = self._vwe = self._pd = self._reset_enabled = self._cs = False
        self._op: Operation | None = None
        self._suspended: Operation | None = None
        self._locks = bytearray(b"\x01" * SECTORS)
        self._head, self._need, self._ppos = b"", 1, 0
        self._handler, self._latch = self._fill, None
        self._refresh_protection()
        self._reschedule()

    def _reschedule(self) -> None:
        op, t = self._op, self._cut_time
        if op is not None:
            t = min(t, op.end, INF if op.suspend_at is None else op.suspend_at)
        self._next_event = t

    def _settle(self) -> None:
        """Apply, in time order, each completion, suspension and cut the clock has passed."""
        now = self.clock.monotonic()
        while self._next_event <= now and self._powered:
            op, cut = self._op, self._cut_time
            if op is None:
                self._lose_power(cut)
                continue
            sus = INF if op.suspend_at is None else op.suspend_at
            if op.end <= cut and op.end <= sus:
                self._op = None
                op.fn(*op.args, 1.0)
                self.counters.busy_time_s += op.duration
                self._wel = False  # WEL clears when the operation completes (7.1.2)
            elif sus < cut:
                op.done_s += sus - op.resumed_at
                op.suspend_at = None
                self._suspended, self._op = op, None
            else:
                self._lose_power(cut)
                continue
            self._reschedule()

    def _start(
        self,
        kind: str,
        row: str,
        fn: Callable[..., None],
        args: tuple[Any, ...],
        unit: tuple[int, int] = (0, 0),
    ) -> None:
        """Latch a state-changing operation: BUSY for its datasheet time (9.6)."""
        now = self.clock.monotonic()
        if self.timing == "random":
            duration = self.table.duration(row, "random", self._rng_time)
        else:
            duration = self._durations[row]
        self._op = op = Operation(kind, now, duration, fn, args, unit)
        counters = self.counters
        counters.ops[kind] += 1
        counters.state_changes += 1
        plan = self._plan
        if plan is not None and plan.after_ops is not None:
            self._plan_count += 1
            if self._plan_count == plan.after_ops:
                self._cut_time = now + plan.fraction * duration
        self._next_event = op.end if op.end < self._cut_time else self._cut_time

    # ----- the array: program, erase, protection -------------------------------------------

    # ----- the command machine ---------------------------------------------------------------

    def _clock_bytes(self, data: _Bytes) -> bytes:
        n = len(data)
        if not n:
            return b""
        head, need = self._head, self._need
        if len(head) >= need:
            pos = self._ppos
            self._ppos = pos + n
            return self._handler(data, pos)
        if not head:
            self._begin(data[0])
            need = self._need
        taken = need - len(head)
        if taken >= n:
            self._head = head + bytes(data)
            return _FF[:n]
        self._head = head + bytes(data[:taken])
        self._ppos = n - taken
        return _FF[:taken] + self._handler(data[taken:], 0)

    def _begin(self, opcode: int) -> None:
        """First byte of a transaction: pick the command, or ignore it (busy, power-down...)."""
        if opcode != _RESET:
            self._reset_enabled = self._reset_enabled and opcode == _ENABLE_RESET
        cmd = self._commands.get(opcode)
        if cmd is None or self._op is not None or self._pd or self._suspended is not None:
            cmd = self._refuse(opcode, cmd)
        self._handler, self._latch, self._need, counted = cmd
        if counted:
            self.counters.ops[counted] += 1

    def _refuse(self, opcode: int, cmd: tuple | None) -> tuple:
        """The command, or the ignored one: unknown, busy (8.2, BUSY), power-down, suspended."""
        if (
            cmd is None
            or (self._op is not None and opcode not in ALLOWED_WHILE_BUSY)
            or (self._pd and opcode != _RELEASE)
            or (self._suspended is not None and opcode in REFUSED_SUSPENDED)
        ):
            return self._ignored
        return cmd

    def _addr(self) -> int:
        h = self._head
        return h[1] << 16 | h[2] << 8 | h[3]

    def _command_table(self) -> dict[int, tuple]:
        """opcode -> (payload handler, latch at /CS rise, header bytes, counter key)."""
        fill = self._fill
        self._ignored = (fill, None, 1, "")
        c: dict[int, tuple] = {
            Op.READ_DATA: (self._read_array, None, 4, "read"),
            Op.FAST_READ: (self._read_array, None, 5, "read"),  # 8 dummy clocks
            Op.JEDEC_ID: (self._const(lambda: self.jedec_id), None, 1, ""),
            Op.MANUFACTURER_DEVICE_ID: (self._read_mfr_dev, None, 4, ""),
            Op.RELEASE_POWER_DOWN: (
                self._const(lambda: _FF[:3] + bytes((self.device_id,)) * 64),
                self._release,
                1,
                "",
            ),
            Op.UNIQUE_ID: (self._const(lambda: self.unique_id), None, 5, ""),  # 4 dummy bytes
            Op.READ_SFDP: (self._read_sfdp, None, 5, ""),
            Op.READ_SECURITY: (self._read_security, None, 5, ""),
            Op.READ_BLOCK_LOCK: (self._read_lock, None, 4, ""),
            Op.PAGE_PROGRAM: (self._collect, self._latch_program, 4, ""),
            Op.PROGRAM_SECURITY: (self._collect, self._latch_security_program, 4, ""),
            Op.ERASE_SECURITY: (fill, self._latch_security_erase, 4, ""),
            Op.WRITE_ENABLE: (fill, self._write_enable, 1, ""),
            Op.WRITE_DISABLE: (fill, self._write_disable, 1, ""),
            Op.VOLATILE_SR_WRITE_ENABLE: (fill, self._volatile_write_enable, 1, ""),
            Op.SUSPEND: (fill, self._suspend, 1, ""),
            Op.RESUME: (fill, self._resume, 1, ""),
            Op.POWER_DOWN: (fill, self._power_down, 1, ""),
            Op.ENABLE_RESET: (fill, self._enable_reset, 1, ""),
            Op.RESET_DEVICE: (fill, self._reset, 1, ""),
            Op.INDIVIDUAL_BLOCK_LOCK: (fill, self._block_locker(1), 4, ""),
            Op.INDIVIDUAL_BLOCK_UNLOCK: (fill, self._block_locker(0), 4, ""),
            Op.GLOBAL_BLOCK_LOCK: (fill, self._global_locker(1), 1, ""),
            Op.GLOBAL_BLOCK_UNLOCK: (fill, self._global_locker(0), 1, ""),
        }
        for op in CHIP_ERASES:
            c[op] = (fill, self._latch_chip_erase, 1, "")
        for reg, op in enumerate(READ_STATUS):
            c[op] = (self._status_reader(reg), None, 1, "")
        for reg, op in enumerate(WRITE_STATUS):
            c[op] = (self._collect, self._status_writer(reg), 1, "")
        for erase in ERASE_UNITS:
            c[erase] = (fill, self._latch_erase, 4, "")
        # plain ints: the hot path looks opcodes up by the byte on the wire
        return {int(op): entry for op, entry in c.items()}

    # payload handlers: (bytes in, position in the payload) -> bytes out

    @staticmethod
    def _fill(data: _Bytes, pos: int) -> bytes:
        n = len(data)
        return _FF[:n] if n <= 65536 else b"\xff" * n

    # latches at /CS rise

    def _write_enable(self) -> None:
        self._wel = True

    def _write_disable(self) -> None:
        self._wel = False
