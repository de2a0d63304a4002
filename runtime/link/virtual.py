"""The virtual link (虚拟链路): SEND and RECEIVE kept, over a line that is not reliable.

The lecture's "② 通信的接口保持": keep send/receive as they are, put an
indirection layer (间接层) under them that splits the data into packets (分组)
and sends them on, "and bring in no new problems": errors (差错控制), late
delivery (时延处理), order (序列号).  This module is that layer, over the
faulty lines of physical.py:

    link = VirtualLink.allocate(circuits=3, faults=Faults.every(0.1), seed=7)
    c = link.circuit(0)                 # a virtual circuit (虚电路), row 4 of the table
    SEND(c, message)                    # in the sending thread
    message = RECEIVE(c)                # in the receiving thread
    c.close()                           # the sender: end of stream, once all is delivered

How each problem is answered.

  * Packets.  A message becomes packets of at most `mtu` bytes; the last
    one is marked LAST, and the receiver joins them again (packets.py).
  * Errors (差错).  Every packet carries a CRC-32; a corrupted one is
    dropped by whoever receives it, which turns an error into a loss.
  * Loss.  The receiver acknowledges what it has: the next sequence number
    it expects (every packet before has arrived) and a bitmap of the 64
    after it that arrived too.  The sender keeps each packet until it is
    acknowledged and sends it again when no acknowledgement came within the
    retransmission timeout (RTO: measured round trip time plus four
    deviations, Jacobson's rule; a packet sent again doubles its own timeout,
    and its round trip is not measured: Karn's rule).  When the selective
    acknowledgements show that packets after a gap arrived, the missing
    ones sent more than a round trip ago are resent at once (fast
    retransmit), without waiting for their timeout.
  * Duplicates and late packets (时延).  A packet whose sequence number was
    delivered already, or is held already, is dropped (and acknowledged
    again: its acknowledgement may have been lost).
  * Order (序列号).  Packets that come early wait in the receiver until the
    gap before them is filled; messages are delivered in sequence order.
  * Flow.  At most `window` packets are unacknowledged; a sender with a full
    window waits for acknowledgements (resending on timeouts meanwhile).
  * Circuits (复用).  Every circuit's packets travel on the same two lines
    (data one way, acknowledgements back).  The thread that takes a packet
    of another circuit off a line passes it to that circuit's inbox (a
    bounded buffer of its own; a full inbox drops it: a loss like any
    other), and every endpoint looks at its inbox before the line.

Who runs the protocol.  There is no helper thread: the sending thread runs
the sender's half inside SEND and close() (it reads acknowledgements and
resends while it waits), the receiving thread runs the receiver's half inside
RECEIVE.  So a circuit has one sending thread and one receiving thread, and
they must be different threads (a thread that SENDs a full window to itself
waits for acknowledgements that only its own RECEIVE would send).  The
state of each half is private to its thread (kept per process, keyed by the
link, the circuit and the thread).  Acknowledgements and resent packets are
sent without waiting (a full line drops them: a loss like any other), so
the two halves never wait for each other in a circle, and a sender whose
receiver has gone can still finish closing.
"""

import collections
import pickle
import time

from .. import context as _cx
from ..bounded_buffer import ALLOCATE_BOUNDED_BUFFER
from ..errors import EndOfStream, StreamClosed, WouldBlock
from . import packets
from .packets import ACK, DATA, FIN, HEADER, LAST, PICKLED, SACK_BITS
from .physical import NONE, Faults, PhysicalLink

MIN_RTO, MAX_RTO = 0.004, 0.2
POLL_SHARED = 0.002          # with several circuits: how often a waiting endpoint looks at its inbox
POLL_ALONE = 0.05            # with one circuit nobody fills the inbox: sleep on the line longer
SERVICE_EVERY = 8            # a sender reads the acknowledgements after this many new packets
LINGER = 0.5                 # close(): how long to keep sending FIN for its acknowledgement
RX_LINGER = 0.02             # a receiver that got FIN answers resent FINs this long (its ack may be lost)

_ends = {}                   # (arena, link id, circuit, role) -> _Sender / _Receiver: private to this process


class VirtualLink:
    """The handle of a virtual link: its two lines, the circuits' inboxes, and
    the protocol's parameters.  A small picklable value."""

    __slots__ = ("data", "acks", "data_inboxes", "ack_inboxes", "mtu", "window", "rto")

    def __init__(self, data, acks, data_inboxes, ack_inboxes, mtu, window, rto):
        self.data, self.acks = data, acks
        self.data_inboxes, self.ack_inboxes = tuple(data_inboxes), tuple(ack_inboxes)
        self.mtu, self.window, self.rto = mtu, window, rto

    @classmethod
    def allocate(cls, circuits=1, faults=NONE, seed=0, n=None, mtu=1024, window=32, rto=0.02):
        """A new virtual link of `circuits` circuits over two new lines of n
        packets each (data, and acknowledgements back), both with `faults`.
        n defaults to room for two windows of every circuit, so that a sender
        seldom waits for the line.  ValueError for a bad parameter."""
        if n is None:
            n = 2 * circuits * window + 16
        for name, v, lo, hi in (("circuits", circuits, 1, packets.MAX_CIRCUITS), ("n", n, 1, 1 << 20),
                                ("mtu", mtu, 1, 1 << 20), ("window", window, 1, SACK_BITS * 16)):
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"VirtualLink.allocate({name}={v!r}): an int from {lo} to {hi}")
        if not isinstance(faults, Faults):
            raise TypeError(f"VirtualLink.allocate(faults=...) takes a Faults, not {type(faults).__name__}")
        if not isinstance(rto, (int, float)) or not MIN_RTO <= rto <= MAX_RTO:
            raise ValueError(f"VirtualLink.allocate(rto={rto!r}): seconds from {MIN_RTO} to {MAX_RTO}")
        capacity = n * (mtu + HEADER) + 4096
        data = PhysicalLink.allocate(n, faults, seed, capacity)
        acks = PhysicalLink.allocate(n, faults, seed + 1, n * (HEADER + 64) + 4096)
        inboxes = ([], [])
        if circuits > 1:
            for _ in range(circuits):
                inboxes[0].append(ALLOCATE_BOUNDED_BUFFER(n, capacity))
                inboxes[1].append(ALLOCATE_BOUNDED_BUFFER(n, n * (HEADER + 64) + 4096))
        return cls(data, acks, inboxes[0], inboxes[1], mtu, window, float(rto))

    def __reduce__(self):
        return (VirtualLink, (self.data, self.acks, self.data_inboxes, self.ack_inboxes, self.mtu, self.window,
                              self.rto))

    @property
    def id(self):
        return self.data.buffer.id

    @property
    def circuits(self):
        return max(1, len(self.data_inboxes))

    def circuit(self, number):
        """The handle of circuit `number` (0 .. circuits - 1)."""
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < self.circuits:
            raise ValueError(f"virtual link {self.id} has circuits 0 to {self.circuits - 1}, not {number!r}")
        return Circuit(self, number)

    def deallocate(self):
        """Deallocate both lines and every inbox."""
        for b in (self.data.buffer, self.acks.buffer) + self.data_inboxes + self.ack_inboxes:
            b.deallocate()

    def __repr__(self):
        return f"<VirtualLink {self.id}: {self.circuits} circuit(s), {self.data.faults}>"


class Circuit:
    """A virtual circuit: SEND / RECEIVE as on a bounded buffer.  One thread
    sends on it, another receives."""

    __slots__ = ("link", "number")

    def __init__(self, link, number):
        self.link = link
        self.number = number

    def __reduce__(self):
        return (Circuit, (self.link, self.number))

    def __repr__(self):
        return f"<Circuit {self.number} of virtual link {self.link.id}>"

    def _end(self, role):
        ctx = _cx.current()
        key = (ctx.kernel.arena.name, self.link.id, self.number, role)
        end = _ends.get(key)
        if end is None or end.ctx is not ctx:
            end = _ends[key] = (_Sender if role == "tx" else _Receiver)(self.link, self.number, ctx)
        return end

    def send(self, message, timeout=None):
        """SEND: the message is delivered once, whole and in order, whatever the
        line does.  Blocks while the window is full (TimeoutError after
        `timeout` seconds); StreamClosed after close()."""
        self._end("tx").send(message, timeout)

    _SEND = send      # what SEND calls (bounded_buffer.SEND): a circuit takes it as a buffer does

    def receive(self, timeout=None):
        """RECEIVE: the next message, in the order sent.  EndOfStream once the
        sender closed the circuit and everything was delivered; TimeoutError
        after `timeout` seconds."""
        return self._end("rx").receive(timeout)

    _RECEIVE = receive

    def __iter__(self):
        while True:
            try:
                yield self.receive()
            except EndOfStream:
                return

    def close(self, linger=LINGER):
        """The sender's end of stream: sends FIN after the last message and
        waits until every packet, FIN included, is acknowledged (True).  If
        the receiver answers nothing at all for `linger` seconds (it has
        gone: it got the FIN and our acknowledgements were lost), it stops
        and returns False."""
        return self._end("tx").close(linger)

    def statistics(self):
        """The calling thread's counts for this circuit: its sending half and
        its receiving half (whichever it used), with the line's faults."""
        out = {}
        for role in ("tx", "rx"):
            end = _ends.get((_cx.current().kernel.arena.name, self.link.id, self.number, role))
            if end is not None and end.ctx is _cx._current:
                out.update(end.statistics())
        return out


class _Half:
    """What both halves share: the circuit, the lines, the inbox, demultiplexing."""

    def __init__(self, link, number, ctx, line, inboxes):
        self.link = link
        self.number = number
        self.ctx = ctx
        self.line = line                                    # where this half's packets come from
        self.inboxes = inboxes                              # every circuit's inbox on that side
        self.inbox = inboxes[number] if inboxes else None
        self.poll = POLL_SHARED if inboxes else POLL_ALONE
        self.stats = collections.Counter()

    def _next_packet(self, wait):
        """The next good packet for this circuit, waiting at most `wait`
        seconds on the line (None if none came).  Packets of other circuits
        are passed on to their inboxes; corrupt ones are dropped."""
        deadline = time.monotonic() + wait
        while True:
            raw = None
            if self.inbox is not None:
                try:
                    raw = self.inbox.receive_nowait()
                except WouldBlock:
                    pass
            if raw is None:
                left = deadline - time.monotonic()
                try:
                    raw = self.line.receive_nowait() if left <= 0 else self.line.receive(min(left, self.poll))
                except (WouldBlock, TimeoutError):
                    if left <= 0:
                        return None
                    continue
            p = packets.parse(raw)
            if p is None:
                self.stats["corrupted_dropped"] += 1
                continue
            if p.circuit != self.number and self.inboxes and p.circuit < len(self.inboxes):
                try:
                    self.inboxes[p.circuit].send_nowait(raw)
                    self.stats["passed_on"] += 1
                except WouldBlock:
                    self.stats["passed_on_dropped"] += 1
                continue
            if p.circuit != self.number:
                self.stats["misrouted"] += 1
                continue
            return p


class _Silent(Exception):
    """close(): the receiver answered nothing for `linger` seconds."""


class _Sender(_Half):
    """The sending half: sequence numbers, the window of unacknowledged
    packets, timers, retransmission.  Private to the sending thread."""

    def __init__(self, link, number, ctx):
        super().__init__(link, number, ctx, link.acks, link.ack_inboxes)
        self.out = link.data
        self.next = 0                       # the next sequence number
        self.base = 0                       # every packet before it is acknowledged
        self.unacked = {}                   # seq -> [packet, sent at, times sent]
        self.srtt = None
        self.rttvar = 0.0
        self.rto = link.rto
        self.check_at = float("inf")        # earliest time a packet may be due for resending
        self.closed = False
        self.heard_at = None                # close(): when an acknowledgement last came

    def send(self, message, timeout):
        if self.closed:
            raise StreamClosed(f"{Circuit(self.link, self.number)!r} was closed for sending")
        if type(message) in (bytes, bytearray, memoryview):
            data, flags = bytes(message), 0
        else:
            data, flags = pickle.dumps(message, 5), PICKLED
        mtu = self.link.mtu
        deadline = None if timeout is None else time.monotonic() + timeout
        pieces = [data[i:i + mtu] for i in range(0, len(data), mtu)] or [b""]
        for j, piece in enumerate(pieces):
            self._transmit(flags | (LAST if j == len(pieces) - 1 else 0), piece, deadline)
        self.stats["messages"] += 1

    def _transmit(self, flags, payload, deadline, linger=None):
        while self.next - self.base >= self.link.window:
            self._wait_for_acks(deadline, linger)
        seq = self.next
        self.next = seq + 1
        pkt = packets.make(self.number, DATA, flags, seq, 0, payload)
        now = time.monotonic()
        self.unacked[seq] = [pkt, now, 1]
        self.check_at = min(self.check_at, now + self.rto)
        self.out.send(pkt)
        self.stats["packets"] += 1
        if seq % SERVICE_EVERY == SERVICE_EVERY - 1 or now >= self.check_at:
            self._service(0)                     # (looking at an empty line is a slow path: not every time)

    def _wait_for_acks(self, deadline, linger):
        """Service the link once, waiting for acknowledgements.  With `linger`:
        _Silent when none at all came for that many seconds."""
        heard = self.stats["acks"]
        self._service(self._wait_for(deadline))
        now = time.monotonic()
        if self.stats["acks"] != heard or self.heard_at is None:
            self.heard_at = now
        elif linger is not None and now - self.heard_at > linger:
            raise _Silent()

    def _wait_for(self, deadline):
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise TimeoutError(f"SEND on circuit {self.number}: the window stayed full "
                               f"({self.next - self.base} packets unacknowledged)")
        wait = max(0.0, min(self.check_at, deadline if deadline is not None else float("inf")) - now)
        return min(wait, self.poll)

    def _service(self, wait):
        """Read the acknowledgements that are there (waiting at most `wait` s
        for the first), resend what is overdue, release delayed packets."""
        p = self._next_packet(wait)
        while p is not None:
            if p.kind == ACK:
                self._on_ack(p)
            p = self._next_packet(0)
        if time.monotonic() >= self.check_at:
            self._resend_overdue()
        self.out.pump()

    def _on_ack(self, p):
        self.stats["acks"] += 1
        now = time.monotonic()
        if p.seq > self.base:
            for s in range(self.base, min(p.seq, self.next)):
                entry = self.unacked.pop(s, None)
                if entry is not None and entry[2] == 1:
                    self._measure(now - entry[1])
            self.base = min(p.seq, self.next)
        bits = p.sack
        if not bits:
            return
        while bits:
            low = bits & -bits
            s = p.seq + low.bit_length()                    # bit i: packet seq + 1 + i
            if self.unacked.pop(s, None) is not None:
                self.stats["selectively_acked"] += 1
            bits ^= low
        # Packets after the gap arrived: what is still missing before the last of
        # them and was sent more than a round trip ago is lost.  Resend it now
        # rather than wait for its timeout (fast retransmit).
        top = p.seq + p.sack.bit_length()
        rtt = self.srtt if self.srtt is not None else self.rto / 2
        for s in range(p.seq, top):
            entry = self.unacked.get(s)
            if entry is not None and now - entry[1] > rtt:
                self.out.send(entry[0], block=False)
                entry[1] = now
                entry[2] += 1
                self.stats["fast_retransmitted"] += 1

    def _measure(self, rtt):
        """Jacobson: srtt and rttvar from a packet sent once (Karn)."""
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.rto = min(MAX_RTO, max(MIN_RTO, self.srtt + 4 * self.rttvar))

    def _resend_overdue(self):
        now = time.monotonic()
        soonest = float("inf")
        for entry in self.unacked.values():
            due = entry[1] + min(MAX_RTO, self.rto * (1 << (entry[2] - 1)))
            if due <= now:
                self.out.send(entry[0], block=False)        # never wait here: the receiver may be gone
                entry[1] = now
                entry[2] += 1
                self.stats["retransmitted"] += 1
                due = now + min(MAX_RTO, self.rto * (1 << (entry[2] - 1)))
            soonest = min(soonest, due)
        self.check_at = soonest

    def close(self, linger):
        """Send FIN after everything, and wait until all is acknowledged; give
        up (False) when the receiver stayed silent for `linger` seconds."""
        if self.closed:
            return not self.unacked
        self.closed = True
        self.heard_at = None
        try:
            self._transmit(FIN | LAST, b"", None, linger)
            while self.base < self.next:
                self._wait_for_acks(None, linger)
        except _Silent:
            self.stats["fin_unacknowledged"] += 1
            return False
        finally:
            self.out.flush()
        return True

    def statistics(self):
        out = {f"tx_{k}": v for k, v in self.stats.items()}
        out.update({f"line_{k}": v for k, v in self.out.counts().items()})
        out["rto_ms"] = round(self.rto * 1000, 2)
        return out


class _Receiver(_Half):
    """The receiving half: the next sequence number expected, the packets that
    came early, the message being joined, acknowledgements.  Private to the
    receiving thread."""

    def __init__(self, link, number, ctx):
        super().__init__(link, number, ctx, link.data, link.data_inboxes)
        self.back = link.acks
        self.expected = 0
        self.early = {}                       # seq -> Packet that came before its turn
        self.pieces = []                      # payloads of the message being joined
        self.ready = collections.deque()      # whole messages not yet handed out
        self.fin = False
        self.drained = False

    def receive(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.ready:
            if self.fin:
                self._drain()
                raise EndOfStream(f"circuit {self.number}: the sender closed it and everything was delivered")
            wait = self.poll if deadline is None else max(0.0, min(self.poll, deadline - time.monotonic()))
            p = self._next_packet(wait)
            self.back.pump()
            if p is not None and p.kind == DATA:
                self._on_data(p)
            elif deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"RECEIVE on circuit {self.number} timed out")
        self.stats["messages"] += 1
        return self.ready.popleft()

    def _drain(self):
        """After the FIN: for RX_LINGER seconds answer what still arrives (the
        sender resends FIN when our acknowledgement was lost), then let the
        held-back acknowledgements go."""
        if self.drained:
            return
        self.drained = True
        end = time.monotonic() + RX_LINGER
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            p = self._next_packet(min(left, RX_LINGER / 4))
            if p is not None and p.kind == DATA:
                self._on_data(p)
            elif p is None:
                self._acknowledge()            # quiet: say it again, the last one may be lost
            self.back.pump()
        self.back.flush()

    def _on_data(self, p):
        s = p.seq
        if s < self.expected or s in self.early:
            self.stats["duplicates_dropped"] += 1
        elif s >= self.expected + self.link.window:
            self.stats["beyond_window"] += 1
            return
        else:
            self.stats["packets"] += 1
            if s > self.expected:
                self.stats["early"] += 1
            self.early[s] = p
            while self.expected in self.early:
                self._deliver(self.early.pop(self.expected))
                self.expected += 1
        self._acknowledge()

    def _deliver(self, p):
        if p.flags & FIN:
            self.fin = True
            for _ in range(2):               # two more acknowledgements of the FIN (one may be lost)
                self._acknowledge()
            return
        self.pieces.append(p.payload)
        if p.flags & LAST:
            data = b"".join(self.pieces)
            self.pieces = []
            self.ready.append(pickle.loads(data) if p.flags & PICKLED else data)

    def _acknowledge(self):
        sack = 0
        for s in self.early:
            i = s - self.expected - 1
            if 0 <= i < SACK_BITS:
                sack |= 1 << i
        self.back.send(packets.make(self.number, ACK, 0, self.expected, sack), block=False)
        self.stats["acks_sent"] += 1

    def statistics(self):
        out = {f"rx_{k}": v for k, v in self.stats.items()}
        out.update({f"ackline_{k}": v for k, v in self.back.counts().items()})
        return out


__all__ = ["VirtualLink", "Circuit"]
