"""The parts' calls in a free kernel with races=True: each one logged.

Like sched/wiring.py for controlled runs, `install` replaces, on this
process's part objects, the synchronisation calls by wrappers that log an
event to the calling thread's race log (racelog.py) -- stamped before a
release, after an acquire -- and otherwise do exactly what they did.  A
kernel without races pays nothing.  Memory accesses are logged by the
pager's race path (pager.py: `race_access`), thread start and exit by the
VP (vp.py).
"""

from . import context as _context
from .buffer_ring import Ring
from .sched import ops


def _log():
    return _context.current().racelog


def install(kernel):
    _locks(kernel.locks)
    _eventcounts(kernel.eventcounts)
    _buffers(kernel.buffers)
    _threads(kernel.thread_manager, kernel)


def _released(op, target, call, *args):
    """Log (stamped now), then do: a release."""
    log = _log()
    if log is not None:
        log.sync(op, target)
    return call(*args)


def _acquired(op, target, call, *args, value=None):
    """Do, then log (stamped now): an acquire."""
    result = call(*args)
    log = _log()
    if log is not None:
        log.sync(op, target, result if value is None else value)
    return result


def _locks(part):
    acquire, acquire_nowait, release = part.acquire, part.acquire_nowait, part.release

    def r_acquire(lock, tid, timeout=None):
        return _acquired(ops.ACQUIRE, ops.target(ops.LOCK, lock.id), acquire, lock, tid, timeout, value=0)

    def r_acquire_nowait(lock, tid):
        return _acquired(ops.ACQUIRE, ops.target(ops.LOCK, lock.id), acquire_nowait, lock, tid, value=0)

    def r_release(lock, tid):
        return _released(ops.RELEASE, ops.target(ops.LOCK, lock.id), release, lock, tid)

    part.acquire, part.acquire_nowait, part.release = r_acquire, r_acquire_nowait, r_release


def _eventcounts(part):
    advance, read, await_, ticket, next_ticket = part.advance, part.read, part.await_, part.ticket, \
        part.next_ticket

    def r_advance(ec):
        return _released(ops.ADVANCE, ops.target(ops.EC, ec.id), advance, ec)

    def r_read(ec):
        return _acquired(ops.READ, ops.target(ops.EC, ec.id), read, ec)

    def r_await(ec, value, timeout=None):
        return _acquired(ops.AWAIT, ops.target(ops.EC, ec.id), await_, ec, value, timeout, value=0)

    def r_ticket(seq):
        return _acquired(ops.TICKET, ops.target(ops.SEQ, seq.id), ticket, seq)

    def r_next_ticket(seq):
        return _acquired(ops.READ, ops.target(ops.SEQ, seq.id), next_ticket, seq)

    part.advance, part.read, part.await_, part.ticket, part.next_ticket = r_advance, r_read, r_await, r_ticket, \
        r_next_ticket


def _buffers(part):
    deallocate, close_end = part.deallocate, part.close_end

    def r_deallocate(slot, ident):
        return _released(ops.DEALLOC_BUF, ops.target(ops.BUF, ident), deallocate, slot, ident)

    def r_close_end(slot, ident, index):
        return _released(ops.CLOSE, ops.target(ops.BUF, ident), close_end, slot, ident, index)

    part.deallocate, part.close_end = r_deallocate, r_close_end
    part.ring_class = LoggedRing


class LoggedRing(Ring):
    """A ring whose sends and receives are logged (module doc)."""

    __slots__ = ("slot",)

    def _sent(self, call, *args):
        log = _log()
        if log is not None:
            log.sync(ops.SEND, ops.target(ops.BUF, self.id))
        return call(self, *args)

    def _received(self, call, *args, count=len):
        try:
            got = call(self, *args)
        except Exception:
            log = _log()
            if log is not None:                   # an end of stream is ordered after the close
                log.sync(ops.RECEIVE, ops.target(ops.BUF, self.id), 0, failed=True)
            raise
        log = _log()
        if log is not None:
            log.sync(ops.RECEIVE, ops.target(ops.BUF, self.id), count(got))
        return got

    def send(self, message, timeout=None):
        return self._sent(Ring.send, message, timeout)

    def send_nowait(self, message):
        return self._sent(Ring.send_nowait, message)

    def send_many(self, messages, timeout=None):
        return self._sent(Ring.send_many, messages, timeout)

    def send_into(self, size, fill, timeout=None):
        return self._sent(Ring.send_into, size, fill, timeout)

    def receive(self, timeout=None):
        return self._received(Ring.receive, timeout, count=lambda _m: 1)

    def receive_nowait(self):
        return self._received(Ring.receive_nowait, count=lambda _m: 1)

    def receive_many(self, max_messages=None, timeout=None, views=False):
        return self._received(Ring.receive_many, max_messages, timeout, views)

    def set_flags(self, bits):
        log = _log()
        if log is not None:
            log.sync(ops.CLOSE, ops.target(ops.BUF, self.id))
        return Ring.set_flags(self, bits)


def _threads(mgr, kernel):
    allocate, join = mgr.allocate, mgr.join

    def r_allocate(procedure, as_id, args):
        log = _log()
        if log is None or not callable(procedure):
            return allocate(procedure, as_id, args)
        stamp = log.logs.stamp()                  # before the child can start
        tid = allocate(procedure, as_id, args)
        log.sync(ops.SPAWN, ops.target(ops.ALLOC, ops.SPAWN), tid, stamp=stamp)
        return tid

    def r_join(tid, timeout=None):
        try:
            status = join(tid, timeout)
        except TimeoutError:
            raise
        except BaseException:                     # ThreadFailed: it ended all the same
            _joined(tid)
            raise
        _joined(tid)
        return status

    def _joined(tid):
        log = _log()
        if log is not None and isinstance(tid, int):
            log.sync(ops.JOIN, ops.target(ops.THREAD, tid))

    mgr.allocate, mgr.join = r_allocate, r_join


__all__ = ["install", "LoggedRing"]
