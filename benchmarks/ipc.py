"""`vos bench ipc`: bounded buffers against the host's pipes and queues.

Every row moves the same messages the same way, in the same run:

  * vos: producer and consumer are VPs (ALLOCATE_THREAD) joined by one
    bounded buffer (16384 messages, 1 MiB); they stop at end of stream
    (the producers' writer ends close);
  * os.pipe: processes doing raw os.write / os.read of the same size on one
    pipe (64 KiB of pipe buffer, the host's default), stopping at EOF;
  * multiprocessing.Pipe (send_bytes / recv_bytes; 1 -> 1 only: it is a
    point-to-point link), multiprocessing.Queue (put / get, one None per
    producer at the end), and faster_fifo.Queue when it is importable.

Timing: every worker first waits at a start line (vos: RECEIVE on a `go`
buffer; peers: an Event), the clock starts when the line opens, and each
consumer notes when it finished; throughput = messages / (last finish -
start).  Process start-up is outside the measurement.  Each figure is the
median of `runs` repetitions; ratio = vos / peer (> 1: vos is ahead).

Rows: 1 -> 1 and 4 -> 4 producers -> consumers at 64 B, 4 KiB and 64 KiB;
4 -> 4 at 64 B through a bundle of 4 buffers (aggregation, runtime/bundle.py:
the same slots and bytes in all) against one buffer and os.pipe;
64 B batched (send_many / receive_many, 64 a call); 64 KiB zero-copy
(receive_view: the consumer reads the message where it lies); a 64 B
ping-pong round trip; the floor (_BareRing: a ring with nothing but the data
movement) at 64 B and in the round trip; and an A/B of the glibc malloc
tuning (buffer_malloc_tuning) on 64 KiB batched receives.
"""

import ctypes
import mmap
import multiprocessing
import os
import queue
import statistics
import struct
import time
from functools import partial

from runtime import Kernel
from runtime.bundle import ALLOCATE_BUNDLE
from runtime.errors import EndOfStream
from runtime.textbook import ALLOCATE_BOUNDED_BUFFER, ALLOCATE_THREAD

from .harness import Row, table

TITLE = "bounded buffers vs os.pipe, multiprocessing.Pipe/Queue, faster_fifo: throughput, round trip"

try:
    import faster_fifo
except ImportError:            # optional peer
    faster_fifo = None

SIZES = (64, 4096, 65536)
COUNTS = {64: 400_000, 4096: 100_000, 65536: 20_000}
QUICK_COUNTS = {64: 60_000, 4096: 20_000, 65536: 4_000}
BATCH = 64
SLOTS, CAPACITY = 16384, 1 << 20
BUNDLE = 4
_mp = multiprocessing.get_context("fork")
_PEER_TIMEOUT = 300.0
_now = time.perf_counter


def _payload(size):
    return bytes((i * 7 + 1) & 0xFF for i in range(size))


def _label(size):
    return f"{size} B" if size < 1024 else f"{size // 1024} KiB"


# --- vos workers (run as VPs) ------------------------------------------------------------

def _vos_producer(go, w, n, size, batch):
    m = _payload(size)
    go.receive()
    if batch:
        for _ in range(n // batch):
            w.send_many([m] * batch)
    else:
        send = w.send
        for _ in range(n):
            send(m)
    w.close()
    return n


def _vos_consumer(go, r, mode):
    go.receive()
    count = nbytes = 0
    try:
        if mode == "single":
            receive = r.receive
            while True:
                nbytes += len(receive())
                count += 1
        elif mode == "batch":
            receive_many = r.receive_many
            while True:
                got = receive_many()
                count += len(got)
                nbytes += sum(map(len, got))
        else:                                  # "views": zero-copy, one message at a time
            receive_view = r.receive_view        # (a view stays valid, and its bytes taken, until the
            while True:                          # next call: the sender has the rest of the ring)
                nbytes += len(receive_view())
                count += 1
    except EndOfStream:
        pass
    return _now(), count, nbytes


def _time_round_trips(send, receive, m, n):
    """n // 10 round trips to warm up, then the mean time of n more.  (The
    pong side answers n + n // 10 times.)"""
    for _ in range(n // 10):
        send(m)
        receive()
    t0 = _now()
    for _ in range(n):
        send(m)
        receive()
    return (_now() - t0) / n


def _vos_ping(go, ab, ba, n, size):
    m = _payload(size)
    go.receive()
    return _time_round_trips(ab.send, ba.receive, m, n)


def _vos_pong(go, ab, ba, n):
    go.receive()
    for _ in range(n + n // 10):
        ba.send(ab.receive())
    return n


def _vos_run(k, producers, consumers, n, size, mode="single"):
    """One measurement: (messages per second, bytes per second)."""
    b = ALLOCATE_BOUNDED_BUFFER(SLOTS, capacity=CAPACITY)
    go = ALLOCATE_BOUNDED_BUFFER(producers + consumers)
    batch = BATCH if mode == "batch" else 0
    share = n // producers // max(batch, 1) * max(batch, 1)
    ws = [b.writer() for _ in range(producers)]
    rs = [b.reader() for _ in range(consumers)]
    tids = [ALLOCATE_THREAD(_vos_consumer, k.address_space, go, r, mode) for r in rs]
    ptids = [ALLOCATE_THREAD(_vos_producer, k.address_space, go, w, share, size, batch) for w in ws]
    for t, w in zip(ptids, ws):
        w.give(t)
    for t, r in zip(tids, rs):
        r.give(t)
    _wait_all_waiting(k, tids + ptids, f"receive {go.id}")
    t0 = _now()
    go.send_many([b""] * (producers + consumers))
    results = [k.join(t, timeout=300) for t in tids]
    for t in ptids:
        k.join(t, timeout=300)
    b.deallocate()
    go.deallocate()
    return _rates(t0, results)


def _bundle_producer(go, b, n, size):
    m = _payload(size)
    go.receive()
    send = b.send
    for _ in range(n):
        send(m)
    return n


def _bundle_consumer(go, b):
    go.receive()
    count = nbytes = 0
    receive = b.receive
    try:
        while True:
            nbytes += len(receive())
            count += 1
    except EndOfStream:
        pass
    return _now(), count, nbytes


def _bundle_run(k, producers, consumers, n, size, members=BUNDLE):
    """The same stream through a bundle of `members` buffers holding the same
    slots and bytes in all as the one buffer of _vos_run."""
    b = ALLOCATE_BUNDLE(members, SLOTS // members, capacity=CAPACITY // members)
    go = ALLOCATE_BOUNDED_BUFFER(producers + consumers)
    tids = [ALLOCATE_THREAD(_bundle_consumer, k.address_space, go, b) for _ in range(consumers)]
    ptids = [ALLOCATE_THREAD(_bundle_producer, k.address_space, go, b, n // producers, size)
             for _ in range(producers)]
    _wait_all_waiting(k, tids + ptids, f"receive {go.id}")
    t0 = _now()
    go.send_many([b""] * (producers + consumers))
    for t in ptids:
        k.join(t, timeout=300)
    b.close()                                   # end of stream: the consumers drain every member, then stop
    results = [k.join(t, timeout=300) for t in tids]
    b.deallocate()
    go.deallocate()
    return _rates(t0, results)


def _vos_round_trip(k, n, size):
    ab, ba, go = ALLOCATE_BOUNDED_BUFFER(4), ALLOCATE_BOUNDED_BUFFER(4), ALLOCATE_BOUNDED_BUFFER(2)
    a = ALLOCATE_THREAD(_vos_ping, k.address_space, go, ab, ba, n, size)
    b = ALLOCATE_THREAD(_vos_pong, k.address_space, go, ab, ba, n)
    _wait_all_waiting(k, [a, b], f"receive {go.id}")
    go.send_many([b"", b""])
    rtt = k.join(a, timeout=300)
    k.join(b, timeout=300)
    for x in (ab, ba, go):
        x.deallocate()
    return rtt


def _wait_all_waiting(k, tids, what):
    deadline = time.monotonic() + 60
    want = set(tids)
    while True:
        rows = {r["tid"]: r for r in k.thread_info() if r["tid"] in want}
        if all(r["state"] == "WAITING" and r["waits_for"] == what for r in rows.values()) and len(rows) == len(want):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark workers did not reach the start line")
        time.sleep(0.001)


def _rates(t0, results):
    finish = max(r[0] for r in results)
    count = sum(r[1] for r in results)
    nbytes = sum(r[2] for r in results)
    elapsed = finish - t0
    return count / elapsed, nbytes / elapsed


# --- peer workers (plain processes) ----------------------------------------------------------

def _peer_run(make, producers, consumers, n, size):
    """make() -> (producer_target, producer_args, consumer_target, consumer_args,
    cleanup, stop): stop(consumers) ends a queue once every producer is done."""
    start_line = _mp.Barrier(producers + consumers + 1)
    go = _mp.Event()
    results = _mp.SimpleQueue()
    prod, pargs, cons, cargs, cleanup, stop = make()
    share = n // producers
    procs = [_mp.Process(target=_peer_consumer, args=(start_line, go, results, cons, cargs, size))
             for _ in range(consumers)]
    procs += [_mp.Process(target=_peer_producer, args=(start_line, go, prod, pargs, share, size, consumers))
              for _ in range(producers)]
    for p in procs:
        p.start()
    cleanup()                                   # the parent's copies of the ends (EOF needs it)
    start_line.wait()
    t0 = _now()
    go.set()
    if stop is not None:
        for p in procs[consumers:]:
            p.join()                            # a producer exits once its queue is flushed
        stop(consumers)
    out = []
    for _ in range(consumers):
        if not _wait_readable(results, _PEER_TIMEOUT):
            for p in procs:
                p.kill()
            raise TimeoutError("a peer benchmark did not finish")
        out.append(results.get())
    for p in procs:
        p.join()
    return _rates(t0, out)


def _wait_readable(simple_queue, timeout):
    from multiprocessing.connection import wait
    return bool(wait([simple_queue._reader], timeout))


def _peer_producer(start_line, go, target, args, n, size, consumers):
    m = _payload(size)
    start_line.wait()
    go.wait()
    target(m, n, consumers, *args)


def _peer_consumer(start_line, go, results, target, args, size):
    start_line.wait()
    go.wait()
    count, nbytes = target(size, *args)
    results.put((_now(), count, nbytes))


def _pipe_make():
    r, w = os.pipe()
    return (_pipe_write, (r, w), _pipe_read, (r, w), lambda: (os.close(r), os.close(w)), None)


def _pipe_write(m, n, consumers, r, w):
    os.close(r)
    write = os.write
    for _ in range(n):
        write(w, m)
    os.close(w)


def _pipe_read(size, r, w):
    os.close(w)
    read = os.read
    nbytes = 0
    while True:
        d = read(r, size)
        if not d:
            return nbytes // size, nbytes
        nbytes += len(d)


def _mp_pipe_make():
    a, b = _mp.Pipe(duplex=False)              # a receives, b sends
    return (_mp_pipe_send, (a, b), _mp_pipe_recv, (a, b), lambda: (a.close(), b.close()), None)


def _mp_pipe_send(m, n, consumers, a, b):
    a.close()
    send = b.send_bytes
    for _ in range(n):
        send(m)
    b.close()


def _mp_pipe_recv(size, a, b):
    b.close()
    recv = a.recv_bytes
    count = nbytes = 0
    try:
        while True:
            nbytes += len(recv())
            count += 1
    except EOFError:
        return count, nbytes


def _queue_make(kind):
    def make():
        if kind == "mp":
            q = _mp.Queue()
        else:
            q = faster_fifo.Queue(max_size_bytes=CAPACITY * 2)
        return (_queue_put, (q,), _queue_get, (q,), lambda: None, lambda c: [q.put(None) for _ in range(c)])
    return make


def _queue_put(m, n, consumers, q):
    put = q.put
    if faster_fifo is not None and isinstance(q, faster_fifo.Queue):
        for _ in range(n):
            put(m, timeout=_PEER_TIMEOUT)         # its default gives up after 10 s
        return
    for _ in range(n):
        put(m)


def _queue_get(size, q):
    get = q.get
    if faster_fifo is not None and isinstance(q, faster_fifo.Queue):
        get = lambda: _ff_get(q)  # noqa: E731
    count = nbytes = 0
    while True:
        m = get()
        if m is None:
            return count, nbytes
        count += 1
        nbytes += len(m)


def _ff_get(q):
    """faster_fifo's get, retried: with several consumers its blocking get
    sometimes raises Empty long before its timeout (seen here at 4 -> 4)."""
    deadline = time.monotonic() + _PEER_TIMEOUT
    while True:
        try:
            return q.get(timeout=1.0)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise


def _ff_batch_make():
    q = faster_fifo.Queue(max_size_bytes=CAPACITY * 2)
    return (_ff_put_many, (q,), _ff_get_many, (q,), lambda: None, lambda c: [q.put(None) for _ in range(c)])


def _ff_put_many(m, n, consumers, q):
    for _ in range(n // BATCH):
        q.put_many([m] * BATCH, timeout=_PEER_TIMEOUT)


def _ff_get_many(size, q):
    count = nbytes = 0
    while True:
        for m in q.get_many(max_messages_to_get=1000, timeout=_PEER_TIMEOUT):
            if m is None:
                return count, nbytes
            count += 1
            nbytes += len(m)


# Queues end with one None per consumer, put by the parent once every producer has
# exited (an mp.Queue producer exits only after its feeder thread flushed), so all
# messages precede the stop signs; the parent's reaction (about a millisecond) counts
# against the queue.

def _pipe_round_trip(n, size):
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    p = _mp.Process(target=_pipe_pong, args=(r1, w2, n + n // 10, size))
    p.start()
    rtt = _time_round_trips(partial(os.write, w1), partial(os.read, r2, size), _payload(size), n)
    p.join()
    for fd in (r1, w1, r2, w2):
        os.close(fd)
    return rtt


def _pipe_pong(r, w, n, size):
    for _ in range(n):
        os.write(w, os.read(r, size))


def _mp_pipe_round_trip(n, size):
    a, b = _mp.Pipe()
    p = _mp.Process(target=_mp_pipe_pong, args=(b, n + n // 10))
    p.start()
    rtt = _time_round_trips(a.send_bytes, a.recv_bytes, _payload(size), n)
    p.join()
    return rtt


def _mp_pipe_pong(b, n):
    for _ in range(n):
        b.send_bytes(b.recv_bytes())


# --- the floor: a bare ring, what one Python call a message allows ---------------------------

class _BareRing:
    """The least a ring of these messages can do in Python: the same layout
    as vos's (entries of (start, length), a byte ring, counters that only
    grow), one sender and one receiver, and nothing else -- no locks, no
    flags or end of stream (the receiver counts), no sleeping (both sides
    spin), no pickling, no checks.  One function call a message, as SEND and
    RECEIVE are.  Its rows show what is left for everything vos adds."""

    def __init__(self, n, capacity):
        self.mm = mm = mmap.mmap(-1, 256 + 16 * n + 2 * capacity)    # MAP_SHARED: fork shares it
        c_in, c_out = ctypes.c_int64.from_buffer(mm, 64), ctypes.c_int64.from_buffer(mm, 128)
        ents, data = 256, 256 + 16 * n
        entry = struct.Struct("qq")
        pack, unpack = entry.pack_into, entry.unpack_from
        tx = [0, 0, n, capacity]     # sender: next message, its first byte, and how far it may go
                                     # (messages, bytes) before it reads `out` again
        rx = [0, 0]                  # receiver: next message, messages it knows are published

        def send(m):
            i, head, lim, lim_bytes = tx
            size = len(m)
            while i >= lim or head + size > lim_bytes:
                o = c_out.value
                lim = o + n
                lim_bytes = (unpack(mm, ents + o % n * 16)[0] if o < i else head) + capacity
            at = data + head % capacity
            mm[at:at + size] = m
            pack(mm, ents + i % n * 16, head, size)
            c_in.value = i + 1
            tx[:] = i + 1, head + size, lim, lim_bytes

        def receive():
            o, seen = rx
            if o >= seen:
                while c_in.value <= o:
                    pass
                rx[1] = c_in.value
            s, size = unpack(mm, ents + o % n * 16)
            at = data + s % capacity
            m = mm[at:at + size]
            rx[0] = o + 1
            c_out.value = o + 1
            return m

        self.send, self.receive = send, receive


def _bare_make(n):
    def make():
        ring = _BareRing(SLOTS, CAPACITY)
        return (_bare_send, (ring,), _bare_receive, (ring, n), lambda: None, None)
    return make


def _bare_send(m, n, consumers, ring):
    send = ring.send
    for _ in range(n):
        send(m)


def _bare_receive(size, ring, n):
    receive = ring.receive
    nbytes = 0
    for _ in range(n):
        nbytes += len(receive())
    return n, nbytes


def _bare_round_trip(n, size):
    ab, ba = _BareRing(4, 4096), _BareRing(4, 4096)
    p = _mp.Process(target=_bare_pong, args=(ab, ba, n + n // 10))
    p.start()
    rtt = _time_round_trips(ab.send, ba.receive, _payload(size), n)
    p.join()
    return rtt


def _bare_pong(ab, ba, n):
    send, receive = ba.send, ab.receive
    for _ in range(n):
        send(receive())


# --- the table ------------------------------------------------------------------------------

def _median_rates(fn, runs):
    samples = [fn() for _ in range(runs)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def main(console, quick=False, runs=5):
    if quick:
        runs = min(runs, 3)
    counts = QUICK_COUNTS if quick else COUNTS
    rows = []
    seen = {}                                  # (producers, size, who) -> rates, for the floor rows
    queue_peers = [("mp.Queue", _queue_make("mp"))]
    if faster_fifo is not None:
        queue_peers.append(("faster_fifo.Queue", _queue_make("ff")))
    with Kernel() as k:
        for producers in (1, 4):
            for size in SIZES:
                if quick and producers == 4 and size == 4096:
                    continue
                n = counts[size] // (2 if producers > 1 else 1)
                vos = _median_rates(lambda: _vos_run(k, producers, producers, n, size), runs)
                peers = [("os.pipe", _pipe_make)]
                if producers == 1 and not quick:
                    peers.append(("mp.Pipe", _mp_pipe_make))
                peers += queue_peers
                case = f"{producers}->{producers} {_label(size)}"
                for name, make in peers:
                    peer = _median_rates(lambda: _peer_run(make, producers, producers, n, size), runs)
                    rows.append(_row(case, size, vos, name, peer, producers == 1 and _goal(size, name)))
                    seen[producers, size, name] = peer
                seen[producers, size, "vos"] = vos
        # aggregation: the 4->4 64 B stream through a bundle of 4 buffers (runtime/bundle.py)
        n = counts[64] // 2
        bundle = _median_rates(lambda: _bundle_run(k, 4, 4, n, 64), runs)
        rows.append(_row(f"4->4 64 B, bundle of {BUNDLE}", 64, bundle, "vos, one buffer", seen[4, 64, "vos"],
                         None, "聚合: the same slots in 4 members"))
        rows.append(_row(f"4->4 64 B, bundle of {BUNDLE}", 64, bundle, "os.pipe", seen[4, 64, "os.pipe"], None))
        # batched and zero-copy
        n = counts[64] * 2
        vos = _median_rates(lambda: _vos_run(k, 1, 1, n, 64, "batch"), runs)
        pipe = _median_rates(lambda: _peer_run(_pipe_make, 1, 1, n, 64), runs)
        rows.append(_row(f"1->1 64 B batched x{BATCH}", 64, vos, "os.pipe", pipe, 1.5,
                         "send_many / receive_many"))
        if faster_fifo is not None:
            ff = _median_rates(lambda: _peer_run(_ff_batch_make, 1, 1, n, 64), runs)
            rows.append(_row(f"1->1 64 B batched x{BATCH}", 64, vos, "faster_fifo put_many", ff, None,
                             "get_many"))
        n = counts[65536]
        vos = _median_rates(lambda: _vos_run(k, 1, 1, n, 65536, "views"), runs)
        pipe = _median_rates(lambda: _peer_run(_pipe_make, 1, 1, n, 65536), runs)
        rows.append(_row("1->1 64 KiB zero-copy", 65536, vos, "os.pipe", pipe, 4.0,
                         "send / receive_view"))
        # round trip
        n = rtt_n = 5_000 if quick else 20_000
        vos_rtt = statistics.median(_vos_round_trip(k, n, 64) for _ in range(runs))
        pipe_rtt = statistics.median(_pipe_round_trip(n, 64) for _ in range(runs))
        rows.append(Row("ping-pong 64 B round trip", "s", vos_rtt, "os.pipe", pipe_rtt, higher_is_better=False,
                        goal=5.0, note="goal: at most 0.2x the pipe's time"))
        if not quick:
            mp_rtt = statistics.median(_mp_pipe_round_trip(n, 64) for _ in range(runs))
            rows.append(Row("ping-pong 64 B round trip", "s", vos_rtt, "mp.Pipe", mp_rtt, higher_is_better=False))
        # the floor: a bare ring in the same run (see _BareRing)
        n = counts[64]
        bare = _median_rates(lambda: _peer_run(_bare_make(n), 1, 1, n, 64), runs)
        for name in ("os.pipe", "mp.Queue"):
            rows.append(_row("the floor: bare ring 1->1 64 B", 64, bare, name, seen[1, 64, name], None,
                             "no locks, flags, sleeps or checks"))
        rows.append(_row("1->1 64 B: vos against the floor", 64, seen[1, 64, "vos"], "bare ring", bare, None,
                         "what SEND/RECEIVE's safety costs"))
        bare_rtt = statistics.median(_bare_round_trip(rtt_n, 64) for _ in range(runs))
        rows.append(Row("the floor: bare ring round trip", "s", bare_rtt, "os.pipe", pipe_rtt, higher_is_better=False,
                        note="what a Python ring can reach; the goal asks 5x"))
    # glibc malloc: the same batched 64 KiB receives with and without the tuning (A/B, same run).
    # mallopt cannot be undone, and a forked VP inherits its parent's malloc settings, so every
    # sample boots its kernel in a fresh interpreter (spawn), the two kinds taking turns.
    n = counts[65536]
    samples = {True: [], False: []}
    for _ in range(runs):
        for tuning in (True, False):
            samples[tuning].append(_in_fresh_process(_malloc_sample, tuning, n))
    tuned, plain = ([statistics.median(s[i] for s in samples[t]) for i in (0, 1)] for t in (True, False))
    rows.append(_row("1->1 64 KiB batched, malloc tuned", 65536, tuned, "vos, glibc defaults", plain, None,
                     "M_TRIM_THRESHOLD / M_MMAP_THRESHOLD raised; each run in a new interpreter"))
    return table(console, "vos bench ipc", rows, runs)


def _malloc_sample(tuning, n):
    with Kernel(buffer_malloc_tuning=tuning) as k:
        return _vos_run(k, 1, 1, n, 65536, "batch")


def _in_fresh_process(fn, *args):
    """fn(*args) in a new interpreter (multiprocessing spawn); its result."""
    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_call_and_send, args=(theirs, fn, args))
    p.start()
    theirs.close()
    try:
        if not mine.poll(_PEER_TIMEOUT):
            raise TimeoutError(f"{fn.__name__} did not finish in a fresh process")
        ok, value = mine.recv()
    except EOFError:
        raise RuntimeError(f"{fn.__name__} died in a fresh process (exit code {p.exitcode})") from None
    finally:
        p.join(timeout=_PEER_TIMEOUT)
        if p.is_alive():
            p.kill()
        mine.close()
    if not ok:
        raise value
    return value


def _call_and_send(conn, fn, args):
    try:
        conn.send((True, fn(*args)))
    except BaseException as e:          # the parent re-raises it
        conn.send((False, e))


def _goal(size, peer):
    if peer == "os.pipe":
        return {64: 1.0, 65536: 4.0}.get(size)
    if peer == "mp.Queue" and size == 64:
        return 6.0
    return None


def _row(case, size, vos, peer_name, peer, goal, note=""):
    """Messages per second for 64 B rows, bytes per second otherwise; the other
    figure goes in the note."""
    if size <= 64:
        extra = f"{vos[1] / 1e9:.3f} vs {peer[1] / 1e9:.3f} GB/s"
        return Row(case, " msg/s", vos[0], peer_name, peer[0], goal=goal or None,
                   note="; ".join(x for x in (note, extra) if x))
    extra = f"{vos[0] / 1e3:.0f}k vs {peer[0] / 1e3:.0f}k msg/s"
    return Row(case, "B/s", vos[1], peer_name, peer[1], goal=goal or None,
               note="; ".join(x for x in (note, extra) if x))
