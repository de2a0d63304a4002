"""`vos bench sync`: locks, eventcounts and sequencers against their peers.

Rows (each against its peer in the same run; medians of `runs` repetitions):
  * uncontended ACQUIRE + RELEASE (textbook calls) vs multiprocessing.Lock
    acquire() + release().  Goal: at most 3x the peer's time (ratio >= 0.33),
    although ours also records its holder (owner-died recovery) and counts
    acquisitions.
  * the same through the Pythonic twins: `with lock:` vs `with mp_lock:`.
  * the floor of this design: the fast path's two compare-and-swaps through
    ctypes on a lock's word, with no Python around them, vs mp.Lock.  The
    first row's note names the atomics in use (atomics.IMPLEMENTATION: the
    instruction page, or libatomic when VOS_NO_INSTRUCTION_PAGE=1).
  * two VPs hammering one lock (ACQUIRE + RELEASE in a loop, started together)
    vs two processes hammering one multiprocessing.Lock: acquisitions per second.
  * AWAIT/ADVANCE ping-pong between two VPs vs a one-byte ping-pong over two
    os.pipe()s between two processes: the round trip.  Goal: at most 0.2x
    the pipe's round trip (ratio >= 5) when each VP has a core of its own.
  * TICKET throughput in one thread vs incrementing a multiprocessing.Value
    under its own lock; and two VPs taking tickets at once vs two processes
    incrementing the Value.

All VPs measure with time.monotonic() (one clock for every process on the
host) between a common start (a barrier) and their end; the span is from the
first start to the last end.
"""

import multiprocessing
import os
import time

from runtime import Kernel, atomics, mutex
from runtime.textbook import (ACQUIRE, ADVANCE, ALLOCATE_EVENTCOUNT, ALLOCATE_LOCK, ALLOCATE_SEQUENCER,
                              ALLOCATE_THREAD, AWAIT, RELEASE, TICKET)

from .harness import Row, median, table

TITLE = "locks, eventcounts, sequencers vs multiprocessing.Lock, os.pipe, multiprocessing.Value"

_mp = multiprocessing.get_context("fork")


# --- in VPs -------------------------------------------------------------------------

def _vp_hammer(lock, n, ready, nthreads):
    ADVANCE(ready)
    AWAIT(ready, nthreads - 1)
    t0 = time.monotonic()
    for _ in range(n):
        ACQUIRE(lock)
        RELEASE(lock)
    return t0, time.monotonic()


def _vp_ping(mine, theirs, n, first):
    t0 = time.monotonic()
    if first:
        for i in range(n):
            ADVANCE(mine)
            AWAIT(theirs, i)
    else:
        for i in range(n):
            AWAIT(theirs, i)
            ADVANCE(mine)
    return t0, time.monotonic()


def _vp_tickets(seq, n, ready, nthreads):
    ADVANCE(ready)
    AWAIT(ready, nthreads - 1)
    t0 = time.monotonic()
    for _ in range(n):
        TICKET(seq)
    return t0, time.monotonic()


def _span(k, tids):
    spans = [k.join(t, timeout=300) for t in tids]
    return max(e for _, e in spans) - min(s for s, _ in spans)


# --- peers in plain processes -----------------------------------------------------------

def _mp_hammer(lock, n, barrier, out):
    barrier.wait()
    t0 = time.monotonic()
    for _ in range(n):
        lock.acquire()
        lock.release()
    out.put((t0, time.monotonic()))


def _mp_value(value, n, barrier, out):
    barrier.wait()
    t0 = time.monotonic()
    for _ in range(n):
        with value.get_lock():
            value.value += 1
    out.put((t0, time.monotonic()))


def _mp_span(target, args, nprocs):
    barrier, out = _mp.Barrier(nprocs), _mp.Queue()
    procs = [_mp.Process(target=target, args=args + (barrier, out)) for _ in range(nprocs)]
    for p in procs:
        p.start()
    spans = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    return max(e for _, e in spans) - min(s for s, _ in spans)


def _pipe_ping(n):
    """Round trips of one byte over two pipes between two processes (seconds, total)."""
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the echo side
        try:
            for _ in range(n):
                os.read(a_r, 1)
                os.write(b_w, b"x")
        finally:
            os._exit(0)
    t0 = time.monotonic()
    for _ in range(n):
        os.write(a_w, b"x")
        os.read(b_r, 1)
    dt = time.monotonic() - t0
    os.waitpid(pid, 0)
    for fd in (a_r, a_w, b_r, b_w):
        os.close(fd)
    return dt


# --- the measurements -------------------------------------------------------------------

def _loop_textbook(lock, n):
    t0 = time.perf_counter()
    for _ in range(n):
        ACQUIRE(lock)
        RELEASE(lock)
    return time.perf_counter() - t0


def _loop_with(lock, n):
    t0 = time.perf_counter()
    for _ in range(n):
        with lock:
            pass
    return time.perf_counter() - t0


def _loop_mp(lock, n):
    t0 = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        lock.release()
    return time.perf_counter() - t0


def _loop_mp_with(lock, n):
    t0 = time.perf_counter()
    for _ in range(n):
        with lock:
            pass
    return time.perf_counter() - t0


def _loop_two_cas(p, n):
    """The floor under ACQUIRE + RELEASE: the two compare-and-swaps of its fast
    path on a lock's word (taken by thread 0 and freed), and nothing else."""
    mine = atomics.c_arg(mutex.encode(0))
    cas = atomics.compare_exchange_p
    t0 = time.perf_counter()
    for _ in range(n):
        cas(p, 0, mine)
        cas(p, mine, 0)
    return time.perf_counter() - t0


def _loop_tickets(seq, n):
    t0 = time.perf_counter()
    for _ in range(n):
        TICKET(seq)
    return time.perf_counter() - t0


def _loop_value(value, n):
    t0 = time.perf_counter()
    for _ in range(n):
        with value.get_lock():
            value.value += 1
    return time.perf_counter() - t0


def main(console, quick=False, runs=5):
    n_fast = 20_000 if quick else 200_000
    n_hammer = 10_000 if quick else 100_000
    n_ping = 1_000 if quick else 10_000
    rows = []
    peer_lock = _mp.Lock()
    value = _mp.Value("q", 0)
    with Kernel() as k:
        lock = ALLOCATE_LOCK("bench")
        seq = ALLOCATE_SEQUENCER("bench")

        # Interleave ours and the peer's in every run, so that both see the same machine.
        floor_word, _ = k.locks._prepare(ALLOCATE_LOCK("floor"))
        a, b, c, d, e, f, g = [], [], [], [], [], [], []
        for _ in range(runs):
            g.append(_loop_two_cas(floor_word, n_fast) / n_fast)
            a.append(_loop_textbook(lock, n_fast) / n_fast)
            b.append(_loop_mp(peer_lock, n_fast) / n_fast)
            c.append(_loop_with(lock, n_fast) / n_fast)
            d.append(_loop_mp_with(peer_lock, n_fast) / n_fast)
            e.append(_loop_tickets(seq, n_fast) / n_fast)
            f.append(_loop_value(value, n_fast) / n_fast)
        rows.append(Row("uncontended ACQUIRE + RELEASE", "s", median(a), "mp.Lock acquire + release", median(b),
                        higher_is_better=False, goal=1 / 3, note=f"atomics: {atomics.IMPLEMENTATION}"))
        rows.append(Row("uncontended `with lock:`", "s", median(c), "`with mp.Lock():`", median(d),
                        higher_is_better=False, goal=1 / 3))
        rows.append(Row("the floor: two ctypes CAS, nothing else", "s", median(g), "mp.Lock acquire + release",
                        median(b), higher_is_better=False, note="what any ACQUIRE + RELEASE of this design costs"))

        hv, hp = [], []
        for _ in range(runs):
            ready = ALLOCATE_EVENTCOUNT()
            tids = [ALLOCATE_THREAD(_vp_hammer, k.address_space, lock, n_hammer, ready, 2) for _ in range(2)]
            hv.append(2 * n_hammer / _span(k, tids))
            hp.append(2 * n_hammer / _mp_span(_mp_hammer, (peer_lock, n_hammer), 2))
        rows.append(Row("2 VPs hammering one lock", "/s", median(hv), "2 processes, one mp.Lock", median(hp),
                        note="acquisitions per second"))

        pv, pp = [], []
        for _ in range(runs):
            ping, pong = ALLOCATE_EVENTCOUNT("ping"), ALLOCATE_EVENTCOUNT("pong")
            t1 = ALLOCATE_THREAD(_vp_ping, k.address_space, ping, pong, n_ping, True)
            t2 = ALLOCATE_THREAD(_vp_ping, k.address_space, pong, ping, n_ping, False)
            s, e_ = k.join(t1, timeout=300)
            k.join(t2, timeout=300)
            pv.append((e_ - s) / n_ping)
            pp.append(_pipe_ping(n_ping) / n_ping)
        rows.append(Row("AWAIT/ADVANCE ping-pong round trip", "s", median(pv), "os.pipe ping-pong", median(pp),
                        higher_is_better=False, goal=5,
                        note=f"{os.cpu_count()} CPUs; the goal assumes a core per VP"))

        rows.append(Row("TICKET, one thread", "/s", 1 / median(e), "mp.Value += 1 under its lock", 1 / median(f)))
        tv, tp = [], []
        for _ in range(runs):
            ready = ALLOCATE_EVENTCOUNT()
            tids = [ALLOCATE_THREAD(_vp_tickets, k.address_space, seq, n_hammer, ready, 2) for _ in range(2)]
            tv.append(2 * n_hammer / _span(k, tids))
            tp.append(2 * n_hammer / _mp_span(_mp_value, (value, n_hammer), 2))
        rows.append(Row("TICKET, 2 VPs at once", "/s", median(tv), "2 processes, mp.Value += 1", median(tp),
                        note="tickets per second"))
    return table(console, "vos bench sync", rows, runs)
