"""Bounded buffers (有界缓冲区): ALLOCATE_BOUNDED_BUFFER, SEND, RECEIVE, DEALLOCATE.

The lecture's virtual link between modules.  This module is the interface:
the buffer table in the main arena, the handles a program holds, the ends of
a stream, and the textbook calls.  The ring itself -- how a message is
written, published, received and consumed in shared memory, and why a kill
at any point is harmless -- is in buffer_ring.py.

Where things live.  Each buffer's ring is a side arena of its own
(`<kernel arena>_b<id>`, any size), created by whichever process allocates
the buffer.  The table below, in the main arena, records every buffer that
exists, so that the kernel process can unlink every side arena at shutdown
(including those created inside VPs) and any process can find a buffer by
its handle.  A process maps a ring the first time it uses it (by name) and
keeps the mapping in a per-process cache, rebuilt lazily in a spawned VP.

Handles.  `BoundedBuffer(slot, id)` is a small picklable value: the table
slot and the buffer id, which is kernel-wide and never reused, so a stale
handle fails with BufferDeallocated instead of naming a newer buffer.  Its
methods are the Pythonic layer (`send`, `receive`, `send_nowait`, ...,
`close`, `statistics`); SEND and RECEIVE are those methods, nothing more.

Streams (pipes).  A stream has writer and reader *ends*:

    w, r = buf.writer(), buf.reader()     # pass w to one thread, r to another
    w.write(data); w.close()              # the reader drains, then gets end of stream
    r.read(65536) -> bytes, b"" at end    # or: for message in r: ...
    r.close()                             # writers get ReaderClosed (a BrokenPipeError)

The outcomes, in trio's split between "you closed it" and "the other side
broke it":

    receiving, every writer end closed and drained   EndOfStream (read() -> b"")
    sending, every reader end closed                 ReaderClosed (BrokenPipeError)
    sending on a stream closed for writing           StreamClosed (ValueError)
    anything, after DEALLOCATE_BOUNDED_BUFFER        BufferDeallocated

`buf.close()` on the buffer handle itself closes the stream for writing at
once (the simple case: one writer, no ends).  An end belongs to one thread at
a time: the one that created it, until another thread uses it (that thread
adopts it) or it is handed over with `end.give(tid)`.  When its owner ends,
by exit, exception or kill, the end is closed for it, as a process's file
descriptors are; so a writer that crashes still ends its reader's stream,
and a reader that stops early (`head`) stops its writers promptly.

Table layout (part "buffers" in the main arena; native 64-bit words):

    header, 64 bytes
      off size field        guard / writer
        0   8  max_buffers  written once at boot
        8   8  allocations  fetch_add by ALLOCATE: buffers ever allocated
       16   8  biased       written once at boot: 1 if side locks are biased (side_lock.py)
    entries, ENTRY_SIZE = 192 bytes per slot
        0   8  state        FREE / CREATING / ALLOCATED / DEALLOCATING; CAS by
                            the allocator and the deallocator (one winner each)
        8   8  id           the allocator, while CREATING (before the segment exists,
                            so that shutdown can unlink even a half-created one)
       16   8  n            the allocator, while CREATING
       24   8  capacity     the allocator, while CREATING
       32   8  creator      the allocator: its tid
       64 128  ends[16]     end word = role << 60 | CLOSED << 59 | (owner tid + 1);
                            CAS by whoever opens, adopts, gives or closes it
                            (and by the death hook of its owner)
    busy, 64 bytes per thread slot (one cache line each)
        0   8  busy         key of the side lock the thread is inside (0: none);
                            written only by that thread, read by lock askers
                            after a membarrier (side_lock.py)
"""

import ctypes
import os
import struct
import sys

from . import arena as _arena
from . import atomics
from . import checks
from . import context as _cx
from . import mutex
from .buffer_layout import DEALLOCATED, READERS_GONE, WRITERS_GONE, arena_size, format_header
from .buffer_ring import Ring
from .side_lock import BUSY_STRIDE, BusyLine, bias_available, read_line
from .errors import BufferDeallocated, EndOfStream, NoSuchThread, OutOfResources, StreamClosed
from .threads import LIVE, O_STATE

FREE, CREATING, ALLOCATED, DEALLOCATING = 0, 1, 2, 3
STATE_NAMES = ["FREE", "CREATING", "ALLOCATED", "DEALLOCATING"]
H_MAX, H_ALLOCS, H_BIASED = 0, 8, 16
ENTRY_SIZE = 192
E_STATE, E_ID, E_N, E_CAP, E_CREATOR, E_ENDS = 0, 8, 16, 24, 32, 64
MAX_ENDS = 16
WRITER, READER = 1, 2
ROLE_SHIFT, CLOSED = 60, 1 << 59
OWNER = (1 << 48) - 1

DEFAULT_CAPACITY = 1 << 20      # 16 pipe chunks of 64 KiB in flight
STREAM_CHUNK = 1 << 16          # write() sends at most this much per message

_w = struct.Struct("<q")          # little-endian words, as every table (object_table.py)
_GONE = object()                # the ctx of a dropped Ring: never the current context


class Buffers:
    """The part: the buffer table in the main arena, and this process's cache
    of mapped rings.  Settings: Kernel(max_buffers=256, buffer_bias=True,
    buffer_malloc_tuning=True)."""

    def __init__(self, kernel, offset):
        self.kernel = kernel
        self.base = offset
        self.addr = kernel.arena.addr + offset
        self.buf = kernel.arena.buf
        self.max = kernel.config.get("max_buffers", 256)
        self.malloc_tuning = kernel.config.get("buffer_malloc_tuning", True)
        self.max_threads = kernel.config.max_threads
        self.busy_addr = self.addr + 64 + ENTRY_SIZE * self.max
        self.busy_off = self.base + 64 + ENTRY_SIZE * self.max
        self._rings = {}          # slot -> Ring: private to this process
        self._line = None         # the BusyLine of the thread this process runs (private)
        self.ring_class = Ring    # a controlled kernel's is sched.wiring.ControlledRing

    @staticmethod
    def section_size(config):
        return 64 + ENTRY_SIZE * config.get("max_buffers", 256) + BUSY_STRIDE * config.max_threads

    def boot(self):
        _w.pack_into(self.buf, self.base + H_MAX, self.max)
        biased = self.kernel.config.get("buffer_bias", True) and self.kernel.config.get("schedule") is None \
            and bias_available()       # a controlled run holds no lock across steps: no bias to keep
        _w.pack_into(self.buf, self.base + H_BIASED, int(biased))

    @property
    def biased(self):
        return bool(_w.unpack_from(self.buf, self.base + H_BIASED)[0])

    def _new_ring(self, seg, slot, ident, n, capacity):
        r = self.ring_class(seg, ident, n, capacity, self._ends_checker(slot, ident), self.biased)
        r.slot = slot
        return r

    def can_send(self, slot, ident, size, tid):
        """Would a SEND of `size` bytes by thread tid run now?  (Controlled
        runs; any process.)  True for a buffer that is gone: SEND raises."""
        try:
            return self.ring(slot, ident).can_send(size, tid, self.kernel.threads)
        except BufferDeallocated:
            return True

    def can_receive(self, slot, ident, tid):
        """Would a RECEIVE by thread tid run now?  (Controlled runs.)"""
        try:
            return self.ring(slot, ident).can_receive(tid, self.kernel.threads)
        except BufferDeallocated:
            return True

    def _busy_line(self, ctx):
        """The calling thread's BusyLine (one per thread per process: the
        rings of every buffer share it)."""
        line = self._line
        if line is None or line.ctx is not ctx:
            line = self._line = BusyLine(ctx, self.busy_addr + (ctx.tid % self.max_threads) * BUSY_STRIDE)
        return line

    def _find_line(self, tid):
        """The keys of the side locks thread tid is inside (an asker's read)."""
        return read_line(self.buf, self.busy_off + (tid % self.max_threads) * BUSY_STRIDE)

    # --- the table -------------------------------------------------------------------

    def _off(self, slot, field=0):
        return self.base + 64 + slot * ENTRY_SIZE + field

    def _get(self, slot, field):
        return _w.unpack_from(self.buf, self._off(slot, field))[0]

    def _put(self, slot, field, value):
        _w.pack_into(self.buf, self._off(slot, field), value)

    def _cas(self, slot, field, old, new):
        return atomics.compare_exchange(self.kernel.arena.addr + self._off(slot, field), old, new) == old

    def segment_name(self, ident):
        return f"{self.kernel.arena.name}_b{ident}"

    def allocate(self, n, capacity=None):
        """ALLOCATE_BOUNDED_BUFFER: a new buffer of at most n messages and
        `capacity` bytes.  TypeError for an n or capacity that is not an int;
        ValueError for n < 1 or capacity < 1; OutOfResources when the table or
        /dev/shm is full.  Any process."""
        checks.integer("ALLOCATE_BOUNDED_BUFFER", "an int number of message slots n from 1 to 2**40 - 1", n,
                       1, (1 << 40) - 1)
        if capacity is None:
            capacity = DEFAULT_CAPACITY
        checks.integer("ALLOCATE_BOUNDED_BUFFER", "an int capacity in bytes from 1 to 2**40 - 1 (or None: 1 MiB)",
                       capacity, 1, (1 << 40) - 1)
        ctx = _cx.current()
        ident = self.kernel.next_id()
        for slot in range(self.max):
            state = self._get(slot, E_STATE)
            if state == CREATING:
                self._reclaim(slot)
                state = self._get(slot, E_STATE)
            if state != FREE or not self._cas(slot, E_STATE, FREE, CREATING):
                continue
            self._put(slot, E_ID, ident)
            self._put(slot, E_N, n)
            self._put(slot, E_CAP, capacity)
            self._put(slot, E_CREATOR, ctx.tid)
            for e in range(MAX_ENDS):
                self._put(slot, E_ENDS + 8 * e, 0)
            name = self.segment_name(ident)
            try:
                seg = _arena.Arena.create(name, arena_size(n, capacity))
            except BaseException:
                atomics.store(self.kernel.arena.addr + self._off(slot, E_STATE), FREE)
                raise
            format_header(seg.buf, ident, n, capacity)
            atomics.store(self.kernel.arena.addr + self._off(slot, E_STATE), ALLOCATED)  # publish
            atomics.fetch_add(self.addr + H_ALLOCS, 1)
            self._drop(slot)
            self._rings[slot] = self._new_ring(seg, slot, ident, n, capacity)
            return BoundedBuffer(slot, ident)
        raise OutOfResources(f"the bounded-buffer table is full ({self.max} buffers): deallocate some, "
                             "or boot the Kernel with a larger max_buffers")

    def _reclaim(self, slot):
        """A CREATING entry whose creator died half-way: unlink and free it."""
        creator = self._get(slot, E_CREATOR)
        if _thread_lives(self.kernel.threads, creator):
            return
        ident = self._get(slot, E_ID)
        if self._cas(slot, E_STATE, CREATING, DEALLOCATING):
            _arena.unlink(self.segment_name(ident))
            atomics.store(self.kernel.arena.addr + self._off(slot, E_STATE), FREE)

    def ring(self, slot, ident):
        """This process's Ring for buffer (slot, id), mapping it on first use.
        BufferDeallocated when that buffer no longer exists."""
        r = self._rings.get(slot)
        if r is not None and r.id == ident and r.arena.buf is not None:
            if self._get(slot, E_ID) == ident and self._get(slot, E_STATE) == ALLOCATED:
                return r
        if not (isinstance(slot, int) and 0 <= slot < self.max) \
                or self._get(slot, E_ID) != ident or self._get(slot, E_STATE) != ALLOCATED:
            if r is not None and (r.id != self._get(slot, E_ID) or self._get(slot, E_STATE) != ALLOCATED):
                self._drop(slot)          # our mapping is stale; a live occupant's stays mapped
            raise BufferDeallocated(f"bounded buffer {ident} was deallocated (or never existed in this kernel)")
        self._drop(slot)
        try:
            seg = _arena.Arena.attach(self.segment_name(ident))
        except FileNotFoundError:
            raise BufferDeallocated(f"bounded buffer {ident} was deallocated") from None
        r = self._new_ring(seg, slot, ident, self._get(slot, E_N), self._get(slot, E_CAP))
        self._rings[slot] = r
        return r

    def _drop(self, slot):
        """Forget (and unmap, unless views of it live) this process's mapping of slot."""
        r = self._rings.pop(slot, None)
        if r is not None:
            r.ctx = _GONE         # every handle holding it re-resolves (and learns it is gone)
            r.arena.close()

    def bind(self, slot, ident):
        """The Ring of (slot, id) bound to the calling thread."""
        ctx = _cx.current()
        r = self.ring(slot, ident)
        if r.ctx is not ctx:
            r.bind(ctx, self._busy_line(ctx), self._find_line)
            _tune_malloc(self.malloc_tuning)
        return r

    def deallocate(self, slot, ident):
        """DEALLOCATE_BOUNDED_BUFFER: wake every thread blocked in the buffer
        with BufferDeallocated, unlink its segment, free the slot.  A buffer
        already deallocated is left alone.  Any process."""
        if not (isinstance(slot, int) and 0 <= slot < self.max) or self._get(slot, E_ID) != ident:
            return
        try:
            r = self.ring(slot, ident)
        except BufferDeallocated:
            return
        if not self._cas(slot, E_STATE, ALLOCATED, DEALLOCATING):
            return
        r.set_flags(DEALLOCATED)             # before the unlink: whoever maps it sees the flag
        _arena.unlink(self.segment_name(ident))
        atomics.store(self.kernel.arena.addr + self._off(slot, E_STATE), FREE)
        self._drop(slot)

    # --- ends --------------------------------------------------------------------------

    def open_end(self, slot, ident, role):
        """Claim an end slot for the calling thread; returns its index."""
        self.ring(slot, ident)                 # BufferDeallocated if gone
        word = role << ROLE_SHIFT | (_cx.current().tid + 1)
        for e in range(MAX_ENDS):
            if self._get(slot, E_ENDS + 8 * e) == 0 and self._cas(slot, E_ENDS + 8 * e, 0, word):
                if self._get(slot, E_ID) != ident:          # deallocated meanwhile
                    raise BufferDeallocated(f"bounded buffer {ident} was deallocated")
                return e
        raise OutOfResources(f"bounded buffer {ident} has {MAX_ENDS} ends already: close some")

    def end_word(self, slot, index):
        return self._get(slot, E_ENDS + 8 * index)

    def take_end(self, slot, ident, index, tid):
        """Make thread tid the owner of an open end (adopt or give).  Returns
        False if the end is closed."""
        field = E_ENDS + 8 * index
        while True:
            if self._get(slot, E_ID) != ident:
                raise BufferDeallocated(f"bounded buffer {ident} was deallocated")
            w = self._get(slot, field)
            if w == 0 or w & CLOSED:
                return False
            if w & OWNER == tid + 1 or self._cas(slot, field, w, (w & ~OWNER) | (tid + 1)):
                break
        if not _thread_lives(self.kernel.threads, tid):
            self.close_end(slot, ident, index)  # given to a thread that already ended
        return True

    def close_end(self, slot, ident, index):
        """Close one end (idempotent), then tell the other side if it was the
        last of its role."""
        field = E_ENDS + 8 * index
        while True:
            if self._get(slot, E_ID) != ident:
                return
            w = self._get(slot, field)
            if w == 0 or w & CLOSED:
                return
            if self._cas(slot, field, w, w | CLOSED):
                break
        self._publish_ends(slot, ident)

    def _publish_ends(self, slot, ident):
        flags = self.ends_flags(slot)
        if flags:
            try:
                self.ring(slot, ident).set_flags(flags)
            except BufferDeallocated:
                pass

    def ends_flags(self, slot):
        """WRITERS_GONE / READERS_GONE as the ends table says (the truth; the
        ring's flags are its cached copy).  An open end whose owner is dead
        counts as closed even before anyone buries the owner (who will close
        it for real); this runs only on slow paths."""
        opened = {WRITER: 0, READER: 0}
        open_ = {WRITER: 0, READER: 0}
        threads = self.kernel.threads
        for e in range(MAX_ENDS):
            w = self._get(slot, E_ENDS + 8 * e)
            if w:
                role = w >> ROLE_SHIFT
                opened[role] = opened.get(role, 0) + 1
                if not w & CLOSED and mutex.holder_alive(threads, (w & OWNER) - 1):
                    open_[role] = open_.get(role, 0) + 1
        flags = 0
        if opened[WRITER] and not open_[WRITER]:
            flags |= WRITERS_GONE
        if opened[READER] and not open_[READER]:
            flags |= READERS_GONE
        return flags

    def _ends_checker(self, slot, ident):
        def check():
            if self._get(slot, E_ID) != ident:
                return 0
            return self.ends_flags(slot)
        return check

    # --- kernel hooks -------------------------------------------------------------------

    def on_thread_death(self, tid):
        """A thread ended (in its own process at exit, or in its burier's).
        Close the ends it owns; give back its zero-copy leases (own process);
        mark the ring locks it held owner-died (burier)."""
        ctx = _cx.current_or_none()
        own = ctx is not None and ctx.tid == tid
        for slot in self._allocated_slots():
            ident = self._get(slot, E_ID)
            try:
                if own:
                    r = self._rings.get(slot)
                    if r is not None and r.ctx is ctx and r.id == ident:
                        r.release_locks()
                else:
                    self.ring(slot, ident).mark_owner_died(tid)
                for e in range(MAX_ENDS):
                    w = self._get(slot, E_ENDS + 8 * e)
                    if w and not w & CLOSED and w & OWNER == tid + 1:
                        self.close_end(slot, ident, e)
            except BufferDeallocated:
                continue

    def _allocated_slots(self):
        """Slots whose state is ALLOCATED, read at C speed (a strided view of
        the state words)."""
        states = self.buf[self._off(0):self._off(self.max)].cast("q")[::ENTRY_SIZE // 8]
        try:
            return [slot for slot, s in enumerate(states.tolist()) if s == ALLOCATED]
        finally:
            states.release()

    def reset(self):
        """(kernel process, nothing running: a controlled kernel's restart)
        Every buffer gone, as at boot."""
        self.shutdown()
        end = self.base + 64 + ENTRY_SIZE * self.max + BUSY_STRIDE * self.max_threads
        self.buf[self.base:end] = bytes(end - self.base)
        self.boot()

    def shutdown(self):
        """Kernel process, at the end: unlink every side arena the table names."""
        for slot in range(self.max):
            if self._get(slot, E_STATE) != FREE:
                _arena.unlink(self.segment_name(self._get(slot, E_ID)))
        self.detach()

    def detach(self):
        """Unmap every side arena this process mapped (never removes one):
        an observer (`vos top`) that read statistics, leaving."""
        for slot in list(self._rings):
            self._drop(slot)

    def statistics(self):
        """One dict per buffer: fill, messages and bytes through, blocked
        senders and receivers, peak fill, ...  Lock-free, any process."""
        waits = {}
        for row in self.kernel.threads.snapshot():
            waits[row["waits_for"]] = waits.get(row["waits_for"], 0) + 1
        out = []
        for slot in range(self.max):
            if self._get(slot, E_STATE) != ALLOCATED:
                continue
            ident = self._get(slot, E_ID)
            try:
                c = self.ring(slot, ident).counters()
            except BufferDeallocated:
                continue
            ends = [self.end_word(slot, e) for e in range(MAX_ENDS)]
            c.update(id=ident, n=self._get(slot, E_N), capacity=self._get(slot, E_CAP),
                     blocked_senders=waits.get(f"send {ident}", 0),
                     blocked_receivers=waits.get(f"receive {ident}", 0),
                     writers_open=sum(1 for w in ends if w >> ROLE_SHIFT == WRITER and not w & CLOSED),
                     readers_open=sum(1 for w in ends if w >> ROLE_SHIFT == READER and not w & CLOSED),
                     deallocated=bool(c["flags"] & DEALLOCATED),
                     end_of_stream=bool(c["flags"] & WRITERS_GONE), readers_gone=bool(c["flags"] & READERS_GONE))
            out.append(c)
        return out

    def _check_invariants(self):
        """Table invariants, and every ring's (tests call this when quiet)."""
        ids = set()
        for slot in range(self.max):
            state = self._get(slot, E_STATE)
            assert state in (FREE, CREATING, ALLOCATED, DEALLOCATING), f"slot {slot}: state {state}"
            if state != ALLOCATED:
                continue
            ident = self._get(slot, E_ID)
            assert ident not in ids, f"buffer id {ident} twice in the table"
            ids.add(ident)
            for e in range(MAX_ENDS):
                w = self._get(slot, E_ENDS + 8 * e)
                assert w == 0 or w >> ROLE_SHIFT in (WRITER, READER), f"buffer {ident}: end word {w:#x}"
            self.ring(slot, ident).check_invariants()


def _thread_lives(threads, tid):
    try:
        return threads.get32(threads.off(tid) + O_STATE) in LIVE
    except NoSuchThread:
        return False


_tuned_pid = None


def _tune_malloc(enabled):
    """glibc returns the top of the heap to the host whenever more than 128 KiB
    is free there (M_TRIM_THRESHOLD), and serves blocks above a moving threshold
    with mmap.  A receiver that frees a batch of 64 KiB messages and allocates
    the next batch then pays a trim and fresh zeroed pages for every batch.
    Raising both thresholds once per process keeps those pages (measured by
    `vos bench ipc`).  Glibc only; a no-op elsewhere."""
    global _tuned_pid
    pid = os.getpid()
    if not enabled or _tuned_pid == pid or not sys.platform.startswith("linux"):
        return
    _tuned_pid = pid
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_TRIM_THRESHOLD, 256 << 20)
    mallopt(M_MMAP_THRESHOLD, 32 << 20)


# --- handles -------------------------------------------------------------------------------

class BoundedBuffer:
    """A bounded buffer handle: a small picklable value (table slot, buffer id).
    Pass it to ALLOCATE_THREAD; every method works in any thread.  The mapped
    ring is cached in the handle per process (not pickled)."""

    __slots__ = ("slot", "id", "_r")

    def __init__(self, slot, ident):
        checks.integer("BoundedBuffer", "an int table slot", slot)
        checks.integer("BoundedBuffer", "an int buffer id", ident)
        self.slot = slot
        self.id = ident
        self._r = None

    def __reduce__(self):
        return (BoundedBuffer, (self.slot, self.id))

    def __eq__(self, other):
        return isinstance(other, BoundedBuffer) and (self.slot, self.id) == (other.slot, other.id)

    def __hash__(self):
        return hash(("BoundedBuffer", self.slot, self.id))

    def __repr__(self):
        return f"<BoundedBuffer {self.id}>"

    def _ring(self):
        r = self._r = _cx.current().kernel.buffers.bind(self.slot, self.id)
        return r

    # SEND -----------------------------------------------------------------------------

    def send(self, message, timeout=None):
        """SEND: append message, blocking while the buffer is full (at most
        `timeout` seconds, then TimeoutError).  bytes-like messages travel raw;
        anything else is pickled.  Raises MessageTooLarge, BufferDeallocated,
        ReaderClosed, StreamClosed."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        if timeout is not None:
            checks.timeout("BoundedBuffer.send", timeout)
        r.send(message, timeout)

    _SEND = send      # what SEND calls: only buffers and writer ends have it (a socket's send is not ours)

    def send_nowait(self, message):
        """SEND that never blocks: WouldBlock when full (or another sender is busy)."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        r.send_nowait(message)

    def send_many(self, messages, timeout=None):
        """SEND each message, in order, under one lock hold (far fewer
        synchronisations than a loop of send).  Returns how many were sent."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        return r.send_many(checks.messages("BoundedBuffer.send_many", messages, timeout), timeout)

    def send_into(self, size, fill, timeout=None):
        """SEND with no copy: fill(view) writes the message straight into the
        ring (a writable memoryview of `size` bytes, at most the capacity,
        valid during the call only) and returns how many bytes it wrote;
        those are published as one raw message (0: nothing is sent).
        Returns that count.  For example `buffer.send_into(65536,
        file.readinto)` moves a file's next chunk into the buffer with the
        one copy the read itself makes.  fill must not SEND on this buffer
        (DeadlockError); other buffers are fine."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        checks.send_into("BoundedBuffer.send_into", size, fill, timeout)
        return r.send_into(size, fill, timeout)

    # RECEIVE -------------------------------------------------------------------------

    def receive(self, timeout=None):
        """RECEIVE: remove and return the oldest message, blocking while the
        buffer is empty.  Raises BufferDeallocated, EndOfStream, TimeoutError."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        if timeout is not None:
            checks.timeout("BoundedBuffer.receive", timeout)
        return r.receive(timeout)

    _RECEIVE = receive    # what RECEIVE calls: only buffers and reader ends have it

    def receive_nowait(self):
        """RECEIVE that never blocks: WouldBlock when empty (or another receiver is busy)."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        return r.receive_nowait()

    def receive_many(self, max_messages=None, timeout=None, views=False):
        """Remove up to max_messages at once (all that are there if None);
        blocks only while empty.  views=True returns read-only memoryviews
        into the ring, valid until this thread's next receive or release()."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        if max_messages is not None or timeout is not None:
            checks.receive_many("BoundedBuffer.receive_many", max_messages, timeout)
        return r.receive_many(max_messages, timeout, views)

    def receive_view(self, timeout=None):
        """Zero-copy RECEIVE: a read-only memoryview of the message in the
        ring, valid until this thread's next receive or release(); meanwhile
        other receivers wait."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        if timeout is not None:
            checks.timeout("BoundedBuffer.receive_view", timeout)
        return r.receive_view(timeout)

    def release(self):
        """Give back the messages held as views by receive_view / views=True."""
        r = self._r
        if r is not None and r.ctx is _cx._current:
            r.release()

    def __iter__(self):
        """Receive messages until end of stream."""
        while True:
            try:
                yield self.receive()
            except EndOfStream:
                return

    # streams and life ----------------------------------------------------------------

    def writer(self):
        """A new writer end, owned by the calling thread (see the module doc)."""
        return BufferWriter(self, _cx.current().kernel.buffers.open_end(self.slot, self.id, WRITER))

    def reader(self):
        """A new reader end, owned by the calling thread."""
        return BufferReader(self, _cx.current().kernel.buffers.open_end(self.slot, self.id, READER))

    def close(self):
        """Close the stream for writing, for every writer at once: receivers
        drain what is there, then get EndOfStream; later sends raise StreamClosed."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        r.set_flags(WRITERS_GONE)

    def deallocate(self):
        """DEALLOCATE_BOUNDED_BUFFER."""
        _cx.current().kernel.buffers.deallocate(self.slot, self.id)

    def statistics(self):
        """This buffer's statistics() record (see Buffers.statistics)."""
        for row in _cx.current().kernel.buffers.statistics():
            if row["id"] == self.id:
                return row
        raise BufferDeallocated(f"bounded buffer {self.id} was deallocated")

    def _check_invariants(self):
        self._ring().check_invariants()


class _End:
    """One end of a stream: the buffer, the end's index in its table entry, and
    process-private state (who we last acted for, leftover bytes of read())."""

    __slots__ = ("buffer", "index", "_ctx", "_r", "_closed", "_left")
    _role = 0

    def __init__(self, buffer, index):
        if not isinstance(buffer, BoundedBuffer):
            raise checks.refused(type(self).__name__, "a BoundedBuffer", buffer)
        checks.integer(type(self).__name__, f"an int end index from 0 to {MAX_ENDS - 1}", index, 0, MAX_ENDS - 1)
        self.buffer = buffer
        self.index = index
        self._ctx = None
        self._r = None
        self._closed = False
        self._left = b""

    def __reduce__(self):
        return (type(self), (self.buffer, self.index))

    def __repr__(self):
        return f"<{type(self).__name__} of buffer {self.buffer.id}, end {self.index}>"

    def _enter(self):
        """First use by this thread: adopt the end, bind the ring."""
        ctx = _cx.current()
        if self._closed:
            raise StreamClosed(f"{self!r} was closed")
        part = ctx.kernel.buffers
        if not part.take_end(self.buffer.slot, self.buffer.id, self.index, ctx.tid):
            self._closed = True
            raise StreamClosed(f"{self!r} was closed")
        self._r = part.bind(self.buffer.slot, self.buffer.id)
        self._ctx = ctx
        return self._r

    def give(self, tid):
        """Hand this end to thread tid: it closes when tid ends (even if tid
        never uses it).  For a runner that starts a thread with an end."""
        part = _cx.current().kernel.buffers
        checks.integer(f"{type(self).__name__}.give", "a thread id (an int from ALLOCATE_THREAD)", tid)
        if not part.take_end(self.buffer.slot, self.buffer.id, self.index, tid):
            raise StreamClosed(f"{self!r} was closed")
        self._ctx = None

    def close(self):
        """Close this end (idempotent)."""
        if self._closed:
            return
        self._closed = True
        r = self._r
        if r is not None and r.ctx is _cx._current:
            r.release()
        self._ctx = None
        _cx.current().kernel.buffers.close_end(self.buffer.slot, self.buffer.id, self.index)

    @property
    def closed(self):
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BufferWriter(_End):
    """The writing end of a stream: send, send_nowait, send_many, send_into,
    write, close."""

    __slots__ = ()
    _role = WRITER

    def send(self, message, timeout=None):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        if timeout is not None:
            checks.timeout("BufferWriter.send", timeout)
        r.send(message, timeout)

    _SEND = send      # see BoundedBuffer._SEND

    def send_nowait(self, message):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        r.send_nowait(message)

    def send_many(self, messages, timeout=None):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        return r.send_many(checks.messages("BufferWriter.send_many", messages, timeout), timeout)

    def send_into(self, size, fill, timeout=None):
        """BoundedBuffer.send_into through this end."""
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        checks.send_into("BufferWriter.send_into", size, fill, timeout)
        return r.send_into(size, fill, timeout)

    def write(self, data):
        """Send bytes as a stream: chunks of at most 64 KiB (or the capacity).
        Returns len(data).  ReaderClosed when nobody reads any more."""
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        try:
            view = memoryview(data).cast("B")
        except (TypeError, ValueError):
            raise checks.refused("BufferWriter.write", "bytes-like data (bytes, bytearray, a contiguous "
                                 "memoryview)", data) from None
        size = len(view)
        chunk = min(STREAM_CHUNK, r.capacity)
        if size <= chunk:
            if size:
                r.send(view)
            return size
        r.send_many([view[i:i + chunk] for i in range(0, size, chunk)])
        return size

    def flush(self):
        """Nothing is buffered on the writing side; here for file-like code."""


class BufferReader(_End):
    """The reading end of a stream: receive, receive_nowait, receive_many,
    receive_view, read, read_view, iteration, close."""

    __slots__ = ()
    _role = READER

    def receive(self, timeout=None):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        if timeout is not None:
            checks.timeout("BufferReader.receive", timeout)
        return r.receive(timeout)

    _RECEIVE = receive    # see BoundedBuffer._RECEIVE

    def receive_nowait(self):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        return r.receive_nowait()

    def receive_many(self, max_messages=None, timeout=None, views=False):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        if max_messages is not None or timeout is not None:
            checks.receive_many("BufferReader.receive_many", max_messages, timeout)
        return r.receive_many(max_messages, timeout, views)

    def receive_view(self, timeout=None):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        if timeout is not None:
            checks.timeout("BufferReader.receive_view", timeout)
        return r.receive_view(timeout)

    def release(self):
        c, r = _cx._current, self._r
        if c is not None and self._ctx is c and r.ctx is c:
            r.release()

    def read_view(self):
        """The next piece of the stream with no copy: a read-only memoryview
        into the buffer (as receive_view), valid until this thread's next
        receive or read of this buffer, release() or close(); b"" at end of
        stream."""
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        if self._left:
            data, self._left = self._left, b""
            return data
        try:
            view = r.receive_view()
        except EndOfStream:
            return b""
        if type(view) is not memoryview:
            raise TypeError(f"read_view() found a {type(view).__name__} message in a byte stream")
        return view

    def read(self, n=-1):
        """Up to n bytes of the stream (all of it until end of stream if n < 0);
        b"" at end of stream.  Messages must be bytes-like."""
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        if n is not None:
            checks.integer("BufferReader.read", "a byte count n (an int; n < 0 or None: all of the stream)", n)
        if n is None or n < 0:
            parts = [self._left]
            self._left = b""
            while True:
                try:
                    parts.append(_as_bytes(r.receive()))
                except EndOfStream:
                    return b"".join(parts)
        if n == 0:
            return b""
        data = self._left
        if not data:
            try:
                data = _as_bytes(r.receive())
            except EndOfStream:
                return b""
        if len(data) > n:
            self._left = data[n:]
            return data[:n]
        self._left = b""
        return data

    def __iter__(self):
        """Messages until end of stream."""
        while True:
            try:
                yield self.receive()
            except EndOfStream:
                return


def _as_bytes(message):
    if type(message) is not bytes:
        raise TypeError(f"read() found a {type(message).__name__} message in a byte stream")
    return message


# --- the textbook calls ---------------------------------------------------------------------

def ALLOCATE_BOUNDED_BUFFER(n, capacity=None):
    """A new bounded buffer holding at most n messages and `capacity` bytes
    (default 1 MiB).  ValueError for n < 1."""
    return _cx.current().kernel.buffers.allocate(n, capacity)


def SEND(buffer, message):
    """Append message to buffer; waits while it is full.  BufferDeallocated,
    MessageTooLarge.  SEND calls `buffer._SEND(message)`: a runtime class that
    takes SEND (a bundle, a circuit) says so with `_SEND = send`, so that an
    object that merely has a send method (a socket, a generator) is refused."""
    try:
        send = buffer._SEND
    except AttributeError:
        raise checks.refused("SEND", "a bounded buffer from ALLOCATE_BOUNDED_BUFFER (or its writer end, a "
                             "bundle, a circuit)", buffer, checks.target_hint(buffer, "send", "_SEND")) from None
    send(message)


def RECEIVE(buffer):
    """Remove and return the oldest message; waits while the buffer is empty.
    bytes for bytes-like messages, an equal object for any other.  BufferDeallocated."""
    try:
        receive = buffer._RECEIVE
    except AttributeError:
        raise checks.refused("RECEIVE", "a bounded buffer from ALLOCATE_BOUNDED_BUFFER (or its reader end, a "
                             "bundle, a circuit)", buffer, checks.target_hint(buffer, "receive", "_RECEIVE")) from None
    return receive()


def DEALLOCATE_BOUNDED_BUFFER(buffer):
    """Remove buffer; threads blocked in it wake with BufferDeallocated."""
    if isinstance(buffer, _End):
        buffer = buffer.buffer
    if not isinstance(buffer, BoundedBuffer):
        raise checks.refused("DEALLOCATE_BOUNDED_BUFFER", "a bounded buffer from ALLOCATE_BOUNDED_BUFFER", buffer)
    buffer.deallocate()


__all__ = ["ALLOCATE_BOUNDED_BUFFER", "SEND", "RECEIVE", "DEALLOCATE_BOUNDED_BUFFER",
           "BoundedBuffer", "BufferWriter", "BufferReader", "Buffers"]
