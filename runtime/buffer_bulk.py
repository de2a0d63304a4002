"""Bulk and zero-copy transfers on a bounded buffer's ring.

SEND and RECEIVE move one message per call, through two locks and two
checks of the other side.  When a thread has many messages, or large ones,
the cost per message can be cut (buffer_ring.py has the ring itself):

    send_many      a list of messages under one lock hold: bytes copied in
                   two pieces at most (before and after the ring's wrap),
                   entries written as one array, one store of `in` per run
                   that fits
    send_into      the message is written in place by the caller's fill()
                   (a file's readinto), then published: no copy of ours
    receive_many   every message there is (or up to a count) at once, with
                   one read of the entries; consumed in quarters of the
                   capacity so that senders refill meanwhile
    receive_view   zero copy: a read-only view of the message where it lies;
                   the receiver stays inside (a *lease*: the receive lock is
                   kept, said by a busy word of its own, SideLock.hold)
                   until its next receive or release()

They are the same ring and the same rules (write, then publish; copy, then
consume), so every crash-safety argument of buffer_ring.py holds for them.
The class is mixed into Ring; its methods run in the calling thread's
process, bound like Ring's.
"""

from array import array
from bisect import bisect_left, bisect_right
from itertools import accumulate

from .buffer_layout import DEALLOCATED, ENTRY, KIND_SHIFT, LENGTH, SEND_STOP, encode, entry as _entry, unpickled

_BYTES = {bytes}                 # message types send_many passes on as they are


class BulkTransfers:
    """Ring's batched and zero-copy calls (a mixin; see the module doc)."""

    __slots__ = ()

    def send_into(self, size, fill, timeout=None):
        """SEND a raw message written in place, with no copy: wait until `size`
        bytes fit (at most the capacity), call fill(view) with a writable
        memoryview of those bytes inside the ring, and publish the first n
        bytes as one message, where n = fill(view) (0 <= n <= size; 0
        publishes nothing).  Returns n.  The view is valid only during fill,
        which runs inside the send side: other senders wait meanwhile.  fill
        may use other buffers, but a SEND on this one would write over the
        message being made: DeadlockError.  If fill raises, nothing was
        published (write, then publish).  Raises as send."""
        if type(size) is not int or size < 1:
            raise ValueError(f"send_into needs a size of at least 1 byte, not {size!r}")
        size = min(size, self.capacity)
        i, start, timeout = self._enter_send(timeout)
        tx = self.tx
        try:
            if i >= self.lim_in or start + size > self.lim_bytes:
                self._wait_space(i, start, size, timeout)
            at = self.data + start % self.capacity
            j = tx.step_out()                    # inside in a word of its own while fill runs
            try:
                with self.arena.buf[at:at + size] as view:
                    n = fill(view)
            finally:
                tx.step_in(j)
            if type(n) is not int or not 0 <= n <= size:
                raise ValueError(f"send_into: fill returned {n!r}, not a byte count from 0 to {size}")
            if n:
                _entry.pack_into(self.mm, self.ents + i % self.n * ENTRY, start, n)
                self.c_in.value = i + 1          # publish
                self.tx_i, self.tx_head = i + 1, start + n
                self._peak(i + 1)
        except BaseException:
            tx.abandon()
            raise
        self._leave_send(n)
        return n

    def send_many(self, messages, timeout=None):
        """Append every message, in order, under one lock hold, publishing each
        run that fits at once.  Returns how many.  On an exception a prefix
        was sent, and the exception carries `.sent`.

        A run is written in bulk: its bytes with one copy for the messages
        before the ring's wrap and one for those after it (a message never
        wraps: one that starts before the end runs on into the overflow
        area), its entries as one array (two pieces where the entry ring
        wraps), then one store of `in`."""
        cap = self.capacity
        datas = messages if type(messages) is list else list(messages)
        if set(map(type, datas)) <= _BYTES:      # the common case, at C speed: raw bytes only
            metas = sizes = list(map(len, datas))
        else:
            items = [encode(m) for m in datas]
            datas = [data for data, _ in items]
            sizes = list(map(len, datas))
            metas = [size | kind << KIND_SHIFT for size, (_, kind) in zip(sizes, items)]
        if not datas:
            return 0
        if max(sizes) > cap:
            raise self._too_large(max(sizes))
        sent = 0
        i, start, timeout = self._enter_send(timeout)
        try:
            c_in, mm, ents, n, base = self.c_in, self.mm, self.ents, self.n, self.data
            offs = list(accumulate(sizes, initial=start))     # message j: bytes offs[j]..offs[j+1]
            total = len(datas)
            while sent < total:
                hi = sent + max(0, min(total - sent, self.lim_in - i))
                k = bisect_right(offs, self.lim_bytes, sent, hi + 1) - 1 - sent
                if k > 0:                        # messages sent .. sent+k-1 fit: write, then publish
                    # A message lives at its start mod capacity: the messages that start at or
                    # past the next multiple of the capacity go to the front of the ring (at
                    # most one such wrap: the run spans at most `capacity` bytes).
                    wrap = bisect_left(offs, start - start % cap + cap, sent, sent + k)
                    for lo, hi_ in ((sent, wrap), (wrap, sent + k)):
                        if lo < hi_:
                            at = base + offs[lo] % cap
                            mm[at:at + offs[hi_] - offs[lo]] = b"".join(datas[lo:hi_])
                    ent = array("q", bytes(ENTRY * k))
                    ent[0::2] = array("q", offs[sent:sent + k])
                    ent[1::2] = array("q", metas[sent:sent + k])
                    slot = i % n
                    first = min(k, n - slot)
                    mm[ents + slot * ENTRY:ents + (slot + first) * ENTRY] = ent[:2 * first]
                    if k > first:
                        mm[ents:ents + (k - first) * ENTRY] = ent[2 * first:]
                    i += k
                    start = offs[sent + k]
                    c_in.value = i               # publish the whole run with one store
                    self.tx_i, self.tx_head = i, start
                    self._peak(i)
                    sent += k
                    if sent < total:             # the receiver must not sleep while we wait for space
                        self._fast_side_fence()
                        if self.c_rsleep.value:
                            self._wake(self.p_rxseq)
                if sent < total:
                    self._wait_space(i, start, sizes[sent], timeout)
        except BaseException as e:
            self.tx.abandon()
            if isinstance(e, Exception):
                e.sent = sent
            raise
        self._leave_send(sent)
        return sent

    def _enter_send(self, timeout):
        """The way into the send side for send_many and send_into (send has
        the same steps inline: it is the hot path): lock, the stop flag.
        Returns (i, start, timeout left): the next message's number and byte
        counter.  On an exception the side is left as it was."""
        tx = self.tx
        timeout = tx.enter(timeout, self._check_tx)
        try:
            if tx.died:
                self._took_over(tx)
            if self.c_flags.value & SEND_STOP:
                self._refuse_send()
            i = self.c_in.value
            return i, (self.tx_head if i == self.tx_i else self._head(i)), timeout
        except BaseException:
            tx.abandon()
            raise

    def _leave_send(self, published):
        """The way out of the send side: leave the lock, and wake a sleeping
        receiver when something was published."""
        self.tx.leave()
        if published and self.c_rsleep.value:
            self._wake(self.p_rxseq)

    def receive_many(self, max_messages=None, timeout=None, views=False):
        """Remove up to max_messages (all there are if None) at once; blocks
        only while the buffer is empty.  views=True: zero-copy, read-only
        memoryviews into the ring (pickled messages come unpickled), valid
        until this thread's next receive or release().

        The entries are read as one array; copies are consumed (`out`
        stored, a sleeping sender woken) every quarter of the capacity, so
        that senders refill the ring while a large batch is copied out.  An
        exception after some of them were consumed carries them as
        `.received` (nothing is lost to the caller)."""
        if max_messages is not None and max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages!r}")
        o, out, metas = -1, [], ()
        rx = self.rx
        if self.lease:
            self._end_lease(keep_word=views)     # views again: the held word goes on saying "inside"
        else:
            timeout = rx.enter(timeout, self._check_rx)
        try:
            if rx.died:
                self._took_over(rx)
            if self.c_flags.value & DEALLOCATED:
                raise self._deallocated()
            c_out = self.c_out
            o = c_out.value
            if o >= self.seen_in:
                self._wait_message(o, timeout)
            k = self.seen_in - o if max_messages is None else min(self.seen_in - o, max_messages)
            mm, ents, n, base, cap = self.mm, self.ents, self.n, self.data, self.capacity
            slot = o % n
            first = min(k, n - slot)
            ent = array("q", mm[ents + slot * ENTRY:ents + (slot + first) * ENTRY])
            if k > first:
                ent.frombytes(mm[ents:ents + (k - first) * ENTRY])
            starts, metas = ent[0::2], ent[1::2]
            src = self.arena.buf.toreadonly() if views else mm
            raw = max(metas) <= LENGTH           # no pickled message among them
            piece = cap if views else max(1, cap // 4)
            j = 0
            while j < k:                         # pieces of about `piece` bytes
                m = bisect_right(starts, starts[j] + piece - 1, j + 1, k)
                out += [src[base + st % cap:base + st % cap + (meta & LENGTH)]
                        for st, meta in zip(starts[j:m], metas[j:m])]
                j = m
                if not views and j < k:          # consume what is copied: the senders refill it
                    c_out.value = o + j
                    self._fast_side_fence()
                    if self.c_ssleep.value:
                        self._wake(self.p_txseq)
            if views:
                self.lease_j = rx.hold(self.lease_j)    # stay inside; consume at the next receive
                self.lease = k
            else:
                c_out.value = o + k
        except BaseException as e:
            taken = self.c_out.value - o if o >= 0 and not views else 0    # read while still inside
            self._abandon_rx()
            if taken > 0:                        # part of a large batch was consumed: hand it over
                e.received = unpickled(out[:taken], metas)
            raise
        if not views:
            rx.leave()
            if self.c_ssleep.value:
                self._wake(self.p_txseq)
        return out if raw else unpickled(out, metas)

    def receive_view(self, timeout=None):
        """Zero-copy RECEIVE: a read-only memoryview of the message inside the
        ring (an unpickled object for a pickled message), valid until this
        thread's next receive or release().  Until then this thread keeps
        the receive lock: other receivers wait."""
        return self.receive_many(1, timeout, views=True)[0]

    def release(self):
        """Consume the messages held as views, and leave the receive side."""
        if self.lease:
            self._end_lease()
            self.rx.leave()
            if self.c_ssleep.value:
                self._wake(self.p_txseq)

    def _end_lease(self, keep_word=False):
        """Consume the leased messages; the caller stays inside the receive lock
        (busy word 0 names it again).  keep_word: the caller takes views
        again at once, so it keeps its held word (still saying "inside")
        rather than free it and claim it again."""
        k, self.lease = self.lease, 0
        self.rx.resume(self.lease_j, keep_word)
        if not keep_word:
            self.lease_j = None
        self.c_out.value = self.c_out.value + k
        self._fast_side_fence()                  # `out` before reading send_sleep
        if self.c_ssleep.value:
            self._wake(self.p_txseq)
