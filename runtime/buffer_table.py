"""The buffer table (有界缓冲区): every bounded buffer of a kernel, and its ring.

The part "buffers" of a kernel: allocation and deallocation, each process's
cache of mapped rings, the ends of streams and their owners' deaths, the busy
lines of the side locks, statistics and invariants.  The handles a program
holds and the textbook calls are in bounded_buffer.py; the ring itself in
buffer_ring.py.

Where things live.  Each buffer's ring is a side arena of its own
(`<kernel arena>_b<id>`, any size), created by whichever process allocates
the buffer.  The table below, in the main arena, records every buffer that
exists, so that the kernel process can unlink every side arena at shutdown
(including those created inside VPs) and any process can find a buffer by
its handle.  A process maps a ring the first time it uses it (by name) and
keeps the mapping in a per-process cache, rebuilt lazily in a spawned VP.


Table layout (part "buffers" in the main arena; little-endian 64-bit words):

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
from .errors import BufferDeallocated, NoSuchThread, OutOfResources
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
        `capacity` bytes; its (table slot, buffer id).  TypeError for an n or capacity that is not an int;
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
            return slot, ident        # a handle of them: bounded_buffer.BoundedBuffer
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


__all__ = ["Buffers", "DEFAULT_CAPACITY", "STREAM_CHUNK", "MAX_ENDS", "WRITER", "READER"]
