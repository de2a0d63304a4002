"""The side lock of a bounded buffer: a mutex word held with a bias.

Each side of a ring (senders, receivers) is serialised by one lock, so that
one sender and one receiver run in parallel (buffer_ring.py).  The lock is a
mutex word, like mutex.py's, with a generation added:

    bits  0      WAITERS  some thread may sleep on the word
    bit   1      DIED     the last holder died holding it (holder bits 0)
    bits  2..23  holder   tid + 1, 0 when free
    bits 24..62  gen      +1 on every acquisition (never reused: no ABA)

Nearly always the same thread takes the same side again, and two atomic
instructions a call (about 0.35 us through ctypes) would be a third of a
message's whole cost.  So a holder keeps the word when it leaves (a *biased*
lock, as in JVMs) and only says where it is:

    busy[its slot][0] = this lock's key   while inside,  0 when out

plain stores into its own cache line of the busy table (buffer_table.py),
read by others.  Entering again is "busy = key; is the word still mine?",
no atomic at all.

Asking for a kept lock.  Another thread sets WAITERS in the word (CAS), runs
the membarrier() system call -- a full fence on every CPU running a
registered process, paid by the one who asks -- and reads the holder's busy
line: no word says this key, so the holder is outside and can never enter
without seeing WAITERS (it stores busy, then loads the word): the asker
takes the word over with one CAS.  A word says this key: the holder is
inside and will see WAITERS on its way out, free the word with a CAS and
wake one sleeper.  (Dekker's argument: each side writes, fences, reads the
other's word; membarrier is the holder's fence, run on its behalf.)

    holder (fast path)            asker
    busy = key                    CAS word: H -> H|WAITERS
    word == mine ? inside         membarrier()   <- fences the holder's CPU
                 : slow path      busy[H] has key ? wait : CAS H|W -> me|W

Rules that the history of this file taught (each was a lost wake-up or
two threads inside):
  * an asker that set WAITERS itself always fences, even under a word it
    fenced before: the holder may have left and come back since;
  * a thread that slept on the word takes it with WAITERS, because others
    may sleep there too: its exit then wakes the next (mutex.py's slow path
    does the same);
  * a side that keeps meeting contention stops keeping the lock for a while
    (*eager*: it frees the word on every exit for EAGER_OPS calls);
  * an asker's takeover CAS must fail if the holder left and came back
    between the asker's read of busy and the CAS: H|W then H|W again is
    not the same word.  Hence `gen`: every acquisition changes the word.
    (Chaos found this one: with one processor, an asker preempted between
    its fence and its CAS took the word from a holder that was inside.)

Inside between calls.  Word 0 of the busy line is the call in progress.
Words 1..7 say "inside" for a lock kept while the thread does something
else: a receiver holding zero-copy views (`hold`), a sender whose
send_into fill runs user code that may call other buffers (`step_out`).
Askers read the whole line.

Owner death is mutex.py's: a dead holder, killed anywhere, busy or idle, is
noticed (its thread entry, then its process), and its word is taken over;
the ring needs no repair (write, then publish).  Without membarrier or TSO
(x86-64) there is no bias: the lock is freed on every exit.

Which process writes what: the word, by CAS only, by whoever enters, hands
over, leaves or buries; busy words, plain stores, only by the thread whose
line it is (its slot in the busy table).
"""

import ctypes
import os
import struct
import sys
import time
from contextlib import ExitStack

from . import atomics
from . import mutex
from .atomics import SEQ_CST, c_arg, compare_exchange_p, load_raw
from .errors import DeadlockError, OutOfResources, WouldBlock

BUSY_STRIDE = 64                 # one cache line per thread slot in the busy table:
BUSY_WORDS = 8                   # word 0: the call in progress; 1..7: locks kept between calls
EAGER_OPS = 64                   # after contention, free the lock on every exit for this many calls
SLICE = 0.25                     # longest single sleep: deallocation, dead peers, Ctrl-C noticed by then
YIELDS = 8                       # sched_yield()s an asker tries before it sleeps
TSO = atomics.TSO
_WAITERS, _DIED = mutex.WAITERS, mutex.DIED
_SHIFT = mutex.SHIFT             # holder = tid + 1 from bit 2, as in mutex.py
_HOLDER = (1 << 22) - 1          # ... 22 bits wide
_GEN_SHIFT = 24
_GEN = ((1 << 39) - 1) << _GEN_SHIFT
_ONE = 1 << _GEN_SHIFT
_line = struct.Struct(f"{BUSY_WORDS}q")
_now = time.monotonic


# --- membarrier: the fence an asker runs on the holder's behalf ------------------------------

_SYS_MEMBARRIER = {"x86_64": 324, "aarch64": 283}.get(os.uname().machine)
_MB_GLOBAL_EXPEDITED, _MB_REGISTER_GLOBAL_EXPEDITED = 1 << 1, 1 << 2
_mb_pid = None
if _SYS_MEMBARRIER is not None and sys.platform.startswith("linux"):
    _syscall = ctypes.CDLL(None, use_errno=True).syscall
    _syscall.restype = ctypes.c_long


def membarrier_register():
    """Register this process for expedited membarriers (once per process).
    True on success; the bias needs it in every process that holds a lock."""
    global _mb_pid
    if _mb_pid == os.getpid():
        return True
    if _SYS_MEMBARRIER is None or not sys.platform.startswith("linux"):
        return False
    if _syscall(_SYS_MEMBARRIER, _MB_REGISTER_GLOBAL_EXPEDITED, 0, 0) != 0:
        return False
    _mb_pid = os.getpid()
    return True


def membarrier():
    """A full fence on every CPU that runs a registered process.  It cannot
    fail once registration succeeded; if it ever did, the bias would be
    unsound, so it raises rather than let an asker take a word over."""
    if _syscall(_SYS_MEMBARRIER, _MB_GLOBAL_EXPEDITED, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) failed")


def bias_available():
    """Can this host run biased side locks?  (x86-64 TSO and membarrier.)"""
    return TSO and membarrier_register()


class _AtomicCell:
    """A word read and written with seq-cst atomics: the stand-in for a ctypes
    cell where plain loads and stores are not ordered (not x86)."""
    __slots__ = ("_p",)

    def __init__(self, addr):
        self._p = atomics.pointer(addr)

    @property
    def value(self):
        return load_raw(self._p, SEQ_CST)

    @value.setter
    def value(self, v):
        atomics.store_raw(self._p, c_arg(v), SEQ_CST)


def cell(addr):
    """A plain 8-byte word at addr: `.value` is one aligned load or store
    (a ctypes c_int64 on x86-64; seq-cst atomics elsewhere)."""
    return ctypes.c_int64.from_address(addr) if TSO else _AtomicCell(addr)


# --- a thread's busy line ---------------------------------------------------------------------

class BusyLine:
    """The calling thread's line of the busy table: where it says which side
    locks it is inside.  Private to one process; one per thread it runs."""

    def __init__(self, ctx, addr):
        self.ctx = ctx
        self.words = [cell(addr + 8 * j) for j in range(BUSY_WORDS)]
        self.now = self.words[0]          # the call in progress
        self.now.value = 0
        self.claimed = 0                  # bit j: word j is in use (j >= 1)

    def claim(self):
        """One of words 1..7, to say "inside" between calls.  (cell, index)."""
        for j in range(1, BUSY_WORDS):
            if not self.claimed >> j & 1:
                self.claimed |= 1 << j
                return self.words[j], j
        raise OutOfResources(f"thread {self.ctx.tid} is inside {BUSY_WORDS - 1} buffers already (zero-copy "
                             "views or send_into fills): release() some")

    def free(self, j):
        self.words[j].value = 0
        self.claimed &= ~(1 << j)


def read_line(buf, offset):
    """The keys of the locks a thread is inside, from its busy line at `offset`."""
    return _line.unpack_from(buf, offset)


# --- the word ---------------------------------------------------------------------------------

def holder_field(w):
    """tid + 1 of the word's holder, 0 when free."""
    return w >> _SHIFT & _HOLDER


def taken(w, mine):
    """The word as `mine` takes it from w: the next generation, no flags."""
    return (w & _GEN) + _ONE & _GEN | mine


# --- the lock ---------------------------------------------------------------------------------

class SideLock:
    """One side's lock of one ring, as the calling thread of this process
    uses it.  `enter`/`leave` bracket a call on the side; `enter_nowait`
    raises WouldBlock instead of waiting; `abandon` frees it after an
    exception inside.  `died` tells, after an enter, that the word was taken
    over from a dead holder.

    `held` is the word as this thread took it (no flags); `fast` is what an
    enter compares the word with (held, or -1 while stepped out: entering
    again is a deadlock), `keep` what a leave does (held: keep the word if
    nobody asked; -1: free it)."""

    __slots__ = ("addr", "p", "word", "key", "wait_kind", "wait_obj", "name", "owner", "ctx", "tid", "mine",
                 "held", "fast", "keep", "eager", "died", "line", "threads", "find_line", "biased")

    def __init__(self, addr, key, wait_kind, wait_obj, name, owner):
        self.addr = addr
        self.p = atomics.pointer(addr)
        self.word = cell(addr)
        self.key = key                    # what busy words say for this lock (unique per kernel)
        self.wait_kind = wait_kind        # the thread entry's wait record while asleep here
        self.wait_obj = wait_obj
        self.name = name                  # "send" / "receive"
        self.owner = owner                # "bounded buffer 3", for messages
        self.ctx = None
        self.tid = -1
        self.mine = self.held = self.fast = self.keep = -1
        self.eager = 0
        self.died = False

    def bind(self, ctx, line, threads, find_line, biased):
        """Act for ctx's thread from now on.  find_line(tid) -> the keys in
        thread tid's busy line (the asker's read)."""
        self.ctx = ctx
        self.tid = ctx.tid
        self.line = line
        self.threads = threads
        self.find_line = find_line
        self.biased = biased
        self.mine = mutex.encode(ctx.tid)
        self.held = self.fast = self.keep = -1
        self.eager = 0

    # --- entering and leaving -------------------------------------------------------

    # The ring's hottest calls (SEND, RECEIVE) inline the first two lines of
    # enter and leave -- the busy store and the compare of the word with
    # `fast` / `keep` -- and call enter_slow / leave_slow when the compare
    # fails: a method call is a tenth of a message's cost.

    def enter(self, timeout=None, check=None):
        """Take the lock; blocks while another thread is inside.  Returns
        what is left of the timeout (None for none); TimeoutError when it
        runs out.  check() runs after every sleep slice and may raise (the
        buffer was deallocated ...); the lock is not held then.  `died` says
        whether the word was taken over from a dead holder."""
        self.line.now.value = self.key
        if self.word.value != self.fast:
            return self.enter_slow(timeout, check)
        self.died = False
        return timeout

    def enter_slow(self, timeout=None, check=None):
        """enter, after its fast check failed (busy = key is stored)."""
        return self._slow(timeout, check, True)

    def enter_nowait(self, check=None):
        """Take the lock if no other thread is inside, else WouldBlock."""
        self.line.now.value = self.key
        if self.word.value != self.fast:
            self._slow(None, check, False)
        else:
            self.died = False

    def leave(self):
        """Leave: keep the word (biased) unless someone asked or we are eager."""
        self.line.now.value = 0
        if self.word.value != self.keep:
            self.leave_slow()

    def leave_slow(self):
        """leave, after its fast check failed (busy = 0 is stored): free the
        word -- someone waits, or the side is eager."""
        self._free()

    def abandon(self):
        """An exception inside: leave and free the word now."""
        self.line.now.value = 0
        p = self.p
        while True:
            w = load_raw(p, SEQ_CST)
            if holder_field(w) != self.tid + 1:
                return
            if compare_exchange_p(p, c_arg(w), c_arg(w & _GEN)) == w:
                if w & _WAITERS:
                    atomics.futex_wake_p(p, 1)
                return

    # --- inside between calls ---------------------------------------------------------

    def step_out(self):
        """Stay inside while this thread runs code that may use other buffers
        (send_into's fill): "inside" moves to a word of its own and word 0
        is free for those calls; entering this lock again meanwhile is a
        DeadlockError.  Returns the word's index for `step_in`."""
        cell_, j = self.line.claim()
        cell_.value = self.key
        self.line.now.value = 0
        self.fast = -1
        return j

    def step_in(self, j):
        self.fast = self.held
        self.line.now.value = self.key
        self.line.free(j)

    def hold(self, j=None):
        """Stay inside between calls (zero-copy views are out): "inside" is
        said by a word of its own, claimed once (`j` from an earlier hold is
        reused).  Returns its index."""
        if j is None:
            cell_, j = self.line.claim()
        else:
            cell_ = self.line.words[j]
        cell_.value = self.key
        self.line.now.value = 0
        return j

    def resume(self, j, keep_word=False):
        """Back from a hold, inside again as a call in progress; frees the
        held word unless keep_word (the caller holds again at once)."""
        self.line.now.value = self.key
        if not keep_word:
            self.line.free(j)

    # --- the slow paths ---------------------------------------------------------------

    def _slow(self, timeout, check, may_sleep):
        """Take the word after the fast check failed (busy = key is stored).
        Blocks (may_sleep) while another thread is inside; takes the word
        over from an idle or dead holder."""
        t0 = _now()
        p, tid, mine = self.p, self.tid, self.mine
        died = contended = timed_out = False
        slept = 0            # WAITERS once we slept on the word (module doc)
        stack = None
        yields = YIELDS
        fenced = None        # the word our last membarrier checked the holder under
        try:
            while True:
                w = load_raw(p, SEQ_CST)
                h = holder_field(w)
                if h == 0:                                   # free (or its holder died: DIED)
                    new = taken(w, mine) | (w & _WAITERS) | slept
                    if compare_exchange_p(p, c_arg(w), c_arg(new)) == w:
                        died = bool(w & _DIED)
                        break
                    continue
                if h == tid + 1 and self.fast == -1:
                    raise DeadlockError(f"{self.owner}: a {self.name.upper()} from inside send_into's fill on "
                                        "the same buffer would write over the message being made")
                if h == tid + 1:                             # kept by us, and someone asked: hand it on
                    if compare_exchange_p(p, c_arg(w), c_arg(w & _GEN)) == w and w & _WAITERS:
                        atomics.futex_wake_p(p, 1)
                    contended = True
                    continue
                contended = True
                holder = h - 1
                if not w & _WAITERS:
                    if compare_exchange_p(p, c_arg(w), c_arg(w | _WAITERS)) != w:
                        continue
                    w |= _WAITERS
                    fenced = None                            # our own new announcement: fence it, even if
                                                             # the word came back (H|W -> 0 -> H -> H|W)
                if self.biased and w != fenced:              # (the same word: the holder was inside and
                    membarrier()                             # will see WAITERS on its way out)
                    fenced = w
                    if self.key not in self.find_line(holder):   # outside: take the word over,
                        new = taken(w, mine) | _WAITERS           # unless it changed hands since
                        if compare_exchange_p(p, c_arg(w), c_arg(new)) == w:
                            break
                        continue
                alive = mutex.holder_alive(self.threads, holder) if timed_out \
                    else mutex._holder_state_live(self.threads, holder)
                if not alive:                                # died inside: the word is ours
                    new = taken(w, mine) | _WAITERS
                    if compare_exchange_p(p, c_arg(w), c_arg(new)) == w:
                        died = True
                        break
                    continue
                if not may_sleep:
                    if check is not None:
                        check()
                    raise WouldBlock(f"{self.owner}: another thread is inside its {self.name} side")
                if yields:                                   # the holder is inside for a microsecond or
                    yields -= 1                              # so: let it run rather than sleep at once
                    os.sched_yield()
                    continue
                if stack is None:
                    stack = ExitStack()
                    stack.enter_context(self.ctx.waiting(self.wait_kind, self.wait_obj))
                slice_ = SLICE
                if timeout is not None:
                    slice_ = min(slice_, timeout - (_now() - t0))
                    if slice_ <= 0:
                        raise TimeoutError(f"{self.name} on {self.owner} timed out (thread {holder} is inside)")
                t1 = _now()
                atomics.futex_wait_p(p, w & 0xFFFFFFFF, slice_)
                slept = _WAITERS
                timed_out = _now() - t1 >= slice_ * 0.9
                self.ctx.check_kernel()
                if check is not None:
                    check()
        except BaseException:
            self.line.now.value = 0
            raise
        finally:
            if stack is not None:
                stack.close()
        self.died = died
        self.held = self.fast = new & ~_WAITERS
        self.keep = self.held if self.biased and not self.eager else -1
        if contended:
            self._go_eager()
        return None if timeout is None else max(0.0, timeout - (_now() - t0))

    def _free(self):
        """Leave a side whose word is not simply ours (busy = 0 is stored):
        free it -- someone waits, or the side is eager."""
        p = self.p
        while True:
            w = load_raw(p, SEQ_CST)
            if holder_field(w) != self.tid + 1:
                break                                # taken over while we were outside
            if compare_exchange_p(p, c_arg(w), c_arg(w & _GEN)) == w:
                if w & _WAITERS:
                    atomics.futex_wake_p(p, 1)
                    self._go_eager()
                break
        if self.eager:
            self.eager -= 1                          # the next acquisition keeps the word again at 0

    def _go_eager(self):
        self.eager, self.keep = EAGER_OPS, -1

    # --- any process --------------------------------------------------------------------

    def holder(self):
        """tid of the thread holding (or keeping) the word, or None."""
        h = holder_field(load_raw(self.p, SEQ_CST))
        return h - 1 if h else None

    def mark_owner_died(self, tid):
        """Death hook (a burier): if dead thread tid holds the word, it becomes
        DIED (free, generation kept) and every sleeper wakes.  True if it did."""
        p = self.p
        while True:
            w = load_raw(p, SEQ_CST)
            if holder_field(w) != tid + 1:
                return False
            if compare_exchange_p(p, c_arg(w), c_arg(w & (_GEN | _WAITERS) | _DIED)) == w:
                atomics.futex_wake_p(p, atomics.ALL)
                return True

    def wake_all(self):
        atomics.futex_wake_p(self.p, atomics.ALL)


__all__ = ["SideLock", "BusyLine", "BUSY_STRIDE", "BUSY_WORDS", "bias_available", "membarrier",
           "membarrier_register", "cell", "read_line"]
