"""A bounded buffer's ring seen from outside: the gate, counters, invariants.

buffer_ring.py moves the messages; these methods only read its words, from
any process, without taking a side lock:

    can_send, can_receive   the controlled gate's question (sched/): would
                            the call run now, or would the thread block?
    counters                a racy snapshot for k.statistics() and vos top
    check_invariants        the ring's structure when quiet (tests)

The class is mixed into Ring (the layout is drawn in buffer_layout.py).
"""

from . import mutex
from .buffer_layout import (DEALLOCATED, ENTRY, KIND_SHIFT, LENGTH, PICKLED, R_FLAGS, R_IN, R_OUT, R_RDIED,
                            R_RPEAK, R_RSLEEP, R_RWAITS, R_SDIED, R_SPEAK, R_SPEAKB, R_SSLEEP, R_SWAITS, RAW,
                            READERS_GONE, SEND_STOP, WRITERS_GONE, entry as _entry, word as _word)


class RingView:
    """What anyone may read of a Ring without entering it."""

    __slots__ = ()

    def can_send(self, size, tid, threads):
        """Would a SEND of `size` bytes by thread tid run now, without waiting
        (it succeeds, or it raises because the buffer is gone or closed)?"""
        if self.c_flags.value & SEND_STOP or self.ends_check() & READERS_GONE:
            return True
        if self._held_by_other(self.tx, tid, threads):
            return False
        i, o = self.c_in.value, self.c_out.value
        start = self._head(i)
        tail = _entry.unpack_from(self.mm, self.ents + o % self.n * ENTRY)[0] if o < i else start
        return i < o + self.n and start + size <= tail + self.capacity

    def can_receive(self, tid, threads):
        """Would a RECEIVE by thread tid run now (a message, or end of stream)?"""
        if self.c_flags.value & DEALLOCATED:
            return True
        if self._held_by_other(self.rx, tid, threads):
            return False
        if self.c_in.value > self.c_out.value:
            return True
        return bool((self.c_flags.value | self.ends_check()) & WRITERS_GONE)

    @staticmethod
    def _held_by_other(lock, tid, threads):
        h = lock.holder()
        return h is not None and h != tid and mutex._holder_state_live(threads, h)

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
