"""A bit-accurate model of the Winbond W25Q128JV 16 MiB SPI NOR flash, at the SPI byte level.

``select()`` / ``transfer(data)`` / ``deselect()`` clock whole bytes full duplex, as on
the wire; :class:`sim.ports.model.SimSpiPort` puts pyftdi's ``SpiPort`` interface on top.
Section numbers cite the W25Q128JV datasheet (Rev H and later): identity 8.2.27-8.2.32
(9Fh, 90h, ABh, 4Bh, 5Ah); reads 8.2.6-8.2.7; WEL 7.1.2, 8.2.1-8.2.3; status
registers 7.1, 8.2.4-8.2.5; Page Program 8.2.13; erases 8.2.15-8.2.19; suspend/resume
8.2.20-8.2.21; power-down 8.2.22-8.2.23; security registers 8.2.33-8.2.35; block locks
8.2.36-8.2.40; reset 8.2.43; timing 9.6 (:mod:`sim.chip.timing`); protection table
:mod:`sim.chip.protect`; SFDP :mod:`sim.chip.sfdp`.

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

Deliberate deviations from the datasheet:

* Dual/quad I/O (3Bh, 6Bh, BBh, EBh, 92h, 94h, 32h, 77h, 38h...) is declined: the seam is
  a single-bit SPI master (one MOSI, one MISO), which cannot clock those phases. The
  opcodes are ignored and MISO stays high-Z, read as 0xFF; the SFDP table omits them.
* MISO reads 0xFF whenever the chip does not drive it (header bytes, ignored commands,
  past the end of 9Fh/4Bh data).
* /CS can only rise on a byte boundary, because transfers are whole bytes.
* tPP is the same for 1 to 256 bytes. tDP, tRES1, tRST and the power-up write-inhibit
  time tPUW take no time. Suspend takes effect tSUS (max) after 75h's /CS rise.
* Enable Reset + Reset (66h, 99h) is accepted while BUSY or suspended (8.2.43 warns it
  may corrupt data): it tears the operation in flight as a power cut would.
* A program or erase into a protected area, or a status write while SRP/SRL lock the
  registers, is ignored and leaves WEL set. Erases execute if /CS rises after at least
  the 3 address bytes (extra bytes are ignored).
* 01h followed by two bytes writes SR1 then SR2. With 50h and 06h both pending, the
  status write is volatile. 50h stays pending until the next status write.
* 36h/39h/7Eh/98h need WEL and clear it; all block locks are 1 at power-on and reset.
* IQ parts (9Fh ``EF 40 18``) have QE fixed at 1, so /WP is IO2 and gives no hardware
  protection (datasheet 4.3); IM parts (``EF 70 18``) have QE programmable, default 0.
  SR3 powers up as 0x60 (DRV1:0 = 11).
* While suspended the model refuses erases, status writes, security program/erase,
  block locks and power-down, and Page Program into the erase-suspended sector; reads
  of the suspended unit return its contents from before the operation.
* Security registers are addressed 0x001000/0x002000/0x003000 (A11..A8 = 0); any other
  address is ignored (program/erase) or reads 0xFF. Reads wrap within the 256 bytes.
"""

import os
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import array as _array

from agent.errors import PowerLoss
from sim.chip import sfdp
from sim.chip.protect import protected_range, status_locked
from sim.chip.state import ChipCounters, ChipSnapshot, PowerCutPlan, bernoulli_mask
from sim.chip.store import ERASED_SECTOR, NvStore
from sim.chip.timing import DATASHEET, MODES, Timing
from sim.clock import VirtualClock

__all__ = ["W25Q128", "ChipCounters", "ChipPowerLoss", "ChipSnapshot", "PowerCutPlan", "Timing"]

SIZE = 16 * 1024 * 1024
PAGE, SECTOR, BLOCK32, BLOCK64 = 256, 4096, 32 * 1024, 64 * 1024
SECTORS = SIZE // SECTOR
MASK = SIZE - 1
INF = float("inf")
_Bytes = bytes | bytearray | memoryview  # what a transfer or an exchange may carry
_FF = b"\xff" * 65536
WEL_BIT, BUSY_BIT, SUS_BIT, QE_BIT, WPS_BIT = 0x02, 0x01, 0x80, 0x02, 0x04
LB_BITS, SRL_BIT = 0x38, 0x01
WRITABLE = (0xFC, 0x40 | LB_BITS | QE_BIT | SRL_BIT, 0xE4)  # SR1, SR2, SR3 (7.1)
ERASES = {0x20: (SECTOR, "sector_erase"), 0x52: (BLOCK32, "block32_erase")}
ERASES[0xD8] = (BLOCK64, "block64_erase")
SUSPENDABLE = frozenset(("page_program", "sector_erase", "block32_erase", "block64_erase"))
ALLOWED_BUSY = frozenset((0x05, 0x35, 0x15, 0x75, 0x66, 0x99))
REFUSED_SUSPENDED = frozenset(
    (0x20, 0x52, 0xD8, 0xC7, 0x60, 0x44, 0x42, 0x01, 0x31, 0x11, 0xB9, 0x36, 0x39, 0x7E, 0x98)
)


def _ff(n: int) -> bytes:
    return _FF[:n] if n <= 65536 else b"\xff" * n


class ChipPowerLoss(PowerLoss):
    """An exchange reached the simulated chip while it had no power."""


class _Op:
    """One program/erase/status write in flight: its timing and its effect ``fn(*args, f)``."""

    __slots__ = (
        "args",
        "done_s",
        "duration",
        "end",
        "fn",
        "kind",
        "resumed_at",
        "suspend_at",
        "unit",
    )

    def __init__(
        self,
        kind: str,
        now: float,
        duration: float,
        fn: Callable[..., None],
        args: tuple[Any, ...],
        unit: tuple[int, int],
    ) -> None:
        self.kind, self.duration, self.fn, self.args, self.unit = kind, duration, fn, args, unit
        self.done_s, self.resumed_at, self.end = 0.0, now, now + duration
        self.suspend_at: float | None = None

    def progress(self, now: float, running: bool) -> float:
        done = self.done_s + (now - self.resumed_at if running else 0.0)
        return 1.0 if self.duration <= 0 else min(1.0, max(0.0, done / self.duration))


class W25Q128:
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
        self._dirty = self._store.dirty
        self.sfdp = sfdp.build(self.table)
        self.counters = ChipCounters()
        self.wp = True  # the /WP pin: True = driven high (not asserted)
        self._plan: PowerCutPlan | None = None
        self._plan_count = 0
        self._cut_time = INF
        self._powered = True
        self._commands = self._command_table()
        self._power_on_state()

    # ----- public surface ------------------------------------------------------------------

    @property
    def array(self) -> bytearray:
        """The 16 MiB contents, a backdoor for tests; writes through it are seen by the next
        snapshot/restore (a reference kept across a snapshot is not tracked)."""
        self._store.exposed = True
        return self._array  # type: ignore[return-value]

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
        if opcode != 0x99:
            self._reset_enabled = self._reset_enabled and opcode == 0x66
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

    def power_off(self) -> None:
        """Cut power now: the operation in flight is torn at its progress."""
        self._settle()
        if self._powered:
            self._lose_power(self.clock.monotonic())
        self._store.flush()

    def power_on(self) -> None:
        """Restore power: volatile state resets (WEL, SUS, power-down, volatile SR bits)."""
        self._settle()
        if not self._powered:
            self._powered = True
            self._power_on_state()

    def schedule_cut(
        self,
        plan: PowerCutPlan | None = None,
        *,
        after_ops: int | None = None,
        fraction: float = 1.0,
        at_time: float | None = None,
    ) -> PowerCutPlan:
        """Arm one power cut, replacing any armed one; see :class:`PowerCutPlan`."""
        if plan is None:
            plan = PowerCutPlan(after_ops=after_ops, fraction=fraction, at_time=at_time)
        elif not isinstance(plan, PowerCutPlan):
            raise TypeError(f"plan must be a PowerCutPlan, got {type(plan).__name__}")
        self._settle()
        self._plan, self._plan_count = plan, 0
        self._cut_time = INF if plan.at_time is None else float(plan.at_time)
        self._reschedule()
        return plan

    def cancel_cut(self) -> None:
        """Disarm the scheduled cut, if any."""
        self._plan, self._cut_time = None, INF
        self._reschedule()

    @property
    def cut_pending(self) -> bool:
        self._settle()
        return self._plan is not None

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
        self._op: _Op | None = None
        self._suspended: _Op | None = None
        self._locks = bytearray(b"\x01" * SECTORS)
        self._head, self._need, self._ppos = b"", 1, 0
        self._handler, self._latch = self._fill, None
        self._refresh_protection()
        self._reschedule()

    def _refresh_protection(self) -> None:
        sr = self._sr
        self._wps = bool(sr[2] & WPS_BIT)
        self._prot = protected_range(sr[0], sr[1])

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

    def _lose_power(self, when: float) -> None:
        for op, running in ((self._op, True), (self._suspended, False)):
            if op is not None:
                fraction = op.progress(when, running)
                op.fn(*op.args, fraction)
                self.counters.busy_time_s += fraction * op.duration
        self._op = self._suspended = None
        self._powered = self._cs = False
        self._plan, self._cut_time = None, INF
        self.counters.power_cuts += 1
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
        self._op = op = _Op(kind, now, duration, fn, args, unit)
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

    def _protected(self, start: int, length: int) -> bool:
        """BP/TB/SEC/CMP (7.1.3-7.1.6), or individual block locks when WPS=1 (7.1.14)."""
        if self._wps:
            return any(self._locks[start // SECTOR : (start + length - 1) // SECTOR + 1])
        lo, hi = self._prot
        return lo < start + length and start < hi

    def _program(self, page: int, data: bytes, fraction: float) -> None:
        """AND ``data`` into the page; torn: each 1->0 bit cleared with probability f."""
        arr = self._array
        old = int.from_bytes(arr[page : page + PAGE], "big")
        want = int.from_bytes(data, "big")
        if fraction < 1.0:
            want = ~(bernoulli_mask(self._rng_tear, PAGE * 8, fraction) & old & ~want)
        arr[page : page + PAGE] = (old & want).to_bytes(PAGE, "big")
        self._dirty.add(page >> 12)

    def _erase(self, start: int, length: int, fraction: float) -> None:
        """Set the unit to 0xFF; torn: each 0 bit set with probability f; wear (module doc)."""
        arr, store = self._array, self._store
        for s in range(start // SECTOR, (start + length) // SECTOR):
            lo = s * SECTOR
            self._dirty.add(s)
            if fraction < 1.0:
                old = int.from_bytes(arr[lo : lo + SECTOR], "big")
                ones = bernoulli_mask(self._rng_tear, SECTOR * 8, fraction)
                arr[lo : lo + SECTOR] = (old | ones).to_bytes(SECTOR, "big")
                continue
            arr[lo : lo + SECTOR] = ERASED_SECTOR
            store.wear[s] += 1
            self.counters.sector_erases[s] += 1
            if self.wear_failure and store.wear[s] > self.endurance:
                bit = self._rng_wear.randrange(SECTOR * 8)
                stuck = store.stuck.setdefault(s, {})
                stuck[bit >> 3] = stuck.get(bit >> 3, 0) | (0x80 >> (bit & 7))
            for off, bits in store.stuck.get(s, {}).items():
                arr[lo + off] &= ~bits & 0xFF

    @staticmethod
    def _page_buffer(start: int, data: bytes) -> bytes:
        """256 bytes of 0xFF with ``data`` placed from ``start``, wrapping (8.2.13)."""
        n = len(data)
        if n > PAGE:  # only the last 256 bytes survive, where they wrapped to
            start, data, n = (start + n - PAGE) % PAGE, data[-PAGE:], PAGE
        if start == 0 and n == PAGE:
            return bytes(data)
        buf = bytearray(_FF[:PAGE])
        first = min(n, PAGE - start)
        buf[start : start + first] = data[:first]
        buf[: n - first] = data[first:]
        return bytes(buf)

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
        if opcode != 0x99:
            self._reset_enabled = self._reset_enabled and opcode == 0x66
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
            or (self._op is not None and opcode not in ALLOWED_BUSY)
            or (self._pd and opcode != 0xAB)
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
            0x03: (self._read_array, None, 4, "read"),
            0x0B: (self._read_array, None, 5, "read"),  # 8 dummy clocks
            0x9F: (self._const(lambda: self.jedec_id), None, 1, ""),
            0x90: (self._read_mfr_dev, None, 4, ""),
            0xAB: (
                self._const(lambda: _FF[:3] + bytes((self.device_id,)) * 64),
                self._release,
                1,
                "",
            ),
            0x4B: (self._const(lambda: self.unique_id), None, 5, ""),  # 4 dummy bytes
            0x5A: (self._read_sfdp, None, 5, ""),
            0x48: (self._read_security, None, 5, ""),
            0x3D: (self._read_lock, None, 4, ""),
            0x02: (self._collect, self._latch_program, 4, ""),
            0x42: (self._collect, self._latch_security_program, 4, ""),
            0xC7: (fill, self._latch_chip_erase, 1, ""),
            0x60: (fill, self._latch_chip_erase, 1, ""),
            0x44: (fill, self._latch_security_erase, 4, ""),
            0x06: (fill, self._write_enable, 1, ""),
            0x04: (fill, self._write_disable, 1, ""),
            0x50: (fill, self._volatile_write_enable, 1, ""),
            0x75: (fill, self._suspend, 1, ""),
            0x7A: (fill, self._resume, 1, ""),
            0xB9: (fill, self._power_down, 1, ""),
            0x66: (fill, self._enable_reset, 1, ""),
            0x99: (fill, self._reset, 1, ""),
            0x36: (fill, self._block_locker(1), 4, ""),
            0x39: (fill, self._block_locker(0), 4, ""),
            0x7E: (fill, self._global_locker(1), 1, ""),
            0x98: (fill, self._global_locker(0), 1, ""),
        }
        for op, reg in ((0x05, 0), (0x35, 1), (0x15, 2)):
            c[op] = (self._status_reader(reg), None, 1, "")
        for op, reg in ((0x01, 0), (0x31, 1), (0x11, 2)):
            c[op] = (self._collect, self._status_writer(reg), 1, "")
        for op in ERASES:
            c[op] = (fill, self._latch_erase, 4, "")
        return c

    # payload handlers: (bytes in, position in the payload) -> bytes out

    @staticmethod
    def _fill(data: _Bytes, pos: int) -> bytes:
        n = len(data)
        return _FF[:n] if n <= 65536 else b"\xff" * n

    def _collect(self, data: _Bytes, pos: int) -> bytes:
        if pos == 0:
            self._buf, self._dropped = bytes(data), 0
        else:
            self._buf += bytes(data)
            if len(self._buf) > 4 * PAGE:  # keep the tail; the wrap point counts what is dropped
                self._dropped += len(self._buf) - PAGE
                self._buf = self._buf[-PAGE:]
        return _ff(len(data))

    def _read_array(self, data: _Bytes, pos: int) -> bytes:
        """03h/0Bh: continues across pages and wraps from the end to 0 (8.2.6)."""
        n = len(data)
        a = (self._addr() + pos) & MASK
        if a + n <= SIZE:
            return bytes(self._array[a : a + n])
        out = bytearray()
        while len(out) < n:
            take = min(n - len(out), SIZE - a)
            out += self._array[a : a + take]
            a = 0
        return bytes(out)

    def _const(self, source: Callable[[], bytes]) -> Callable:
        def handler(data: _Bytes, pos: int) -> bytes:
            n = len(data)
            return source()[pos : pos + n].ljust(n, b"\xff")

        return handler

    def _read_mfr_dev(self, data: _Bytes, pos: int) -> bytes:
        """90h: EFh then the device ID (17h), alternating; address bit 0 swaps them (8.2.29)."""
        n, start = len(data), (pos + self._head[3]) & 1
        return (bytes((0xEF, self.device_id)) * (n // 2 + 2))[start : start + n]

    def _read_sfdp(self, data: _Bytes, pos: int) -> bytes:
        a, space = self._head[3] + pos, self.sfdp
        return bytes(space[(a + i) & 0xFF] for i in range(len(data)))

    def _security_index(self) -> int | None:
        a = self._addr()
        reg = a >> 12
        return reg - 1 if 1 <= reg <= 3 and not a & 0xF00 else None

    def _read_security(self, data: _Bytes, pos: int) -> bytes:
        idx = self._security_index()
        if idx is None:
            return _ff(len(data))
        reg, a = self._store.security[idx], self._head[3] + pos
        return bytes(reg[(a + i) & 0xFF] for i in range(len(data)))

    def _status_value(self, reg: int) -> int:
        v = self._sr[reg]
        if reg == 0:
            return v | (WEL_BIT if self._wel else 0) | (BUSY_BIT if self._op is not None else 0)
        if reg == 1:
            return v | (SUS_BIT if self._suspended is not None else 0)
        return v

    def _status_reader(self, reg: int) -> Callable:
        def handler(data: _Bytes, pos: int) -> bytes:
            return bytes((self._status_value(reg),)) * len(data)

        return handler

    def _read_lock(self, data: _Bytes, pos: int) -> bytes:
        return bytes((self._locks[self._addr() // SECTOR],)) * len(data)

    # latches at /CS rise

    def _write_enable(self) -> None:
        self._wel = True

    def _write_disable(self) -> None:
        self._wel = False

    def _volatile_write_enable(self) -> None:
        self._vwe = True

    def _payload(self) -> tuple[int, bytes] | None:
        """(offset within the page where the data starts, data), or None with no data byte."""
        if self._ppos == 0:
            return None
        return (self._head[3] + self._dropped) % PAGE, self._buf

    def _latch_program(self) -> None:
        """02h: needs WEL, an unprotected page and at least one data byte (8.2.13)."""
        if not self._wel or self._ppos == 0:
            return
        h = self._head
        page = h[1] << 16 | h[2] << 8
        if (self._wps or self._prot[1]) and self._protected(page, PAGE):
            return
        susp = self._suspended
        if susp is not None and (
            susp.kind == "page_program" or susp.unit[0] <= page < susp.unit[0] + susp.unit[1]
        ):
            return
        data, start = self._buf, (h[3] + self._dropped) & 0xFF
        if start or len(data) != PAGE:
            data = self._page_buffer(start, data)
        self.counters.bytes_programmed += min(self._ppos, PAGE)
        self._start("page_program", "page_program", self._program, (page, data), (page, PAGE))

    def _latch_erase(self) -> None:
        """20h/52h/D8h: the address is taken down to the unit boundary (8.2.15-8.2.17)."""
        size, kind = ERASES[self._head[0]]
        start = self._addr() & ~(size - 1)
        if self._wel and not self._protected(start, size):
            self._start(kind, kind, self._erase, (start, size), (start, size))

    def _latch_chip_erase(self) -> None:
        """C7h/60h: refused if any part of the array is protected (8.2.18)."""
        if self._wel and not self._protected(0, SIZE):
            self._start("chip_erase", "chip_erase", self._erase, (0, SIZE), (0, SIZE))

    def _status_writer(self, first: int) -> Callable[[], None]:
        def latch() -> None:
            """01h/31h/11h: volatile after 50h, else non-volatile with WEL and tW (8.2.5)."""
            if self._ppos == 0:
                return
            sr = self._sr
            if status_locked(sr[0], sr[1], self.wp, not sr[1] & QE_BIT):
                return
            values = self._buf[: 2 if first == 0 else 1]
            if self._vwe:
                self._vwe = False
                for i, v in enumerate(values):
                    sr[first + i] = self._merge(first + i, sr[first + i], v, False)
                self._refresh_protection()
                self.counters.ops["write_status_volatile"] += 1
                return
            if not self._wel:
                return
            old, new = list(self._store.status), list(self._store.status)
            for i, v in enumerate(values):
                new[first + i] = self._merge(first + i, old[first + i], v, True)
            self._start("write_status", "write_status", self._apply_status, (old, new))

        return latch

    def _apply_status(self, old: list[int], new: list[int], fraction: float) -> None:
        """Complete a status write; torn: the new value with probability f, else the old."""
        chosen = new if fraction >= 1.0 or self._rng_tear.random() < fraction else old
        self._store.status = list(chosen)
        self._sr = list(chosen)
        self._refresh_protection()

    def _merge(self, reg: int, old: int, value: int, nonvolatile: bool) -> int:
        """A status write keeping read-only bits and one-time bits (LB1-3, SRL) (7.1)."""
        w = WRITABLE[reg]
        if reg == 1 and self.qe_fixed:
            w &= ~QE_BIT
        new = (old & ~w) | (value & w)
        if reg == 1:
            if nonvolatile:  # OTP: can go 0 -> 1 only
                new |= old & (LB_BITS | SRL_BIT)
            else:  # LB bits have no volatile copy to write
                new = (new & ~LB_BITS) | (old & LB_BITS)
        return new

    def _latch_security_program(self) -> None:
        """42h: like Page Program, within one 256-byte register, refused once LBn=1 (8.2.34)."""
        idx, payload = self._security_index(), self._payload()
        if not self._wel or payload is None or idx is None or self._sr[1] & (0x08 << idx):
            return
        data = self._page_buffer(*payload)
        self._start("security_program", "page_program", self._security_write, (idx, data))

    def _security_write(self, idx: int, data: bytes | None, fraction: float) -> None:
        """Program (``data``) or erase (``None``) security register ``idx``, maybe torn."""
        reg = self._store.security[idx]
        old = int.from_bytes(reg, "big")
        if data is None:
            new = old | bernoulli_mask(self._rng_tear, PAGE * 8, fraction)
        else:
            want = int.from_bytes(data, "big")
            if fraction < 1.0:
                want = ~(bernoulli_mask(self._rng_tear, PAGE * 8, fraction) & old & ~want)
            new = old & want
        reg[:] = new.to_bytes(PAGE, "big")

    def _latch_security_erase(self) -> None:
        """44h: erase one security register, refused once its LBn=1 (8.2.33)."""
        idx = self._security_index()
        if self._wel and idx is not None and not self._sr[1] & (0x08 << idx):
            self._start("security_erase", "sector_erase", self._security_write, (idx, None))

    def _suspend(self) -> None:
        """75h: during Page Program or a sector/block erase only; BUSY clears after tSUS."""
        op = self._op
        if op is None or self._suspended is not None or op.suspend_at is not None:
            return
        if op.kind in SUSPENDABLE:
            op.suspend_at = self.clock.monotonic() + self.table.suspend.max_s
            self.counters.ops["suspend"] += 1
            self._reschedule()

    def _resume(self) -> None:
        """7Ah: continue the suspended operation for the rest of its time (8.2.21)."""
        op = self._suspended
        if op is None or self._op is not None:
            return
        now = self.clock.monotonic()
        op.resumed_at, op.end = now, now + op.duration - op.done_s
        self._op, self._suspended = op, None
        self.counters.ops["resume"] += 1
        self._reschedule()

    def _power_down(self) -> None:
        self._pd = True

    def _release(self) -> None:
        self._pd = False

    def _enable_reset(self) -> None:
        self._reset_enabled = True

    def _reset(self) -> None:
        """66h then 99h: the power-on state; tears an operation in flight (8.2.43)."""
        if not self._reset_enabled:
            return
        now = self.clock.monotonic()
        for op, running in ((self._op, True), (self._suspended, False)):
            if op is not None:
                op.fn(*op.args, op.progress(now, running))
        self.counters.ops["reset"] += 1
        self._power_on_state()

    def _block_locker(self, value: int) -> Callable[[], None]:
        def latch() -> None:
            """36h/39h: one 64 KiB block, or one 4 KiB sector in the top and bottom blocks."""
            if not self._wel:
                return
            a = self._addr()
            block = a // BLOCK64
            if block in (0, SIZE // BLOCK64 - 1):
                self._locks[a // SECTOR] = value
            else:
                first = block * (BLOCK64 // SECTOR)
                self._locks[first : first + 16] = bytes((value,)) * 16
            self._wel = False

        return latch

    def _global_locker(self, value: int) -> Callable[[], None]:
        def latch() -> None:
            """7Eh/98h: every block lock at once."""
            if self._wel:
                self._locks[:] = bytes((value,)) * SECTORS
                self._wel = False

        return latch
