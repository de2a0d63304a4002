"""Locks: ALLOCATE_LOCK, ACQUIRE, RELEASE, and the wait-for graph.

The lecture's answer to "the biggest scare" (data races): a lock in shared
memory that any virtual processor can take.  A lock is one mutex word
(mutex.py: the holder's tid in the word, futex sleep, owner-died takeover)
plus a few statistics, in a table in the main arena.  ACQUIRE is one
compare-and-swap when the lock is free; a waiting thread spins briefly if the
holder is running, then records what it waits for, gives its processor back
and sleeps in the host kernel.  RELEASE is one compare-and-swap (plus a
futex wake when someone sleeps).

Errors, in trio's split: *you* did something wrong -- DeadlockError (a second
ACQUIRE by the holder, or an ACQUIRE that would close a wait-for cycle) and
NotOwner (RELEASE by a thread that does not hold it); *the other side* broke
-- OwnerDied (the holder died holding it: the caller now holds the lock, but
the data it guards may be half-updated).

Deadlock detection.  The wait-for graph lives in shared memory: each lock
word names its holder, and `edges[slot]` below names the lock a thread waits
for.  Before sleeping, a thread publishes its edge and walks holder ->
waits-for -> holder ...; if the walk comes back to itself, sleeping would
close a cycle.  Races, and why the answer is right:

  * No cycle is missed.  Edges are published and read with seq-cst atomics.
    Of the threads that close a cycle "at the same time", the one whose
    publication comes last in that total order reads every other edge, so at
    least one thread sees the cycle (Dekker's argument).
  * Exactly one thread is told.  A thread that saw a cycle takes the
    `resolver` mutex and re-checks; if the cycle is still there it withdraws
    its own edge *before* releasing the resolver and raises DeadlockError.
    Any other thread that saw the same cycle re-checks after it, finds the
    withdrawn edge, and goes to sleep; it completes once the victim releases
    its locks (or dies, and the lock is handed over as owner-died).
  * A reported cycle was real.  The re-check walks twice: an edge word
    carries a sequence number that changes on every new wait, so an edge read
    unchanged in both walks belongs to one single, uninterrupted wait, during
    which that thread released nothing and took nothing but the lock it waits
    for; with the holders read again in between, every thread of the cycle
    held its lock and waited for the next one at the instant between the two
    walks (and each holder's process is checked alive).

Section layout (part "locks", in the main arena; little-endian words):

    header, 64 bytes
      off size field        guard / writer
        0   8  allocated    fetch_add by ALLOCATE_LOCK: records handed out
        8   8  capacity     written once at boot
       16   8  resolver     a mutex word (mutex.py): serialises deadlock verdicts
       24   8  deadlocks    fetch_add: cycles reported
    edges, 8 bytes per thread slot (rounded up to 64)
        edge[slot] = seq << 24 | lock id    (lock id 0: not waiting)
                            written only by the thread in that slot (seq-cst
                            store), or by its burier once it is dead
    records, 64 bytes per lock (one cache line), lock id i at index i - 1
        0   8  word         the mutex word (mutex.py)
        8   8  allocated    1 once ALLOCATE_LOCK set the record up (written once)
       16   8  acquisitions guarded by the lock itself (each new holder bumps it)
       24   8  contention   guarded by the lock: acquisitions that found it held
       32   8  owner_died   guarded by the lock: takeovers from a dead holder
       40   8  dead_holder  tid + 1 of the last holder that died with it; written
                            by the death hook before it marks the word DIED
       48  16  name         UTF-8, NUL padded; written once by the allocator

Lock order: the resolver is a leaf.  A thread takes it between its failed
ACQUIRE and its sleep, possibly holding any number of locks, and acquires
nothing while it holds it; so it can close no cycle.
"""

import dataclasses
import struct
from contextlib import contextmanager

from . import atomics
from . import checks
from . import context as _context
from . import mutex
from .atomics import c_arg, compare_exchange_p, load_raw, store_raw, SEQ_CST
from .errors import DeadlockError, KernelError, NoSuchObject, NotOwner, OwnerDied, WouldBlock
from .object_table import HEADER, WORD as _i64, ObjectTable
from .threads import LIVE, O_NAME, O_STATE, O_TID, WAIT_LOCK

H_RESOLVER, H_DEADLOCKS = 16, 24           # after object_table's allocated, capacity
RECORD = 64
R_WORD, R_ALLOCATED, R_ACQ, R_CONTENTION, R_OWNER_DIED, R_DEAD_HOLDER, R_NAME = 0, 8, 16, 24, 32, 40, 48
NAME_SIZE = 16
EDGE_LOCK = (1 << 24) - 1
EDGE_SEQ = 24
DEFAULT_CAPACITY = 1024


def _edges_size(max_threads):
    return -(-8 * max_threads // 64) * 64


class Lock:
    """A lock handle: a small picklable value naming one lock of the running
    kernel.  Pass it to ALLOCATE_THREAD like a number.

    The Pythonic twin of ACQUIRE/RELEASE (same code underneath):

        with lock:              # ACQUIRE(lock) ... RELEASE(lock)
            ...
        lock.acquire(timeout=1.0)    # TimeoutError when it passes
        lock.acquire_nowait()        # WouldBlock instead of waiting
        lock.release()
        lock.statistics()            # holder, waiters, acquisitions, contention
    """

    # `_lock_id` is the id again, under a name no other handle has: the fast
    # paths index their prepared pointers with it, so an eventcount or a
    # buffer passed to ACQUIRE misses there and the slow path names the
    # mistake (runtime/checks.py), at no cost to a correct call.
    __slots__ = ("id", "_lock_id")

    def __init__(self, id):
        if type(id) is not int or id < 1:
            raise NoSuchObject(f"a lock id is a positive int, not {id!r}")
        self.id = self._lock_id = id

    def __reduce__(self):
        return (Lock, (self.id,))

    def __eq__(self, other):
        return type(other) is Lock and other.id == self.id

    def __hash__(self):
        return hash(("lock", self.id))

    def acquire(self, timeout=None):
        """ACQUIRE, giving up after `timeout` seconds (TimeoutError, not
        holding).  Returns True (so `if lock.acquire(timeout=1):` reads well)."""
        ctx = _ctx()
        checks.timeout("Lock.acquire", timeout)
        ctx.kernel.locks.acquire(self, ctx.tid, timeout)
        return True

    def acquire_nowait(self):
        """Take the lock if that needs no waiting, else raise WouldBlock."""
        ctx = _ctx()
        ctx.kernel.locks.acquire_nowait(self, ctx.tid)

    def release(self):
        """RELEASE."""
        ctx = _ctx()
        ctx.kernel.locks.release(self, ctx.tid)

    def locked(self):
        """Does some thread hold it now?  (A snapshot.)"""
        return self.statistics().holder is not None

    def statistics(self):
        """A LockStatistics snapshot, read without taking the lock."""
        return _ctx().kernel.locks.statistics_of(self)

    def __enter__(self):
        ctx = _context._current
        if ctx is None:
            _context.current()
        try:
            ctx.kernel.locks.acquire(self, ctx.tid)
        except OwnerDied:
            # `with` promises the lock is not held once the statement is left;
            # the body will not run, so give the lock back and report.
            ctx.kernel.locks.release(self, ctx.tid)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        ctx = _context._current
        ctx.kernel.locks.release(self, ctx.tid)

    def __repr__(self):
        ctx = _context._current
        if ctx is None:
            return f"<Lock {self.id} (no kernel running)>"
        try:
            s = ctx.kernel.locks.statistics_of(self)
        except KernelError:
            return f"<Lock {self.id} (not a lock of this kernel)>"
        if s.holder is not None:
            state = f"held by thread {s.holder}"
        elif s.owner_died_pending:
            state = "free, its last holder died holding it"
        else:
            state = "free"
        waiting = f", {len(s.waiters)} waiting {list(s.waiters)}" if s.waiters else ""
        return (f"<Lock {self.id} {s.name!r}: {state}{waiting}; {s.acquisitions} acquisitions, "
                f"{s.contention} contended>")


@dataclasses.dataclass(frozen=True)
class LockStatistics:
    """What `Lock.statistics()` reports (a lock-free snapshot)."""
    id: int
    name: str
    holder: int | None          # tid holding it now
    waiters: tuple              # tids waiting for it (their wait-for edges)
    acquisitions: int           # successful ACQUIREs so far
    contention: int             # ACQUIREs that found it held (spun or slept)
    owner_died: int             # takeovers from a holder that died
    owner_died_pending: bool    # free, and the next ACQUIRE will get OwnerDied


def _ctx():
    ctx = _context._current
    if ctx is None:
        _context.current()  # raises the "no kernel" error
    return ctx


class LockTable(ObjectTable):
    """The part "locks" (object_table.py: the skeleton).  One instance per
    process per kernel; all shared state is in the section above.  Private
    to this process: prepared pointers (`_fast`, `_edge_ptrs`), the word of
    the calling thread (`_mine`)."""

    RECORD, NAME_SIZE, R_NAME = RECORD, NAME_SIZE, R_NAME
    SETTING, WHAT, DEFAULT_CAPACITY = "max_locks", "locks", DEFAULT_CAPACITY

    @staticmethod
    def section_size(config):
        cap = config.get("max_locks", DEFAULT_CAPACITY)
        return HEADER + _edges_size(config.max_threads) + RECORD * cap

    def __init__(self, kernel, offset):
        self.capacity = kernel.config.get("max_locks", DEFAULT_CAPACITY)
        if not isinstance(self.capacity, int) or not 1 <= self.capacity < EDGE_LOCK:
            raise ValueError(f"max_locks must be an int from 1 to {EDGE_LOCK - 1}, not {self.capacity!r}")
        self.edges_off = offset + HEADER
        self._map(kernel, offset, offset + HEADER + _edges_size(kernel.config.max_threads),
                  self.section_size(kernel.config))
        self._rq = (self.records_off - offset) // 8            # q-index of record 0
        self._fast = [None] * (self.capacity + 1)              # per lock id: (pointer, acquisitions index)
        self._edge_ptrs = [None] * kernel.config.max_threads
        self._resolver_addr = self.addr + H_RESOLVER
        self._mine_tid = None
        self._mine = 0
        # Kernel(sync_slice=..., sync_spin=...): the longest single sleep (a safety
        # net; tests make it long to prove that no wake-up is lost) and the spin.
        self.slice = kernel.config.get("sync_slice", mutex._SLICE)
        self.spin = kernel.config.get("sync_spin", True)

    def forget(self):
        """Drop this process's caches of the table (a pool VP between threads)."""
        self._fast = [None] * (self.capacity + 1)
        self._mine_tid = None

    # --- addressing ----------------------------------------------------------

    def _prepare(self, lock, call="ACQUIRE"):
        """Validate a handle and prepare (once per process) its word's pointer
        and the index of its acquisitions counter in the word view.  The slow
        path of every call on a lock: TypeError, NoSuchObject (naming `call`)."""
        if type(lock) is not Lock:
            raise checks.refused(call, "a lock from ALLOCATE_LOCK", lock) from None
        i = lock.id
        if i > self.capacity or _i64.unpack_from(self.buf, self._rec(i) + R_ALLOCATED)[0] != 1:
            raise NoSuchObject(f"{call}: no lock {i} in this kernel (was it allocated by an earlier "
                               "kernel, or made up?)") from None
        fast = (atomics.pointer(self.kernel.arena.addr + self._rec(i)), (self._rec(i) + R_ACQ - self.base) // 8)
        self._fast[i] = fast
        return fast

    def _set_mine(self, tid):
        self._mine_tid = tid
        self._mine = c_arg(mutex.encode(tid))
        return self._mine

    def _edge_ptr(self, tid):
        slot = tid % self.threads.n
        p = self._edge_ptrs[slot]
        if p is None:
            p = self._edge_ptrs[slot] = atomics.pointer(self.kernel.arena.addr + self.edges_off + 8 * slot)
        return p

    # --- ALLOCATE_LOCK ---------------------------------------------------------

    def allocate(self, name=None):
        """A new, free lock.  Any process.  OutOfResources when the table is full."""
        checks.name("ALLOCATE_LOCK", name, NAME_SIZE)
        lock_id, o = self._claim(name, lambda i: f"lock{i}")
        self._publish(o + R_ALLOCATED, 1)        # whoever sees allocated=1 sees the name too
        return Lock(lock_id)

    # --- ACQUIRE ---------------------------------------------------------------

    def acquire(self, lock, tid, timeout=None, _cas=compare_exchange_p):
        """ACQUIRE for thread tid (the calling process's thread).  Blocks
        without burning a processor.  Raises DeadlockError, OwnerDied (then
        the caller holds the lock), TimeoutError (then it does not)."""
        try:
            p, qi = self._fast[lock._lock_id]
        except (TypeError, AttributeError, IndexError):
            p, qi = self._prepare(lock, "ACQUIRE")
        if tid != self._mine_tid:
            self._set_mine(tid)
        if _cas(p, 0, self._mine) == 0:  # mutex.py's fast path
            self._q[qi] += 1  # acquisitions: guarded by the lock, which we now hold
            return
        self._acquire_slow(lock, p, tid, timeout)

    def _acquire_slow(self, lock, p, tid, timeout):
        if load_raw(p, SEQ_CST) >> mutex.SHIFT == tid + 1:
            raise DeadlockError(f"thread {tid} already holds lock {lock.id} {self.name_of(lock.id)!r}: "
                                "a second ACQUIRE would wait for itself forever")
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be None or >= 0 seconds, not {timeout!r}")
        ctx = _context.current()
        died = mutex.acquire_slow_p(p, tid, self.threads, sleep=lambda: self._waiting(ctx, lock, tid),
                                    deadline_check=ctx.check_kernel, timeout=timeout,
                                    slice_=self.slice, spin=self.spin)
        self._count(lock, died, contended=True)
        if died:
            self._raise_owner_died(lock, tid)

    def acquire_nowait(self, lock, tid):
        """Take the lock if it is free (or its holder died); else WouldBlock."""
        try:
            p, _qi = self._fast[lock._lock_id]
        except (TypeError, AttributeError, IndexError):
            p, _qi = self._prepare(lock, "Lock.acquire_nowait")
        w = load_raw(p, SEQ_CST)
        h = mutex.holder_of(w)
        if h == tid:
            raise DeadlockError(f"thread {tid} already holds lock {lock.id} {self.name_of(lock.id)!r}")
        got, died = mutex._try_p(p, tid, self.threads, check_pid=True)
        if not got:
            raise WouldBlock(f"lock {lock.id} {self.name_of(lock.id)!r} is held by thread {h}")
        self._count(lock, died, contended=False)
        if died:
            self._raise_owner_died(lock, tid)

    def _count(self, lock, died, contended):
        """Statistics, written by the new holder (the lock guards them)."""
        q = self._rq + (lock.id - 1) * 8
        self._q[q + 2] += 1
        if contended:
            self._q[q + 3] += 1
        if died:
            self._q[q + 4] += 1

    def _raise_owner_died(self, lock, tid):
        o = self._rec(lock.id)
        dead = _i64.unpack_from(self.buf, o + R_DEAD_HOLDER)[0]
        who = f"thread {dead - 1}" if dead else "its holder"
        raise OwnerDied(f"{who} died holding lock {lock.id} {self.name_of(lock.id)!r}; thread {tid} holds it "
                        "now, and the data it guards may be half-updated")

    @contextmanager
    def _waiting(self, ctx, lock, tid):
        """Around the sleep: publish the wait-for edge, refuse to close a cycle,
        show WAITING on the lock, and withdraw the edge as soon as the wait ends."""
        ep = self._edge_ptr(tid)
        seq = (load_raw(ep, SEQ_CST) >> EDGE_SEQ) + 1
        store_raw(ep, c_arg(seq << EDGE_SEQ | lock.id), SEQ_CST)
        try:
            self._refuse_cycle(tid, lock, ep, seq)
            with ctx.waiting(WAIT_LOCK, lock.id):
                try:
                    yield
                finally:
                    store_raw(ep, c_arg(seq << EDGE_SEQ), SEQ_CST)
        finally:
            store_raw(ep, c_arg(seq << EDGE_SEQ), SEQ_CST)

    # --- the wait-for graph ------------------------------------------------------

    def _walk(self, me, lock_id):
        """Follow me -> lock -> holder -> the lock it waits for -> ...  Returns
        the hops [(lock id, holder tid, lock word, holder's edge word)] of a
        cycle back to `me`, or None.  Lock-free; seq-cst reads."""
        t = self.threads
        n = t.n
        base = self.kernel.arena.addr
        hops = []
        seen = {me}
        lid = lock_id
        for _ in range(n + 1):
            if not 1 <= lid <= self.capacity:
                return None
            w = atomics.load(base + self._rec(lid))
            h = mutex.holder_of(w)
            if h is None:
                return None
            if h == me:
                hops.append((lid, h, w, None))
                return hops
            if h in seen or t.get64(t.slot_off(h % n, O_TID)) != h:
                return None  # a cycle not through me (its closer reports it), or the holder is gone
            seen.add(h)
            e = atomics.load(base + self.edges_off + 8 * (h % n))
            if not e & EDGE_LOCK:
                return None
            hops.append((lid, h, w, e))
            lid = e & EDGE_LOCK
        return None

    def _confirmed(self, hops):
        """The second walk: same holders, same edges (same waits), holders alive."""
        base = self.kernel.arena.addr
        n = self.threads.n
        for lid, h, w, e in hops:
            if atomics.load(base + self._rec(lid)) >> mutex.SHIFT != w >> mutex.SHIFT:
                return False
            if e is None:
                continue
            if atomics.load(base + self.edges_off + 8 * (h % n)) != e or not mutex.holder_alive(self.threads, h):
                return False
        return True

    def _refuse_cycle(self, me, lock, ep, seq):
        """Raise DeadlockError if sleeping on `lock` would close a cycle."""
        if self._walk(me, lock.id) is None:
            return
        mutex.acquire(self._resolver_addr, me, self.threads)
        try:
            hops = self._walk(me, lock.id)
            if hops is None or not self._confirmed(hops):
                return  # somebody else in the cycle was told (and withdrew), or it dissolved
            store_raw(ep, c_arg(seq << EDGE_SEQ), SEQ_CST)  # withdraw before anyone else judges
            atomics.fetch_add(self.addr + H_DEADLOCKS, 1)
        finally:
            mutex.release(self._resolver_addr, me)
        err = DeadlockError(self._describe_cycle(me, lock.id, hops))
        err.cycle = [(me, lock.id)] + [(h, e & EDGE_LOCK) for _lid, h, _w, e in hops if e is not None]
        raise err

    def _describe_cycle(self, me, lock_id, hops):
        parts = []
        waiter = me
        for lid, h, _w, _e in hops:
            parts.append(f"thread {waiter}{self._thread_name(waiter)} waits for lock {lid} "
                         f"{self.name_of(lid)!r}, held by thread {h}")
            waiter = h
        return ("ACQUIRE would close a wait-for cycle (deadlock): " + "; ".join(parts)
                + f". Thread {me} gets this error; the other threads of the cycle keep waiting.")

    def _thread_name(self, tid):
        t = self.threads
        o = t.slot_off(tid % t.n)
        name = bytes(t.buf[o + O_NAME:o + O_NAME + 32]).rstrip(b"\0").decode("utf-8", "replace")
        return f" ({name})" if name else ""

    # --- RELEASE ---------------------------------------------------------------

    def release(self, lock, tid, _cas=compare_exchange_p):
        """RELEASE by thread tid.  NotOwner if tid does not hold the lock."""
        try:
            p, _qi = self._fast[lock._lock_id]
        except (TypeError, AttributeError, IndexError):
            p, _qi = self._prepare(lock, "RELEASE")
        if tid != self._mine_tid:
            self._set_mine(tid)
        mine = self._mine
        if _cas(p, mine, 0) != mine:  # mutex.py's fast path: nobody waits
            try:
                mutex.release_slow_p(p, tid)
            except NotOwner as e:
                raise NotOwner(f"RELEASE of lock {lock.id} {self.name_of(lock.id)!r}: {e}") from None

    # --- controlled runs (sched/): can an ACQUIRE proceed? --------------------------

    def holder_of(self, lock_id):
        """tid holding lock lock_id, or None (a lock-free read)."""
        return mutex.holder_of(_i64.unpack_from(self.buf, self._rec(lock_id))[0])

    def free_for(self, lock_id):
        """Can an ACQUIRE of lock lock_id take it now: it is free, or its
        holder ended without releasing it (it is taken as owner-died)?"""
        h = self.holder_of(lock_id)
        return h is None or not mutex._holder_state_live(self.threads, h)

    # --- death ---------------------------------------------------------------

    def on_thread_death(self, tid):
        """A thread died (exit, DESTROY_THREAD, or its process was killed and it
        is being buried): every lock it holds becomes owner-died and its
        sleepers wake now; its wait-for edge is withdrawn."""
        ep = self._edge_ptr(tid)
        e = load_raw(ep, SEQ_CST)
        if e & EDGE_LOCK:
            store_raw(ep, c_arg(e & ~EDGE_LOCK), SEQ_CST)
        n = self.allocated()
        base = self.kernel.arena.addr
        for i in range(1, n + 1):
            o = self._rec(i)
            w = _i64.unpack_from(self.buf, o)[0]  # a hint; mark_owner_died decides with a CAS
            if w >> mutex.SHIFT == tid + 1:
                _i64.pack_into(self.buf, o + R_DEAD_HOLDER, tid + 1)
                mutex.mark_owner_died(base + o, tid)
        mutex.mark_owner_died(self._resolver_addr, tid)

    # --- statistics ------------------------------------------------------------

    def statistics_of(self, lock):
        if type(lock) is not Lock:
            raise TypeError(f"expected a lock, got {type(lock).__name__}")
        if lock.id > self.capacity or _i64.unpack_from(self.buf, self._rec(lock.id) + R_ALLOCATED)[0] != 1:
            raise NoSuchObject(f"no lock {lock.id} in this kernel")
        return self._stats(lock.id, self._waiters())

    def _waiters(self):
        """{lock id: (tids waiting)} from the wait-for edges."""
        t = self.threads
        out = {}
        for slot, tid, _pid, state in t.live_slots():
            if state not in LIVE:
                continue
            e = _i64.unpack_from(self.buf, self.edges_off + 8 * slot)[0]
            if e & EDGE_LOCK:
                out.setdefault(e & EDGE_LOCK, []).append(tid)
        return out

    def _stats(self, i, waiters):
        o = self._rec(i)
        word, _alloc, acq, cont, died, _dh = struct.unpack_from("<6q", self.buf, o)
        return LockStatistics(i, self.name_of(i), mutex.holder_of(word), tuple(waiters.get(i, ())), acq, cont,
                              died, bool(word & mutex.DIED))

    def statistics(self):
        """The part's snapshot for Kernel.statistics() and `vos top`."""
        waiters = self._waiters()
        locks = [dataclasses.asdict(self._stats(i, waiters)) for i in range(1, self.allocated() + 1)
                 if _i64.unpack_from(self.buf, self._rec(i) + R_ALLOCATED)[0] == 1]
        return {"capacity": self.capacity, "allocated": len(locks),
                "deadlocks": _i64.unpack_from(self.buf, self.base + H_DEADLOCKS)[0], "locks": locks}

    def _check_invariants(self):
        """Raise AssertionError if the table is inconsistent (tests call this
        when the machine is quiet)."""
        t = self.threads
        n = self.allocated()
        for i in range(1, self.capacity + 1):
            o = self._rec(i)
            word, alloc, acq, cont, died, _dh = struct.unpack_from("<6q", self.buf, o)
            if i > n:
                assert alloc == 0 and word == 0 and acq == 0, f"lock {i} beyond the allocated ones is in use"
                continue
            assert alloc in (0, 1), f"lock {i}: bad allocated flag {alloc}"
            assert word >= 0, f"lock {i}: bad word {word:#x}"
            assert not (word & mutex.DIED and word >> mutex.SHIFT), f"lock {i}: DIED yet held ({word:#x})"
            assert acq >= cont and acq >= died, f"lock {i}: {acq} acquisitions < {cont} contended / {died} died"
            h = mutex.holder_of(word)
            if h is not None and h != 0:
                assert t.get64(t.slot_off(h % t.n, O_TID)) == h or not mutex.holder_alive(t, h), \
                    f"lock {i} held by unknown thread {h}"
        for slot in range(t.n):
            e = _i64.unpack_from(self.buf, self.edges_off + 8 * slot)[0]
            lid = e & EDGE_LOCK
            if lid:
                assert lid <= n, f"slot {slot} waits for unallocated lock {lid}"
                st = t.get32(t.slot_off(slot, O_STATE))
                assert st in LIVE, f"slot {slot} is not alive yet waits for lock {lid}"


# --- the textbook calls ----------------------------------------------------------

def ALLOCATE_LOCK(name=None):
    """A new lock, free.  `name` (optional, up to 16 bytes) shows in statistics."""
    return _ctx().kernel.locks.allocate(name)


def ACQUIRE(lock):
    """Wait until the lock is free, then hold it.  DeadlockError (the caller
    holds it already, or waiting would close a wait-for cycle); OwnerDied (the
    holder died: the caller holds it now, the data may be half-updated)."""
    ctx = _context._current
    if ctx is None:
        _context.current()
    ctx.kernel.locks.acquire(lock, ctx.tid)


def RELEASE(lock):
    """Give the lock up.  NotOwner if the caller does not hold it."""
    ctx = _context._current
    if ctx is None:
        _context.current()
    ctx.kernel.locks.release(lock, ctx.tid)


__all__ = ["ALLOCATE_LOCK", "ACQUIRE", "RELEASE", "Lock", "LockStatistics", "LockTable"]
