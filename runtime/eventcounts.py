"""Eventcounts and sequencers: ADVANCE, READ, AWAIT and TICKET.

Reed and Kanodia's coordination without locks, as Saltzer & Kaashoek teach
it.  An *eventcount* is a counter that only grows: ADVANCE adds one, READ
reads it, and AWAIT(ec, v) waits until READ(ec) > v.  A *sequencer* hands out
tickets 0, 1, 2, ... exactly once each.  Together they make a ticket lock

    t = TICKET(s); AWAIT(e, t - 1); ...critical section...; ADVANCE(e)

and the book's bounded buffer (AWAIT(p.out, p.in - N) / AWAIT(p.in, p.out)).

Convention.  AWAIT follows S&K: it returns once the count *exceeds* the value.
Reed & Kanodia's original `await(E, v)` waits for E >= v; so R&K's await(E, v)
is S&K's AWAIT(E, v - 1).

Strategy.  The eventcount word packs the count and the number of sleepers:

    bits  0..47   count      fetch_add(1) by ADVANCE
    bits 48..62   sleepers   fetch_add(+-1 << 48) by an AWAIT that goes to sleep

so ADVANCE is one atomic fetch_add that also tells it whether anyone sleeps;
only then does it make a system call.  AWAIT returns at once when the count
already exceeds the value (one atomic load).  Otherwise it spins briefly
when it has a core of its own (the advancer is probably about to act; the
spin adapts: it shrinks when spinning keeps failing, as when the advancer
shares the core), then
registers as a sleeper with the same fetch_add that reads the count, and
sleeps in the host kernel on the word (FUTEX_WAIT_BITSET) for as long as the
count is unchanged.

No lost wakeup.  Both sides do one RMW on the same word, and RMWs on one word
are totally ordered: if the sleeper's registration comes first, ADVANCE sees
sleepers > 0 and wakes; if the ADVANCE comes first, the registration returns
the new count.  Between its last read and the futex call the sleeper is safe
too: the host sleeps it only if the count's low 32 bits still equal what it
read, atomically with respect to the waker.

Precise wake-ups.  ADVANCE from c to c + 1 satisfies exactly the waiters
with value c (those with a smaller value were satisfied earlier, those with a
larger one are not yet).  A waiter sleeps with bitset bit (v mod 32), and
ADVANCE wakes only bit (c mod 32): a waiter whose value is not exceeded is
not woken, except for the rare one whose value lies a multiple of 32 ahead,
which re-checks and sleeps again.

Known limit: a thread killed while asleep in AWAIT leaves the sleepers count
one too high, so ADVANCE makes one needless (harmless) wake call per
advance.  `statistics()` counts waiters from the thread table, not from this
field.

Section layout (part "eventcounts", in the main arena; little-endian words):

    header, 64 bytes
      off size field       guard / writer
        0   8  allocated   fetch_add by ALLOCATE_EVENTCOUNT / ALLOCATE_SEQUENCER
        8   8  capacity    written once at boot
    records, 64 bytes each (one cache line), id i at index i - 1
        0   8  word        eventcount: count | sleepers << 48 (atomic RMW only)
                           sequencer: the next ticket (fetch_add by TICKET)
        8   8  kind        1 eventcount, 2 sequencer; written once by the allocator
       16   8  sleeps      fetch_add: AWAITs that had to sleep
       24   8  wakes       fetch_add: ADVANCEs that woke sleepers
       32  32  name        UTF-8, NUL padded; written once by the allocator
"""

import dataclasses
import os
import struct
import time

from . import atomics
from . import checks
from . import context as _context
from .atomics import c_arg, fetch_add_raw, load_raw, SEQ_CST
from .errors import KernelError, NoSuchObject, WouldBlock
from .object_table import HEADER, WORD as _i64, ObjectTable
from .threads import LIVE, O_WAIT_KIND, O_WAIT_OBJ, O_WAIT_VALUE, WAIT_EVENTCOUNT

RECORD = 64                                    # (the header: object_table.py)
R_WORD, R_KIND, R_SLEEPS, R_WAKES, R_NAME = 0, 8, 16, 24, 32
NAME_SIZE = 32
EVENTCOUNT, SEQUENCER = 1, 2
KIND_NAMES = {EVENTCOUNT: "eventcount", SEQUENCER: "sequencer"}
_DEFAULT_PREFIX = {EVENTCOUNT: "ec", SEQUENCER: "seq"}
COUNT = (1 << 48) - 1
SLEEPER = 1 << 48
_ONE_SLEEPER = c_arg(SLEEPER)
_MINUS_ONE_SLEEPER = c_arg(-SLEEPER)
DEFAULT_CAPACITY = 1024
_VALUE = "an int value (AWAIT(ec, value) returns once READ(ec) > value)"
_SLICE = 0.25
_SPIN = 400 if (os.cpu_count() or 1) > 1 else 0
_MIN_SPIN = 8
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_TSO = atomics.TSO
_QWORD, _QRECORD = (HEADER - RECORD + R_WORD) // 8, RECORD // 8    # eventcount i's word: _q[_QWORD + i * _QRECORD]


def _ctx():
    ctx = _context._current
    if ctx is None:
        _context.current()  # raises the "no kernel" error
    return ctx


class Eventcount:
    """An eventcount handle: a small picklable value.  Pythonic twins of the
    textbook calls (same code underneath):

        ec.read()                 READ(ec)
        ec.advance()              ADVANCE(ec)
        ec.await_(v)              AWAIT(ec, v): until ec.read() > v
        ec.await_(v, timeout=1)   ... TimeoutError when it passes
        ec.await_nowait(v)        WouldBlock instead of waiting

    `await` is a Python keyword, hence `await_`."""

    # `_ec_id` is the id again, under a name no other handle has: the fast
    # paths index their prepared pointers with it, so another kind of handle
    # misses there and the slow path names the mistake (runtime/checks.py).
    __slots__ = ("id", "_ec_id")

    def __init__(self, id):
        if type(id) is not int or id < 1:
            raise NoSuchObject(f"an eventcount id is a positive int, not {id!r}")
        self.id = self._ec_id = id

    def __reduce__(self):
        return (Eventcount, (self.id,))

    def __eq__(self, other):
        return type(other) is Eventcount and other.id == self.id

    def __hash__(self):
        return hash(("eventcount", self.id))

    def read(self):
        return _ctx().kernel.eventcounts.read(self)

    def advance(self):
        _ctx().kernel.eventcounts.advance(self)

    def await_(self, value, timeout=None):
        ctx = _ctx()
        checks.timeout("Eventcount.await_", timeout)
        ctx.kernel.eventcounts.await_(self, value, timeout)

    def await_nowait(self, value):
        """Return if READ(ec) > value already, else raise WouldBlock."""
        ctx = _ctx()
        checks.integer("Eventcount.await_nowait", _VALUE, value)
        if not ctx.kernel.eventcounts.read(self) > value:
            raise WouldBlock(f"eventcount {self.id} is {ctx.kernel.eventcounts.read(self)}, not > {value}")

    def statistics(self):
        return _ctx().kernel.eventcounts.statistics_of(self)

    def __repr__(self):
        ctx = _context._current
        if ctx is None:
            return f"<Eventcount {self.id} (no kernel running)>"
        try:
            s = ctx.kernel.eventcounts.statistics_of(self)
        except KernelError:
            return f"<Eventcount {self.id} (not an eventcount of this kernel)>"
        waiting = ", ".join(f"thread {t} > {v}" for t, v in s.waiters)
        return (f"<Eventcount {self.id} {s.name!r}: count {s.count}"
                f"{'; waiting: ' + waiting if waiting else ''}>")


class Sequencer:
    """A sequencer handle: `seq.ticket()` is TICKET(seq); `seq.read()` peeks
    at the next ticket without taking it."""

    __slots__ = ("id", "_seq_id")     # _seq_id: see Eventcount

    def __init__(self, id):
        if type(id) is not int or id < 1:
            raise NoSuchObject(f"a sequencer id is a positive int, not {id!r}")
        self.id = self._seq_id = id

    def __reduce__(self):
        return (Sequencer, (self.id,))

    def __eq__(self, other):
        return type(other) is Sequencer and other.id == self.id

    def __hash__(self):
        return hash(("sequencer", self.id))

    def ticket(self):
        return _ctx().kernel.eventcounts.ticket(self)

    def read(self):
        return _ctx().kernel.eventcounts.next_ticket(self)

    def statistics(self):
        return _ctx().kernel.eventcounts.statistics_of(self)

    def __repr__(self):
        ctx = _context._current
        if ctx is None:
            return f"<Sequencer {self.id} (no kernel running)>"
        try:
            s = ctx.kernel.eventcounts.statistics_of(self)
        except KernelError:
            return f"<Sequencer {self.id} (not a sequencer of this kernel)>"
        return f"<Sequencer {self.id} {s.name!r}: next ticket {s.next_ticket}>"


@dataclasses.dataclass(frozen=True)
class EventcountStatistics:
    id: int
    name: str
    count: int            # READ(ec)
    waiters: tuple        # ((tid, value), ...) of the threads in AWAIT
    sleeps: int           # AWAITs that had to sleep
    wakes: int            # ADVANCEs that woke sleepers


@dataclasses.dataclass(frozen=True)
class SequencerStatistics:
    id: int
    name: str
    next_ticket: int      # tickets handed out so far


class EventcountTable(ObjectTable):
    """The part "eventcounts" (eventcounts and sequencers; object_table.py:
    the skeleton).  One instance per process per kernel; private to it: the
    prepared pointers."""

    RECORD, NAME_SIZE, R_NAME = RECORD, NAME_SIZE, R_NAME
    SETTING, WHAT, DEFAULT_CAPACITY = "max_eventcounts", "eventcounts and sequencers", DEFAULT_CAPACITY

    @staticmethod
    def section_size(config):
        return HEADER + RECORD * config.get("max_eventcounts", DEFAULT_CAPACITY)

    def __init__(self, kernel, offset):
        self.capacity = kernel.config.get("max_eventcounts", DEFAULT_CAPACITY)
        if not isinstance(self.capacity, int) or self.capacity < 1:
            raise ValueError(f"max_eventcounts must be a positive int, not {self.capacity!r}")
        self._map(kernel, offset, offset + HEADER, self.section_size(kernel.config))
        self._ptrs = {EVENTCOUNT: [None] * (self.capacity + 1), SEQUENCER: [None] * (self.capacity + 1)}
        self._ec_ptrs = self._ptrs[EVENTCOUNT]
        self._seq_ptrs = self._ptrs[SEQUENCER]
        self.slice = kernel.config.get("sync_slice", _SLICE)   # see LockTable
        self.spin = _SPIN if kernel.config.get("sync_spin", True) else 0
        self._budget = self.spin   # the adaptive spin (private to this process)

    def forget(self):
        """Drop this process's caches of the table (a pool VP between threads)."""
        for ptrs in self._ptrs.values():
            ptrs[:] = [None] * len(ptrs)

    # --- addressing ----------------------------------------------------------

    def _kind_of(self, i):
        if not 1 <= i <= self.capacity:
            return 0
        return _i64.unpack_from(self.buf, self._rec(i) + R_KIND)[0]

    def _pointer(self, handle, kind, call=None):
        """The slow path of every call on a handle: check it (TypeError,
        NoSuchObject, naming `call`) and prepare its pointer in this process."""
        call = call or ("READ" if kind == EVENTCOUNT else "TICKET")
        cls = Eventcount if kind == EVENTCOUNT else Sequencer
        if type(handle) is not cls:
            what = "an eventcount from ALLOCATE_EVENTCOUNT" if kind == EVENTCOUNT else \
                "a sequencer from ALLOCATE_SEQUENCER"
            raise checks.refused(call, what, handle) from None
        if self._kind_of(handle.id) != kind:
            raise NoSuchObject(f"{call}: no {KIND_NAMES[kind]} {handle.id} in this kernel (was it allocated by "
                               "an earlier kernel, or made up?)") from None
        p = atomics.pointer(self.kernel.arena.addr + self._rec(handle.id))
        self._ptrs[kind][handle.id] = p
        return p

    def _ec(self, ec, call="READ"):
        """The prepared pointer of eventcount ec (TypeError for another kind
        of handle, NoSuchObject for an unknown one)."""
        try:
            p = self._ec_ptrs[ec._ec_id]
        except (AttributeError, IndexError):
            p = None
        return p if p is not None else self._pointer(ec, EVENTCOUNT, call)

    # --- allocation ----------------------------------------------------------

    def allocate(self, kind, name=None):
        checks.name("ALLOCATE_EVENTCOUNT" if kind == EVENTCOUNT else "ALLOCATE_SEQUENCER", name, NAME_SIZE)
        i, o = self._claim(name, lambda i: f"{_DEFAULT_PREFIX[kind]}{i}")
        self._publish(o + R_KIND, kind)
        return Eventcount(i) if kind == EVENTCOUNT else Sequencer(i)

    # --- READ / ADVANCE / AWAIT ------------------------------------------------

    def read(self, ec):
        """READ: the count now (a seq-cst load)."""
        return load_raw(self._ec(ec), SEQ_CST) & COUNT

    def advance(self, ec):
        """ADVANCE: add one; wake exactly the sleepers whose value is now exceeded.
        Never blocks."""
        try:                                      # self._ec(ec), inlined: the hot path
            p = self._ec_ptrs[ec._ec_id]
        except (AttributeError, IndexError):
            p = None
        if p is None:
            p = self._pointer(ec, EVENTCOUNT, "ADVANCE")  # checks the handle, once per process
        old = fetch_add_raw(p, 1, SEQ_CST)
        if old >= SLEEPER:  # somebody sleeps on this word
            atomics.futex_wake_bitset(p, 1 << ((old & COUNT) % 32))
            atomics.fetch_add(self.kernel.arena.addr + self._rec(ec.id) + R_WAKES, 1)

    def await_(self, ec, value, timeout=None):
        """AWAIT: return once READ(ec) > value.  Blocks without burning a
        processor (after a short spin when it has a core of its own).
        TimeoutError after `timeout` seconds."""
        try:                                      # self._ec(ec), inlined: the hot path
            p = self._ec_ptrs[ec._ec_id]
        except (AttributeError, IndexError):
            p = None
        if p is None:
            p = self._pointer(ec, EVENTCOUNT, "AWAIT")    # checks the handle, once per process
        if type(value) is int:                    # anything else: the slow path names it
            if _TSO:                              # a plain load is an acquire load (atomics.py)
                if (self._q[_QWORD + ec.id * _QRECORD] & COUNT) > value:
                    return
            elif (load_raw(p, SEQ_CST) & COUNT) > value:
                return
        self._await_slow(ec, p, value, timeout)

    def _await_slow(self, ec, p, value, timeout):
        checks.integer("AWAIT", _VALUE, value)
        checks.timeout("AWAIT", timeout)
        k = self.kernel
        budget = self._budget
        if budget and not k.processors.contended():
            # Spin briefly: with a core of its own the advancer is probably about
            # to act.  Adaptive (per process): a spin that ends in a sleep halves
            # the next one (the advancer shares our core, spinning only delays
            # it); a spin that succeeds doubles it, up to the configured spin.
            q = self._q
            qi = _QWORD + ec.id * _QRECORD
            for _ in range(budget):
                if (q[qi] & COUNT) > value and (_TSO or (load_raw(p, SEQ_CST) & COUNT) > value):  # hint, confirm
                    self._budget = min(self.spin, budget * 2)
                    return
            self._budget = max(_MIN_SPIN, budget // 2)
        ctx = _context.current()
        deadline = None if timeout is None else time.monotonic() + timeout
        bits = 1 << (value % 32)
        shown = min(max(value, _I64_MIN), _I64_MAX)
        with ctx.waiting(WAIT_EVENTCOUNT, ec.id, shown):
            old = fetch_add_raw(p, _ONE_SLEEPER, SEQ_CST)
            try:
                c = old & COUNT
                if c <= value:
                    atomics.fetch_add(k.arena.addr + self._rec(ec.id) + R_SLEEPS, 1)
                while c <= value:
                    slice_ = self.slice
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise TimeoutError(f"AWAIT(eventcount {ec.id}, {value}): the count is still {c} "
                                               f"after {timeout} s")
                        slice_ = min(slice_, left)
                    atomics.futex_wait_bitset(p, c & 0xFFFFFFFF, bits, slice_)
                    ctx.check_kernel()
                    c = load_raw(p, SEQ_CST) & COUNT
            finally:
                fetch_add_raw(p, _MINUS_ONE_SLEEPER, SEQ_CST)

    def count_of(self, ec_id):
        """The count of eventcount ec_id (a lock-free read; controlled runs)."""
        return _i64.unpack_from(self.buf, self._rec(ec_id))[0] & COUNT

    def _sleepers(self, ec):
        """The sleepers field of the word (for tests and the monitor)."""
        return load_raw(self._ec(ec), SEQ_CST) >> 48

    # --- TICKET ----------------------------------------------------------------

    def ticket(self, seq):
        """TICKET: the next number, 0, 1, 2, ..., each exactly once."""
        try:
            p = self._seq_ptrs[seq._seq_id]
        except (AttributeError, IndexError):
            p = None
        if p is None:
            p = self._pointer(seq, SEQUENCER, "TICKET")   # checks the handle, once per process
        return fetch_add_raw(p, 1, SEQ_CST)

    def next_ticket(self, seq):
        try:
            p = self._seq_ptrs[seq._seq_id]
        except (AttributeError, IndexError):
            p = None
        if p is None:
            p = self._pointer(seq, SEQUENCER, "Sequencer.read")
        return load_raw(p, SEQ_CST)

    # --- statistics ------------------------------------------------------------

    def _waiters(self):
        """{eventcount id: [(tid, value), ...]} from the thread table."""
        t = self.threads
        out = {}
        for slot, tid, _pid, state in t.live_slots():
            if state not in LIVE:
                continue
            o = t.slot_off(slot)
            if t.get32(o + O_WAIT_KIND) == WAIT_EVENTCOUNT:
                out.setdefault(t.get64(o + O_WAIT_OBJ), []).append((tid, t.get64(o + O_WAIT_VALUE)))
        return out

    def statistics_of(self, handle):
        kind = EVENTCOUNT if type(handle) is Eventcount else SEQUENCER if type(handle) is Sequencer else None
        if kind is None:
            raise TypeError(f"expected an eventcount or a sequencer, got {type(handle).__name__}")
        if self._kind_of(handle.id) != kind:
            raise NoSuchObject(f"no {KIND_NAMES[kind]} {handle.id} in this kernel")
        return self._stats(handle.id, kind, self._waiters() if kind == EVENTCOUNT else {})

    def _stats(self, i, kind, waiters):
        word, _kind, sleeps, wakes = struct.unpack_from("<4q", self.buf, self._rec(i))
        if kind == SEQUENCER:
            return SequencerStatistics(i, self.name_of(i), word)
        return EventcountStatistics(i, self.name_of(i), word & COUNT, tuple(waiters.get(i, ())), sleeps, wakes)

    def statistics(self):
        waiters = self._waiters()
        ecs, seqs = [], []
        for i in range(1, self.allocated() + 1):
            kind = self._kind_of(i)
            if kind == EVENTCOUNT:
                ecs.append(dataclasses.asdict(self._stats(i, kind, waiters)))
            elif kind == SEQUENCER:
                seqs.append(dataclasses.asdict(self._stats(i, kind, waiters)))
        return {"capacity": self.capacity, "eventcounts": ecs, "sequencers": seqs}

    def _check_invariants(self):
        """Raise AssertionError if the table is inconsistent (machine quiet)."""
        n = self.allocated()
        for i in range(1, self.capacity + 1):
            word, kind, sleeps, wakes = struct.unpack_from("<4q", self.buf, self._rec(i))
            if i > n:
                assert word == 0 and kind == 0, f"record {i} beyond the allocated ones is in use"
                continue
            assert kind in (0, EVENTCOUNT, SEQUENCER), f"record {i}: bad kind {kind}"
            assert word >= 0, f"record {i}: negative word {word:#x} (a sleeper left twice?)"
            assert sleeps >= 0 and wakes >= 0, f"record {i}: negative statistics"
            if kind == SEQUENCER:
                assert word < SLEEPER, f"sequencer {i} ran past 2**48 tickets"


# --- the textbook calls ----------------------------------------------------------

def ALLOCATE_EVENTCOUNT(name=None):
    """A new eventcount, count 0."""
    return _ctx().kernel.eventcounts.allocate(EVENTCOUNT, name)


def ADVANCE(ec):
    """Add one to the count; wake the threads whose AWAIT value it now exceeds.  Never blocks."""
    ctx = _context._current
    if ctx is None:
        _context.current()
    ctx.kernel.eventcounts.advance(ec)


def READ(ec):
    """The count now."""
    ctx = _context._current
    if ctx is None:
        _context.current()
    return ctx.kernel.eventcounts.read(ec)


def AWAIT(ec, value):
    """Wait until READ(ec) > value (S&K's convention; Reed & Kanodia's waits for >=)."""
    ctx = _context._current
    if ctx is None:
        _context.current()
    ctx.kernel.eventcounts.await_(ec, value)


def ALLOCATE_SEQUENCER(name=None):
    """A new sequencer; its first ticket is 0."""
    return _ctx().kernel.eventcounts.allocate(SEQUENCER, name)


def TICKET(seq):
    """The next ticket: 0, 1, 2, ..., each exactly once across all threads."""
    ctx = _context._current
    if ctx is None:
        _context.current()
    return ctx.kernel.eventcounts.ticket(seq)


__all__ = ["ALLOCATE_EVENTCOUNT", "ADVANCE", "READ", "AWAIT", "ALLOCATE_SEQUENCER", "TICKET",
           "Eventcount", "Sequencer", "EventcountStatistics", "SequencerStatistics", "EventcountTable"]
