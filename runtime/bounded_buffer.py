"""Bounded buffers (有界缓冲区): ALLOCATE_BOUNDED_BUFFER, SEND, RECEIVE, DEALLOCATE.

The lecture's virtual link between modules.  This module is the interface:
the handles a program holds, the ends of a stream, and the textbook calls.
The buffer table in the main arena is buffer_table.py; the ring itself --
how a message is written, published, received and consumed in shared
memory, and why a kill at any point is harmless -- is buffer_ring.py.

Handles.  `BoundedBuffer(slot, id)` is a small picklable value: the table
slot and the buffer id, which is kernel-wide and never reused, so a stale
handle fails with BufferDeallocated instead of naming a newer buffer.  Its
methods are the Pythonic layer (`send`, `receive`, `send_nowait`, ...,
`close`, `statistics`); SEND and RECEIVE are those methods, nothing more.

Streams (pipes).  A stream has writer and reader *ends*:

    w, r = buf.writer(), buf.reader()     # pass w to one thread, r to another
    w.write(data); w.close()              # the reader drains, then gets end of stream
    r.read(65536) -> bytes, b"" at end    # or: for message in r: ...
    r.close()                             # writers get ReaderClosed (a BrokenPipeError)

The outcomes, in trio's split between "you closed it" and "the other side
broke it":

    receiving, every writer end closed and drained   EndOfStream (read() -> b"")
    sending, every reader end closed                 ReaderClosed (BrokenPipeError)
    sending on a stream closed for writing           StreamClosed (ValueError)
    anything, after DEALLOCATE_BOUNDED_BUFFER        BufferDeallocated

`buf.close()` on the buffer handle itself closes the stream for writing at
once (the simple case: one writer, no ends).  An end belongs to one thread at
a time: the one that created it, until another thread uses it (that thread
adopts it) or it is handed over with `end.give(tid)`.  When its owner ends,
by exit, exception or kill, the end is closed for it, as a process's file
descriptors are; so a writer that crashes still ends its reader's stream,
and a reader that stops early (`head`) stops its writers promptly.

"""

from . import checks
from . import context as _cx
from .buffer_layout import WRITERS_GONE
from .buffer_table import MAX_ENDS, READER, STREAM_CHUNK, WRITER
from .errors import BufferDeallocated, EndOfStream, StreamClosed


# --- handles -------------------------------------------------------------------------------

class BoundedBuffer:
    """A bounded buffer handle: a small picklable value (table slot, buffer id).
    Pass it to ALLOCATE_THREAD; every method works in any thread.  The mapped
    ring is cached in the handle per process (not pickled)."""

    __slots__ = ("slot", "id", "_r")

    def __init__(self, slot, ident):
        checks.integer("BoundedBuffer", "an int table slot", slot)
        checks.integer("BoundedBuffer", "an int buffer id", ident)
        self.slot = slot
        self.id = ident
        self._r = None

    def __reduce__(self):
        return (BoundedBuffer, (self.slot, self.id))

    def __eq__(self, other):
        return isinstance(other, BoundedBuffer) and (self.slot, self.id) == (other.slot, other.id)

    def __hash__(self):
        return hash(("BoundedBuffer", self.slot, self.id))

    def __repr__(self):
        return f"<BoundedBuffer {self.id}>"

    def _ring(self):
        r = self._r = _cx.current().kernel.buffers.bind(self.slot, self.id)
        return r

    # SEND -----------------------------------------------------------------------------

    def send(self, message, timeout=None):
        """SEND: append message, blocking while the buffer is full (at most
        `timeout` seconds, then TimeoutError).  bytes-like messages travel raw;
        anything else is pickled.  Raises MessageTooLarge, BufferDeallocated,
        ReaderClosed, StreamClosed."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        if timeout is not None:
            checks.timeout("BoundedBuffer.send", timeout)
        r.send(message, timeout)

    _SEND = send      # what SEND calls: only buffers and writer ends have it (a socket's send is not ours)

    def send_nowait(self, message):
        """SEND that never blocks: WouldBlock when full (or another sender is busy)."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        r.send_nowait(message)

    def send_many(self, messages, timeout=None):
        """SEND each message, in order, under one lock hold (far fewer
        synchronisations than a loop of send).  Returns how many were sent."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        return r.send_many(checks.messages("BoundedBuffer.send_many", messages, timeout), timeout)

    def send_into(self, size, fill, timeout=None):
        """SEND with no copy: fill(view) writes the message straight into the
        ring (a writable memoryview of `size` bytes, at most the capacity,
        valid during the call only) and returns how many bytes it wrote;
        those are published as one raw message (0: nothing is sent).
        Returns that count.  For example `buffer.send_into(65536,
        file.readinto)` moves a file's next chunk into the buffer with the
        one copy the read itself makes.  fill must not SEND on this buffer
        (DeadlockError); other buffers are fine."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        checks.send_into("BoundedBuffer.send_into", size, fill, timeout)
        return r.send_into(size, fill, timeout)

    # RECEIVE -------------------------------------------------------------------------

    def receive(self, timeout=None):
        """RECEIVE: remove and return the oldest message, blocking while the
        buffer is empty.  Raises BufferDeallocated, EndOfStream, TimeoutError."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        if timeout is not None:
            checks.timeout("BoundedBuffer.receive", timeout)
        return r.receive(timeout)

    _RECEIVE = receive    # what RECEIVE calls: only buffers and reader ends have it

    def receive_nowait(self):
        """RECEIVE that never blocks: WouldBlock when empty (or another receiver is busy)."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        return r.receive_nowait()

    def receive_many(self, max_messages=None, timeout=None, views=False):
        """Remove up to max_messages at once (all that are there if None);
        blocks only while empty.  views=True returns read-only memoryviews
        into the ring, valid until this thread's next receive or release()."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        if max_messages is not None or timeout is not None:
            checks.receive_many("BoundedBuffer.receive_many", max_messages, timeout)
        return r.receive_many(max_messages, timeout, views)

    def receive_view(self, timeout=None):
        """Zero-copy RECEIVE: a read-only memoryview of the message in the
        ring, valid until this thread's next receive or release(); meanwhile
        other receivers wait."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        if timeout is not None:
            checks.timeout("BoundedBuffer.receive_view", timeout)
        return r.receive_view(timeout)

    def release(self):
        """Give back the messages held as views by receive_view / views=True."""
        r = self._r
        if r is not None and r.ctx is _cx._current:
            r.release()

    def __iter__(self):
        """Receive messages until end of stream."""
        while True:
            try:
                yield self.receive()
            except EndOfStream:
                return

    # streams and life ----------------------------------------------------------------

    def writer(self):
        """A new writer end, owned by the calling thread (see the module doc)."""
        return BufferWriter(self, _cx.current().kernel.buffers.open_end(self.slot, self.id, WRITER))

    def reader(self):
        """A new reader end, owned by the calling thread."""
        return BufferReader(self, _cx.current().kernel.buffers.open_end(self.slot, self.id, READER))

    def close(self):
        """Close the stream for writing, for every writer at once: receivers
        drain what is there, then get EndOfStream; later sends raise StreamClosed."""
        r = self._r
        if r is None or r.ctx is not _cx._current:
            r = self._ring()
        r.set_flags(WRITERS_GONE)

    def deallocate(self):
        """DEALLOCATE_BOUNDED_BUFFER."""
        _cx.current().kernel.buffers.deallocate(self.slot, self.id)

    def statistics(self):
        """This buffer's statistics() record (see Buffers.statistics)."""
        for row in _cx.current().kernel.buffers.statistics():
            if row["id"] == self.id:
                return row
        raise BufferDeallocated(f"bounded buffer {self.id} was deallocated")

    def _check_invariants(self):
        self._ring().check_invariants()


class _End:
    """One end of a stream: the buffer, the end's index in its table entry, and
    process-private state (who we last acted for, leftover bytes of read())."""

    __slots__ = ("buffer", "index", "_ctx", "_r", "_closed", "_left")
    _role = 0

    def __init__(self, buffer, index):
        if not isinstance(buffer, BoundedBuffer):
            raise checks.refused(type(self).__name__, "a BoundedBuffer", buffer)
        checks.integer(type(self).__name__, f"an int end index from 0 to {MAX_ENDS - 1}", index, 0, MAX_ENDS - 1)
        self.buffer = buffer
        self.index = index
        self._ctx = None
        self._r = None
        self._closed = False
        self._left = b""

    def __reduce__(self):
        return (type(self), (self.buffer, self.index))

    def __repr__(self):
        return f"<{type(self).__name__} of buffer {self.buffer.id}, end {self.index}>"

    def _enter(self):
        """First use by this thread: adopt the end, bind the ring."""
        ctx = _cx.current()
        if self._closed:
            raise StreamClosed(f"{self!r} was closed")
        part = ctx.kernel.buffers
        if not part.take_end(self.buffer.slot, self.buffer.id, self.index, ctx.tid):
            self._closed = True
            raise StreamClosed(f"{self!r} was closed")
        self._r = part.bind(self.buffer.slot, self.buffer.id)
        self._ctx = ctx
        return self._r

    def give(self, tid):
        """Hand this end to thread tid: it closes when tid ends (even if tid
        never uses it).  For a runner that starts a thread with an end."""
        part = _cx.current().kernel.buffers
        checks.integer(f"{type(self).__name__}.give", "a thread id (an int from ALLOCATE_THREAD)", tid)
        if not part.take_end(self.buffer.slot, self.buffer.id, self.index, tid):
            raise StreamClosed(f"{self!r} was closed")
        self._ctx = None

    def close(self):
        """Close this end (idempotent)."""
        if self._closed:
            return
        self._closed = True
        r = self._r
        if r is not None and r.ctx is _cx._current:
            r.release()
        self._ctx = None
        _cx.current().kernel.buffers.close_end(self.buffer.slot, self.buffer.id, self.index)

    @property
    def closed(self):
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BufferWriter(_End):
    """The writing end of a stream: send, send_nowait, send_many, send_into,
    write, close."""

    __slots__ = ()
    _role = WRITER

    def send(self, message, timeout=None):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        if timeout is not None:
            checks.timeout("BufferWriter.send", timeout)
        r.send(message, timeout)

    _SEND = send      # see BoundedBuffer._SEND

    def send_nowait(self, message):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        r.send_nowait(message)

    def send_many(self, messages, timeout=None):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        return r.send_many(checks.messages("BufferWriter.send_many", messages, timeout), timeout)

    def send_into(self, size, fill, timeout=None):
        """BoundedBuffer.send_into through this end."""
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        checks.send_into("BufferWriter.send_into", size, fill, timeout)
        return r.send_into(size, fill, timeout)

    def write(self, data):
        """Send bytes as a stream: chunks of at most 64 KiB (or the capacity).
        Returns len(data).  ReaderClosed when nobody reads any more."""
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        try:
            view = memoryview(data).cast("B")
        except (TypeError, ValueError):
            raise checks.refused("BufferWriter.write", "bytes-like data (bytes, bytearray, a contiguous "
                                 "memoryview)", data) from None
        size = len(view)
        chunk = min(STREAM_CHUNK, r.capacity)
        if size <= chunk:
            if size:
                r.send(view)
            return size
        r.send_many([view[i:i + chunk] for i in range(0, size, chunk)])
        return size

    def flush(self):
        """Nothing is buffered on the writing side; here for file-like code."""


class BufferReader(_End):
    """The reading end of a stream: receive, receive_nowait, receive_many,
    receive_view, read, read_view, iteration, close."""

    __slots__ = ()
    _role = READER

    def receive(self, timeout=None):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        if timeout is not None:
            checks.timeout("BufferReader.receive", timeout)
        return r.receive(timeout)

    _RECEIVE = receive    # see BoundedBuffer._RECEIVE

    def receive_nowait(self):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        return r.receive_nowait()

    def receive_many(self, max_messages=None, timeout=None, views=False):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        if max_messages is not None or timeout is not None:
            checks.receive_many("BufferReader.receive_many", max_messages, timeout)
        return r.receive_many(max_messages, timeout, views)

    def receive_view(self, timeout=None):
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        if timeout is not None:
            checks.timeout("BufferReader.receive_view", timeout)
        return r.receive_view(timeout)

    def release(self):
        c, r = _cx._current, self._r
        if c is not None and self._ctx is c and r.ctx is c:
            r.release()

    def read_view(self):
        """The next piece of the stream with no copy: a read-only memoryview
        into the buffer (as receive_view), valid until this thread's next
        receive or read of this buffer, release() or close(); b"" at end of
        stream."""
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        if self._left:
            data, self._left = self._left, b""
            return data
        try:
            view = r.receive_view()
        except EndOfStream:
            return b""
        if type(view) is not memoryview:
            raise TypeError(f"read_view() found a {type(view).__name__} message in a byte stream")
        return view

    def read(self, n=-1):
        """Up to n bytes of the stream (all of it until end of stream if n < 0);
        b"" at end of stream.  Messages must be bytes-like."""
        c, r = _cx._current, self._r
        if self._ctx is not c or r.ctx is not c or c is None:
            r = self._enter()
        if n is not None:
            checks.integer("BufferReader.read", "a byte count n (an int; n < 0 or None: all of the stream)", n)
        if n is None or n < 0:
            parts = [self._left]
            self._left = b""
            while True:
                try:
                    parts.append(_as_bytes(r.receive()))
                except EndOfStream:
                    return b"".join(parts)
        if n == 0:
            return b""
        data = self._left
        if not data:
            try:
                data = _as_bytes(r.receive())
            except EndOfStream:
                return b""
        if len(data) > n:
            self._left = data[n:]
            return data[:n]
        self._left = b""
        return data

    def __iter__(self):
        """Messages until end of stream."""
        while True:
            try:
                yield self.receive()
            except EndOfStream:
                return


def _as_bytes(message):
    if type(message) is not bytes:
        raise TypeError(f"read() found a {type(message).__name__} message in a byte stream")
    return message


# --- the textbook calls ---------------------------------------------------------------------

def ALLOCATE_BOUNDED_BUFFER(n, capacity=None):
    """A new bounded buffer holding at most n messages and `capacity` bytes
    (default 1 MiB).  ValueError for n < 1."""
    return BoundedBuffer(*_cx.current().kernel.buffers.allocate(n, capacity))


def SEND(buffer, message):
    """Append message to buffer; waits while it is full.  BufferDeallocated,
    MessageTooLarge.  SEND calls `buffer._SEND(message)`: a runtime class that
    takes SEND (a bundle, a circuit) says so with `_SEND = send`, so that an
    object that merely has a send method (a socket, a generator) is refused."""
    try:
        send = buffer._SEND
    except AttributeError:
        raise checks.refused("SEND", "a bounded buffer from ALLOCATE_BOUNDED_BUFFER (or its writer end, a "
                             "bundle, a circuit)", buffer, checks.target_hint(buffer, "send", "_SEND")) from None
    send(message)


def RECEIVE(buffer):
    """Remove and return the oldest message; waits while the buffer is empty.
    bytes for bytes-like messages, an equal object for any other.  BufferDeallocated."""
    try:
        receive = buffer._RECEIVE
    except AttributeError:
        raise checks.refused("RECEIVE", "a bounded buffer from ALLOCATE_BOUNDED_BUFFER (or its reader end, a "
                             "bundle, a circuit)", buffer, checks.target_hint(buffer, "receive", "_RECEIVE")) from None
    return receive()


def DEALLOCATE_BOUNDED_BUFFER(buffer):
    """Remove buffer; threads blocked in it wake with BufferDeallocated."""
    if isinstance(buffer, _End):
        buffer = buffer.buffer
    if not isinstance(buffer, BoundedBuffer):
        raise checks.refused("DEALLOCATE_BOUNDED_BUFFER", "a bounded buffer from ALLOCATE_BOUNDED_BUFFER", buffer)
    buffer.deallocate()


__all__ = ["ALLOCATE_BOUNDED_BUFFER", "SEND", "RECEIVE", "DEALLOCATE_BOUNDED_BUFFER",
           "BoundedBuffer", "BufferWriter", "BufferReader"]
