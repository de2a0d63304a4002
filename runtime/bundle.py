"""Aggregation (聚合): one virtual link made of k bounded buffers -- a bundle.

The lecture's table names link bundling (链路捆绑, row 5) and the disk array
(磁盘阵列, row 6): many physical resources, one virtual resource with the
interface of one.  A bundle is k bounded buffers (its *members*) behind the
textbook interface of one:

    b = ALLOCATE_BUNDLE(4, 64)            # 4 members of 64 message slots each
    SEND(b, message)                      # any thread, any number of senders
    message = RECEIVE(b)                  # any thread, any number of receivers

so that k senders and k receivers no longer queue for one send lock and one
receive lock: each member has its own two locks.

Strategy.

  * Senders.  Each sending thread gets a sender number s (once, from the
    bundle's record) and a *home* member, s mod k, and keeps SENDing there:
    a sender's messages all go down one member, so the member's FIFO keeps
    them in order (as link bundling keeps one flow on one link).  Every
    message carries a header (s, kind, q): q = 0, 1, 2, ... is the sender's
    sequence number (序列号).
  * Receivers.  Each receiving thread gets a home member too (receivers are
    numbered the same way).  It takes messages from its home as zero-copy
    views, in batches (`receive_many(views=True)`): a view is consumed only
    when its holder moves on, so the holder keeps the member's receive lock
    meanwhile.  When its home is empty it looks at the other members (it
    *steals*); when every member is empty it sleeps on its home a few
    milliseconds at a time, looking at the others between sleeps (there is
    no SELECT over several buffers).
  * Claims.  Before it hands message (s, q) to its caller, a receiver
    *claims* it: claimed[s] is the number of s's messages delivered, and the
    claim is a compare-and-swap of claimed[s] from q to q + 1.  A message
    whose q is below claimed[s] was delivered already: a duplicate, dropped.
  * A member deallocated (DEALLOCATE_BOUNDED_BUFFER on it, from anywhere)
    takes its messages with it.  So a sender keeps a copy of every message
    not yet claimed (at most about the member's n of them: it trims the copies
    with claimed[s]).  When its home is gone it moves to the next live
    member and SENDs again, in order, every copy from claimed[s] on.  The
    claims turn the copies that were delivered after all into duplicates.
  * A member's side whose thread died.  The ring hands a dead holder's lock
    over (buffer_ring.py); a receiver killed holding views never consumed
    them, so they come back to the next receiver, and the claims drop the
    ones the dead receiver had delivered.  A member whose home receivers all
    died is drained by the others' stealing.

Why no message is lost or delivered twice, and each sender's order holds.
Claims are made under the member's receive lock (the views are held), and a
member delivers a sender's messages in the order they were sent; so when a
receiver holds view q of sender s, every message of s before it in that
member was claimed or dropped already: claimed[s] >= q.  After a failover
the sender's first copy on the new member is claimed[s] as it read it, which
is at most claimed[s] now.  So a claim never waits for another one: it
succeeds (claimed[s] == q), or finds q delivered (claimed[s] > q).
claimed[s] < q would break that argument; the receiver then raises
KernelError rather than deliver out of order.  Each sender's messages are
claimed in the order q = 0, 1, 2, ...: every receiver sees each sender's
messages in order, and exactly once between them.  What can be lost is what
a single buffer loses too: the message a receiver was killed holding after
its claim (at most one per killed receiver), and the messages of a sender
that was killed (or had returned) while its copies were still needed
(`flush()` waits until everything the caller sent was delivered).

Where things are.  This module: the part (the bundle records in the main
arena), the handle and the textbook calls.  bundle_ends.py: a sending
thread's and a receiving thread's state, where the steps above run.

Record layout (part "bundles" in the main arena; native 64-bit words):

    header, 64 bytes
      off size field          guard / writer
        0   8  max_bundles    written once at boot
        8   8  max_senders    written once at boot
    records, RECORD bytes per bundle slot
        0   8  state          FREE / CREATING / ALLOCATED / DEALLOCATING; CAS by the
                              allocator and the deallocator
        8   8  id             the allocator, while CREATING (kernel-wide, never reused)
       16   8  k              the allocator, while CREATING
       24   8  senders        fetch_add: sender numbers handed out
       32   8  receivers      fetch_add: receiver numbers handed out
       40   8  failovers      fetch_add by a sender that moved off a dead member
       48   8  resent         fetch_add by that sender: copies sent again
       56   8  duplicates     fetch_add by a receiver that dropped a duplicate
       64   8  creator        the allocator: its tid
       72   8  n              the allocator: message slots of each member
      128  24k members        (buffer slot, buffer id, gone) per member: the allocator
                              writes slot and id while CREATING; gone: plain store
                              of 1 by whoever finds the member deallocated
      512  64m claimed[s]     one cache line per sender s (m = max_senders):
                                +0 claimed   CAS by receivers (see above)
                                +8 owner     tid + 1 of the sending thread; the sender
"""

import struct

from . import atomics
from . import context as _cx
from .bounded_buffer import BoundedBuffer
from .bundle_ends import Receiver, Sender
from .errors import BufferDeallocated, EndOfStream, NoSuchThread, OutOfResources, WouldBlock
from .threads import LIVE, O_STATE

FREE, CREATING, ALLOCATED, DEALLOCATING = 0, 1, 2, 3
STATE_NAMES = ["FREE", "CREATING", "ALLOCATED", "DEALLOCATING"]
H_MAX, H_SENDERS = 0, 8
R_STATE, R_ID, R_K, R_SENDERS, R_RECEIVERS, R_FAILOVERS, R_RESENT, R_DUPS, R_CREATOR, R_N = (
    0, 8, 16, 24, 32, 40, 48, 56, 64, 72)
R_MEMBERS, MEMBER = 128, 24
M_SLOT, M_ID, M_GONE = 0, 8, 16
MAX_MEMBERS = 16
R_CLAIMS, CLAIM = 512, 64
C_CLAIMED, C_OWNER = 0, 8

DEFAULT_BUNDLES, DEFAULT_SENDERS = 8, 64

_w = struct.Struct("q")


class Bundles:
    """The part: the bundle records in the main arena, and this process's
    per-thread sending and receiving state.  Settings: Kernel(max_bundles=8,
    bundle_senders=64)."""

    def __init__(self, kernel, offset):
        self.kernel = kernel
        self.base = offset
        self.buf = kernel.arena.buf
        self.addr = kernel.arena.addr + offset
        self.max = _setting(kernel.config, "max_bundles", DEFAULT_BUNDLES)
        self.max_senders = _setting(kernel.config, "bundle_senders", DEFAULT_SENDERS)
        self.record = R_CLAIMS + CLAIM * self.max_senders
        self._members = {}        # bundle id -> tuple of member handles: private to this process
        self._states = {}         # (bundle id, tid, "tx" / "rx") -> _Sender / _Receiver: private

    @staticmethod
    def section_size(config):
        senders = _setting(config, "bundle_senders", DEFAULT_SENDERS)
        return 64 + (R_CLAIMS + CLAIM * senders) * _setting(config, "max_bundles", DEFAULT_BUNDLES)

    def boot(self):
        _w.pack_into(self.buf, self.base + H_MAX, self.max)
        _w.pack_into(self.buf, self.base + H_SENDERS, self.max_senders)

    def enter_vp(self):
        self.forget()

    def forget(self):
        """Drop this process's caches (member handles, the threads' ends)."""
        self._members = {}
        self._states = {}

    def reset(self):
        """(kernel process, nothing running: a controlled kernel's restart)
        Every bundle gone, as at boot.  (Its members are buffers: the buffer
        table's own reset removes them.)"""
        size = self.section_size(self.kernel.config)
        self.buf[self.base:self.base + size] = bytes(size)
        self.boot()
        self.forget()

    # --- the records ----------------------------------------------------------------------

    def _off(self, slot, field=0):
        return self.base + 64 + slot * self.record + field

    def _get(self, slot, field):
        return _w.unpack_from(self.buf, self._off(slot, field))[0]

    def _put(self, slot, field, value):
        _w.pack_into(self.buf, self._off(slot, field), value)

    def _cas(self, slot, field, old, new):
        return atomics.compare_exchange(self.kernel.arena.addr + self._off(slot, field), old, new) == old

    def _add(self, slot, field, delta=1):
        return atomics.fetch_add(self.kernel.arena.addr + self._off(slot, field), delta)

    def count(self, slot, what, n=1):
        """Add n to a bundle's counter: "failovers", "resent" or "duplicates"."""
        self._add(slot, {"failovers": R_FAILOVERS, "resent": R_RESENT, "duplicates": R_DUPS}[what], n)

    def member_slots(self, slot):
        """n: the message slots of each member of the bundle in `slot`."""
        return self._get(slot, R_N)

    def claim_addr(self, slot, s):
        return self.kernel.arena.addr + self._off(slot, R_CLAIMS + CLAIM * s + C_CLAIMED)

    def allocate(self, k, n, capacity=None):
        """ALLOCATE_BUNDLE: k new bounded buffers of n slots (and `capacity`
        bytes) each, behind one handle.  ValueError for k outside 1..16 or a
        bad n; OutOfResources when the bundle table or the buffer table is
        full.  Any process."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_MEMBERS:
            raise ValueError(f"ALLOCATE_BUNDLE: a bundle has 1 to {MAX_MEMBERS} members, not k={k!r}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"ALLOCATE_BUNDLE: each member needs n >= 1 message slots, not n={n!r}")
        ctx = _cx.current()
        ident = self.kernel.next_id()
        for slot in range(self.max):
            state = self._get(slot, R_STATE)
            if state == CREATING and not _lives(self.kernel.threads, self._get(slot, R_CREATOR)):
                self._cas(slot, R_STATE, CREATING, FREE)        # its creator died half-way
                state = self._get(slot, R_STATE)
            if state != FREE or not self._cas(slot, R_STATE, FREE, CREATING):
                continue
            self._put(slot, R_CREATOR, ctx.tid)
            self.buf[self._off(slot, 8):self._off(slot, R_CLAIMS)] = bytes(R_CLAIMS - 8)
            o = self._off(slot, R_CLAIMS)
            self.buf[o:o + CLAIM * self.max_senders] = bytes(CLAIM * self.max_senders)
            members = []
            try:
                for _ in range(k):
                    members.append(BoundedBuffer(*self.kernel.buffers.allocate(n, capacity)))
            except BaseException:
                for m in members:
                    m.deallocate()
                atomics.store(self.kernel.arena.addr + self._off(slot, R_STATE), FREE)
                raise
            for i, m in enumerate(members):
                self._put(slot, R_MEMBERS + MEMBER * i + M_SLOT, m.slot)
                self._put(slot, R_MEMBERS + MEMBER * i + M_ID, m.id)
            self._put(slot, R_ID, ident)
            self._put(slot, R_K, k)
            self._put(slot, R_N, n)
            atomics.store(self.kernel.arena.addr + self._off(slot, R_STATE), ALLOCATED)   # publish
            self._members[ident] = tuple(members)
            return Bundle(slot, ident)
        raise OutOfResources(f"ALLOCATE_BUNDLE: the bundle table is full ({self.max} bundles): deallocate one, "
                             "or boot the Kernel with a larger max_bundles")

    def check(self, slot, ident):
        """BufferDeallocated unless bundle (slot, id) is allocated."""
        if not (isinstance(slot, int) and 0 <= slot < self.max) or self._get(slot, R_ID) != ident \
                or self._get(slot, R_STATE) != ALLOCATED:
            raise BufferDeallocated(f"bundle {ident} was deallocated (or never existed in this kernel)")

    def members(self, slot, ident):
        """The member handles of bundle (slot, id), in order."""
        got = self._members.get(ident)
        if got is None:
            self.check(slot, ident)
            k = self._get(slot, R_K)
            got = tuple(BoundedBuffer(self._get(slot, R_MEMBERS + MEMBER * i + M_SLOT),
                                      self._get(slot, R_MEMBERS + MEMBER * i + M_ID)) for i in range(k))
            self._members[ident] = got
        return got

    def gone(self, slot, i):
        return bool(self._get(slot, R_MEMBERS + MEMBER * i + M_GONE))

    def mark_gone(self, slot, ident, i):
        """Member i was found deallocated: say so for everyone.  Raises
        BufferDeallocated if the whole bundle is."""
        if self._get(slot, R_ID) == ident:
            self._put(slot, R_MEMBERS + MEMBER * i + M_GONE, 1)
        self.check(slot, ident)

    def deallocate(self, slot, ident):
        """DEALLOCATE_BUNDLE: deallocate every member (threads blocked in them
        wake with BufferDeallocated), then free the record.  A bundle already
        deallocated is left alone."""
        if not (isinstance(slot, int) and 0 <= slot < self.max) or self._get(slot, R_ID) != ident:
            return
        members = self.members(slot, ident) if self._get(slot, R_STATE) == ALLOCATED else ()
        if not self._cas(slot, R_STATE, ALLOCATED, DEALLOCATING):
            return
        for m in members:
            m.deallocate()
        atomics.store(self.kernel.arena.addr + self._off(slot, R_STATE), FREE)
        self._members.pop(ident, None)

    # --- per-thread state ---------------------------------------------------------------

    def sender(self, bundle):
        ctx = _cx.current()
        key = (bundle.id, ctx.tid, "tx")
        st = self._states.get(key)
        if st is None:
            members = self.members(bundle.slot, bundle.id)
            s = self._add(bundle.slot, R_SENDERS)
            if s >= self.max_senders:
                raise OutOfResources(f"bundle {bundle.id} has had {self.max_senders} sending threads already: "
                                     "boot the Kernel with a larger bundle_senders")
            self._put(bundle.slot, R_CLAIMS + CLAIM * s + C_OWNER, ctx.tid + 1)
            st = self._states[key] = Sender(self, bundle, members, s, ctx)
        return st

    def receiver(self, bundle):
        ctx = _cx.current()
        key = (bundle.id, ctx.tid, "rx")
        st = self._states.get(key)
        if st is None:
            members = self.members(bundle.slot, bundle.id)
            r = self._add(bundle.slot, R_RECEIVERS)
            st = self._states[key] = Receiver(self, bundle, members, r, ctx)
        return st

    # --- observing ----------------------------------------------------------------------

    def statistics(self):
        """One dict per bundle (lock-free, any process): its members (buffer
        id, gone), senders, receivers, failovers, copies resent, duplicates
        dropped, and the messages delivered per sender."""
        out = []
        for slot in range(self.max):
            if self._get(slot, R_STATE) != ALLOCATED:
                continue
            k, senders = self._get(slot, R_K), min(self._get(slot, R_SENDERS), self.max_senders)
            out.append(dict(
                id=self._get(slot, R_ID), k=k, n=self._get(slot, R_N),
                members=[(self._get(slot, R_MEMBERS + MEMBER * i + M_ID), self.gone(slot, i)) for i in range(k)],
                senders=senders, receivers=self._get(slot, R_RECEIVERS),
                failovers=self._get(slot, R_FAILOVERS), resent=self._get(slot, R_RESENT),
                duplicates=self._get(slot, R_DUPS),
                delivered=[self._get(slot, R_CLAIMS + CLAIM * s + C_CLAIMED) for s in range(senders)]))
        return out

    def _check_invariants(self):
        for slot in range(self.max):
            state = self._get(slot, R_STATE)
            assert state in (FREE, CREATING, ALLOCATED, DEALLOCATING), f"bundle slot {slot}: state {state}"
            if state == ALLOCATED:
                assert 1 <= self._get(slot, R_K) <= MAX_MEMBERS, f"bundle slot {slot}: k {self._get(slot, R_K)}"
                for s in range(min(self._get(slot, R_SENDERS), self.max_senders)):
                    assert self._get(slot, R_CLAIMS + CLAIM * s + C_CLAIMED) >= 0


def _setting(config, name, default):
    v = config.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"Kernel({name}=...) must be a positive int, not {v!r}")
    return v


def _lives(threads, tid):
    try:
        return threads.get32(threads.off(tid) + O_STATE) in LIVE
    except NoSuchThread:
        return False


# --- the handle and the textbook calls ------------------------------------------------------

class Bundle:
    """A bundle handle: a small picklable value (record slot, bundle id).
    SEND and RECEIVE work on it as on a bounded buffer; the Pythonic layer is
    send, receive, flush, close, deallocate, statistics and iteration."""

    __slots__ = ("slot", "id", "_tx", "_rx")

    def __init__(self, slot, ident):
        self.slot = slot
        self.id = ident
        self._tx = self._rx = None

    def __reduce__(self):
        return (Bundle, (self.slot, self.id))

    def __eq__(self, other):
        return isinstance(other, Bundle) and (self.slot, self.id) == (other.slot, other.id)

    def __hash__(self):
        return hash(("Bundle", self.slot, self.id))

    def __repr__(self):
        return f"<Bundle {self.id}>"

    def send(self, message, timeout=None):
        """SEND: append message to this thread's home member (waiting while it
        is full, at most `timeout` seconds).  Raises BufferDeallocated when
        every member is gone, MessageTooLarge, StreamClosed after close()."""
        st = self._tx
        if st is None or st.ctx is not _cx._current:
            st = self._tx = _cx.current().kernel.bundles.sender(self)
        st.send(message, timeout)

    _SEND = send      # what SEND calls (bounded_buffer.SEND): a bundle takes it as a buffer does

    def send_nowait(self, message):
        """SEND that never waits (WouldBlock when this thread's home member is
        full or another sender is inside it)."""
        st = self._tx
        if st is None or st.ctx is not _cx._current:
            st = self._tx = _cx.current().kernel.bundles.sender(self)
        try:
            st.send(message, 0)
        except TimeoutError:
            raise WouldBlock(f"bundle {self.id}: the home member of this sender is full or busy") from None

    def receive(self, timeout=None):
        """RECEIVE: the next message for this thread, from its home member or
        any other; waits while every member is empty.  Raises EndOfStream
        (every member closed and drained), BufferDeallocated, TimeoutError."""
        st = self._rx
        if st is None or st.ctx is not _cx._current:
            st = self._rx = _cx.current().kernel.bundles.receiver(self)
        return st.receive(timeout)

    _RECEIVE = receive    # what RECEIVE calls

    def receive_nowait(self):
        """RECEIVE that never waits: WouldBlock when nothing can be taken now."""
        try:
            return self.receive(0)
        except TimeoutError:
            raise WouldBlock(f"bundle {self.id}: nothing to receive now") from None

    def __iter__(self):
        while True:
            try:
                yield self.receive()
            except EndOfStream:
                return

    def flush(self, timeout=None):
        """Wait until every message the calling thread sent was delivered to
        some receiver (so that no copy is needed any more).  Call it before a
        sender returns if members may be deallocated behind its back."""
        st = self._tx
        if st is None or st.ctx is not _cx._current:
            return
        st.flush(timeout)

    def close(self):
        """Close every member for writing: receivers drain, then get
        EndOfStream.  Call it once the senders have flushed."""
        for m in _cx.current().kernel.bundles.members(self.slot, self.id):
            try:
                m.close()
            except BufferDeallocated:
                continue

    def members(self):
        """The member bounded buffers, in order."""
        return _cx.current().kernel.bundles.members(self.slot, self.id)

    def deallocate(self):
        """DEALLOCATE_BUNDLE."""
        _cx.current().kernel.bundles.deallocate(self.slot, self.id)

    def statistics(self):
        """This bundle's row of the part's statistics()."""
        for row in _cx.current().kernel.bundles.statistics():
            if row["id"] == self.id:
                return row
        raise BufferDeallocated(f"bundle {self.id} was deallocated")


def ALLOCATE_BUNDLE(k, n, capacity=None):
    """A new bundle of k bounded buffers (link bundling, 链路捆绑), each of n
    message slots and `capacity` bytes.  SEND and RECEIVE take it as they
    take a bounded buffer."""
    return _cx.current().kernel.bundles.allocate(k, n, capacity)


def DEALLOCATE_BUNDLE(bundle):
    """Deallocate every member of the bundle; threads blocked in it wake with
    BufferDeallocated."""
    if not isinstance(bundle, Bundle):
        raise TypeError(f"DEALLOCATE_BUNDLE needs a bundle, not {type(bundle).__name__}")
    bundle.deallocate()


__all__ = ["ALLOCATE_BUNDLE", "DEALLOCATE_BUNDLE", "Bundle", "Bundles"]
