"""The physical line (物理线路): a bounded buffer that loses, duplicates,
reorders, delays and corrupts what it carries.

The lecture's virtual link has to be built on something that is *not*
reliable: "不要引入新的问题：数据差错，及时送达，分组次序" -- errors, late
delivery, order.  A vos bounded buffer never loses a message, so the faults
are put in on purpose, by a fault injector on the sending side:

    line = PhysicalLink.allocate(64, Faults(loss=0.1, corrupt=0.05), seed=7)
    line.send(packet)          # may drop it, send it twice, hold it back, flip a bit
    packet = line.receive(timeout=0.1)

Each send draws, in this order, from the sending thread's own random
generator: lost (the packet is not sent), corrupted (one bit of a copy is
flipped), duplicated (sent twice), reordered (held back and sent after the
next packet), delayed (held back `delay_time` seconds, sent by a later send
or pump()).  The generator is seeded from (seed, sending thread), so a thread that
makes the same sends meets the same faults, run after run (two lines with
the same seed, used by one thread, meet the same faults: give them two seeds).

A full buffer blocks the sender (block=True, the default), as a line would
hold a sender back; with block=False the packet is dropped instead and
counted as `overflow` (a router's queue: the acknowledgements of the virtual
link travel that way, so that no two threads ever wait for each other).

The counters (what the injector did) are private to the sending thread:
`line.counts()` in that thread.  Nothing here is in shared memory but the
bounded buffer itself; the handle is a small picklable value.
"""

import dataclasses
import random
import time

from .. import context as _cx
from ..bounded_buffer import BoundedBuffer
from ..errors import WouldBlock

FAULT_KINDS = ("lost", "corrupted", "duplicated", "reordered", "delayed")


@dataclasses.dataclass(frozen=True)
class Faults:
    """The probability of each fault, per packet sent (0 to 1)."""
    loss: float = 0.0
    corrupt: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    delay_time: float = 0.005       # seconds a delayed packet is held back

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= (1 if f.name != "delay_time"
                                                                                      else 60):
                raise ValueError(f"Faults({f.name}={v!r}): a probability from 0 to 1"
                                 + (" (delay_time: seconds, at most 60)" if f.name == "delay_time" else ""))

    @classmethod
    def every(cls, p, delay_time=0.005):
        """Every fault at once, each with probability p."""
        return cls(p, p, p, p, p, delay_time)

    def any(self):
        return any((self.loss, self.corrupt, self.duplicate, self.reorder, self.delay))


NONE = Faults()


class PhysicalLink:
    """One direction of a faulty line: a bounded buffer, its Faults and a seed.
    A small picklable value; the injector's state is per sending thread."""

    __slots__ = ("buffer", "faults", "seed", "_inj")

    def __init__(self, buffer, faults=NONE, seed=0):
        if not isinstance(buffer, BoundedBuffer):
            raise TypeError(f"PhysicalLink needs a bounded buffer, not {type(buffer).__name__}")
        if not isinstance(faults, Faults):
            raise TypeError(f"PhysicalLink faults must be a Faults, not {type(faults).__name__}")
        self.buffer = buffer
        self.faults = faults
        self.seed = seed
        self._inj = None

    @classmethod
    def allocate(cls, n=64, faults=NONE, seed=0, capacity=None):
        """A new line over a new bounded buffer of n packets (and `capacity` bytes)."""
        from ..bounded_buffer import ALLOCATE_BOUNDED_BUFFER
        return cls(ALLOCATE_BOUNDED_BUFFER(n, capacity), faults, seed)

    def __reduce__(self):
        return (PhysicalLink, (self.buffer, self.faults, self.seed))

    def __repr__(self):
        return f"<PhysicalLink over buffer {self.buffer.id}: {self.faults}>"

    def _injector(self):
        inj = self._inj
        ctx = _cx._current
        if inj is None or inj.ctx is not ctx:
            inj = self._inj = _Injector(self, _cx.current())
        return inj

    def send(self, packet, block=True):
        """Put packet on the line, faults and all (bytes).  block=False: a full
        line drops it (counted as overflow) instead of waiting."""
        self._injector().send(bytes(packet), block)

    def pump(self):
        """Send the delayed packets whose time has come (the sending thread
        calls it while it waits for something else)."""
        inj = self._inj
        if inj is not None and inj.ctx is _cx._current:
            inj.pump()

    def flush(self):
        """Send every held-back packet now (reordered or delayed)."""
        inj = self._inj
        if inj is not None and inj.ctx is _cx._current:
            inj.pump(everything=True)

    def receive(self, timeout=None):
        """The next packet that reached the end of the line (bytes).
        TimeoutError when none comes within `timeout` seconds."""
        return self.buffer.receive(timeout)

    def receive_nowait(self):
        return self.buffer.receive_nowait()

    def counts(self):
        """What the injector did to this thread's packets: sent, lost,
        corrupted, duplicated, reordered, delayed, overflow."""
        inj = self._inj
        if inj is None or inj.ctx is not _cx._current:
            return dict.fromkeys(("sent",) + FAULT_KINDS + ("overflow",), 0)
        return dict(inj.counts)

    def close(self):
        self.buffer.close()

    def deallocate(self):
        self.buffer.deallocate()


class _Injector:
    """The sending thread's fault injector: its generator, the packets it
    holds back, and its counters.  Private to that thread."""

    def __init__(self, line, ctx):
        self.line = line
        self.ctx = ctx
        self.faults = line.faults
        self.rng = random.Random(f"vos-line/{line.seed}/{ctx.tid}")
        self.after_next = []          # reordered: sent right after the next packet
        self.delayed = []             # (due time, packet)
        self.counts = dict.fromkeys(("sent",) + FAULT_KINDS + ("overflow",), 0)

    def send(self, packet, block):
        f, rng, counts = self.faults, self.rng, self.counts
        counts["sent"] += 1
        if not f.any():
            self._put(packet, block)
            return
        lost, corrupt, dup, reorder, delay = (rng.random() < p for p in
                                              (f.loss, f.corrupt, f.duplicate, f.reorder, f.delay))
        if lost:
            counts["lost"] += 1
            self.pump()
            return
        if corrupt:
            counts["corrupted"] += 1
            packet = _flip(packet, rng)
        copies = [packet, packet] if dup else [packet]
        if dup:
            counts["duplicated"] += 1
        held, self.after_next = self.after_next, []
        if reorder:
            counts["reordered"] += 1
            self.after_next.extend(copies)
        elif delay:
            counts["delayed"] += 1
            due = time.monotonic() + f.delay_time
            self.delayed.extend((due, c) for c in copies)
        else:
            for c in copies:
                self._put(c, block)
        for c in held:
            self._put(c, block)
        self.pump()

    def pump(self, everything=False):
        if not self.delayed and not (everything and self.after_next):
            return
        now = time.monotonic()
        due = [c for t, c in self.delayed if everything or t <= now]
        self.delayed = [] if everything else [(t, c) for t, c in self.delayed if t > now]
        if everything:
            due += self.after_next
            self.after_next = []
        for c in due:
            self._put(c, False)

    def _put(self, packet, block):
        if block:
            self.line.buffer.send(packet)
            return
        try:
            self.line.buffer.send_nowait(packet)
        except WouldBlock:
            self.counts["overflow"] += 1


def _flip(packet, rng):
    """A copy of packet with one random bit flipped (差错)."""
    if not packet:
        return packet
    b = bytearray(packet)
    i = rng.randrange(len(b) * 8)
    b[i >> 3] ^= 1 << (i & 7)
    return bytes(b)


__all__ = ["Faults", "PhysicalLink", "FAULT_KINDS", "NONE"]
