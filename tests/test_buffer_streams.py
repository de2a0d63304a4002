"""Streams over bounded buffers: writer and reader ends, end of stream, a
reader that stops early, ends that close when their thread dies -- what the
shell's pipelines (`ls -la | grep cse`) are made of."""

import os
import signal
import time
import zlib

import pytest

from runtime import Kernel
from runtime.bounded_buffer import BufferReader, BufferWriter
from runtime.errors import (BufferDeallocated, DeadlockError, EndOfStream, OutOfResources, ReaderClosed,
                            StreamClosed, ThreadFailed)
from runtime.textbook import (ALLOCATE_BOUNDED_BUFFER, ALLOCATE_THREAD, DEALLOCATE_BOUNDED_BUFFER,
                              DESTROY_THREAD, RECEIVE, SEND)
from waiting import wait_for, waiting_on

pytestmark = pytest.mark.timeout(60)

DATA = bytes(range(256)) * 4096 + b"tail"          # 1 MiB and a bit: several 64 KiB chunks


# --- stage procedures (module level) --------------------------------------------------

def cat(w, data, piece):
    """Write data in pieces of `piece` bytes, then close: a pipeline's first stage."""
    for i in range(0, len(data), piece):
        w.write(data[i:i + piece])
    w.close()
    return len(data)


def digest(data):
    return len(data), zlib.crc32(data)


def slurp(r):
    """Read everything until end of stream (exit statuses are small: a digest)."""
    return digest(r.read())


def read_in_pieces(r, n):
    parts = []
    while True:
        chunk = r.read(n)
        if not chunk:
            return digest(b"".join(parts)), max(map(len, parts), default=0)
        parts.append(chunk)


def yes(w):
    """Write forever, until nobody reads: `yes | head`."""
    count = 0
    try:
        while True:
            w.write(b"y\n" * 4096)
            count += 1
    except ReaderClosed as e:
        return ("ReaderClosed", isinstance(e, BrokenPipeError), count)


def head(r, chunks):
    got = [r.read(8192) for _ in range(chunks)]
    r.close()
    return sum(map(len, got))


def messages_until_end(r):
    return list(r)


def write_and_block(w):
    w.send(b"first")
    while True:
        w.send(b"more")


def use_then_exit(w, message):
    w.send(message)
    return "used it"


def never_use(w):
    return "never touched it"


def receive_outcome(r):
    try:
        return ("got", r.receive())
    except Exception as e:
        return (type(e).__name__,)


# --- end of stream -----------------------------------------------------------------------

def test_a_pipe_carries_bytes_and_ends_with_end_of_stream():
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(8, capacity=1 << 18)
        w, r = b.writer(), b.reader()
        tw = ALLOCATE_THREAD(cat, k.address_space, w, DATA, 100_000)
        tr = ALLOCATE_THREAD(slurp, k.address_space, r)
        assert k.join(tw, timeout=30) == len(DATA)
        assert k.join(tr, timeout=30) == digest(DATA)
        st = b.statistics()
        assert st["end_of_stream"] and st["writers_open"] == 0
        assert st["bytes_sent"] == len(DATA)
        pieces = [len(DATA[i:i + 100_000]) for i in range(0, len(DATA), 100_000)]
        assert st["sent"] == sum(-(-p // 65536) for p in pieces)     # chunks of at most 64 KiB


def test_read_with_a_size_returns_at_most_that_and_empty_at_end():
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(8, capacity=1 << 18)
        w, r = b.writer(), b.reader()
        tw = ALLOCATE_THREAD(cat, k.address_space, w, DATA, 70_000)
        tr = ALLOCATE_THREAD(read_in_pieces, k.address_space, r, 5000)
        data, biggest = k.join(tr, timeout=30)
        assert data == digest(DATA) and biggest <= 5000
        k.join(tw, timeout=10)


def test_end_of_stream_wakes_a_waiting_reader_and_iteration_stops():
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(4)
        w, r = b.writer(), b.reader()
        t = ALLOCATE_THREAD(messages_until_end, k.address_space, r)
        w.send({"one": 1})
        w.send(b"two")
        wait_for(lambda: waiting_on(k, t, f"receive {b.id}"))
        w.close()
        assert k.join(t, timeout=10) == [{"one": 1}, b"two"]
        with pytest.raises(StreamClosed):
            w.send(b"after close")                     # you closed it
        with pytest.raises(EndOfStream):
            RECEIVE(b)
        # r was adopted by t, and closed when t ended: nobody reads any more
        with pytest.raises(ReaderClosed):
            SEND(b, b"on the raw handle")
        with pytest.raises(StreamClosed):
            r.read()


def test_end_of_stream_waits_for_every_writer():
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(4)
        w1, w2, r = b.writer(), b.writer(), b.reader()
        w1.send(b"a")
        w1.close()
        w2.send(b"b")
        assert r.receive() == b"a" and r.receive() == b"b"
        with pytest.raises(TimeoutError):
            r.receive(timeout=0.05)                    # w2 is still open: no end yet
        w2.close()
        with pytest.raises(EndOfStream):
            r.receive(timeout=5)


def test_close_on_the_buffer_handle_ends_the_stream_for_all():
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(4)
        SEND(b, b"last words")
        b.close()
        assert RECEIVE(b) == b"last words"
        with pytest.raises(EndOfStream):
            RECEIVE(b)
        assert list(b) == []
        with pytest.raises(StreamClosed):
            SEND(b, b"too late")


# --- a reader that stops early ----------------------------------------------------------

def test_a_reader_that_stops_early_stops_its_writer_promptly():
    """`yes | head`: head reads a little and closes; yes, blocked on a full
    buffer, wakes with ReaderClosed (a BrokenPipeError)."""
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(4, capacity=1 << 16)
        w, r = b.writer(), b.reader()
        ty = ALLOCATE_THREAD(yes, k.address_space, w)
        wait_for(lambda: waiting_on(k, ty, f"send {b.id}"))      # it filled the buffer
        th = ALLOCATE_THREAD(head, k.address_space, r, 3)
        assert k.join(th, timeout=10) == 3 * 8192
        t0 = time.monotonic()
        outcome, is_broken_pipe, count = k.join(ty, timeout=10)
        assert outcome == "ReaderClosed" and is_broken_pipe and count >= 4
        assert time.monotonic() - t0 < 2
        assert b.statistics()["readers_gone"]


def test_a_killed_reader_stops_its_writer():
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(4, capacity=1 << 16)
        w, r = b.writer(), b.reader()
        ty = ALLOCATE_THREAD(yes, k.address_space, w)
        tr = ALLOCATE_THREAD(messages_until_end, k.address_space, r)   # adopts r, then is killed
        wait_for(lambda: b.statistics()["received"] > 0)
        DESTROY_THREAD(tr)
        assert k.join(ty, timeout=10)[0] == "ReaderClosed"
        with pytest.raises(ThreadFailed):
            k.join(tr)


# --- ends close when their thread dies ------------------------------------------------------

def test_a_destroyed_writer_ends_the_stream():
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(2)
        w, r = b.writer(), b.reader()
        t = ALLOCATE_THREAD(write_and_block, k.address_space, w)
        wait_for(lambda: waiting_on(k, t, f"send {b.id}"))
        DESTROY_THREAD(t)
        assert list(r) == [b"first", b"more"]


def hold_open(w, never):
    """Keep a writer end (given to us) open: wait for a message that never comes."""
    return RECEIVE(never)


def test_a_pipeline_destroyed_all_at_once_never_sees_its_end_of_stream():
    """DESTROY_THREAD of a writer alone ends its reader's stream, and the
    reader finishes normally: a shell that destroyed `cat | wc -l` stage by
    stage on Ctrl-C let `wc` print 0.  destroy_all kills both before it
    buries either (burying closes the ends): the reader is destroyed."""
    with Kernel() as k:
        never = ALLOCATE_BOUNDED_BUFFER(1)
        for together in (False, True):
            b = ALLOCATE_BOUNDED_BUFFER(2)
            w, r = b.writer(), b.reader()
            tw = ALLOCATE_THREAD(hold_open, k.address_space, w, never)
            w.give(tw)
            tr = ALLOCATE_THREAD(messages_until_end, k.address_space, r)
            wait_for(lambda: waiting_on(k, tw, f"receive {never.id}") and waiting_on(k, tr, f"receive {b.id}"))
            if together:
                k.thread_manager.destroy_all([tw, tr])
                with pytest.raises(ThreadFailed) as info:
                    k.join(tr, timeout=10)
                assert info.value.reason == "destroyed"
            else:
                DESTROY_THREAD(tw)
                assert k.join(tr, timeout=10) == []          # the end of its stream: it finished
            with pytest.raises(ThreadFailed):
                k.join(tw, timeout=10)
            b.deallocate()


def test_a_writer_killed_by_sigkill_ends_the_stream_without_a_join():
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(2)
        w, r = b.writer(), b.reader()
        t = ALLOCATE_THREAD(write_and_block, k.address_space, w)
        wait_for(lambda: waiting_on(k, t, f"send {b.id}"))
        pid = next(row["pid"] for row in k.thread_info() if row["tid"] == t)
        os.kill(pid, signal.SIGKILL)
        assert list(r) == [b"first", b"more"]          # nobody buried it yet: noticed all the same
        with pytest.raises(ThreadFailed):
            k.join(t, timeout=10)


def test_an_end_used_by_a_thread_closes_when_it_exits():
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(2)
        w, r = b.writer(), b.reader()
        t = ALLOCATE_THREAD(use_then_exit, k.address_space, w, b"hello")
        assert k.join(t, timeout=10) == "used it"
        assert r.receive() == b"hello"
        with pytest.raises(EndOfStream):
            r.receive(timeout=5)


def test_give_hands_an_end_to_a_thread_that_never_uses_it():
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(2)
        w, r = b.writer(), b.reader()
        t = ALLOCATE_THREAD(never_use, k.address_space, w)
        w.give(t)
        assert k.join(t, timeout=10) == "never touched it"
        with pytest.raises(EndOfStream):
            r.receive(timeout=5)


def test_an_end_belongs_to_whoever_created_it_until_used_elsewhere():
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(2)
        w, r = b.writer(), b.reader()
        t = ALLOCATE_THREAD(never_use, k.address_space, w)   # passed, but not used: still ours
        k.join(t, timeout=10)
        with pytest.raises(TimeoutError):
            r.receive(timeout=0.05)
        w.send(b"still open")
        assert r.receive() == b"still open"


# --- misuse and limits ---------------------------------------------------------------------

def test_ends_are_picklable_and_limited():
    import pickle
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(2)
        w = b.writer()
        w2 = pickle.loads(pickle.dumps(w))
        assert isinstance(w2, BufferWriter) and w2.index == w.index and w2.buffer == b
        ends = [b.reader() for _ in range(15)]
        assert all(isinstance(e, BufferReader) for e in ends)
        with pytest.raises(OutOfResources):
            b.writer()
        ends[0].close()
        ends[0].close()                                  # idempotent
        with pytest.raises(StreamClosed):
            ends[0].receive()


def test_deallocation_reaches_the_ends():
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(2)
        w, r = b.writer(), b.reader()
        t = ALLOCATE_THREAD(receive_outcome, k.address_space, r)
        wait_for(lambda: waiting_on(k, t, f"receive {b.id}"))
        DEALLOCATE_BOUNDED_BUFFER(w)                     # an end names its buffer too
        assert k.join(t, timeout=10) == ("BufferDeallocated",)
        with pytest.raises(BufferDeallocated):
            w.send(b"x")


# --- zero copy: send_into and read_view -------------------------------------------------

def file_into(w, path, chunk):
    """A `cat FILE` stage with no copy of its own: readinto straight into the buffer."""
    moved = 0
    with open(path, "rb", buffering=0) as f:
        while n := w.send_into(chunk, f.readinto):
            moved += n
    w.close()
    return moved


def slurp_views(r):
    parts = []
    while view := r.read_view():
        assert type(view) is memoryview and view.readonly
        parts.append(bytes(view))
    return digest(b"".join(parts))


def test_send_into_and_read_view_carry_a_file_unchanged(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(DATA)
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(8, capacity=1 << 18)
        w, r = b.writer(), b.reader()
        src = ALLOCATE_THREAD(file_into, k.address_space, w, str(path), 1 << 16)
        dst = ALLOCATE_THREAD(slurp_views, k.address_space, r)
        w.give(src)
        r.give(dst)
        assert k.join(src, timeout=30) == len(DATA)
        assert k.join(dst, timeout=30) == digest(DATA)
        assert b.statistics()["sent"] == -(-len(DATA) // (1 << 16))     # one message per chunk


def test_send_into_publishes_what_fill_wrote_and_nothing_when_it_fails():
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(4, capacity=1024)

        def fill(view):
            view[:5] = b"hello"
            return 5
        assert b.send_into(100, fill) == 5
        assert b.send_into(100, lambda view: 0) == 0            # nothing written: nothing sent
        with pytest.raises(ZeroDivisionError):
            b.send_into(100, lambda view: 1 // 0)               # write, then publish: nothing published
        with pytest.raises(ValueError, match="fill returned"):
            b.send_into(100, lambda view: 101)
        with pytest.raises(ValueError):
            b.send_into(0, fill)
        b.send(b"after")                                        # the send side was left free
        assert [b.receive(), b.receive()] == [b"hello", b"after"]
        assert b.statistics()["sent"] == 2
        b._check_invariants()


def send_one(b, message):
    b.send(message)
    return "sent"


@pytest.mark.parametrize("biased", [True, False], ids=["biased", "eager"])
def test_a_fill_that_uses_another_buffer_still_keeps_other_senders_out(biased):
    """fill runs inside the send side; a call it makes on another buffer must
    not make the thread look outside (another sender would write message i too)."""
    with Kernel(buffer_bias=biased) as k:
        a, log = ALLOCATE_BOUNDED_BUFFER(8, capacity=1024), ALLOCATE_BOUNDED_BUFFER(8)
        second = []

        def fill(view):
            log.send(b"filling")                                # another buffer, from inside
            second.append(ALLOCATE_THREAD(send_one, k.address_space, a, b"SECOND"))
            wait_for(lambda: waiting_on(k, second[0], f"send {a.id}"))   # it waits: we are inside
            view[:5] = b"FIRST"
            return 5
        assert a.send_into(16, fill) == 5
        assert k.join(second[0], timeout=30) == "sent"
        assert [a.receive(), a.receive()] == [b"FIRST", b"SECOND"]
        assert log.receive() == b"filling"


def test_a_fill_that_sends_on_its_own_buffer_is_refused():
    with Kernel():
        a = ALLOCATE_BOUNDED_BUFFER(8, capacity=1024)

        def fill(view):
            a.send(b"NESTED")                                   # would write over this very message
            return 0
        with pytest.raises(DeadlockError, match="send_into's fill"):
            a.send_into(16, fill)
        a.send(b"after")                                        # nothing published, the side is free
        assert a.receive() == b"after" and a.statistics()["sent"] == 1


def test_send_into_reserves_at_most_the_capacity():
    with Kernel():
        a = ALLOCATE_BOUNDED_BUFFER(4, capacity=100)
        assert a.send_into(1 << 20, lambda view: len(view)) == 100
        assert len(a.receive()) == 100


def test_read_view_after_a_partial_read_and_at_end_of_stream():
    with Kernel():
        b = ALLOCATE_BOUNDED_BUFFER(4)
        w, r = b.writer(), b.reader()
        w.write(b"abcdef")
        w.close()
        assert r.read(2) == b"ab"
        assert bytes(r.read_view()) == b"cdef"                  # the rest of the piece read() split
        assert r.read_view() == b""
        r.close()


def test_read_view_refuses_an_object_in_a_byte_stream():
    with Kernel():
        b = ALLOCATE_BOUNDED_BUFFER(4)
        w, r = b.writer(), b.reader()
        w.send({"not": "bytes"})
        with pytest.raises(TypeError, match="read_view"):
            r.read_view()
        r.close()
        w.close()
