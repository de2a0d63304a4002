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

The side arena's byte layout is drawn in buffer_layout.py; bulk and
zero-copy transfers are in buffer_bulk.py, and the ring as seen from
outside (the controlled gate, statistics, invariants) in buffer_view.py.

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
import time

from . import atomics
from .atomics import SEQ_CST
from .buffer_bulk import BulkTransfers
from .buffer_view import RingView
from .buffer_layout import (DEALLOCATED, ENTRY, KIND_SHIFT, LENGTH, MAGIC, R_FLAGS, R_ENTRIES, R_ID, R_IN,
                            R_MAGIC, R_OUT, R_RDIED, R_RLOCK, R_RPEAK, R_RSLEEP, R_RWAITS, R_RXSEQ, R_SDIED,
                            R_SLOCK, R_SPEAK, R_SPEAKB, R_SSLEEP, R_SWAITS, R_TXSEQ, READERS_GONE,
                            SEND_STOP, WRITERS_GONE, data_offset, encode, entry as _entry, word as _word)
from .errors import (BufferDeallocated, EndOfStream, MessageTooLarge, OutOfResources, ReaderClosed,
                     StreamClosed, WouldBlock)
from .side_lock import SideLock, cell, membarrier, membarrier_register
from .threads import RUNNING as _RUNNING, WAIT_RECEIVE, WAIT_SEND

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


class Ring(BulkTransfers, RingView):
    """One process's view of one buffer's side arena.

    Built once per process per buffer (buffer_table.Buffers caches it) and
    bound to the calling thread by `bind`; every method runs in the calling
    thread's process.  Blocking methods record the wait in the thread entry
    (WAIT_SEND / WAIT_RECEIVE on the buffer id) around every sleep."""

    __slots__ = ("arena", "id", "n", "capacity", "ends_check", "biased", "mm", "ents", "data", "c_flags", "c_in",
                 "c_out", "c_ssleep", "c_rsleep", "p_txseq", "p_rxseq", "tx", "rx", "ctx", "tx_i", "tx_head",
                 "tx_peak", "lim_in", "lim_bytes", "seen_in", "lease", "lease_j", "spin_tx", "spin_rx", "_spin_checked",
                 "_spin_ok", "c_busy", "x_tx", "x_rx", "c_slock", "c_rlock", "_threads", "_processors",
                 "_check_tx", "_check_rx", "slot")

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
        self.c_busy = line.now                # the fast paths of send and receive inline the
        self.x_tx, self.x_rx = self.tx.key, self.rx.key   # locks' enter and leave: their cells
        self.c_slock, self.c_rlock = self.tx.word, self.rx.word
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
        tx, c_busy = self.tx, self.c_busy
        c_busy.value = self.x_tx                 # tx.enter(), inline (SideLock)
        if self.c_slock.value != tx.fast:
            timeout = tx.enter_slow(timeout, self._check_tx)
            if tx.died:
                self._took_over(tx)
        try:
            if self.c_flags.value & SEND_STOP:
                self._refuse_send()
            c_in = self.c_in
            i = c_in.value
            start = self.tx_head if i == self.tx_i else self._head(i)
            if i >= self.lim_in or start + size > self.lim_bytes:
                self._wait_space(i, start, size, timeout)
            mm = self.mm
            at = self.data + start % self.capacity
            mm[at:at + size] = data
            _entry.pack_into(mm, self.ents + i % self.n * ENTRY, start, meta)
            c_in.value = i + 1                   # publish: the one store that makes it visible
            self.tx_i, self.tx_head = i + 1, start + size
            if i + 1 - self.c_out.value > self.tx_peak:   # the fill now: a new peak? (`out` shares its
                self._peak(i + 1)                          # line with recv_sleep, read below anyway)
        except BaseException:
            tx.abandon()
            raise
        c_busy.value = 0                         # tx.leave(), inline
        if self.c_slock.value != tx.keep:
            tx.leave_slow()
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
        rx, c_busy = self.rx, self.c_busy
        if self.lease:
            self._end_lease()                    # we are still inside, holding the lock
        else:
            c_busy.value = self.x_rx             # rx.enter(), inline (SideLock)
            if self.c_rlock.value != rx.fast:
                timeout = rx.enter_slow(timeout, self._check_rx)
                if rx.died:
                    self._took_over(rx)
        try:
            if self.c_flags.value & DEALLOCATED:
                raise self._deallocated()
            c_out = self.c_out
            o = c_out.value
            if o >= self.seen_in:
                self._wait_message(o, timeout)
            s, meta = _entry.unpack_from(self.mm, self.ents + o % self.n * ENTRY)
            at = self.data + s % self.capacity
            data = self.mm[at:at + (meta & LENGTH)]
            c_out.value = o + 1                  # consume: after the copy, never before
        except BaseException:
            self._abandon_rx()
            raise
        c_busy.value = 0                         # rx.leave(), inline
        if self.c_rlock.value != rx.keep:
            rx.leave_slow()
        if self.c_ssleep.value:
            self._wake(self.p_txseq)
        if meta >> KIND_SHIFT:
            return pickle.loads(data)
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
            return pickle.loads(data)
        return data

    def _take(self, o):
        """(receive side) Copy message o out, then consume it."""
        s, meta = _entry.unpack_from(self.mm, self.ents + o % self.n * ENTRY)
        at = self.data + s % self.capacity
        data = self.mm[at:at + (meta & LENGTH)]
        self.c_out.value = o + 1                 # consume: after the copy, never before
        return data, meta

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
