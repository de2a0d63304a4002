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

The side locks.  Each side is serialised by a SideLock (side_lock.py):
mutex.py's word, kept by its holder between calls (biased), with the
holder's busy line saying whether it is inside; a thread killed anywhere,
busy or idle, is passed over.  This file only enters and leaves them.

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
     88       8  send_peak    largest fill (messages) a sender measured just after a
                          publish (_peak) or while it waited; send-lock holder
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

Blocking calls and their twins.  send and receive block (on the side lock,
then for space or a message); send_nowait and receive_nowait do the same
steps but raise WouldBlock where the others would wait.  Both are built from
the same steps (enter, check, write or read, publish, leave), and the
controlled scheduler (sched/) blocks threads through the twins.

Lock order: the runtime never waits for a side lock while it holds another.
Two things keep a side lock while the thread goes on: a zero-copy lease
keeps the receive lock between calls, and send_into runs the caller's fill
inside the send lock, where it may call other buffers (a wait there is the
caller's, as with any lock held across a call).  Both say "inside" in a busy
word of their own (1..7), so that word 0 stays free for the calls made
meanwhile.  A fill that SENDs on its own buffer is refused (DeadlockError).
"""

import os
import pickle
import struct
import time
from array import array
from bisect import bisect_left, bisect_right
from itertools import accumulate

from . import atomics
from .atomics import SEQ_CST
from .errors import (BufferDeallocated, EndOfStream, MessageTooLarge, OutOfResources, ReaderClosed,
                     StreamClosed, WouldBlock)
from .side_lock import SideLock, cell, membarrier, membarrier_register
from .threads import RUNNING as _RUNNING, WAIT_RECEIVE, WAIT_SEND

MAGIC = b"VOSRING1"
R_MAGIC, R_ID, R_N, R_CAP, R_FLAGS = 0, 8, 16, 24, 32
R_SLOCK, R_IN, R_SSLEEP, R_SPEAK, R_SPEAKB, R_SWAITS, R_SDIED = 64, 72, 80, 88, 96, 104, 112
R_RLOCK, R_OUT, R_RSLEEP, R_RPEAK, R_RWAITS, R_RDIED = 128, 136, 144, 152, 160, 168
R_TXSEQ, R_RXSEQ = 192, 256
R_ENTRIES = 320
ENTRY = 16

DEALLOCATED, WRITERS_GONE, READERS_GONE = 1, 2, 4
SEND_STOP = DEALLOCATED | READERS_GONE | WRITERS_GONE

RAW, PICKLED = 0, 1
KIND_SHIFT = 56
LENGTH = (1 << KIND_SHIFT) - 1

_entry = struct.Struct("qq")     # native: one aligned load/store per word
_word = struct.Struct("q")
_dumps, _loads = pickle.dumps, pickle.loads
_BYTES = {bytes}                 # message types send_many passes on as they are

_SLICE = 0.25                    # longest single sleep: deallocation, dead peers, Ctrl-C noticed by then
_SPIN_MIN, _SPIN_START, _SPIN_MAX = 32, 512, 16384
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_MULTICORE = _CPUS > 1
_now = time.monotonic


def _host_running():
    """Processes runnable on the host right now (Linux /proc/loadavg), or 0."""
    try:
        with open("/proc/loadavg", "rb") as f:
            return int(f.read().split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return 0


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
    return _dumps(message, 5), PICKLED


def _unpickled(messages, metas):
    """messages with each pickled one (by its entry's meta) unpickled, in place."""
    for idx, meta in enumerate(metas[:len(messages)]):
        if meta >> KIND_SHIFT:
            messages[idx] = _loads(messages[idx])
    return messages


class Ring:
    """One process's view of one buffer's side arena.

    Built once per process per buffer (bounded_buffer.Buffers caches it) and
    bound to the calling thread by `bind`; every method runs in the calling
    thread's process.  Blocking methods record the wait in the thread entry
    (WAIT_SEND / WAIT_RECEIVE on the buffer id) around every sleep."""

    def __init__(self, arena, ident, n, capacity, ends_check, biased):
        buf = arena.buf
        if bytes(buf[R_MAGIC:R_MAGIC + 8]) != MAGIC or _word.unpack_from(buf, R_ID)[0] != ident:
            raise BufferDeallocated(f"bounded buffer {ident} is gone (its segment was reused)")
        self.arena = arena
        self.id = ident
        self.n = n
        self.capacity = capacity
        self.ends_check = ends_check      # () -> WRITERS_GONE | READERS_GONE as the ends table says
        self.biased = biased
        self.mm = buf.obj                 # the mmap: slicing it gives bytes in one step
        a = arena.addr
        self.ents = R_ENTRIES
        self.data = data_offset(n)
        self.c_flags = cell(a + R_FLAGS)
        self.c_in, self.c_out = cell(a + R_IN), cell(a + R_OUT)
        self.c_ssleep, self.c_rsleep = cell(a + R_SSLEEP), cell(a + R_RSLEEP)
        self.p_txseq, self.p_rxseq = atomics.pointer(a + R_TXSEQ), atomics.pointer(a + R_RXSEQ)
        owner = f"bounded buffer {ident}"
        self.tx = SideLock(a + R_SLOCK, 2 * ident + 1, WAIT_SEND, ident, "send", owner)
        self.rx = SideLock(a + R_RLOCK, 2 * ident + 2, WAIT_RECEIVE, ident, "receive", owner)
        self.ctx = None
        # Process-private knowledge; the counters only grow, so these stay safe bounds.
        self.tx_i, self.tx_head = -1, 0       # head (end of message tx_i - 1), valid while in == tx_i
        self.tx_peak = 0                      # a lower bound of send_peak (_peak)
        self.lim_in = 0                       # a sender may publish message i < lim_in ...
        self.lim_bytes = 0                    # ... ending at or before byte lim_bytes, without reading `out`
        self.seen_in = 0                      # a receiver knows messages < seen_in are published
        self.lease = 0                        # messages held as zero-copy views (receive lock kept)
        self.lease_j = None                   # the busy word that says "inside" while they are out
        self.spin_tx = self.spin_rx = _SPIN_START
        self._spin_checked, self._spin_ok = -1.0, True

    # --- binding to the calling thread -------------------------------------------

    def bind(self, ctx, line, find_line):
        """Act for ctx's thread from now on (first use in a process, or after
        fork).  line: the thread's BusyLine; find_line(tid): another's keys."""
        if self.biased and not membarrier_register():
            raise OutOfResources("this process cannot register for membarrier, which biased buffer locks "
                                 "need; boot the Kernel with buffer_bias=False")
        self.ctx = ctx
        threads = ctx.kernel.threads
        self.tx.bind(ctx, line, threads, find_line, self.biased)
        self.rx.bind(ctx, line, threads, find_line, self.biased)
        self.lease = 0                        # a forked child holds none of its parent's leases
        self.lease_j = None
        self._threads = threads
        self._processors = ctx.kernel.processors
        self._check_tx = self._refusal_tx
        self._check_rx = self._refusal_rx

    # --- SEND ----------------------------------------------------------------------

    def send(self, message, timeout=None):
        """Append one message; blocks while another sender is inside or the
        buffer is full.  Raises MessageTooLarge, BufferDeallocated,
        ReaderClosed (every reader closed), StreamClosed (closed for
        writing), TimeoutError."""
        if type(message) is bytes:
            data = message
            meta = size = len(data)
        else:
            data, kind = encode(message)
            size = len(data)
            meta = size | kind << KIND_SHIFT
        if size > self.capacity:
            raise self._too_large(size)
        tx = self.tx
        timeout = tx.enter(timeout, self._check_tx)
        try:
            if tx.died:
                self._took_over(tx)
            if self.c_flags.value & SEND_STOP:
                self._refuse_send()
            i = self.c_in.value
            start = self.tx_head if i == self.tx_i else self._head(i)
            if i >= self.lim_in or start + size > self.lim_bytes:
                self._wait_space(i, start, size, timeout)
            self._publish(i, start, data, meta, size)
        except BaseException:
            tx.abandon()
            raise
        tx.leave()
        if self.c_rsleep.value:
            self._wake(self.p_rxseq)

    def send_nowait(self, message):
        """SEND that never waits: WouldBlock when another sender is inside or
        the buffer is full.  Raises as send."""
        data, kind = encode(message)
        size = len(data)
        if size > self.capacity:
            raise self._too_large(size)
        tx = self.tx
        tx.enter_nowait(self._check_tx)
        try:
            if tx.died:
                self._took_over(tx)
            if self.c_flags.value & SEND_STOP:
                self._refuse_send()
            i = self.c_in.value
            start = self.tx_head if i == self.tx_i else self._head(i)
            if (i >= self.lim_in or start + size > self.lim_bytes) and not self._fits(i, start, size):
                if self.ends_check() & READERS_GONE:
                    self._refuse_send()
                raise WouldBlock(f"bounded buffer {self.id} is full")
            self._publish(i, start, data, size | kind << KIND_SHIFT, size)
        except BaseException:
            tx.abandon()
            raise
        tx.leave()
        if self.c_rsleep.value:
            self._wake(self.p_rxseq)

    def _publish(self, i, start, data, meta, size):
        """(send side) Write message i at byte `start`, then publish it."""
        mm = self.mm
        at = self.data + start % self.capacity
        mm[at:at + size] = data
        _entry.pack_into(mm, self.ents + i % self.n * ENTRY, start, meta)
        self.c_in.value = i + 1                  # publish: the one store that makes it visible
        self.tx_i, self.tx_head = i + 1, start + size
        if i + 1 - self.c_out.value > self.tx_peak:   # the fill now: a new peak? (`out` shares its
            self._peak(i + 1)                          # line with recv_sleep, which send reads anyway)

    def send_into(self, size, fill, timeout=None):
        """SEND a raw message written in place, with no copy: wait until `size`
        bytes fit (at most the capacity), call fill(view) with a writable
        memoryview of those bytes inside the ring, and publish the first n
        bytes as one message, where n = fill(view) (0 <= n <= size; 0
        publishes nothing).  Returns n.  The view is valid only during fill,
        which runs inside the send side: other senders wait meanwhile.  fill
        may use other buffers, but a SEND on this one would write over the
        message being made: DeadlockError.  If fill raises, nothing was
        published (write, then publish).  Raises as send."""
        if type(size) is not int or size < 1:
            raise ValueError(f"send_into needs a size of at least 1 byte, not {size!r}")
        size = min(size, self.capacity)
        i, start, timeout = self._enter_send(timeout)
        tx = self.tx
        try:
            if i >= self.lim_in or start + size > self.lim_bytes:
                self._wait_space(i, start, size, timeout)
            at = self.data + start % self.capacity
            j = tx.step_out()                    # inside in a word of its own while fill runs
            try:
                with self.arena.buf[at:at + size] as view:
                    n = fill(view)
            finally:
                tx.step_in(j)
            if type(n) is not int or not 0 <= n <= size:
                raise ValueError(f"send_into: fill returned {n!r}, not a byte count from 0 to {size}")
            if n:
                _entry.pack_into(self.mm, self.ents + i % self.n * ENTRY, start, n)
                self.c_in.value = i + 1          # publish
                self.tx_i, self.tx_head = i + 1, start + n
                self._peak(i + 1)
        except BaseException:
            tx.abandon()
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
        i, start, timeout = self._enter_send(timeout)
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
                    self._peak(i)
                    sent += k
                    if sent < total:             # the receiver must not sleep while we wait for space
                        self._fast_side_fence()
                        if self.c_rsleep.value:
                            self._wake(self.p_rxseq)
                if sent < total:
                    self._wait_space(i, start, sizes[sent], timeout)
        except BaseException as e:
            self.tx.abandon()
            if isinstance(e, Exception):
                e.sent = sent
            raise
        self._leave_send(sent)
        return sent

    def _enter_send(self, timeout):
        """The way into the send side for send_many and send_into (send has
        the same steps inline: it is the hot path): lock, the stop flag.
        Returns (i, start, timeout left): the next message's number and byte
        counter.  On an exception the side is left as it was."""
        tx = self.tx
        timeout = tx.enter(timeout, self._check_tx)
        try:
            if tx.died:
                self._took_over(tx)
            if self.c_flags.value & SEND_STOP:
                self._refuse_send()
            i = self.c_in.value
            return i, (self.tx_head if i == self.tx_i else self._head(i)), timeout
        except BaseException:
            tx.abandon()
            raise

    def _leave_send(self, published):
        """The way out of the send side: leave the lock, and wake a sleeping
        receiver when something was published."""
        self.tx.leave()
        if published and self.c_rsleep.value:
            self._wake(self.p_rxseq)

    def _took_over(self, lock):
        """The lock was taken over from a dead holder: count it, and clear the
        side's sleep word, which the dead holder may have left set."""
        if lock is self.tx:
            self._bump(R_SDIED)
            self.c_ssleep.value = 0
        else:
            self._bump(R_RDIED)
            self.c_rsleep.value = 0

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

    def receive(self, timeout=None):
        """Remove and return the oldest message (bytes for bytes-like, else the
        unpickled object); blocks while another receiver is inside or the
        buffer is empty.  Raises BufferDeallocated, EndOfStream, TimeoutError."""
        rx = self.rx
        if self.lease:
            self._end_lease()                    # we are still inside, holding the lock
        else:
            timeout = rx.enter(timeout, self._check_rx)
        try:
            if rx.died:
                self._took_over(rx)
            if self.c_flags.value & DEALLOCATED:
                raise self._deallocated()
            o = self.c_out.value
            if o >= self.seen_in:
                self._wait_message(o, timeout)
            data, meta = self._take(o)
        except BaseException:
            self._abandon_rx()
            raise
        rx.leave()
        if self.c_ssleep.value:
            self._wake(self.p_txseq)
        if meta >> KIND_SHIFT:
            return _loads(data)
        return data

    def receive_nowait(self):
        """RECEIVE that never waits: WouldBlock when another receiver is inside
        or the buffer is empty.  Raises as receive."""
        rx = self.rx
        if self.lease:
            self._end_lease()
        else:
            rx.enter_nowait(self._check_rx)
        try:
            if rx.died:
                self._took_over(rx)
            if self.c_flags.value & DEALLOCATED:
                raise self._deallocated()
            o = self.c_out.value
            if o >= self.seen_in and not self._message_ready(o) and not self._check_end(o):
                raise WouldBlock(f"bounded buffer {self.id} is empty")
            data, meta = self._take(o)
        except BaseException:
            self._abandon_rx()
            raise
        rx.leave()
        if self.c_ssleep.value:
            self._wake(self.p_txseq)
        if meta >> KIND_SHIFT:
            return _loads(data)
        return data

    def _take(self, o):
        """(receive side) Copy message o out, then consume it."""
        s, meta = _entry.unpack_from(self.mm, self.ents + o % self.n * ENTRY)
        at = self.data + s % self.capacity
        data = self.mm[at:at + (meta & LENGTH)]
        self.c_out.value = o + 1                 # consume: after the copy, never before
        return data, meta

    def receive_many(self, max_messages=None, timeout=None, views=False):
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
        rx = self.rx
        if self.lease:
            self._end_lease(keep_word=views)     # views again: the held word goes on saying "inside"
        else:
            timeout = rx.enter(timeout, self._check_rx)
        try:
            if rx.died:
                self._took_over(rx)
            if self.c_flags.value & DEALLOCATED:
                raise self._deallocated()
            c_out = self.c_out
            o = c_out.value
            if o >= self.seen_in:
                self._wait_message(o, timeout)
            k = self.seen_in - o if max_messages is None else min(self.seen_in - o, max_messages)
            mm, ents, n, base, cap = self.mm, self.ents, self.n, self.data, self.capacity
            slot = o % n
            first = min(k, n - slot)
            ent = array("q", mm[ents + slot * ENTRY:ents + (slot + first) * ENTRY])
            if k > first:
                ent.frombytes(mm[ents:ents + (k - first) * ENTRY])
            starts, metas = ent[0::2], ent[1::2]
            src = self.arena.buf.toreadonly() if views else mm
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
                self.lease_j = rx.hold(self.lease_j)    # stay inside; consume at the next receive
                self.lease = k
            else:
                c_out.value = o + k
        except BaseException as e:
            taken = self.c_out.value - o if o >= 0 and not views else 0    # read while still inside
            self._abandon_rx()
            if taken > 0:                        # part of a large batch was consumed: hand it over
                e.received = _unpickled(out[:taken], metas)
            raise
        if not views:
            rx.leave()
            if self.c_ssleep.value:
                self._wake(self.p_txseq)
        return out if raw else _unpickled(out, metas)

    def receive_view(self, timeout=None):
        """Zero-copy RECEIVE: a read-only memoryview of the message inside the
        ring (an unpickled object for a pickled message), valid until this
        thread's next receive or release().  Until then this thread keeps
        the receive lock: other receivers wait."""
        return self.receive_many(1, timeout, views=True)[0]

    def release(self):
        """Consume the messages held as views, and leave the receive side."""
        if self.lease:
            self._end_lease()
            self.rx.leave()
            if self.c_ssleep.value:
                self._wake(self.p_txseq)

    def _end_lease(self, keep_word=False):
        """Consume the leased messages; the caller stays inside the receive lock
        (busy word 0 names it again).  keep_word: the caller takes views
        again at once, so it keeps its held word (still saying "inside")
        rather than free it and claim it again."""
        k, self.lease = self.lease, 0
        self.rx.resume(self.lease_j, keep_word)
        if not keep_word:
            self.lease_j = None
        self.c_out.value = self.c_out.value + k
        self._fast_side_fence()                  # `out` before reading send_sleep
        if self.c_ssleep.value:
            self._wake(self.p_txseq)

    def _abandon_rx(self):
        """An exception inside the receive side: drop any lease, free the lock."""
        self.lease = 0
        if self.lease_j is not None:
            self.rx.line.free(self.lease_j)
            self.lease_j = None
        self.rx.abandon()

    def release_locks(self):
        """Free any side lock this thread keeps (its own death hook, at exit)."""
        if self.ctx is None:
            return
        if self.lease:
            self._end_lease()
        self.tx.abandon()
        self._abandon_rx()

    # --- fences --------------------------------------------------------------------

    def _fence(self):
        """The sleeping side's fence, between announcing itself in its sleep
        word and re-checking the other side's counter."""
        if self.biased:
            membarrier()
        else:
            atomics.fence()

    def _fast_side_fence(self):
        """The publishing side's fence, between storing its counter and reading
        the other side's sleep word, where no lock CAS (a full barrier on
        x86) comes between them.  With the bias the sleeper's membarrier
        runs a full barrier on this CPU on its behalf (Dekker with
        asymmetric fences), so nothing is needed here."""
        if not self.biased:
            atomics.fence()

    # --- waiting for the other side ---------------------------------------------------

    def _refusal_tx(self):
        """Raise if a sender must give up (checked after every sleep slice)."""
        self.ctx.check_kernel()
        flags = self.c_flags.value
        if flags & SEND_STOP:
            self._refuse_send()

    def _refusal_rx(self):
        """Raise if a receiver must give up (checked after every sleep slice)."""
        self.ctx.check_kernel()
        if self.c_flags.value & DEALLOCATED:
            raise self._deallocated()

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

    def _fits(self, i, start, size):
        """(send side) Does message i of `size` bytes starting at byte `start`
        fit now?  Refreshes lim_in / lim_bytes from `out`."""
        o = self.c_out.value
        tail = _entry.unpack_from(self.mm, self.ents + o % self.n * ENTRY)[0] if o < i else start
        self.lim_in, self.lim_bytes = o + self.n, tail + self.capacity
        self._observe(R_SPEAK, i - o)
        self._observe(R_SPEAKB, start - tail)
        return i < self.lim_in and start + size <= self.lim_bytes

    def _wait_space(self, i, start, size, timeout):
        """Sender inside the send side: wait until message i of `size` bytes
        starting at byte `start` fits."""
        if self._fits(i, start, size):
            return
        c_out = self.c_out
        deadline = None if timeout is None else _now() + timeout
        if self._may_spin():
            budget, seen = self.spin_tx, c_out.value
            for _ in range(budget):
                if c_out.value != seen:
                    if self._fits(i, start, size):
                        self.spin_tx = min(_SPIN_MAX, budget * 2)
                        return
                    seen = c_out.value
            self.spin_tx = max(_SPIN_MIN, budget // 2)
        self._bump(R_SWAITS)
        c_seq, c_sleep = cell(self.arena.addr + R_TXSEQ), self.c_ssleep
        with self.ctx.waiting(WAIT_SEND, self.id):
            try:
                while True:
                    seq = c_seq.value
                    c_sleep.value = 1
                    self._fence()                # announce, then re-check (Dekker; module doc)
                    if self._fits(i, start, size):
                        return
                    self._refusal_tx()
                    if self.ends_check() & READERS_GONE:
                        self._refuse_send()
                    atomics.futex_wait_p(self.p_txseq, seq & 0xFFFFFFFF, self._slice(deadline, "send"))
            finally:
                c_sleep.value = 0

    def _message_ready(self, o):
        """(receive side) Is message o published?  Sets seen_in.  Raises
        BufferDeallocated, or EndOfStream once the writers are gone and it
        is drained (read from the flags only: no scan of the ends table)."""
        n_in = self.c_in.value
        if n_in > o:
            self.seen_in = n_in
            self._observe(R_RPEAK, n_in - o)
            return True
        if self.c_flags.value & (DEALLOCATED | WRITERS_GONE):
            return self._check_end(o)
        return False

    def _wait_message(self, o, timeout):
        """Receiver inside the receive side: wait until message o is published
        (sets seen_in).  EndOfStream once the writers closed and it is drained."""
        if self._message_ready(o):
            return
        c_in = self.c_in
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
        c_seq, c_sleep = cell(self.arena.addr + R_RXSEQ), self.c_rsleep
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
        return False

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

    def _peak(self, i):
        """Sender, inside the send side, just after publishing up to message i:
        record the fill if it is the largest yet.  `in` is i until this
        thread publishes again and `out` is read now, so i - out is the
        exact fill at this instant; the fill is largest just after a
        publish, so the recorded peak misses the true one only when a
        receive lands between a publish and this read (a lower bound,
        never below a fill anyone reads after it)."""
        fill = i - self.c_out.value
        if fill > self.tx_peak:
            self._observe(R_SPEAK, fill)
            self.tx_peak = _word.unpack_from(self.mm, R_SPEAK)[0]

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
        self.tx.wake_all()
        self.rx.wake_all()

    def mark_owner_died(self, tid):
        """Death hook (burier): a lock dead thread tid holds becomes DIED; waiters wake."""
        return [self.tx.mark_owner_died(tid), self.rx.mark_owner_died(tid)]

    def counters(self):
        """A racy snapshot of the counters (statistics, monitor)."""
        w = lambda off: _word.unpack_from(self.mm, off)[0]  # noqa: E731
        i, o = w(R_IN), w(R_OUT)   # `in` first: i - o is at most the fill at either read, so never above
        head = tail = 0            # the peak, but negative if messages came and went in between
        if i:
            head = self._head(i)
            tail = _entry.unpack_from(self.mm, self.ents + o % self.n * ENTRY)[0] if o < i else head
        return dict(
            sent=i, received=o, bytes_sent=head, fill=max(0, i - o), fill_bytes=max(0, head - tail),
            peak_fill=max(w(R_SPEAK), w(R_RPEAK), i - o), peak_bytes=max(w(R_SPEAKB), head - tail),
            send_waits=w(R_SWAITS), receive_waits=w(R_RWAITS),
            send_takeovers=w(R_SDIED), receive_takeovers=w(R_RDIED), flags=w(R_FLAGS),
            send_holder=self.tx.holder(), receive_holder=self.rx.holder())

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
