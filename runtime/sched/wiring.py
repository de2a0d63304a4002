"""The parts' calls in a controlled kernel: each one through the gate.

A controlled kernel (Kernel(schedule=...)) builds the same parts as a free
one; `install` then replaces, on this process's part objects, every call of
the textbook interface by a wrapper that checks its arguments (a bad
argument raises at once, as in free mode, and is no step), announces the
operation at the gate, and, once the thread is chosen, executes the call's
`_nowait` twin -- which cannot block, because a thread is chosen only when
its operation can proceed (gate.py).  The free-mode methods are untouched:
a free kernel pays nothing for any of this.

Memory has no wrapper: a controlled kernel caches no translation (pager.py),
so every LOAD, STORE and RSM takes the pager's slow path, whose first act is
the gate (faults.py); LOAD_BYTES and STORE_BYTES ask the gate once per call.

Where the controlled run differs from free running, on purpose:
  * send_many and SEND on a stream are one step per message: another
    sender's message may come between two of them;
  * receive_many takes, in one step, the messages that are there when it
    runs (at least one);
  * YIELD is a yield point and nothing more; the processors= limit does not
    apply (exactly one thread runs).
"""

from contextlib import contextmanager

from .. import checks
from .. import context as _context
from ..errors import KernelError, NoSuchThread
from ..buffer_layout import encode
from ..buffer_ring import Ring
from . import ops


def _gate():
    return _context.current().gate


@contextmanager
def _step(g, box=None):
    """Execute a chosen step: record it when it ends, as failed if it raised."""
    try:
        yield box
    except BaseException:
        g.failed()
        raise
    g.done(box[0] if box else 0)


def install(kernel):
    """Route this process's parts of a controlled kernel through the gate."""
    _locks(kernel.locks)
    _eventcounts(kernel.eventcounts)
    _buffers(kernel.buffers)
    _threads(kernel.thread_manager, kernel)


# --- locks ---------------------------------------------------------------------------------

def _locks(part):
    allocate, acquire_nowait, release = part.allocate, part.acquire_nowait, part.release

    def c_allocate(name=None):
        g = _gate()
        g.point(ops.ALLOC_LOCK, ops.target(ops.ALLOC, ops.ALLOC_LOCK))
        box = [0]
        with _step(g, box):
            lock = allocate(name)
            box[0] = lock.id
        return lock

    def c_acquire(lock, tid, timeout=None):
        part._prepare(lock, "ACQUIRE")
        g = _gate()
        g.point(ops.ACQUIRE, ops.target(ops.LOCK, lock.id), timeout=timeout)
        with _step(g):
            acquire_nowait(lock, tid)

    def c_acquire_nowait(lock, tid):
        part._prepare(lock, "Lock.acquire_nowait")
        g = _gate()
        g.point(ops.ACQUIRE_NOWAIT, ops.target(ops.LOCK, lock.id))
        with _step(g):
            acquire_nowait(lock, tid)

    def c_release(lock, tid):
        part._prepare(lock, "RELEASE")
        g = _gate()
        g.point(ops.RELEASE, ops.target(ops.LOCK, lock.id))
        with _step(g):
            release(lock, tid)

    part.allocate, part.acquire, part.acquire_nowait, part.release = c_allocate, c_acquire, c_acquire_nowait, \
        c_release


# --- eventcounts and sequencers -------------------------------------------------------------

def _eventcounts(part):
    from ..eventcounts import EVENTCOUNT
    allocate, advance, read, ticket, next_ticket = (part.allocate, part.advance, part.read, part.ticket,
                                                    part.next_ticket)

    def c_allocate(kind, name=None):
        g = _gate()
        op = ops.ALLOC_EC if kind == EVENTCOUNT else ops.ALLOC_SEQ
        g.point(op, ops.target(ops.ALLOC, op))
        box = [0]
        with _step(g, box):
            handle = allocate(kind, name)
            box[0] = handle.id
        return handle

    def c_advance(ec):
        part._ec(ec, "ADVANCE")
        g = _gate()
        g.point(ops.ADVANCE, ops.target(ops.EC, ec.id))
        with _step(g):
            advance(ec)

    def c_read(ec):
        part._ec(ec)
        g = _gate()
        g.point(ops.READ, ops.target(ops.EC, ec.id))
        box = [0]
        with _step(g, box):
            box[0] = read(ec)
        return box[0]

    def c_await(ec, value, timeout=None):
        part._ec(ec, "AWAIT")
        checks.integer("AWAIT", "an int value (AWAIT(ec, value) returns once READ(ec) > value)", value)
        g = _gate()
        g.point(ops.AWAIT, ops.target(ops.EC, ec.id), arg=max(-(1 << 62), min(value, 1 << 62)), timeout=timeout)
        box = [0]
        with _step(g, box):
            box[0] = read(ec)
            if not box[0] > value:
                raise KernelError(f"controlled run: AWAIT(eventcount {ec.id}, {value}) was chosen with the count "
                                  f"at {box[0]} (a bug in vos: please report it)")

    def c_ticket(seq):
        part._pointer(seq, 2, "TICKET")
        g = _gate()
        g.point(ops.TICKET, ops.target(ops.SEQ, seq.id))
        box = [0]
        with _step(g, box):
            box[0] = ticket(seq)
        return box[0]

    def c_next_ticket(seq):
        part._pointer(seq, 2, "Sequencer.read")
        g = _gate()
        g.point(ops.READ, ops.target(ops.SEQ, seq.id))
        box = [0]
        with _step(g, box):
            box[0] = next_ticket(seq)
        return box[0]

    part.allocate, part.advance, part.read, part.await_ = c_allocate, c_advance, c_read, c_await
    part.ticket, part.next_ticket = c_ticket, c_next_ticket


# --- bounded buffers ------------------------------------------------------------------------

def _buffers(part):
    allocate, deallocate, close_end = part.allocate, part.deallocate, part.close_end

    def c_allocate(n, capacity=None):
        g = _gate()
        g.point(ops.ALLOC_BUF, ops.target(ops.ALLOC, ops.ALLOC_BUF))
        box = [0]
        with _step(g, box):
            slot, ident = allocate(n, capacity)
            box[0] = ident
        return slot, ident

    def c_deallocate(slot, ident):
        g = _gate()
        g.point(ops.DEALLOC_BUF, ops.target(ops.BUF, ident), arg2=slot)
        with _step(g):
            deallocate(slot, ident)

    def c_close_end(slot, ident, index):
        g = _gate()
        if g.inside:                              # an end closed by a thread's death: part of its exit
            return close_end(slot, ident, index)
        g.point(ops.CLOSE, ops.target(ops.BUF, ident), arg2=slot)
        with _step(g):
            close_end(slot, ident, index)

    part.allocate, part.deallocate, part.close_end = c_allocate, c_deallocate, c_close_end
    part.ring_class = ControlledRing


class ControlledRing(Ring):
    """A ring whose calls are steps of the controlled run (see the module doc).
    `slot` is the buffer's table slot, set by Buffers when it makes the ring."""

    __slots__ = ("slot",)

    def _gated(self, op, arg=0, timeout=None):
        g = _gate()
        g.point(op, ops.target(ops.BUF, self.id), arg=arg, arg2=self.slot, timeout=timeout)
        return g

    def send(self, message, timeout=None):
        data, _kind = encode(message)
        g = self._gated(ops.SEND, len(data), timeout)
        with _step(g, [len(data)]):
            Ring.send_nowait(self, message)

    def send_nowait(self, message):
        data, _kind = encode(message)
        g = self._gated(ops.SEND_NOWAIT, len(data))
        with _step(g, [len(data)]):
            Ring.send_nowait(self, message)

    def send_many(self, messages, timeout=None):
        sent = 0
        for m in messages:
            try:
                self.send(m, timeout)
            except Exception as e:
                e.sent = sent
                raise
            sent += 1
        return sent

    def send_into(self, size, fill, timeout=None):
        g = self._gated(ops.SEND, min(size, self.capacity) if type(size) is int else 0, timeout)
        box = [0]
        with _step(g, box):
            box[0] = Ring.send_into(self, size, fill, timeout)
        return box[0]

    def receive(self, timeout=None):
        g = self._gated(ops.RECEIVE, 0, timeout)
        box = [0]
        with _step(g, box):
            m = Ring.receive_nowait(self)
            box[0] = 1                           # messages taken (the race detector matches them)
        return m

    def receive_nowait(self):
        g = self._gated(ops.RECEIVE_NOWAIT)
        box = [0]
        with _step(g, box):
            m = Ring.receive_nowait(self)
            box[0] = 1
        return m

    def receive_many(self, max_messages=None, timeout=None, views=False):
        g = self._gated(ops.RECEIVE, 0, timeout)
        box = [0]
        with _step(g, box):
            got = Ring.receive_many(self, max_messages, timeout, views)
            box[0] = len(got)
        return got

    def receive_view(self, timeout=None):
        return self.receive_many(1, timeout, views=True)[0]

    def release(self):
        if not self.lease:
            return
        g = self._gated(ops.CLOSE)
        with _step(g):
            Ring.release(self)

    def set_flags(self, bits):
        g = _gate()
        if g is None or g.inside:
            return Ring.set_flags(self, bits)
        g.point(ops.CLOSE, ops.target(ops.BUF, self.id), arg2=self.slot)
        with _step(g):
            Ring.set_flags(self, bits)


# --- threads ---------------------------------------------------------------------------------

def _threads(mgr, kernel):
    allocate, join, destroy = mgr.allocate, mgr.join, mgr.destroy

    def c_allocate(procedure, as_id, args):
        if not callable(procedure):
            return allocate(procedure, as_id, args)       # raises TypeError at once
        kernel.check_address_space(as_id)
        g = _gate()
        g.point(ops.SPAWN, ops.target(ops.ALLOC, ops.SPAWN))
        box = [0]
        with _step(g, box):
            tid = allocate(procedure, as_id, args)
            g.announce_start(tid % kernel.config.max_threads, tid)
            box[0] = tid
        return tid

    def c_join(tid, timeout=None):
        checks.integer("k.join", "a thread id (an int from ALLOCATE_THREAD)", tid)
        checks.timeout("k.join", timeout)
        if tid in (0, _context.current().tid):
            return join(tid, timeout)                     # KernelError at once: no step, no hang
        kernel.threads.off(tid)                           # NoSuchThread at once
        g = _gate()
        g.point(ops.JOIN, ops.target(ops.THREAD, tid), timeout=timeout)
        with _step(g):
            return join(tid, timeout)

    def c_destroy(tid):
        if tid == 0:
            return destroy(tid)                           # KernelError at once
        kernel.threads.off(tid)
        g = _gate()
        g.point(ops.DESTROY, ops.target(ops.THREAD, tid))
        with _step(g):
            destroy(tid)
            kernel.sched.clear_record(tid % kernel.config.max_threads)

    def c_yield():
        g = _gate()
        g.point(ops.YIELD)
        g.done()

    def ended(tid):
        try:
            return kernel.threads.state(tid) in (4, 5)    # EXITED, FAULTED
        except NoSuchThread:
            return True

    mgr.allocate, mgr.join, mgr.destroy, mgr.yield_, mgr.ended = c_allocate, c_join, c_destroy, c_yield, ended
