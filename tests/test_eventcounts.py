"""Eventcounts and sequencers: READ/ADVANCE/AWAIT's boundary, no lost
wake-up, precise wake-ups, TICKET exactly once and in FIFO order, misuse."""

import pickle
import time

import psutil
import pytest

from runtime import Kernel
from runtime.errors import NoSuchObject, OutOfResources, WouldBlock
from runtime.eventcounts import Eventcount, Sequencer
from runtime.textbook import (ADVANCE, ALLOCATE_EVENTCOUNT, ALLOCATE_LOCK, ALLOCATE_SEQUENCER, ALLOCATE_THREAD, AWAIT,
                              DESTROY_THREAD, READ, TICKET)
from waiting import wait_for

pytestmark = pytest.mark.timeout(60)


def row(k, tid):
    return next(r for r in k.thread_info() if r["tid"] == tid)


def asleep_in_await(k, tid, ec, value):
    """WAITING on (ec, value) in the thread table, and its process asleep in the host kernel."""
    r = row(k, tid)
    if r["state"] != "WAITING" or r["waits_for"] != f"eventcount {ec.id} > {value}":
        return False
    return psutil.Process(r["pid"]).status() == psutil.STATUS_SLEEPING


# --- thread procedures (module level: picklable for spawn) --------------------------

def await_then_advance(ec, value, done):
    AWAIT(ec, value)
    seen = READ(ec)
    ADVANCE(done)
    return seen


def ping(mine, theirs, rounds, first, strict):
    """The two halves of a ping-pong: returns the longest single AWAIT.
    strict: ADVANCE only once the other side is registered as a sleeper on
    the eventcount, so that every AWAIT takes the sleeping path."""
    from runtime.context import current
    table = current().kernel.eventcounts
    longest = 0.0
    for i in range(rounds):
        if not first:
            t0 = time.perf_counter()
            AWAIT(theirs, i)
            longest = max(longest, time.perf_counter() - t0)
        while strict and table._sleepers(mine) == 0:
            pass  # until the other side sleeps (or is about to) on `mine`
        ADVANCE(mine)
        if first:
            t0 = time.perf_counter()
            AWAIT(theirs, i)
            longest = max(longest, time.perf_counter() - t0)
    return longest


def take_tickets(seq, n):
    return [TICKET(seq) for _ in range(n)]


def ticket_lock_turn(seq, turn, served, ready, nthreads, rounds):
    """A ticket lock: t = TICKET(s); AWAIT(turn, t - 1); ...; ADVANCE(turn).
    Inside, `served` counts the critical sections: it must equal the ticket."""
    ADVANCE(ready)
    AWAIT(ready, nthreads - 1)
    out = []
    for _ in range(rounds):
        t = TICKET(seq)
        AWAIT(turn, t - 1)
        out.append((t, READ(served)))
        ADVANCE(served)
        ADVANCE(turn)
    return out


# --- the basics -----------------------------------------------------------------

def test_read_advance_and_repr():
    with Kernel() as k:
        ec = ALLOCATE_EVENTCOUNT("items")
        assert READ(ec) == 0 and ec.read() == 0
        ADVANCE(ec)
        ec.advance()
        assert READ(ec) == 2
        assert repr(ec) == f"<Eventcount {ec.id} 'items': count 2>"
        s = ec.statistics()
        assert (s.count, s.waiters, s.sleeps) == (2, (), 0)
        assert pickle.loads(pickle.dumps(ec)) == ec
        k._check_invariants()


def test_await_returns_at_once_only_when_the_count_exceeds_the_value():
    with Kernel() as k:
        ec = ALLOCATE_EVENTCOUNT()
        AWAIT(ec, -1)               # 0 > -1
        ec.await_nowait(-1)
        with pytest.raises(WouldBlock):
            ec.await_nowait(0)      # 0 > 0 is false: S&K, not Reed & Kanodia
        with pytest.raises(TimeoutError):
            ec.await_(0, timeout=0.05)
        ADVANCE(ec)
        AWAIT(ec, 0)
        ec.await_(0, timeout=0)
        k._check_invariants()


def test_a_count_equal_to_the_value_does_not_release_a_waiter():
    with Kernel() as k:
        ec, done = ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT()
        tid = ALLOCATE_THREAD(await_then_advance, k.address_space, ec, 1, done)
        wait_for(lambda: asleep_in_await(k, tid, ec, 1))
        ADVANCE(ec)                                   # count 1 == value: not yet
        with pytest.raises(TimeoutError):
            done.await_(0, timeout=0.3)
        assert row(k, tid)["state"] == "WAITING"
        assert ec.statistics().waiters == ((tid, 1),)
        ADVANCE(ec)                                   # count 2 > 1: now
        AWAIT(done, 0)
        assert k.join(tid, timeout=30) == 2
        k._check_invariants()


def test_advance_wakes_only_the_waiters_whose_value_it_exceeds():
    """Waiters at 0, 1 and 2: each ADVANCE wakes exactly the one it satisfies
    (the futex wake count, recorded in `wakes`, says whom the host woke)."""
    with Kernel() as k:
        ec, done = ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT()
        tids = [ALLOCATE_THREAD(await_then_advance, k.address_space, ec, v, done) for v in (0, 1, 2)]
        for v, t in enumerate(tids):
            wait_for(lambda: asleep_in_await(k, t, ec, v))
        for n in (1, 2, 3):
            ADVANCE(ec)                    # count n: releases the waiter at n - 1, and only it
            AWAIT(done, n - 1)
            assert ec.statistics().wakes == n
            assert [row(k, t)["state"] for t in tids[n:]] == ["WAITING"] * (3 - n)
        assert [k.join(t, timeout=30) for t in tids] == [1, 2, 3]
        k._check_invariants()


@pytest.mark.parametrize("strict", [False, True], ids=["free-running", "every AWAIT sleeps"])
def test_no_lost_wakeup_in_a_ping_pong(strict):
    """2000 ADVANCE/AWAIT pairs between two VPs; with 30-second sleep slices a
    lost wake-up would last until a clock interrupt (up to 0.5 s) or hang."""
    with Kernel(sync_slice=30.0, sync_spin=not strict) as k:
        a, b = ALLOCATE_EVENTCOUNT("ping"), ALLOCATE_EVENTCOUNT("pong")
        t1 = ALLOCATE_THREAD(ping, k.address_space, a, b, 2000, True, strict)
        t2 = ALLOCATE_THREAD(ping, k.address_space, b, a, 2000, False, strict)
        longest = max(k.join(t1, timeout=60), k.join(t2, timeout=60))
        assert READ(a) == READ(b) == 2000
        assert longest < 0.4, f"one AWAIT took {longest:.3f} s: a lost wake-up"
        if strict:  # the sleeping path was the one tested, every time
            assert a.statistics().sleeps == b.statistics().sleeps == 2000
        k._check_invariants()


def test_many_waiters_on_many_values_all_wake():
    with Kernel(sync_slice=30.0) as k:
        ec, done = ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT()
        values = range(0, 40, 3)
        tids = [ALLOCATE_THREAD(await_then_advance, k.address_space, ec, v, done) for v in values]
        for _ in range(40):
            ADVANCE(ec)
        AWAIT(done, len(tids) - 1)
        seen = [k.join(t, timeout=30) for t in tids]
        assert all(s > v for s, v in zip(seen, values)), list(zip(values, seen))
        k._check_invariants()


def test_an_awaiting_vp_uses_almost_no_cpu_and_says_what_it_waits_for():
    with Kernel() as k:
        ec, done = ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT()
        tid = ALLOCATE_THREAD(await_then_advance, k.address_space, ec, 5, done)
        wait_for(lambda: asleep_in_await(k, tid, ec, 5))
        assert row(k, tid)["waits_for"] == f"eventcount {ec.id} > 5"
        assert f"thread {tid} > 5" in repr(ec)
        proc = psutil.Process(row(k, tid)["pid"])
        before, t0 = proc.cpu_times(), time.monotonic()
        time.sleep(0.6)  # the measuring interval, not a synchronisation
        after, wall = proc.cpu_times(), time.monotonic() - t0
        used = (after.user - before.user) + (after.system - before.system)
        assert used < 0.05 * wall, f"an awaiting VP used {used:.3f} s of CPU in {wall:.2f} s"
        DESTROY_THREAD(tid)
        k._check_invariants()


def test_a_timed_out_await_leaves_no_sleeper_behind():
    with Kernel() as k:
        ec = ALLOCATE_EVENTCOUNT()
        with pytest.raises(TimeoutError, match="still 0"):
            ec.await_(3, timeout=0.1)
        assert k.eventcounts._sleepers(ec) == 0
        ADVANCE(ec)
        assert ec.statistics().wakes == 0  # no sleeper, so no wake call
        k._check_invariants()


# --- sequencers -------------------------------------------------------------------

@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_tickets_are_handed_out_exactly_once_across_processes(method):
    with Kernel(start_method=method) as k:
        seq = ALLOCATE_SEQUENCER("numbers")
        tids = [ALLOCATE_THREAD(take_tickets, k.address_space, seq, 500) for _ in range(4)]
        mine = [TICKET(seq) for _ in range(100)]
        got = sorted(sum((k.join(t, timeout=60) for t in tids), mine))
        assert got == list(range(2100))
        assert seq.read() == 2100 and repr(seq) == f"<Sequencer {seq.id} 'numbers': next ticket 2100>"
        assert seq.statistics().next_ticket == 2100
        k._check_invariants()


def test_a_ticket_lock_serves_in_ticket_order():
    with Kernel() as k:
        seq, turn, served, ready = (ALLOCATE_SEQUENCER(), ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT(),
                                    ALLOCATE_EVENTCOUNT())
        tids = [ALLOCATE_THREAD(ticket_lock_turn, k.address_space, seq, turn, served, ready, 3, 300)
                for _ in range(3)]
        pairs = sum((k.join(t, timeout=60) for t in tids), [])
        assert all(t == s for t, s in pairs), "a ticket was served out of order"
        assert sorted(t for t, _ in pairs) == list(range(900))
        assert READ(turn) == READ(served) == 900
        k._check_invariants()


# --- misuse -----------------------------------------------------------------------

def test_a_handle_of_another_kind_is_refused_even_when_its_number_is_in_use():
    """Locks, eventcounts and sequencers are numbered from 1 each: lock 1 must
    not ADVANCE eventcount 1, nor lock 2 take a ticket of sequencer 2, once
    this process has those pointers at hand."""
    with Kernel() as k:
        ec, seq = ALLOCATE_EVENTCOUNT(), ALLOCATE_SEQUENCER()
        locks = [ALLOCATE_LOCK(), ALLOCATE_LOCK()]
        assert (ec.id, seq.id) == (locks[0].id, locks[1].id)
        ADVANCE(ec)
        assert TICKET(seq) == 0                  # both pointers prepared in this process now
        for misuse in (lambda: ADVANCE(locks[0]), lambda: AWAIT(locks[0], 5), lambda: READ(locks[0]),
                       lambda: TICKET(locks[1])):
            with pytest.raises(TypeError):
                misuse()
        assert READ(ec) == 1 and TICKET(seq) == 1
        k._check_invariants()


def test_misuse_is_refused():
    with Kernel(max_eventcounts=3) as k:
        ec, seq = ALLOCATE_EVENTCOUNT(), ALLOCATE_SEQUENCER()
        with pytest.raises(TypeError):
            ADVANCE(seq)
        with pytest.raises(TypeError):
            TICKET(ec)
        with pytest.raises(TypeError):
            AWAIT(ec, "3")
        with pytest.raises(NoSuchObject):
            READ(Eventcount(seq.id))      # that id is a sequencer
        with pytest.raises(NoSuchObject):
            TICKET(Sequencer(99))
        with pytest.raises(NoSuchObject):
            Eventcount(-1)
        ALLOCATE_EVENTCOUNT()
        with pytest.raises(OutOfResources, match="max_eventcounts"):
            ALLOCATE_SEQUENCER()
        k._check_invariants()
