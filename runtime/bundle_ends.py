"""The two ends of a bundle: a sending thread's and a receiving thread's state.

runtime/bundle.py says what a bundle is and why it loses nothing and keeps
each sender's order; this module is how one thread sends and receives:

  * Sender: the thread's sender number s, its next sequence number, its home
    member, and the copies of its messages not yet claimed (to send again
    after a failover).  A message travels as HEADER + payload; up to SMALL
    bytes it is copied behind its header, larger ones are written into the
    ring around it (send_into), and the copy kept is the caller's object.
  * Receiver: the thread's home member, the member it takes from now, the
    zero-copy views taken and not handed out yet, what it knows of dead and
    closed members.  It claims each message before it hands it out.

Both are private to the thread that uses them (and its process); the
bundle's part keeps them per (bundle, thread).

Message header (little-endian, HEAD = 16 bytes, then the payload):

    off size field
      0   4  s      the sender's number in the bundle
      4   4  kind   RAW 0 (bytes as they are) or PICKLED 1
      8   8  q      the sender's sequence number: 0, 1, 2, ...
"""

import collections
import ctypes
import pickle
import struct
import time

from . import atomics
from .atomics import c_arg, compare_exchange_p
from .errors import BufferDeallocated, EndOfStream, KernelError

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


def _encode(message):
    t = type(message)
    if t is bytes or t is bytearray:
        return RAW, message
    if t is memoryview:
        return RAW, message.tobytes()
    return PICKLED, pickle.dumps(message, 5)


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


class Sender:
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
        self.limit = part.member_slots(bundle.slot) + BATCH
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
            part.count(slot, "failovers")
            self._trim()
            try:
                for packet in self.copies:
                    self._send(packet)
            except BufferDeallocated:
                continue
            part.count(slot, "resent", len(self.copies))
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


class Receiver:
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
            self.part.count(self.bundle.slot, "duplicates")
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


__all__ = ["Sender", "Receiver", "HEAD", "RAW", "PICKLED"]
