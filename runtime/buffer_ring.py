"""The ring of a bounded buffer: SEND and RECEIVE through shared memory.

Saltzer & Kaashoek's bounded buffer (有界缓冲区) is a ring of N slots and two
counters that only grow: `in` (messages ever sent) and `out` (messages ever
received).  Message k lives in slot k mod N; the buffer is full when
in - out == N and empty when in == out.  xv6's pipe keeps the same two
counters (nwrite, nread): the eventcount view of the buffer.  vos carries
variable-size messages, so it has two rings:

  * the message ring: N entries (start, meta); `start` is a byte counter
    that only grows too, `meta` = length | kind << 56 (raw bytes or pickle);
  * the byte ring: `capacity` bytes, message k at start_k mod capacity.

A message is always contiguous: the byte ring is followed by an overflow
area of another `capacity` bytes, and a message that starts near the end
runs on into it.  The accounting stays that of a ring of `capacity` bytes (a
message fits only if the bytes from the oldest unread start to its own end
span at most `capacity`), so the bytes the overflow stands in for at the
start of the ring are never in use at the same time.  A message may be as
large as `capacity`, and a receiver can be handed a view of it, no copy.

Who writes what.  Senders serialise on the send lock and receivers on the
receive lock, so one sender and one receiver run in parallel; a lock only
orders threads of the same side.  The send-lock holder alone writes entries,
data and `in`; the receive-lock holder alone writes `out`.  A sender finds
the free space from `out` and the start of the oldest unread entry (which
only a sender overwrites, once it is consumed); a receiver finds messages
from `in`.  Each side caches what it last learned of the other side's
counter (a lower bound: counters only grow) and re-reads it only when the
cache says "full" or "empty", so the hot path rarely touches the other
side's cache line.

Crash safety: write, then publish.  A sender writes the bytes and the entry
of message `in` where no receiver looks, then publishes them with one store
of in + 1.  Killed before that store, it published nothing: the next sender
takes the lock over and writes message `in` over the same place; there is
nothing to repair because nothing was visible.  A receiver copies message
`out` out, then consumes it with one store of out + 1.  Killed before, the
message stays for the next receiver (the dead one never returned it);
killed after, it was handed to the thread that died.  So no kill tears a
message, loses another thread's message, or delivers one twice.

The side locks: mutex.py's word, held with a bias.  A lock costs two atomic
instructions a call (about 0.35 us through ctypes here), a third of a
message's whole cost, yet nearly always the same thread takes the same side
again.  So a holder keeps the lock when it leaves (a *biased* lock, as in
JVMs) and only announces where it is: busy[its slot] = this lock's key while
inside, 0 when out -- plain stores into its own cache line of the `buffers`
table (word 0 of that line; words 1..7 name the receive locks it keeps for
zero-copy views, which it is "inside" between calls).  Entering again is "busy = key; is the word still mine?", no atomic.
Another thread that wants the lock sets WAITERS in the word (CAS), runs the
membarrier() system call -- a full fence on every CPU running a registered
process, paid by the one who asks -- and reads the holder's busy word: not
this key, and the holder is outside and can never enter without seeing
WAITERS, so the asker takes the word over with one CAS; this key, and the
holder will see WAITERS on its way out and free the word with a CAS and a
futex wake.  (Dekker's argument: each side writes, fences, then reads the
other's word; membarrier is the holder's fence, executed on its behalf.)
An asker that set WAITERS itself always fences, even under a word it fenced
before: the holder may have left and come back since.  A thread that slept
on the word takes it with WAITERS, for others may sleep there too: its exit
wakes the next (as mutex.py's slow path does).  A side that keeps meeting
contention stops keeping the lock for a while.
Without membarrier or TSO (below) the runtime frees the lock on every exit.
Owner death is mutex.py's: a dead holder (killed anywhere, busy or idle) is
noticed, its word taken over, and nothing needs repair (see above).

Sleeping.  The lock holder of a side waits there for the other side: a
receiver holding the receive lock waits for `in` to move, a sender holding
the send lock for space.  It spins a little first when each side can have a
core (the budget doubles when spinning paid off and halves when it did not),
then announces itself in its side's `sleep` word, fences, re-checks, and
sleeps on a dedicated sequence word (futex).  The other side publishes, then
reads `sleep` and, if set, bumps the sequence word and wakes it.  Close and
deallocation set a flag, bump both sequence words and wake everybody.  Other
threads of a side sleep on the side's lock word.

Memory ordering of the plain words.  `in`, `out`, `sleep`, `flags` and busy
are read and written through ctypes c_int64 cells: one aligned 8-byte MOV
each on x86-64, whose TSO model keeps stores in order and loads in order --
what "write the data, then publish the counter" and "read the counter, then
the data" need.  Elsewhere (ARM64) the cells are seq-cst atomics instead and
the lock is freed on every exit.

Side arena layout (`<kernel arena>_b<id>`; created by the allocating process,
unlinked by DEALLOCATE or at kernel shutdown).  Native 64-bit words:

    off    size  field        guard / writer
      0       8  magic        b"VOSRING1"; allocator, before the buffer is published
      8       8  id           allocator (kernel-wide buffer id, never reused)
     16       8  n            allocator: message slots
     24       8  capacity     allocator: data bytes
     32       8  flags        fetch_or by anyone: DEALLOCATED | WRITERS_GONE | READERS_GONE
   --- send side (one cache line) ---
     64       8  send_lock    mutex word (mutex.py), biased (above)
     72       8  in           messages published; written only by the send-lock holder
     80       8  send_sleep   1 while the send-lock holder sleeps for space; written by it
     88       8  send_peak    largest fill (messages) a sender observed; send-lock holder
     96       8  send_peak_b  largest fill (bytes) a sender observed; send-lock holder
    104       8  send_waits   times a sender slept for space; send-lock holder
    112       8  send_died    takeovers from a dead holder; send-lock holder
   --- receive side (one cache line) ---
    128       8  recv_lock    mutex word (mutex.py), biased
    136       8  out          messages consumed; written only by the receive-lock holder
    144       8  recv_sleep   1 while the receive-lock holder sleeps for a message
    152       8  recv_peak    largest fill (messages) a receiver observed; receive-lock holder
    160       8  recv_waits   times a receiver slept; receive-lock holder
    168       8  recv_died    takeovers from a dead holder; receive-lock holder
   --- wake-up words, each on its own line (fetch_add by any waker) ---
    192       8  tx_seq       senders sleep on it (futex)
    256       8  rx_seq       receivers sleep on it (futex)
    320    16*n  entries      entry k mod n = (start, meta); send-lock holder, before `in`
     D  2*capacity  bytes     message k at D + start_k mod capacity, contiguous

Lock order: the runtime never waits for a side lock while it holds another.
Two things keep a side lock while the thread goes on: a zero-copy lease
keeps the receive lock between calls, and send_into runs the caller's fill
inside the send lock, where it may call other buffers (a wait there is the
caller's, as with any lock held across a call).  Both say "inside" in a busy
word of their own (1..7), so that word 0 stays free for the calls made
meanwhile.  A fill that SENDs on its own buffer is refused (DeadlockError).
"""

import ctypes
import os
import pickle
from array import array
from bisect import bisect_left, bisect_right
from itertools import accumulate
import platform
import struct
import sys
import time
from contextlib import ExitStack

from . import atomics
from . import checks
from . import mutex
from .atomics import SEQ_CST, c_arg, compare_exchange_p, load_raw
from .errors import (BufferDeallocated, DeadlockError, EndOfStream, MessageTooLarge, OutOfResources,
                     ReaderClosed, StreamClosed, WouldBlock)
from .threads import RUNNING as _RUNNING, WAIT_RECEIVE, WAIT_SEND

MAGIC = b"VOSRING1"
R_MAGIC, R_ID, R_N, R_CAP, R_FLAGS = 0, 8, 16, 24, 32
R_SLOCK, R_IN, R_SSLEEP, R_SPEAK, R_SPEAKB, R_SWAITS, R_SDIED = 64, 72, 80, 88, 96, 104, 112
R_RLOCK, R_OUT, R_RSLEEP, R_RPEAK, R_RWAITS, R_RDIED = 128, 136, 144, 152, 160, 168
R_TXSEQ, R_RXSEQ = 192, 256
R_ENTRIES = 320
ENTRY = 16
BUSY_STRIDE = 64                 # one cache line per thread slot in the busy table:
BUSY_WORDS = 8                   # word 0: the call in progress; 1..7: locks kept for views
_busy_line = struct.Struct(f"{BUSY_WORDS}q")

DEALLOCATED, WRITERS_GONE, READERS_GONE = 1, 2, 4
SEND_STOP = DEALLOCATED | READERS_GONE | WRITERS_GONE

RAW, PICKLED = 0, 1
KIND_SHIFT = 56
LENGTH = (1 << KIND_SHIFT) - 1

_entry = struct.Struct("qq")     # native: one aligned load/store per word
_word = struct.Struct("q")
_dumps, _loads = pickle.dumps, pickle.loads
_BYTES = {bytes}                 # message types send_many passes on as they are
_SHIFT, _WAITERS, _DIED = mutex.SHIFT, mutex.WAITERS, mutex.DIED

_SLICE = 0.25                    # longest single sleep: deallocation, dead peers, Ctrl-C noticed by then
_SPIN_MIN, _SPIN_START, _SPIN_MAX = 32, 512, 16384
_EAGER_OPS = 64                  # after contention, free the lock on every exit for this many calls
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_MULTICORE = _CPUS > 1
_YIELDS = 8                      # sched_yield()s a lock asker tries before it sleeps
_TSO = atomics.TSO
_now = time.monotonic


# --- membarrier: the fence a lock asker runs on the holder's behalf ------------------------

_SYS_MEMBARRIER = {"x86_64": 324, "aarch64": 283}.get(platform.machine())
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


def _membarrier():
    _syscall(_SYS_MEMBARRIER, _MB_GLOBAL_EXPEDITED, 0, 0)


def _host_running():
    """Processes runnable on the host right now (Linux /proc/loadavg), or 0."""
    try:
        with open("/proc/loadavg", "rb") as f:
            return int(f.read().split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return 0


def bias_available():
    """Can this host run biased side locks?  (x86-64 TSO and membarrier.)"""
    return _TSO and membarrier_register()


# --- layout helpers --------------------------------------------------------------------------

def data_offset(n):
    return -(-(R_ENTRIES + ENTRY * n) // 64) * 64


def arena_size(n, capacity):
    """Bytes of the side arena for a buffer of n messages and capacity bytes."""
    return data_offset(n) + 2 * capacity


def format_header(buf, ident, n, capacity):
    """Write the constant header of a new ring (allocator, before publication)."""
    buf[R_MAGIC:R_MAGIC + 8] = MAGIC
    _word.pack_into(buf, R_ID, ident)
    _word.pack_into(buf, R_N, n)
    _word.pack_into(buf, R_CAP, capacity)


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


def _cell(addr):
    return ctypes.c_int64.from_address(addr) if _TSO else _AtomicCell(addr)


def encode(message):
    """(data, kind): bytes-like travels raw, anything else is pickled."""
    t = type(message)
    if t is bytes:
        return message, RAW
    if t is bytearray:
        return message, RAW
    if t is memoryview:
        if message.contiguous:
            return (message if message.format == "B" and message.ndim == 1 else message.cast("B")), RAW
        return message.tobytes(), RAW
    try:
        return _dumps(message, 5), PICKLED
    except Exception:
        checks.picklable("SEND", "a message (bytes-like, or a value)", message)  # names the error
        raise


def _unpickled(messages, metas):
    """messages with each pickled one (by its entry's meta) unpickled, in place."""
    for idx, meta in enumerate(metas[:len(messages)]):
        if meta >> KIND_SHIFT:
            messages[idx] = _loads(messages[idx])
    return messages


class _Side:
    """What the slow paths need to know about one side's lock."""
    __slots__ = ("p", "addr", "key", "sleep_cell", "wait_kind", "died_off", "name")

    def __init__(self, addr, key, sleep_cell, wait_kind, died_off, name):
        self.addr = addr
        self.p = atomics.pointer(addr)
        self.key = key
        self.sleep_cell = sleep_cell
        self.wait_kind = wait_kind
        self.died_off = died_off
        self.name = name


class Ring:
    """One process's view of one buffer's side arena.

    Built once per process per buffer (bounded_buffer.Buffers caches it) and
    bound to the calling thread by `bind`; every method runs in the calling
    thread's process.  Blocking methods record the wait in the thread entry
    (WAIT_SEND / WAIT_RECEIVE on the buffer id) around every sleep."""

    def __init__(self, arena, ident, n, capacity, ends_check, busy_addr, max_threads, biased):
        buf = arena.buf
        if bytes(buf[R_MAGIC:R_MAGIC + 8]) != MAGIC or _word.unpack_from(buf, R_ID)[0] != ident:
            raise BufferDeallocated(f"bounded buffer {ident} is gone (its segment was reused)")
        self.arena = arena
        self.id = ident
        self.n = n
        self.capacity = capacity
        self.ends_check = ends_check      # () -> WRITERS_GONE | READERS_GONE as the ends table says
        self.busy_addr = busy_addr        # the busy table (main arena): one line per thread slot
        self.max_threads = max_threads
        self.biased = biased
        self.mm = buf.obj                 # the mmap: slicing it gives bytes in one step
        a = arena.addr
        self.ents = R_ENTRIES
        self.data = data_offset(n)
        self.c_flags = _cell(a + R_FLAGS)
        self.c_in, self.c_out = _cell(a + R_IN), _cell(a + R_OUT)
        self.c_ssleep, self.c_rsleep = _cell(a + R_SSLEEP), _cell(a + R_RSLEEP)
        self.c_slock, self.c_rlock = _cell(a + R_SLOCK), _cell(a + R_RLOCK)
        self.p_txseq, self.p_rxseq = atomics.pointer(a + R_TXSEQ), atomics.pointer(a + R_RXSEQ)
        self.tx = _Side(a + R_SLOCK, 2 * ident + 1, self.c_ssleep, WAIT_SEND, R_SDIED, "send")
        self.rx = _Side(a + R_RLOCK, 2 * ident + 2, self.c_rsleep, WAIT_RECEIVE, R_RDIED, "receive")
        self.x_tx, self.x_rx = self.tx.key, self.rx.key
        self.ctx = None
        self.tid = -1
        self.mine = -1
        self.mine_tx = -1                     # what the send fast path compares: mine, or -1 during a fill
        self.keep_tx = self.keep_rx = -1      # the word a side leaves in place on exit (-1: free it)
        self.eager_tx = self.eager_rx = 0
        # Process-private knowledge; the counters only grow, so these stay safe bounds.
        self.tx_i, self.tx_head = -1, 0       # head (end of message tx_i - 1), valid while in == tx_i
        self.lim_in = 0                       # a sender may publish message i < lim_in ...
        self.lim_bytes = 0                    # ... ending at or before byte lim_bytes, without reading `out`
        self.seen_in = 0                      # a receiver knows messages < seen_in are published
        self.lease = 0                        # messages held as zero-copy views (receive lock kept)
        self.lease_word = None                # busy word naming our receive lock while views are out
        self.spin_tx = self.spin_rx = _SPIN_START
        self._spin_checked, self._spin_ok = -1.0, True

    # --- binding to the calling thread -------------------------------------------

    def bind(self, ctx):
        """Act for ctx's thread from now on (first use in a process, or after fork)."""
        if self.biased and not membarrier_register():
            raise OutOfResources("this process cannot register for membarrier, which biased buffer locks "
                                 "need; boot the Kernel with buffer_bias=False")
        self.ctx = ctx
        self.tid = ctx.tid
        self.mine = self.mine_tx = mutex.encode(ctx.tid)
        self.keep_tx = self.keep_rx = self.mine if self.biased else -1
        self.eager_tx = self.eager_rx = 0
        self.lease = 0                        # a forked child holds none of its parent's leases
        self.lease_word = None
        line = self.busy_addr + (ctx.tid % self.max_threads) * BUSY_STRIDE
        self.busy_line = line
        self.c_busy_words = [_cell(line + 8 * j) for j in range(BUSY_WORDS)]
        self.c_busy = self.c_busy_words[0]
        self.c_busy.value = 0
        self._threads = ctx.kernel.threads
        self._processors = ctx.kernel.processors

    # --- SEND ----------------------------------------------------------------------

    def send(self, message, timeout=None, nowait=False):
        """Append one message; blocks while the buffer is full.  Raises
        MessageTooLarge, BufferDeallocated, ReaderClosed (every reader closed),
        StreamClosed (closed for writing), TimeoutError, WouldBlock (nowait)."""
        if type(message) is bytes:
            data = message
            meta = size = len(data)
        else:
            data, kind = encode(message)
            size = len(data)
            meta = size | kind << KIND_SHIFT
        if size > self.capacity:
            raise self._too_large(size)
        c_busy = self.c_busy
        c_busy.value = self.x_tx
        if self.c_slock.value != self.mine_tx:
            timeout = self._enter(self.tx, timeout, nowait)
        try:
            if self.c_flags.value & SEND_STOP:
                self._refuse_send()
            c_in = self.c_in
            i = c_in.value
            start = self.tx_head if i == self.tx_i else self._head(i)
            if i >= self.lim_in or start + size > self.lim_bytes:
                self._wait_space(i, start, size, timeout, nowait)
            mm = self.mm
            at = self.data + start % self.capacity
            mm[at:at + size] = data
            _entry.pack_into(mm, self.ents + i % self.n * ENTRY, start, meta)
            c_in.value = i + 1                   # publish: the one store that makes it visible
            self.tx_i, self.tx_head = i + 1, start + size
        except BaseException:
            self._abandon(self.tx)
            raise
        c_busy.value = 0
        if self.c_slock.value != self.keep_tx:
            self._exit(self.tx)
        if self.c_rsleep.value:
            self._wake(self.p_rxseq)

    def send_into(self, size, fill, timeout=None):
        """SEND a raw message written in place, with no copy: wait until `size`
        bytes fit (at most the capacity), call fill(view) with a writable
        memoryview of those bytes inside the ring, and publish the first n
        bytes as one message, where n = fill(view) (0 <= n <= size; 0
        publishes nothing).  Returns n.  The view is valid only during fill,
        which runs inside the send side: other senders wait meanwhile.  fill
        may use other buffers (this thread's busy word 0 is theirs while it
        runs: a busy word of its own says "inside"), but a SEND on this one
        would write over the message being made: DeadlockError.  If fill
        raises, nothing was published (write, then publish).  Raises as send."""
        if type(size) is not int or size < 1:
            raise ValueError(f"send_into needs a size of at least 1 byte, not {size!r}")
        size = min(size, self.capacity)
        i, start, timeout = self._enter_send(timeout, False)
        c_busy = self.c_busy
        try:
            if i >= self.lim_in or start + size > self.lim_bytes:
                self._wait_space(i, start, size, timeout, False)
            at = self.data + start % self.capacity
            inside, j = self._claim_busy_word()
            inside.value = self.x_tx             # "inside" in a word of its own, while fill runs ...
            c_busy.value = 0                     # ... so that calls fill makes can use word 0
            self.mine_tx = -1                    # a SEND on this buffer from fill: _enter refuses it
            try:
                with self.arena.buf[at:at + size] as view:
                    n = fill(view)
            finally:
                self.mine_tx = self.mine
                c_busy.value = self.x_tx
                self._free_busy_word(inside, j)
            if type(n) is not int or not 0 <= n <= size:
                raise ValueError(f"send_into: fill returned {n!r}, not a byte count from 0 to {size}")
            if n:
                _entry.pack_into(self.mm, self.ents + i % self.n * ENTRY, start, n)
                self.c_in.value = i + 1          # publish
                self.tx_i, self.tx_head = i + 1, start + n
        except BaseException:
            self._abandon(self.tx)
            raise
        self._leave_send(n)
        return n

    def send_many(self, messages, timeout=None):
        """Append every message, in order, under one lock hold, publishing each
        run that fits at once.  Returns how many.  On an exception a prefix
        was sent, and the exception carries `.sent`.

        A run is written in bulk: its bytes with one copy for the messages
        before the ring's wrap and one for those after it (a message never
        wraps: one that starts before the end runs on into the overflow
        area), its entries as one array (two pieces where the entry ring
        wraps), then one store of `in`."""
        cap = self.capacity
        datas = messages if type(messages) is list else list(messages)
        if set(map(type, datas)) <= _BYTES:      # the common case, at C speed: raw bytes only
            metas = sizes = list(map(len, datas))
        else:
            items = [encode(m) for m in datas]
            datas = [data for data, _ in items]
            sizes = list(map(len, datas))
            metas = [size | kind << KIND_SHIFT for size, (_, kind) in zip(sizes, items)]
        if not datas:
            return 0
        if max(sizes) > cap:
            raise self._too_large(max(sizes))
        sent = 0
        i, start, timeout = self._enter_send(timeout, False)
        try:
            c_in, mm, ents, n, base = self.c_in, self.mm, self.ents, self.n, self.data
            offs = list(accumulate(sizes, initial=start))     # message j: bytes offs[j]..offs[j+1]
            total = len(datas)
            while sent < total:
                hi = sent + max(0, min(total - sent, self.lim_in - i))
                k = bisect_right(offs, self.lim_bytes, sent, hi + 1) - 1 - sent
                if k > 0:                        # messages sent .. sent+k-1 fit: write, then publish
                    # A message lives at its start mod capacity: the messages that start at or
                    # past the next multiple of the capacity go to the front of the ring (at
                    # most one such wrap: the run spans at most `capacity` bytes).
                    wrap = bisect_left(offs, start - start % cap + cap, sent, sent + k)
                    for lo, hi_ in ((sent, wrap), (wrap, sent + k)):
                        if lo < hi_:
                            at = base + offs[lo] % cap
                            mm[at:at + offs[hi_] - offs[lo]] = b"".join(datas[lo:hi_])
                    ent = array("q", bytes(ENTRY * k))
                    ent[0::2] = array("q", offs[sent:sent + k])
                    ent[1::2] = array("q", metas[sent:sent + k])
                    slot = i % n
                    first = min(k, n - slot)
                    mm[ents + slot * ENTRY:ents + (slot + first) * ENTRY] = ent[:2 * first]
                    if k > first:
                        mm[ents:ents + (k - first) * ENTRY] = ent[2 * first:]
                    i += k
                    start = offs[sent + k]
                    c_in.value = i               # publish the whole run with one store
                    self.tx_i, self.tx_head = i, start
                    sent += k
                    if sent < total:             # the receiver must not sleep while we wait for space
                        self._fast_side_fence()
                        if self.c_rsleep.value:
                            self._wake(self.p_rxseq)
                if sent < total:
                    self._wait_space(i, start, sizes[sent], timeout, False)
        except BaseException as e:
            self._abandon(self.tx)
            if isinstance(e, Exception):
                e.sent = sent
            raise
        self._leave_send(sent)
        return sent

    def _enter_send(self, timeout, nowait):
        """The way into the send side for send_many and send_into (send has
        the same steps inline: it is the hot path): busy word, lock, the stop
        flag.  Returns (i, start, timeout left): the next message's number
        and byte counter.  On an exception the side is left as it was."""
        self.c_busy.value = self.x_tx
        if self.c_slock.value != self.mine_tx:
            timeout = self._enter(self.tx, timeout, nowait)
        try:
            if self.c_flags.value & SEND_STOP:
                self._refuse_send()
            i = self.c_in.value
            return i, (self.tx_head if i == self.tx_i else self._head(i)), timeout
        except BaseException:
            self._abandon(self.tx)
            raise

    def _leave_send(self, published):
        """The way out of the send side (send's, inline): keep the biased lock
        or free it, and wake a sleeping receiver when something was published."""
        self.c_busy.value = 0
        if self.c_slock.value != self.keep_tx:
            self._exit(self.tx)
        if published and self.c_rsleep.value:
            self._wake(self.p_rxseq)

    def _head(self, i):
        """Byte counter where message i starts: the end of message i - 1."""
        if not i:
            return 0
        s, meta = _entry.unpack_from(self.mm, self.ents + (i - 1) % self.n * ENTRY)
        return s + (meta & LENGTH)

    def _too_large(self, size):
        return MessageTooLarge(f"a message of {size} bytes can never fit in bounded buffer {self.id} "
                               f"(capacity {self.capacity} bytes)")

    # --- RECEIVE -------------------------------------------------------------------

    def receive(self, timeout=None, nowait=False):
        """Remove and return the oldest message (bytes for bytes-like, else the
        unpickled object); blocks while empty.  Raises BufferDeallocated,
        EndOfStream, TimeoutError, WouldBlock (nowait)."""
        c_busy = self.c_busy
        if self.lease:
            self._end_lease()                    # we are still inside, holding the lock
        else:
            c_busy.value = self.x_rx
            if self.c_rlock.value != self.mine:
                timeout = self._enter(self.rx, timeout, nowait)
        try:
            if self.c_flags.value & DEALLOCATED:
                raise self._deallocated()
            c_out = self.c_out
            o = c_out.value
            if o >= self.seen_in:
                self._wait_message(o, timeout, nowait)
            s, meta = _entry.unpack_from(self.mm, self.ents + o % self.n * ENTRY)
            at = self.data + s % self.capacity
            data = self.mm[at:at + (meta & LENGTH)]
            c_out.value = o + 1                  # consume: after the copy, never before
        except BaseException:
            self._abandon(self.rx)
            raise
        c_busy.value = 0
        if self.c_rlock.value != self.keep_rx:
            self._exit(self.rx)
        if self.c_ssleep.value:
            self._wake(self.p_txseq)
        if meta >> KIND_SHIFT:
            return _loads(data)
        return data

    def receive_many(self, max_messages=None, timeout=None, nowait=False, views=False):
        """Remove up to max_messages (all there are if None) at once; blocks
        only while the buffer is empty.  views=True: zero-copy, read-only
        memoryviews into the ring (pickled messages come unpickled), valid
        until this thread's next receive or release().

        The entries are read as one array; copies are consumed (`out`
        stored, a sleeping sender woken) every quarter of the capacity, so
        that senders refill the ring while a large batch is copied out.  An
        exception after some of them were consumed carries them as
        `.received` (nothing is lost to the caller)."""
        if max_messages is not None and max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages!r}")
        o, out, metas = -1, [], ()
        c_busy = self.c_busy
        if self.lease:
            self._end_lease(keep_word=views)     # views again: the lease word goes on saying "inside"
        else:
            c_busy.value = self.x_rx
            if self.c_rlock.value != self.mine:
                timeout = self._enter(self.rx, timeout, nowait)
        try:
            if self.c_flags.value & DEALLOCATED:
                raise self._deallocated()
            c_out = self.c_out
            o = c_out.value
            if o >= self.seen_in:
                self._wait_message(o, timeout, nowait)
            k = self.seen_in - o if max_messages is None else min(self.seen_in - o, max_messages)
            mm, ents, n, base, cap = self.mm, self.ents, self.n, self.data, self.capacity
            slot = o % n
            first = min(k, n - slot)
            ent = array("q", mm[ents + slot * ENTRY:ents + (slot + first) * ENTRY])
            if k > first:
                ent.frombytes(mm[ents:ents + (k - first) * ENTRY])
            starts, metas = ent[0::2], ent[1::2]
            if views:
                self._claim_lease_word()
                src = self.arena.buf.toreadonly()
            else:
                src = mm
            raw = max(metas) <= LENGTH           # no pickled message among them
            piece = cap if views else max(1, cap // 4)
            j = 0
            while j < k:                         # pieces of about `piece` bytes
                m = bisect_right(starts, starts[j] + piece - 1, j + 1, k)
                out += [src[base + st % cap:base + st % cap + (meta & LENGTH)]
                        for st, meta in zip(starts[j:m], metas[j:m])]
                j = m
                if not views and j < k:          # consume what is copied: the senders refill it
                    c_out.value = o + j
                    self._fast_side_fence()
                    if self.c_ssleep.value:
                        self._wake(self.p_txseq)
            if views:
                self.lease = k                   # stay inside; consume at the next receive
                self.lease_word.value = self.x_rx     # "inside" now says the lease word ...
                c_busy.value = 0                 # ... so that word 0 is free for other calls
            else:
                c_out.value = o + k
        except BaseException as e:
            taken = self.c_out.value - o if o >= 0 and not views else 0    # read while still inside
            self._abandon(self.rx)
            if taken > 0:                        # part of a large batch was consumed: hand it over
                e.received = _unpickled(out[:taken], metas)
            raise
        if not views:
            c_busy.value = 0
            if self.c_rlock.value != self.keep_rx:
                self._exit(self.rx)
            if self.c_ssleep.value:
                self._wake(self.p_txseq)
        return out if raw else _unpickled(out, metas)

    def receive_view(self, timeout=None, nowait=False):
        """Zero-copy RECEIVE: a read-only memoryview of the message inside the
        ring (an unpickled object for a pickled message), valid until this
        thread's next receive or release().  Until then this thread keeps
        the receive lock: other receivers wait."""
        return self.receive_many(1, timeout, nowait, views=True)[0]

    def release(self):
        """Consume the messages held as views, and leave the receive side."""
        if self.lease:
            self._end_lease()
            self.c_busy.value = 0
            self._exit(self.rx)
            if self.c_ssleep.value:
                self._wake(self.p_txseq)

    def _end_lease(self, keep_word=False):
        """Consume the leased messages; the caller stays inside the receive lock
        (busy word 0 names it again).  keep_word: the caller takes views
        again at once, so it keeps its lease word (claimed and still saying
        "inside") rather than free it and claim it again."""
        k, self.lease = self.lease, 0
        self.c_busy.value = self.x_rx
        if not keep_word:
            self._free_lease_word()
        self.c_out.value = self.c_out.value + k
        self._fast_side_fence()                  # `out` before reading send_sleep
        if self.c_ssleep.value:
            self._wake(self.p_txseq)

    # --- the side locks (slow paths) --------------------------------------------------

    def _enter(self, side, timeout, nowait):
        """Take a side's lock after the fast check failed (busy = key is already
        stored).  Returns what is left of the timeout.  Blocks while another
        thread is inside; takes the word over from an idle or dead holder."""
        t0 = _now()
        p, key, tid = side.p, side.key, self.tid
        mine = self.mine
        died = contended = timed_out = False
        slept = 0            # WAITERS once we slept on the word: others may sleep there too, so we take
        stack = None         # it with WAITERS and our exit wakes the next (mutex.py's slow path does too)
        yields = _YIELDS
        fenced = None                            # the word our last membarrier checked the holder under
        try:
            while True:
                w = load_raw(p, SEQ_CST)
                h = w >> _SHIFT
                if h == 0:                                   # free (or its holder died: DIED)
                    if compare_exchange_p(p, c_arg(w), c_arg(mine | (w & _WAITERS) | slept)) == w:
                        died = bool(w & _DIED)
                        break
                    continue
                if h == tid + 1 and side is self.tx and self.mine_tx != mine:
                    raise DeadlockError(f"bounded buffer {self.id}: a SEND from inside send_into's fill on "
                                        "the same buffer would write over the message being made")
                if h == tid + 1:                             # kept by us, and someone asked: hand it on
                    if compare_exchange_p(p, c_arg(w), 0) == w and w & _WAITERS:
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
                if self.biased and w != fenced:             # (the same word: the holder was inside and
                    _membarrier()                            # will see WAITERS on its way out)
                    fenced = w                               # the holder's fence (module doc)
                    if key not in self._busy_of(holder):     # outside: take the word over
                        if compare_exchange_p(p, c_arg(w), c_arg(mine | _WAITERS)) == w:
                            break
                        continue
                alive = mutex.holder_alive(self._threads, holder) if timed_out \
                    else mutex._holder_state_live(self._threads, holder)
                if not alive:                                # died inside: the word is ours
                    if compare_exchange_p(p, c_arg(w), c_arg(mine | _WAITERS)) == w:
                        died = True
                        break
                    continue
                if nowait:
                    self._refusal(side)
                    raise WouldBlock(f"bounded buffer {self.id}: another thread is inside its {side.name} side")
                if yields:                                   # the holder is inside for a microsecond or
                    yields -= 1                              # so: let it run rather than sleep at once
                    os.sched_yield()
                    continue
                if stack is None:
                    stack = ExitStack()
                    stack.enter_context(self.ctx.waiting(side.wait_kind, self.id))
                slice_ = _SLICE
                if timeout is not None:
                    slice_ = min(slice_, timeout - (_now() - t0))
                    if slice_ <= 0:
                        raise TimeoutError(f"{side.name} on bounded buffer {self.id} timed out "
                                           f"(thread {holder} is inside)")
                t1 = _now()
                atomics.futex_wait_p(p, w & 0xFFFFFFFF, slice_)
                slept = _WAITERS
                timed_out = _now() - t1 >= slice_ * 0.9
                self._refusal(side)
        except BaseException:
            self.c_busy.value = 0
            raise
        finally:
            if stack is not None:
                stack.close()
        side.sleep_cell.value = 0                # a dead holder may have left it set
        if died:
            self._bump(side.died_off)
        if contended:
            self._go_eager(side)
        return None if timeout is None else max(0.0, timeout - (_now() - t0))

    def _exit(self, side):
        """Leave a side whose word is not simply ours (busy = 0 is stored):
        free it -- someone waits, or the side is eager."""
        p, mine = side.p, self.mine
        while True:
            w = load_raw(p, SEQ_CST)
            if w >> _SHIFT != self.tid + 1:
                break                                # taken over while we were outside
            if compare_exchange_p(p, c_arg(w), 0) == w:
                if w & _WAITERS:
                    atomics.futex_wake_p(p, 1)
                    self._go_eager(side)
                break
        if side is self.tx:
            if self.eager_tx:
                self.eager_tx -= 1
                if not self.eager_tx and self.biased:
                    self.keep_tx = mine
        elif self.eager_rx:
            self.eager_rx -= 1
            if not self.eager_rx and self.biased:
                self.keep_rx = mine

    def _go_eager(self, side):
        if side is self.tx:
            self.eager_tx, self.keep_tx = _EAGER_OPS, -1
        else:
            self.eager_rx, self.keep_rx = _EAGER_OPS, -1

    def _claim_busy_word(self):
        """One of this thread's busy words 1..7, to say "inside" between calls
        (a zero-copy lease) or while user code runs inside (send_into's fill),
        leaving word 0 to the calls made meanwhile.  (cell, index)."""
        ctx = self.ctx
        used = ctx.busy_words
        for j in range(1, BUSY_WORDS):
            if not used >> j & 1:
                ctx.busy_words = used | 1 << j
                return self.c_busy_words[j], j
        raise OutOfResources(f"thread {self.tid} is inside {BUSY_WORDS - 1} buffers already (zero-copy views "
                             "or send_into fills): release() some")

    def _free_busy_word(self, cell, j):
        cell.value = 0
        self.ctx.busy_words &= ~(1 << j)

    def _claim_lease_word(self):
        if self.lease_word is None:
            self.lease_word, self.lease_index = self._claim_busy_word()

    def _free_lease_word(self):
        if self.lease_word is not None:
            self._free_busy_word(self.lease_word, self.lease_index)
            self.lease_word = None

    def _abandon(self, side):
        """An exception inside a side: leave it and free the lock."""
        if side is self.rx:
            self.lease = 0
            self._free_lease_word()
        self.c_busy.value = 0
        p = side.p
        while True:
            w = load_raw(p, SEQ_CST)
            if w >> _SHIFT != self.tid + 1:
                return
            if compare_exchange_p(p, c_arg(w), 0) == w:
                if w & _WAITERS:
                    atomics.futex_wake_p(p, 1)
                return

    def release_locks(self):
        """Free any side lock this thread keeps (its own death hook, at exit)."""
        if self.ctx is None or self.mine < 0:
            return
        if self.lease:
            self._end_lease()
        self._abandon(self.tx)
        self._abandon(self.rx)

    def _busy_of(self, tid):
        """The keys of the locks thread tid is inside (its busy line)."""
        k = self.ctx.kernel
        return _busy_line.unpack_from(k.arena.buf, self.busy_addr - k.arena.addr
                                      + (tid % self.max_threads) * BUSY_STRIDE)

    def _fence(self):
        """The sleeping side's fence, between announcing itself in its sleep
        word and re-checking the other side's counter."""
        if self.biased:
            _membarrier()
        else:
            atomics.fence()

    def _fast_side_fence(self):
        """The publishing side's fence, between storing its counter and reading
        the other side's sleep word, where no lock CAS (a full barrier on
        x86) comes between them.  With the bias the sleeper's membarrier
        runs a full barrier on this CPU on its behalf (Dekker with
        asymmetric fences: module doc), so nothing is needed here."""
        if not self.biased:
            atomics.fence()

    # --- waiting for the other side ---------------------------------------------------

    def _refusal(self, side):
        """Raise if a waiter must give up (checked after every sleep slice)."""
        self.ctx.check_kernel()
        flags = self.c_flags.value
        if flags & DEALLOCATED:
            raise self._deallocated()
        if side is self.tx and flags & SEND_STOP:
            self._refuse_send()

    def _refuse_send(self):
        flags = self.c_flags.value | self.ends_check()
        if flags & DEALLOCATED:
            raise self._deallocated()
        if flags & READERS_GONE:
            raise ReaderClosed(f"bounded buffer {self.id}: every reader closed its end; nobody will receive this")
        raise StreamClosed(f"bounded buffer {self.id}: the stream was closed for writing; no more messages")

    def _deallocated(self):
        return BufferDeallocated(f"bounded buffer {self.id} was deallocated")

    def _may_spin(self):
        """Spin only where each side can have a core: more than one CPU, no
        thread queued for a vos processor, and no more threads running --
        vos threads, or any process of the host -- than there are CPUs
        (re-counted at most every 50 ms).  Otherwise a spinner would take
        the CPU that the thread it waits for needs."""
        if not _MULTICORE or self._processors.contended():
            return False
        now = _now()
        if now - self._spin_checked > 0.05:
            self._spin_checked = now
            running = sum(1 for _, _, _, st in self._threads.live_slots() if st == _RUNNING)
            self._spin_ok = max(running, _host_running()) <= _CPUS
        return self._spin_ok

    def _wait_space(self, i, start, size, timeout, nowait):
        """Sender inside the send side: wait until message i of `size` bytes
        starting at byte `start` fits.  Refreshes lim_in / lim_bytes."""
        c_out, mm, ents, n, cap = self.c_out, self.mm, self.ents, self.n, self.capacity

        def fits():
            o = c_out.value
            tail = _entry.unpack_from(mm, ents + o % n * ENTRY)[0] if o < i else start
            self.lim_in, self.lim_bytes = o + n, tail + cap
            self._observe(R_SPEAK, i - o)
            self._observe(R_SPEAKB, start - tail)
            return i < self.lim_in and start + size <= self.lim_bytes

        if fits():
            return
        if nowait:
            if self.ends_check() & READERS_GONE:
                self._refuse_send()
            raise WouldBlock(f"bounded buffer {self.id} is full")
        deadline = None if timeout is None else _now() + timeout
        if self._may_spin():
            budget, seen = self.spin_tx, c_out.value
            for _ in range(budget):
                if c_out.value != seen:
                    if fits():
                        self.spin_tx = min(_SPIN_MAX, budget * 2)
                        return
                    seen = c_out.value
            self.spin_tx = max(_SPIN_MIN, budget // 2)
        self._bump(R_SWAITS)
        c_seq, c_sleep = _cell(self.arena.addr + R_TXSEQ), self.c_ssleep
        with self.ctx.waiting(WAIT_SEND, self.id):
            try:
                while True:
                    seq = c_seq.value
                    c_sleep.value = 1
                    self._fence()                # announce, then re-check (Dekker; module doc)
                    if fits():
                        return
                    self._refusal(self.tx)
                    if self.ends_check() & READERS_GONE:
                        self._refuse_send()
                    atomics.futex_wait_p(self.p_txseq, seq & 0xFFFFFFFF, self._slice(deadline, "send"))
            finally:
                c_sleep.value = 0

    def _wait_message(self, o, timeout, nowait):
        """Receiver inside the receive side: wait until message o is published
        (sets seen_in).  EndOfStream once the writers closed and it is drained."""
        c_in = self.c_in
        n_in = c_in.value
        if n_in > o:
            self.seen_in = n_in
            self._observe(R_RPEAK, n_in - o)
            return
        if nowait or self.c_flags.value & (DEALLOCATED | WRITERS_GONE):
            if self._check_end(o):               # scans the ends table: slow paths only
                return
            if nowait:
                raise WouldBlock(f"bounded buffer {self.id} is empty")
        deadline = None if timeout is None else _now() + timeout
        if self._may_spin():
            budget = self.spin_rx
            for _ in range(budget):
                if c_in.value > o:
                    self.spin_rx = min(_SPIN_MAX, budget * 2)
                    self.seen_in = c_in.value
                    return
            self.spin_rx = max(_SPIN_MIN, budget // 2)
        self._bump(R_RWAITS)
        c_seq, c_sleep = _cell(self.arena.addr + R_RXSEQ), self.c_rsleep
        with self.ctx.waiting(WAIT_RECEIVE, self.id):
            try:
                while True:
                    seq = c_seq.value
                    c_sleep.value = 1
                    self._fence()
                    n_in = c_in.value
                    if n_in > o:
                        self.seen_in = n_in
                        return
                    if self._check_end(o):
                        return
                    self.ctx.check_kernel()
                    atomics.futex_wait_p(self.p_rxseq, seq & 0xFFFFFFFF, self._slice(deadline, "receive"))
            finally:
                c_sleep.value = 0

    def _check_end(self, o):
        """Raise BufferDeallocated, or EndOfStream when the writers are gone and
        message o was never published.  True when message o has come after
        all (sets seen_in)."""
        flags = self.c_flags.value
        if flags & DEALLOCATED:
            raise self._deallocated()
        if not flags & WRITERS_GONE:
            flags |= self.ends_check() & WRITERS_GONE
        n_in = self.c_in.value                   # a last message may have come before the close
        if n_in > o:
            self.seen_in = n_in
            return True
        if flags & WRITERS_GONE:
            raise EndOfStream(f"bounded buffer {self.id}: every writer closed the stream and it is drained")

    def _slice(self, deadline, what):
        if deadline is None:
            return _SLICE
        left = deadline - _now()
        if left <= 0:
            raise TimeoutError(f"{what} on bounded buffer {self.id} timed out")
        return min(_SLICE, left)

    def _wake(self, p_seq, n=1):
        atomics.fetch_add_raw(p_seq, 1, SEQ_CST)
        atomics.futex_wake_p(p_seq, n)

    def _observe(self, off, value):
        if value > _word.unpack_from(self.mm, off)[0]:
            _word.pack_into(self.mm, off, value)   # statistics; guarded by this side's lock

    def _bump(self, off):
        _word.pack_into(self.mm, off, _word.unpack_from(self.mm, off)[0] + 1)

    # --- close, deallocate, death, statistics (any process, no binding needed) ---------

    def set_flags(self, bits):
        """Set flag bits (DEALLOCATED, WRITERS_GONE, READERS_GONE); wake everybody."""
        atomics.fetch_or(self.arena.addr + R_FLAGS, bits)
        self.wake_all()

    def wake_all(self):
        a = self.arena.addr
        for off in (R_TXSEQ, R_RXSEQ):
            atomics.fetch_add(a + off, 1)
            atomics.futex_wake(a + off, atomics.ALL)
        for off in (R_SLOCK, R_RLOCK):
            atomics.futex_wake(a + off, atomics.ALL)

    def mark_owner_died(self, tid):
        """Death hook (burier): a lock dead thread tid holds becomes DIED; waiters wake."""
        a = self.arena.addr
        return [mutex.mark_owner_died(a + off, tid) for off in (R_SLOCK, R_RLOCK)]

    def counters(self):
        """A racy snapshot of the counters (statistics, monitor)."""
        w = lambda off: _word.unpack_from(self.mm, off)[0]  # noqa: E731
        i, o = w(R_IN), w(R_OUT)
        head = tail = 0
        if i:
            head = self._head(i)
            tail = _entry.unpack_from(self.mm, self.ents + o % self.n * ENTRY)[0] if o < i else head
        return dict(
            sent=i, received=o, bytes_sent=head, fill=i - o, fill_bytes=head - tail,
            peak_fill=max(w(R_SPEAK), w(R_RPEAK), i - o), peak_bytes=max(w(R_SPEAKB), head - tail),
            send_waits=w(R_SWAITS), receive_waits=w(R_RWAITS),
            send_takeovers=w(R_SDIED), receive_takeovers=w(R_RDIED), flags=w(R_FLAGS),
            send_holder=mutex.holder_of(w(R_SLOCK)), receive_holder=mutex.holder_of(w(R_RLOCK)))

    def check_invariants(self):
        """Structural invariants of a quiet ring (tests).  AssertionError if broken."""
        w = lambda off: _word.unpack_from(self.mm, off)[0]  # noqa: E731
        i, o, n, cap = w(R_IN), w(R_OUT), self.n, self.capacity
        assert 0 <= o <= i, f"buffer {self.id}: out {o} > in {i}"
        assert i - o <= n, f"buffer {self.id}: {i - o} messages in a ring of {n}"
        first = prev_end = None
        for k in range(o, i):
            s, meta = _entry.unpack_from(self.mm, self.ents + k % n * ENTRY)
            size = meta & LENGTH
            assert meta >> KIND_SHIFT in (RAW, PICKLED), f"message {k} has kind {meta >> KIND_SHIFT}"
            assert 0 <= size <= cap, f"message {k} has length {size}"
            assert prev_end is None or s == prev_end, f"message {k} starts at {s}, not at {prev_end}"
            first = s if first is None else first
            prev_end = s + size
        if first is not None:
            assert prev_end - first <= cap, f"buffer {self.id}: {prev_end - first} bytes in a ring of {cap}"
        assert w(R_FLAGS) & ~(DEALLOCATED | WRITERS_GONE | READERS_GONE) == 0, "unknown flag bits"
        for off in (R_SSLEEP, R_RSLEEP):
            assert w(off) in (0, 1), f"sleep word {w(off)}"
