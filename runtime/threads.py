"""The thread table: saved state you can stop and restart.

The lecture's thread is "the state of a running program that can be saved and
restored".  In vos a thread is a virtual processor (an OS process) plus one
entry in this table, which lives in the main arena so that every process can
read every thread's state, what it waits for, and its statistics, without
taking a lock.

Thread ids.  They count up in creation order: 1, 2, 3, ...  A thread's slot
is tid % max_threads, so the multiples of max_threads are skipped (slot 0 is
thread 0's: the boot program, the console, never freed), and so is a number
whose slot is still taken.  `reserve` hands the slots out round robin, after
the last id given (the header's last_tid), and a new id is always larger than
the one its slot had before: an id is never reused, so a stale tid fails with
NoSuchThread instead of naming the slot's new occupant.  (Earlier, the lowest
free slot was taken and its id grew by max_threads at each reuse: a demo's
threads were numbered 1, 257, 513, 1281, ... for no reason a student could see.)

Header (64 bytes before the entries):

    off size field
      0   8  last_tid     the last id `reserve` gave; CAS by any reserver (only grows)

Life of an entry (state word, a futex word so that `join` can sleep on it):

    FREE --reserve (CAS, any process)--> RUNNABLE --(the thread itself)--> RUNNING
    RUNNING <-> RUNNABLE <-> WAITING          plain stores by the thread itself
    live --(the thread itself)--> EXITED      after writing its status
    live --CAS--> DYING --> FAULTED           by whoever buries a dead thread
    EXITED/FAULTED --CAS by the joiner--> FREE

While a thread lives, only it writes its state (single writer), so plain
stores suffice; the terminal transition of a dead thread is a CAS to DYING,
which exactly one burier wins.  A thread is buried only after its process is
known dead, so a burier never races the thread itself.

Entry layout (ENTRY_SIZE bytes each, after the header, little-endian; "self" = written only by the
thread itself while it lives):

    off size field        writer / guard
      0   4  state        see above (futex word)
      4   4  wake         processor hand-off word: set by a releaser, reset by self
      8   8  tid          reserver, before the state leaves FREE
     16   8  pid          creator after start, and self at start (same value)
     24   8  as_id        reserver
     32   8  parent       reserver (tid of the creating thread)
     40   4  wait_kind    self (WAIT_* below; 0 = not waiting)
     44   4  reason       exit reason (EXIT, EXCEPTION, FAULT, DESTROYED); self or burier
     48   8  wait_obj     self: id of the object waited on
     56   8  wait_value   self: value waited for (eventcount value, ...)
     64   8  run_ns       self: CPU time used so far
     72   8  vol          self: voluntary switches (YIELD, blocking)
     80   8  invol        self: involuntary switches (clock interrupt)
     88   8  faults       self (and the pager): page faults taken
     96   8  started_ns   reserver: wall clock at creation
    104   8  status_len   self or burier: bytes of pickled status in the status area
    112   4  flags        FLAG_* below; destroy request by anyone (fetch_add), rest self
    116   4  -
    120   8  ticket       self: processor ticket held or awaited (-1: none)
    128  32  name         reserver: procedure name, UTF-8, NUL padded

The status area (STATUS_SIZE bytes a slot) holds the pickled exit status or
failure, written once before the terminal state is published.
"""

import os
import pickle
import struct
import time

from . import atomics
from .errors import NoSuchThread, OutOfResources

HEADER_SIZE = 64
H_LAST_TID = 0
ENTRY_SIZE = 192
STATUS_SIZE = 8192

FREE, RUNNABLE, RUNNING, WAITING, EXITED, FAULTED, DYING = range(7)
STATE_NAMES = ["FREE", "RUNNABLE", "RUNNING", "WAITING", "EXITED", "FAULTED", "DYING"]
LIVE = (RUNNABLE, RUNNING, WAITING)
DONE = (EXITED, FAULTED)

# exit reasons
EXIT, EXCEPTION, FAULT, DESTROYED = 1, 2, 3, 4
REASON_NAMES = {0: "", EXIT: "exit", EXCEPTION: "exception", FAULT: "fault", DESTROYED: "destroyed"}

# what a WAITING (or RUNNABLE) thread waits for
WAIT_NAMES = {0: "", 1: "processor", 2: "join", 3: "lock", 4: "eventcount",
              5: "send", 6: "receive", 7: "swap", 8: "sleep"}
WAIT_PROCESSOR, WAIT_JOIN, WAIT_LOCK, WAIT_EVENTCOUNT, WAIT_SEND, WAIT_RECEIVE, WAIT_SWAP, WAIT_SLEEP = range(1, 9)

FLAG_DESTROY = 1  # someone asked for this thread's death
FLAG_ON_CPU = 2   # the thread holds a processor (processors= limit only)
FLAG_POOLED = 4   # the thread runs in a pool VP (pool.py), not a process forked for it

O_STATE, O_WAKE, O_TID, O_PID, O_AS, O_PARENT = 0, 4, 8, 16, 24, 32
O_WAIT_KIND, O_REASON, O_WAIT_OBJ, O_WAIT_VALUE = 40, 44, 48, 56
O_RUN, O_VOL, O_INVOL, O_FAULTS, O_STARTED, O_STATUS_LEN = 64, 72, 80, 88, 96, 104
O_FLAGS, O_TICKET, O_NAME = 112, 120, 128

_u32 = struct.Struct("<I")
_i64 = struct.Struct("<q")
_stats = struct.Struct("<IIqqqqIIqqqqqqqqIIq32s")  # the whole entry header, for snapshots


class ThreadTable:
    """The table in the main arena.  Methods run in any process."""

    def __init__(self, arena, offset, status_offset, max_threads):
        self.buf = arena.buf
        self.a_last = arena.addr + offset + H_LAST_TID
        self.base = offset + HEADER_SIZE          # the entries
        self.addr = arena.addr + self.base
        self.status_base = status_offset
        self.n = max_threads

    @staticmethod
    def sizes(max_threads):
        return HEADER_SIZE + ENTRY_SIZE * max_threads, STATUS_SIZE * max_threads

    # --- addressing ----------------------------------------------------------

    def off(self, tid, field=0):
        """Byte offset (in the arena) of a field of tid's entry.  Checks the tid."""
        slot = tid % self.n if isinstance(tid, int) and tid >= 0 else None
        if slot is None or self._get64(self.base + slot * ENTRY_SIZE + O_TID) != tid \
                or self.get32(self.base + slot * ENTRY_SIZE + O_STATE) == FREE:
            raise NoSuchThread(f"no thread {tid!r}: it never existed or was already joined")
        return self.base + slot * ENTRY_SIZE + field

    def slot_off(self, slot, field=0):
        return self.base + slot * ENTRY_SIZE + field

    def get32(self, off):
        return _u32.unpack_from(self.buf, off)[0]

    def _get64(self, off):
        return _i64.unpack_from(self.buf, off)[0]

    get64 = _get64

    def put32(self, off, v):
        # One 4-byte store.  struct.pack_into clears its target before writing
        # the bytes, so a lock-free reader could see a live thread's state as
        # 0 (FREE) for a moment: NoSuchThread from off(), a thread missing
        # from snapshot().  A memoryview item assignment is a single store.
        self.buf[off:off + 4].cast("I")[0] = v

    def put64(self, off, v):
        self.buf[off:off + 8].cast("q")[0] = v  # one 8-byte store (see put32)

    # --- life cycle ----------------------------------------------------------

    def install_boot_thread(self, pid, as_id):
        """Slot 0 becomes thread 0, the boot program (kernel process only)."""
        o = self.slot_off(0)
        self.put64(o + O_TID, 0)
        self.put64(o + O_PID, pid)
        self.put64(o + O_AS, as_id)
        self.put64(o + O_TICKET, -1)
        self.put64(o + O_STARTED, time.time_ns())
        self._put_name(o, "boot")
        self.put32(o + O_STATE, RUNNING)

    def reset(self):
        """(kernel process, nothing running: a controlled kernel's restart)
        Every entry but thread 0's is FREE and ids count from 1 again."""
        self.buf[self.base + ENTRY_SIZE:self.base + ENTRY_SIZE * self.n] = bytes(ENTRY_SIZE * (self.n - 1))
        atomics.store(self.a_last, 0)
        o = self.slot_off(0)
        for f in (O_RUN, O_VOL, O_INVOL, O_FAULTS):
            self.put64(o + f, 0)

    def reserve(self, name, as_id, parent):
        """Claim a free slot for a new thread; returns its tid.  Any process.
        Raises OutOfResources when every slot is taken (joined threads free theirs).
        Slots are tried round robin after the last id given (module doc)."""
        last = atomics.load(self.a_last)
        for step in range(1, self.n + 1):
            tid = last + step
            slot = tid % self.n
            if slot == 0:
                continue
            o = self.slot_off(slot)
            if self.get32(o + O_STATE) != FREE:
                continue
            # The state word is 32 bits inside an 8-byte word whose high half is `wake`.
            word = atomics.load(self.addr + slot * ENTRY_SIZE)
            if word & 0xFFFFFFFF != FREE:
                continue
            if atomics.compare_exchange(self.addr + slot * ENTRY_SIZE, word, (word & ~0xFFFFFFFF) | RUNNABLE) != word:
                continue
            old_tid = self._get64(o + O_TID)
            if tid <= old_tid:           # a racing reserver gave larger ids meanwhile: never reuse one
                tid = old_tid + self.n
            self.buf[o + 8:o + ENTRY_SIZE] = bytes(ENTRY_SIZE - 8)
            self.put32(o + O_WAKE, 0)
            self.put64(o + O_TID, tid)
            self.put64(o + O_AS, as_id)
            self.put64(o + O_PARENT, parent)
            self.put64(o + O_TICKET, -1)
            self.put64(o + O_STARTED, time.time_ns())
            self._put_name(o, name)
            while last < tid:            # last_tid only grows
                seen = atomics.compare_exchange(self.a_last, last, tid)
                if seen == last:
                    break
                last = seen
            return tid
        raise OutOfResources(f"the thread table is full ({self.n - 1} threads alive or unjoined): "
                             "join finished threads, or boot the Kernel with a larger max_threads")

    def _put_name(self, o, name):
        raw = name.encode("utf-8", "replace")[:32]
        self.buf[o + O_NAME:o + O_NAME + 32] = raw.ljust(32, b"\0")

    def state(self, tid):
        return self.get32(self.off(tid, O_STATE))

    def set_state(self, tid, state):
        """Self only (single writer)."""
        self.put32(self.off(tid, O_STATE), state)

    def write_status(self, tid, payload):
        """Store the pickled exit status (self, or a burier that won DYING)."""
        slot = tid % self.n
        data = pickle.dumps(payload)
        if len(data) > STATUS_SIZE:
            data = pickle.dumps(("failed", "ResultTooLarge",
                                 f"the exit status pickles to {len(data)} bytes; at most {STATUS_SIZE} "
                                 "fit in the thread table: send large results through a bounded buffer", ""))
        s = self.status_base + slot * STATUS_SIZE
        self.buf[s:s + len(data)] = data
        self.put64(self.slot_off(slot, O_STATUS_LEN), len(data))

    def read_status(self, tid):
        slot = tid % self.n
        n = self._get64(self.slot_off(slot, O_STATUS_LEN))
        s = self.status_base + slot * STATUS_SIZE
        return pickle.loads(bytes(self.buf[s:s + n]))

    def finish(self, tid, state, reason):
        """Publish the terminal state (after write_status) and wake joiners."""
        o = self.off(tid)
        self.put32(o + O_REASON, reason)
        self.put32(o + O_WAIT_KIND, 0)
        a = self.addr + (o - self.base)
        # An RMW on the whole word: a full barrier (the status is visible before
        # the state) that leaves the neighbouring `wake` half alone.
        atomics.fetch_add(a, state - self.get32(o))
        atomics.futex_wake(a, 1 << 30)

    def claim_dead(self, tid):
        """CAS a live (or never started) thread to DYING.  True for exactly one caller."""
        o = self.off(tid)
        a = self.addr + (o - self.base)
        while True:
            word = atomics.load(a)
            if word & 0xFFFFFFFF not in LIVE:
                return False
            if atomics.compare_exchange(a, word, (word & ~0xFFFFFFFF) | DYING) == word:
                return True

    def release_slot(self, tid):
        """Joiner: CAS EXITED/FAULTED -> FREE.  True for exactly one joiner."""
        o = self.off(tid)
        a = self.addr + (o - self.base)
        while True:
            word = atomics.load(a)
            if word & 0xFFFFFFFF not in DONE:
                return False
            if atomics.compare_exchange(a, word, word & ~0xFFFFFFFF | FREE) == word:
                return True

    # --- reading -------------------------------------------------------------

    def live_slots(self):
        """(slot, tid, pid, state) of every thread that is not FREE.  Lock-free."""
        out = []
        for slot in range(self.n):
            o = self.slot_off(slot)
            st = self.get32(o + O_STATE)
            if st != FREE:
                out.append((slot, self._get64(o + O_TID), self._get64(o + O_PID), st))
        return out

    def snapshot(self):
        """A list of dicts, one per thread, read without locks (for the monitor,
        statistics() and error messages).  Fields may be a few microseconds apart.

        `waits_for` is shown only beside a state that waits: WAITING, or
        RUNNABLE (in line for a processor).  A thread about to block writes
        its wait record first and gives its processor up (state WAITING) a
        moment later (context.waiting), so a reader can find the record
        beside RUNNING: the thread still runs, and says so."""
        rows = []
        for slot in range(self.n):
            o = self.slot_off(slot)
            if self.get32(o + O_STATE) == FREE:
                continue
            (state, _wake, tid, pid, as_id, parent, wait_kind, reason, wait_obj, wait_value,
             run_ns, vol, invol, faults, started, _slen, flags, _pad, ticket, name) = _stats.unpack_from(self.buf, o)
            if state == FREE:
                continue
            if state not in (WAITING, RUNNABLE):
                wait_kind = 0
            rows.append(dict(
                tid=tid, pid=pid, state=STATE_NAMES[state], name=name.rstrip(b"\0").decode("utf-8", "replace"),
                address_space=as_id, parent=parent, waits_for=describe_wait(wait_kind, wait_obj, wait_value),
                reason=REASON_NAMES.get(reason, ""), run_ms=run_ns / 1e6, voluntary=vol, involuntary=invol,
                faults=faults, on_cpu=bool(flags & FLAG_ON_CPU), ticket=ticket, started_ns=started,
                started="pool" if flags & FLAG_POOLED else "fork"))
        return rows

    def _check_invariants(self):
        """Raise AssertionError if the table is inconsistent (tests call this
        when the machine is quiet)."""
        for slot in range(self.n):
            o = self.slot_off(slot)
            state = self.get32(o + O_STATE)
            assert state < len(STATE_NAMES), f"slot {slot}: bad state {state}"
            if state == FREE:
                continue
            tid = self._get64(o + O_TID)
            assert tid % self.n == slot, f"slot {slot} holds tid {tid}"
            assert state != DYING, f"thread {tid} stuck DYING: a burier died mid-burial"
            if state in DONE:
                assert 0 < self._get64(o + O_STATUS_LEN) <= STATUS_SIZE, f"thread {tid} ended without a status"
            if state in LIVE and slot != 0:
                assert self._get64(o + O_PID) > 0, f"live thread {tid} has no pid"

    def snapshot_one(self, tid):
        """The snapshot row of one thread (NoSuchThread if unknown)."""
        self.off(tid)
        for row in self.snapshot():
            if row["tid"] == tid:
                return row
        raise NoSuchThread(f"no thread {tid!r}")


def describe_wait(kind, obj, value):
    """Human words for a wait record: 'lock 3', 'eventcount 2 > 17', ''."""
    if not kind:
        return ""
    name = WAIT_NAMES.get(kind, f"kind {kind}")
    if kind == WAIT_EVENTCOUNT:
        return f"eventcount {obj} > {value}"
    if kind == WAIT_PROCESSOR:
        return "processor"
    if kind == WAIT_JOIN:
        return f"join thread {obj}"
    return f"{name} {obj}"


def pid_alive(pid):
    """True while pid names a running (not zombie) process."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:
        return True
