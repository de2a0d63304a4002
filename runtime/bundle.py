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

import collections
import ctypes
import pickle
import struct
import time

from . import atomics
from . import context as _cx
from .atomics import c_arg, compare_exchange_p
from .bounded_buffer import BoundedBuffer
from .errors import BufferDeallocated, EndOfStream, KernelError, NoSuchThread, OutOfResources, WouldBlock
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
BATCH = 16                      # views a receiver takes from a member at a time
STEAL_AFTER = 0.001             # a receiver waits this long on an empty home before it steals ...
STICKY = 8                      # ... then keeps to the member it stole from for this many batches
POLL_MIN, POLL_MAX = 0.001, 0.05   # then it sleeps on its home, looking elsewhere between sleeps
_NOTHING = object()

RAW, PICKLED = 0, 1
SMALL = 4096                    # messages up to this size are copied behind their header; larger
                                # ones are written into the ring around it (send_into)
_head = struct.Struct("<IIq")   # sender s, kind, sequence number q
HEAD = _head.size
_pack, _unpack = _head.pack, _head.unpack_from
_w = struct.Struct("q")
_TSO = atomics.TSO


def _cell(addr):
    """A word to read with a plain load (x86-64: every load is an acquire
    load; atomics.py argues it), or with an atomic load elsewhere."""
    if _TSO:
        return ctypes.c_int64.from_address(addr)
    return _AtomicCell(addr)


class _AtomicCell:
    __slots__ = ("addr",)

    def __init__(self, addr):
        self.addr = addr

    @property
    def value(self):
        return atomics.load(self.addr)


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
        self._members = {}
        self._states = {}

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
                    members.append(self.kernel.buffers.allocate(n, capacity))
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
            st = self._states[key] = _Sender(self, bundle, members, s, ctx)
        return st

    def receiver(self, bundle):
        ctx = _cx.current()
        key = (bundle.id, ctx.tid, "rx")
        st = self._states.get(key)
        if st is None:
            members = self.members(bundle.slot, bundle.id)
            r = self._add(bundle.slot, R_RECEIVERS)
            st = self._states[key] = _Receiver(self, bundle, members, r, ctx)
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


def _encode(message):
    t = type(message)
    if t is bytes or t is bytearray:
        return RAW, message
    if t is memoryview:
        return RAW, message.tobytes()
    return PICKLED, pickle.dumps(message, 5)


# --- the two ends, private to the thread that uses them --------------------------------------

class _Packet:
    """A large message on its way: the header and the caller's payload, written
    straight into the member's ring by send_into (no copy of the payload on
    the sending side; the payload object is kept, not copied, as the copy
    for a failover -- bytes cannot change)."""
    __slots__ = ("head", "payload", "size")

    def __init__(self, head, payload):
        self.head = head
        self.payload = payload
        self.size = HEAD + len(payload)

    def fill(self, view):
        view[:HEAD] = self.head
        view[HEAD:self.size] = self.payload
        return self.size


def _seq(packet):
    return _unpack(packet if type(packet) is bytes else packet.head)[2]


class _Sender:
    """A sending thread's state: its number s, its next sequence number, its
    home member, and the copies of its messages not yet claimed (oldest
    first).  Private to the thread (and its process)."""

    def __init__(self, part, bundle, members, s, ctx):
        self.part = part
        self.bundle = bundle
        self.members = members
        self.s = s
        self.ctx = ctx
        self.seq = 0
        self.home = s % len(members)
        self.copies = collections.deque()       # packets not known to be claimed, oldest first
        self.limit = part._get(bundle.slot, R_N) + BATCH
        self.claimed = _cell(part.claim_addr(bundle.slot, s))
        self._skip_gone()

    def _skip_gone(self):
        k = len(self.members)
        for j in range(k):
            i = (self.home + j) % k
            if not self.part.gone(self.bundle.slot, i):
                self.home = i
                self.out = self.members[i]
                return
        self.part.check(self.bundle.slot, self.bundle.id)
        raise BufferDeallocated(f"every member of bundle {self.bundle.id} was deallocated")

    def send(self, message, timeout):
        q = self.seq
        t = type(message)
        if t is bytes and len(message) <= SMALL:
            packet = _pack(self.s, RAW, q) + message   # one small copy: cheaper than a fill call
        else:
            if t is bytes or t is bytearray or t is memoryview:
                kind, payload = RAW, memoryview(message).cast("B")
            else:
                kind, payload = _encode(message)
            packet = _Packet(_pack(self.s, kind, q), payload)
        try:
            self._send(packet, timeout)
        except BufferDeallocated:
            self._failover()
            self.send(message, timeout)
            return
        self.seq = q + 1
        copies = self.copies
        copies.append(packet)
        if len(copies) > self.limit:
            self._trim()

    def _send(self, packet, timeout=None):
        if type(packet) is bytes:
            self.out.send(packet, timeout)
        else:
            self.out.send_into(packet.size, packet.fill, timeout)

    def _trim(self):
        """Drop the copies of messages already claimed."""
        c, copies = self.claimed.value, self.copies
        while copies and _seq(copies[0]) < c:
            copies.popleft()

    def _failover(self):
        """The home member is gone: move to the next live one and send again,
        in order, every copy not yet claimed.  BufferDeallocated when no
        member is left (or the bundle itself was deallocated)."""
        part, slot = self.part, self.bundle.slot
        while True:
            part.mark_gone(slot, self.bundle.id, self.home)
            self._skip_gone()
            part._add(slot, R_FAILOVERS)
            self._trim()
            try:
                for packet in self.copies:
                    self._send(packet)
            except BufferDeallocated:
                continue
            part._add(slot, R_RESENT, len(self.copies))
            return

    def flush(self, timeout):
        """Wait until every message this thread sent was claimed by a
        receiver, moving off a member that is deallocated meanwhile.
        TimeoutError when `timeout` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.0005
        while self.claimed.value < self.seq:
            try:
                self.out.statistics()
            except BufferDeallocated:
                self._failover()
                continue
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"flush of bundle {self.bundle.id}: {self.seq - self.claimed.value} of this "
                                   f"thread's messages are not delivered yet")
            self.ctx.check_kernel()
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
        self.copies.clear()


class _Receiver:
    """A receiving thread's state: its home member, the member it takes from
    now (`cur`), the views taken from `cur` and not handed out yet, and
    what it knows of dead and ended members.  Private to the thread."""

    def __init__(self, part, bundle, members, r, ctx):
        self.part = part
        self.bundle = bundle
        self.members = members
        self.k = len(members)
        self.home = self.cur = r % self.k
        self.rotor = self.home                   # where the next scan starts looking
        self.sticky = 0                          # batches left to take from `cur` before looking round
        self.ctx = ctx
        self.views, self.i = [], 0
        self.gone = set()
        self.ended = set()
        self.poll = POLL_MIN
        self.claims = {}                         # s -> (cell, address): prepared per sender
        self.steals = 0                          # batches taken from a member other than home

    def receive(self, timeout):
        """The next message for this thread.  Order of looking: the views in
        hand; the home member; the member it last stole from (for at most
        STICKY batches in a row); the home again, waiting a little there
        (its sender is probably about to SEND); every other member
        (stealing, from a start that moves round, so that no member is
        starved); then the home again, sleeping a few milliseconds at a
        time."""
        views, i = self.views, self.i
        if i < len(views):                       # the fast path: _next_view, inline
            v = views[i]
            s, kind, q = _unpack(v)
            got = self.claims.get(s)
            if got is not None and got[0].value == q:
                data = v[HEAD:].tobytes()
                if compare_exchange_p(got[1], c_arg(q), c_arg(q + 1)) == q:
                    self.i = i = i + 1
                    if i == len(views):
                        self._leave()
                    return data if kind == RAW else pickle.loads(data)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.i < len(self.views):
                found = self._next_view()
                if found is not _NOTHING:
                    return found
            home = self._home()
            if self._take(home, 0):
                continue
            if self.cur != home and self.sticky > 0 and self._take(self.cur, 0):
                self.sticky -= 1                 # keep stealing from a member that has messages ...
                continue
            if timeout != 0 and self._take(home, STEAL_AFTER if deadline is None
                                           else max(0.0, min(STEAL_AFTER, deadline - time.monotonic()))):
                continue
            if self._scan():
                self.sticky = STICKY             # ... for a few batches, then look round again
                continue
            wait = self.poll
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise TimeoutError(f"receive on bundle {self.bundle.id} timed out")
            if self._take(self._home(), wait):
                self.poll = POLL_MIN
            else:
                self.poll = min(self.poll * 2, POLL_MAX)

    def _home(self):
        """The home member if it can still deliver, else the first live one
        that can.  EndOfStream / BufferDeallocated when none can."""
        live = [i for i in range(self.k) if i not in self.gone]
        if not live:
            self.part.check(self.bundle.slot, self.bundle.id)
            raise BufferDeallocated(f"every member of bundle {self.bundle.id} was deallocated")
        open_ = [i for i in live if i not in self.ended]
        if not open_:
            raise EndOfStream(f"bundle {self.bundle.id}: every member's stream is closed and drained")
        return self.home if self.home in open_ else open_[0]

    def _next_view(self):
        """Hand out the next view in hand that claims a message; _NOTHING when
        the batch is used up.  Copy first, then claim: a receiver killed
        between the two never claimed it, and its views go back to the ring."""
        views, i, n = self.views, self.i, len(self.views)
        claims = self.claims
        while i < n:
            v = views[i]
            i += 1
            s, kind, q = _unpack(v)
            data = v[HEAD:].tobytes()
            got = claims.get(s)
            if got is None:
                addr = self.part.claim_addr(self.bundle.slot, s)
                got = claims[s] = (_cell(addr), atomics.pointer(addr))
            cell, p = got
            c = cell.value
            if c == q and compare_exchange_p(p, c_arg(q), c_arg(q + 1)) == q:
                self.i = i
                if i == n:                       # the batch is used up: consume it, leave the member
                    self._leave()
                return pickle.loads(data) if kind == PICKLED else data
            if c < q:
                raise KernelError(f"bundle {self.bundle.id}: sender {s}'s message {q} came before its message "
                                  f"{c} was delivered (an invariant of runtime/bundle.py is broken)")
            self.part._add(self.bundle.slot, R_DUPS)
        self.i = i
        self._leave()
        return _NOTHING

    def _take(self, idx, timeout):
        """Take a batch of views from member idx (blocking at most `timeout`
        seconds).  True when some were taken."""
        if idx in self.gone or idx in self.ended:
            return False
        if idx != self.cur:
            self._leave()
            self.cur = idx
        try:
            self.views = self.members[idx].receive_many(BATCH, timeout, views=True)
        except TimeoutError:
            return False
        except EndOfStream:
            self.ended.add(idx)
            return False
        except BufferDeallocated:
            self.gone.add(idx)
            self.part.mark_gone(self.bundle.slot, self.bundle.id, idx)
            return False
        self.i = 0
        if idx != self.home:
            self.steals += 1
        return True

    def _leave(self):
        """Consume the views of `cur` and leave its receive side.  Views not
        handed out yet were not claimed: they go back for the next receiver."""
        if self.i < len(self.views):
            raise KernelError("bundle: _leave with views not handed out (they would be consumed unclaimed)")
        self.views, self.i = [], 0
        self.members[self.cur].release()

    def _scan(self):
        """Look once at every other member, without waiting.  The first one
        looked at moves on by one every scan, so that no member is starved
        (one that always has messages would otherwise always be chosen)."""
        self.rotor = (self.rotor + 1) % self.k
        for j in range(self.k):
            idx = (self.rotor + j) % self.k
            if idx == self.home:
                continue
            if idx not in self.gone and idx not in self.ended and self.part.gone(self.bundle.slot, idx):
                self.gone.add(idx)
            if self._take(idx, 0):
                return True
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
