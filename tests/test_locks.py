"""Locks: ACQUIRE/RELEASE between processes, misuse, owner death, the wait-for
graph, and what a waiting thread looks like.

Exclusion over shared *memory* (LOAD/STORE counters) is in
test_lock_conformance.py, which runs every lock of the project; here the
critical section is checked with two eventcounts, `entered` and `left`:
inside it, entered - left must be exactly 1."""

import os
import pickle
import signal
import time

import psutil
import pytest

from runtime import Kernel
from runtime.context import current
from runtime.errors import (DeadlockError, NoSuchObject, NotOwner, OutOfResources, OwnerDied, ThreadFailed,
                            WouldBlock)
from runtime.locks import Lock
from runtime.textbook import (ACQUIRE, ADVANCE, ALLOCATE_EVENTCOUNT, ALLOCATE_LOCK, ALLOCATE_THREAD, AWAIT,
                              DESTROY_THREAD, READ, RELEASE, YIELD)
from waiting import wait_for, waiting_on

pytestmark = pytest.mark.timeout(60)


# --- helpers (module level: picklable for spawn) ------------------------------------

def row(k, tid):
    return next(r for r in k.thread_info() if r["tid"] == tid)


def hold_until(lock, ready, go):
    """Take the lock, say so (ADVANCE ready), and keep it until `go` advances."""
    ACQUIRE(lock)
    ADVANCE(ready)
    AWAIT(go, 0)
    RELEASE(lock)
    return "released"


def hold_and_exit(lock, ready):
    ACQUIRE(lock)
    ADVANCE(ready)
    return "exited holding the lock"


def hold_and_spin(lock, ready):
    ACQUIRE(lock)
    ADVANCE(ready)
    while True:
        pass


def acquire_report(lock):
    """ACQUIRE and tell how it went; release in every case."""
    try:
        ACQUIRE(lock)
    except OwnerDied as e:
        RELEASE(lock)
        return ("owner-died", str(e))
    RELEASE(lock)
    return ("clean", "")


def barrier(ready, n):
    """Start together: every one of the n threads has arrived."""
    ADVANCE(ready)
    AWAIT(ready, n - 1)


def exclusion(lock, entered, left, rounds, ready, n):
    """Inside the critical section, exactly one thread is between entered and left."""
    barrier(ready, n)
    worst = 0
    for _ in range(rounds):
        ACQUIRE(lock)
        ADVANCE(entered)
        inside = READ(entered) - READ(left)
        worst = max(worst, inside)
        ADVANCE(left)
        RELEASE(lock)
    return worst


def take_two(first, second, ready, both):
    """Hold `first`, wait until the peer holds its lock, then ACQUIRE `second`."""
    ACQUIRE(first)
    ADVANCE(ready)
    AWAIT(ready, both - 1)
    try:
        ACQUIRE(second)
    except DeadlockError as e:
        RELEASE(first)
        return ("deadlock", str(e), getattr(e, "cycle", None))
    RELEASE(second)
    RELEASE(first)
    return ("done", "", None)


def release_someone_elses(lock):
    try:
        RELEASE(lock)
    except NotOwner as e:
        return str(e)
    return "no error"


def handoff_latency(lock, rounds, ready, done, n):
    """Strict hand-overs between two threads: the holder releases only once
    the other is seen waiting for the lock, and then waits until the other
    has it before asking again.  So every ACQUIRE after the first sleeps and
    is woken by a RELEASE.  Returns the longest single ACQUIRE: a lost
    wake-up shows as one that lasts until a clock interrupt ends it."""
    me = current().tid
    barrier(ready, n)
    longest = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        ACQUIRE(lock)
        longest = max(longest, time.perf_counter() - t0)
        while not lock.statistics().waiters and READ(done) == 0:
            pass  # hold it until the other one waits for it (or has finished)
        RELEASE(lock)
        while lock.statistics().holder in (None, me) and READ(done) == 0:
            pass  # until the other one has it
    ADVANCE(done)
    return longest


# --- the basics -----------------------------------------------------------------

def test_acquire_release_and_what_statistics_say():
    with Kernel() as k:
        lock = ALLOCATE_LOCK("counter")
        s = lock.statistics()
        assert (s.holder, s.waiters, s.acquisitions, s.contention) == (None, (), 0, 0)
        assert "free" in repr(lock) and "'counter'" in repr(lock)
        ACQUIRE(lock)
        assert lock.statistics().holder == 0 and lock.locked()
        assert "held by thread 0" in repr(lock)
        RELEASE(lock)
        with lock:
            assert lock.locked()
        assert not lock.locked()
        assert lock.statistics().acquisitions == 2
        k._check_invariants()


def test_handles_are_small_picklable_values():
    with Kernel() as k:
        lock = ALLOCATE_LOCK()
        again = pickle.loads(pickle.dumps(lock))
        assert again == lock and hash(again) == hash(lock) and len(pickle.dumps(lock)) < 64
        ACQUIRE(again)
        RELEASE(lock)
        k._check_invariants()


def test_a_second_acquire_by_the_holder_is_a_deadlock_error():
    with Kernel() as k:
        lock = ALLOCATE_LOCK("once")
        ACQUIRE(lock)
        with pytest.raises(DeadlockError, match="already holds lock"):
            ACQUIRE(lock)
        with pytest.raises(DeadlockError):
            lock.acquire_nowait()
        RELEASE(lock)  # still held exactly once
        assert not lock.locked()
        k._check_invariants()


def test_release_by_a_non_holder_is_not_owner():
    with Kernel() as k:
        lock = ALLOCATE_LOCK()
        with pytest.raises(NotOwner, match="it is free"):
            RELEASE(lock)
        ready, go = ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT()
        holder = ALLOCATE_THREAD(hold_until, k.address_space, lock, ready, go)
        AWAIT(ready, 0)
        with pytest.raises(NotOwner, match=f"held by thread {holder}"):
            RELEASE(lock)
        other = ALLOCATE_THREAD(release_someone_elses, k.address_space, lock)
        assert f"held by thread {holder}" in k.join(other, timeout=30)
        ADVANCE(go)
        assert k.join(holder, timeout=30) == "released"
        k._check_invariants()


def test_bad_handles_are_refused():
    with Kernel() as k:
        with pytest.raises(TypeError):
            ACQUIRE("lock 1")
        with pytest.raises(NoSuchObject):
            ACQUIRE(Lock(7))  # never allocated
        with pytest.raises(NoSuchObject):
            Lock(0)
        with pytest.raises(TypeError):
            ALLOCATE_LOCK(name=5)
        k._check_invariants()


def test_the_lock_table_can_fill_up():
    with Kernel(max_locks=2) as k:
        ALLOCATE_LOCK(), ALLOCATE_LOCK()
        with pytest.raises(OutOfResources, match="max_locks"):
            ALLOCATE_LOCK()
        k._check_invariants()


def test_with_releases_on_an_exception():
    with Kernel() as k:
        lock = ALLOCATE_LOCK()
        with pytest.raises(ZeroDivisionError):
            with lock:
                1 / 0
        assert not lock.locked()
        k._check_invariants()


# --- blocking ---------------------------------------------------------------------

@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_mutual_exclusion_between_processes(method):
    with Kernel(start_method=method) as k:
        lock, entered, left, ready = (ALLOCATE_LOCK(), ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT(),
                                      ALLOCATE_EVENTCOUNT())
        tids = [ALLOCATE_THREAD(exclusion, k.address_space, lock, entered, left, 3000, ready, 3) for _ in range(3)]
        assert [k.join(t, timeout=60) for t in tids] == [1, 1, 1]
        assert READ(entered) == READ(left) == 9000
        s = lock.statistics()
        assert s.acquisitions == 9000 and s.holder is None
        assert s.contention > 0, "the threads never overlapped: the test proved nothing"
        k._check_invariants()


def test_a_waiting_thread_says_which_lock_and_timeouts_give_up():
    with Kernel() as k:
        lock, ready, go = ALLOCATE_LOCK("shared"), ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT()
        ACQUIRE(lock)
        waiter = ALLOCATE_THREAD(acquire_report, k.address_space, lock)
        wait_for(lambda: waiting_on(k, waiter, f"lock {lock.id}"))
        assert lock.statistics().waiters == (waiter,)
        assert f"1 waiting [{waiter}]" in repr(lock)
        RELEASE(lock)
        assert k.join(waiter, timeout=30) == ("clean", "")
        assert lock.statistics().contention >= 1

        holder = ALLOCATE_THREAD(hold_until, k.address_space, lock, ready, go)
        AWAIT(ready, 0)
        with pytest.raises(WouldBlock):
            lock.acquire_nowait()
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            lock.acquire(timeout=0.2)
        assert 0.15 < time.monotonic() - t0 < 5
        assert lock.statistics().holder == holder and lock.statistics().waiters == ()
        ADVANCE(go)
        assert k.join(holder, timeout=30) == "released"
        lock.acquire(timeout=5)
        lock.release()
        k._check_invariants()


def test_a_waiting_vp_uses_almost_no_cpu():
    with Kernel() as k:
        lock = ALLOCATE_LOCK()
        ACQUIRE(lock)
        waiter = ALLOCATE_THREAD(acquire_report, k.address_space, lock)
        wait_for(lambda: waiting_on(k, waiter, f"lock {lock.id}"))
        proc = psutil.Process(row(k, waiter)["pid"])
        wait_for(lambda: proc.status() == psutil.STATUS_SLEEPING)  # past the spin, in the futex
        before = proc.cpu_times()
        t0 = time.monotonic()
        time.sleep(0.6)  # the measuring interval, not a synchronisation
        after = proc.cpu_times()
        wall = time.monotonic() - t0
        used = (after.user - before.user) + (after.system - before.system)
        assert used < 0.05 * wall, f"a waiting VP used {used:.3f} s of CPU in {wall:.2f} s"
        RELEASE(lock)
        assert k.join(waiter, timeout=30) == ("clean", "")


def test_a_blocked_vp_gives_its_processor_back():
    """processors=1: the holder must get the processor the waiter gave up."""
    with Kernel(processors=1) as k:
        lock, ready, go = ALLOCATE_LOCK(), ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT()
        holder = ALLOCATE_THREAD(hold_until, k.address_space, lock, ready, go)
        AWAIT(ready, 0)
        waiters = [ALLOCATE_THREAD(acquire_report, k.address_space, lock) for _ in range(3)]
        for w in waiters:
            wait_for(lambda: waiting_on(k, w, f"lock {lock.id}"))
        ADVANCE(go)
        assert k.join(holder, timeout=30) == "released"
        assert [k.join(w, timeout=30) for w in waiters] == [("clean", "")] * 3
        k._check_invariants()


@pytest.mark.parametrize("spin", [True, False])
def test_no_lost_wakeup_when_two_vps_hammer_one_lock(spin):
    """Every hand-over wakes a sleeper (after a spin, or without one); none may
    wait for a timeout slice: with slices of 30 s, a lost wake-up would last
    at least until the next clock interrupt (up to 0.5 s)."""
    with Kernel(sync_slice=30.0, sync_spin=spin) as k:
        lock, ready, done = ALLOCATE_LOCK(), ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT()
        tids = [ALLOCATE_THREAD(handoff_latency, k.address_space, lock, 500, ready, done, 2) for _ in range(2)]
        longest = max(k.join(t, timeout=60) for t in tids)
        assert longest < 0.4, f"one ACQUIRE waited {longest:.3f} s: a lost wake-up"
        s = lock.statistics()
        assert s.acquisitions == 1000 and s.contention >= 900, s
        k._check_invariants()


# --- owner death ------------------------------------------------------------------

def test_owner_died_after_destroy_thread():
    with Kernel() as k:
        lock, ready, go = ALLOCATE_LOCK("torn"), ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT()
        holder = ALLOCATE_THREAD(hold_until, k.address_space, lock, ready, go)
        AWAIT(ready, 0)
        waiter = ALLOCATE_THREAD(acquire_report, k.address_space, lock)
        wait_for(lambda: waiting_on(k, waiter, f"lock {lock.id}"))
        t0 = time.monotonic()
        DESTROY_THREAD(holder)
        verdict, message = k.join(waiter, timeout=30)
        assert verdict == "owner-died" and f"thread {holder} died holding lock {lock.id}" in message
        assert time.monotonic() - t0 < 2.0, "the death hook should wake the waiter at once"
        with pytest.raises(ThreadFailed):
            k.join(holder, timeout=30)
        ACQUIRE(lock)  # handed over once; clean again afterwards
        RELEASE(lock)
        assert lock.statistics().owner_died == 1
        k._check_invariants()


def test_owner_died_after_sigkill_of_the_holders_process():
    with Kernel() as k:
        lock, ready = ALLOCATE_LOCK(), ALLOCATE_EVENTCOUNT()
        holder = ALLOCATE_THREAD(hold_and_spin, k.address_space, lock, ready)
        AWAIT(ready, 0)
        waiter = ALLOCATE_THREAD(acquire_report, k.address_space, lock)
        wait_for(lambda: waiting_on(k, waiter, f"lock {lock.id}"))
        os.kill(row(k, holder)["pid"], signal.SIGKILL)  # nobody buries it: the waiter must notice
        verdict, _ = k.join(waiter, timeout=30)
        assert verdict == "owner-died"
        with pytest.raises(ThreadFailed):
            k.join(holder, timeout=30)
        k._check_invariants()


def test_owner_died_when_the_holder_exits_holding_it():
    with Kernel() as k:
        lock, ready = ALLOCATE_LOCK(), ALLOCATE_EVENTCOUNT()
        holder = ALLOCATE_THREAD(hold_and_exit, k.address_space, lock, ready)
        assert k.join(holder, timeout=30) == "exited holding the lock"
        assert lock.statistics().owner_died_pending
        with pytest.raises(OwnerDied, match=f"thread {holder} died holding"):
            ACQUIRE(lock)
        assert lock.statistics().holder == 0  # the caller holds it now
        RELEASE(lock)
        ACQUIRE(lock)  # and it is clean again
        RELEASE(lock)
        k._check_invariants()


def test_with_on_an_owner_died_lock_releases_and_raises():
    with Kernel() as k:
        lock, ready = ALLOCATE_LOCK(), ALLOCATE_EVENTCOUNT()
        k.join(ALLOCATE_THREAD(hold_and_exit, k.address_space, lock, ready), timeout=30)
        with pytest.raises(OwnerDied):
            with lock:
                pytest.fail("the body must not run")
        assert not lock.locked()
        with lock:
            pass
        k._check_invariants()


# --- deadlock detection -------------------------------------------------------------

def test_a_cycle_with_the_boot_thread_is_named():
    with Kernel() as k:
        a, b = ALLOCATE_LOCK("a"), ALLOCATE_LOCK("b")
        ready = ALLOCATE_EVENTCOUNT()
        ACQUIRE(b)
        other = ALLOCATE_THREAD(take_two, k.address_space, a, b, ready, 1)
        wait_for(lambda: waiting_on(k, other, f"lock {b.id}"))
        with pytest.raises(DeadlockError) as info:
            ACQUIRE(a)
        msg = str(info.value)
        assert f"thread 0 (boot) waits for lock {a.id} 'a', held by thread {other}" in msg
        assert f"thread {other} (take_two) waits for lock {b.id} 'b', held by thread 0" in msg
        assert info.value.cycle == [(0, a.id), (other, b.id)]
        RELEASE(b)
        assert k.join(other, timeout=30)[0] == "done"
        assert k.statistics()["locks"]["deadlocks"] == 1
        k._check_invariants()


@pytest.mark.parametrize("attempt", range(4))
def test_two_threads_closing_a_cycle_at_once_exactly_one_is_told(attempt):
    """Both take their first lock, wait for each other, then ACQUIRE the
    other's lock at (nearly) the same moment: one gets DeadlockError and
    releases; the other completes."""
    with Kernel(sync_slice=30.0) as k:
        a, b, ready = ALLOCATE_LOCK("a"), ALLOCATE_LOCK("b"), ALLOCATE_EVENTCOUNT()
        t1 = ALLOCATE_THREAD(take_two, k.address_space, a, b, ready, 2)
        t2 = ALLOCATE_THREAD(take_two, k.address_space, b, a, ready, 2)
        results = [k.join(t, timeout=30) for t in (t1, t2)]
        verdicts = sorted(r[0] for r in results)
        assert verdicts == ["deadlock", "done"], results
        message = next(r[1] for r in results if r[0] == "deadlock")
        assert f"lock {a.id} 'a'" in message and f"lock {b.id} 'b'" in message
        assert f"thread {t1}" in message and f"thread {t2}" in message
        k._check_invariants()


def test_a_three_thread_cycle_is_found():
    with Kernel() as k:
        locks = [ALLOCATE_LOCK(n) for n in "xyz"]
        ready = ALLOCATE_EVENTCOUNT()
        tids = [ALLOCATE_THREAD(take_two, k.address_space, locks[i], locks[(i + 1) % 3], ready, 3) for i in range(3)]
        results = [k.join(t, timeout=30) for t in tids]
        assert sorted(r[0] for r in results) == ["deadlock", "done", "done"], results
        cycle = next(r[2] for r in results if r[0] == "deadlock")
        assert sorted(t for t, _ in cycle) == sorted(tids) and len(cycle) == 3
        k._check_invariants()


def test_waiting_behind_a_waiter_is_not_a_deadlock():
    """A chain (not a cycle): boot holds a, T1 holds b and waits for a, T2 waits for b."""
    with Kernel() as k:
        a, b, ready = ALLOCATE_LOCK("a"), ALLOCATE_LOCK("b"), ALLOCATE_EVENTCOUNT()
        ACQUIRE(a)
        t1 = ALLOCATE_THREAD(take_two, k.address_space, b, a, ready, 1)
        wait_for(lambda: waiting_on(k, t1, f"lock {a.id}"))
        t2 = ALLOCATE_THREAD(acquire_report, k.address_space, b)
        wait_for(lambda: waiting_on(k, t2, f"lock {b.id}"))
        RELEASE(a)
        assert k.join(t1, timeout=30)[0] == "done"
        assert k.join(t2, timeout=30) == ("clean", "")
        assert k.statistics()["locks"]["deadlocks"] == 0
        k._check_invariants()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_stress_the_cycle_race_many_times():
    """The simultaneous-closing race, 100 times over: always exactly one victim."""
    with Kernel(sync_slice=30.0) as k:
        for _ in range(100):
            a, b, ready = ALLOCATE_LOCK("a"), ALLOCATE_LOCK("b"), ALLOCATE_EVENTCOUNT()
            t1 = ALLOCATE_THREAD(take_two, k.address_space, a, b, ready, 2)
            t2 = ALLOCATE_THREAD(take_two, k.address_space, b, a, ready, 2)
            verdicts = sorted(k.join(t, timeout=60)[0] for t in (t1, t2))
            assert verdicts == ["deadlock", "done"]
        k._check_invariants()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_stress_exclusion_with_many_threads():
    with Kernel(processors=2, max_locks=8) as k:
        lock, entered, left, ready = (ALLOCATE_LOCK(), ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT(),
                                      ALLOCATE_EVENTCOUNT())
        tids = [ALLOCATE_THREAD(exclusion, k.address_space, lock, entered, left, 20000, ready, 8) for _ in range(8)]
        assert [k.join(t, timeout=600) for t in tids] == [1] * 8
        assert READ(left) == 160000
        k._check_invariants()
