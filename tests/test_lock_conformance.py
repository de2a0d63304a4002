"""One suite, every lock of the project: the runtime's ACQUIRE/RELEASE, the
RSM spin lock a student builds from read-and-set-memory, the ticket lock
from TICKET/AWAIT/ADVANCE (demos/_student_locks.py), and a bounded buffer's
biased side lock (side_lock.py, used here on its own) go through the same
exclusion checks.

The main check is the lecture's race: several VPs do `x = LOAD(a);
STORE(a, x + 1)` thousands of times on a word of a block mapped into their
address space.  Without a lock, updates are lost (each test shows it first,
with YIELD between the LOAD and the STORE to make the window wide); with the
lock around the same code (YIELD included: the holder is switched out inside
its critical section), the count is exact."""

import pytest

from demos._student_locks import KernelLock, RSMSpinLock, TicketLock
from runtime import Kernel
from runtime.textbook import (ADVANCE, ALLOCATE_BLOCK, ALLOCATE_BOUNDED_BUFFER, ALLOCATE_EVENTCOUNT, ALLOCATE_THREAD, AWAIT,
                              CREATE_ADDRESS_SPACE, LOAD, MAP, READ, STORE, YIELD)

pytestmark = pytest.mark.timeout(90)

KINDS = ["ACQUIRE", "RSM spin lock", "ticket lock", "side lock"]
PAGE = 1            # the shared block is mapped at this virtual page
COUNTER, LOCKWORD = 0, 8


def setup(k, kind):
    """A shared block at page PAGE of the boot address space, and a lock of this kind."""
    block = ALLOCATE_BLOCK(k.config.page_size)
    MAP(k.address_space, block, PAGE, "rw")
    base = PAGE * k.config.page_size
    if kind == "ACQUIRE":
        lock = KernelLock()
    elif kind == "RSM spin lock":
        lock = RSMSpinLock(base + LOCKWORD)
    elif kind == "side lock":
        lock = SideLockOf(ALLOCATE_BOUNDED_BUFFER(1))
    else:
        lock = TicketLock()
    return block, base, lock


class SideLockOf:
    """The send side's lock of a bounded buffer, taken and left on its own:
    the biased lock (kept by its last holder; an asker fences it with
    membarrier and takes it over) as a plain mutual exclusion lock."""

    def __init__(self, buf):
        self.buf = buf

    def acquire(self):
        self.buf._ring().tx.enter()

    def release(self):
        self.buf._ring().tx.leave()


# --- thread procedures ---------------------------------------------------------------

def increment(counter, rounds, lock, ready, n, widen):
    """x = LOAD(a); STORE(a, x + 1), `rounds` times, under `lock` if there is one."""
    ADVANCE(ready)
    AWAIT(ready, n - 1)  # start together
    for _ in range(rounds):
        if lock is not None:
            lock.acquire()
        x = LOAD(counter)
        if widen:
            YIELD()      # the holder is switched out in the middle of its critical section
        STORE(counter, x + 1)
        if lock is not None:
            lock.release()
    return rounds


def inside_count(lock, entered, left, rounds, ready, n):
    """Inside the critical section, entered - left must be exactly 1."""
    ADVANCE(ready)
    AWAIT(ready, n - 1)
    worst = 0
    for _ in range(rounds):
        lock.acquire()
        ADVANCE(entered)
        worst = max(worst, READ(entered) - READ(left))
        YIELD()
        ADVANCE(left)
        lock.release()
    return worst


def map_and_increment(block, counter, rounds, lock, ready, n):
    """Runs in an address space of its own: map the shared block, then count."""
    from runtime.context import current
    k = current().kernel
    me = next(r["address_space"] for r in k.thread_info() if r["tid"] == current().tid)
    MAP(me, block, PAGE, "rw")
    return increment(counter, rounds, lock, ready, n, True)


def race(k, counter, lock, nthreads, rounds, widen, as_ids=None):
    STORE(counter, 0)
    ready = ALLOCATE_EVENTCOUNT()
    tids = [ALLOCATE_THREAD(increment, k.address_space, counter, rounds, lock, ready, nthreads, widen)
            for _ in range(nthreads)]
    for t in tids:
        assert k.join(t, timeout=60) == rounds
    return LOAD(counter)


# --- the suite -----------------------------------------------------------------------

@pytest.mark.parametrize("processors", [None, 1], ids=["free VPs", "processors=1"])
@pytest.mark.parametrize("kind", KINDS)
def test_the_race_loses_updates_and_the_lock_makes_the_count_exact(kind, processors):
    nthreads, rounds = 3, 400
    with Kernel(processors=processors, quantum=0.005) as k:
        _block, base, lock = setup(k, kind)
        counter = base + COUNTER
        lost = []
        for _attempt in range(5):  # with free VPs the race needs the threads to overlap; it nearly always does
            got = race(k, counter, None, nthreads, rounds, widen=True)
            lost.append(nthreads * rounds - got)
            if lost[-1] > 0:
                break
        assert lost[-1] > 0, f"no update was lost without a lock in {len(lost)} runs: the race never happened"
        assert race(k, counter, lock, nthreads, rounds, widen=True) == nthreads * rounds
        k._check_invariants()


@pytest.mark.parametrize("kind", KINDS)
def test_many_increments_without_widening_are_exact(kind):
    """The plain critical section, fast, many thousands of times, 4 VPs on 2 processors."""
    nthreads, rounds = 4, 2500
    with Kernel(processors=2, quantum=0.002) as k:
        _block, base, lock = setup(k, kind)
        assert race(k, base + COUNTER, lock, nthreads, rounds, widen=False) == nthreads * rounds
        k._check_invariants()


@pytest.mark.parametrize("kind", KINDS)
def test_nobody_else_is_inside(kind):
    with Kernel() as k:
        _block, _base, lock = setup(k, kind)
        entered, left, ready = ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT()
        tids = [ALLOCATE_THREAD(inside_count, k.address_space, lock, entered, left, 300, ready, 3)
                for _ in range(3)]
        assert [k.join(t, timeout=60) for t in tids] == [1, 1, 1]
        assert READ(entered) == READ(left) == 900
        k._check_invariants()


@pytest.mark.parametrize("kind", KINDS)
def test_threads_in_different_address_spaces_share_only_the_block(kind):
    nthreads, rounds = 3, 300
    with Kernel() as k:
        block, base, lock = setup(k, kind)
        counter = base + COUNTER
        STORE(counter, 0)
        ready = ALLOCATE_EVENTCOUNT()
        tids = [ALLOCATE_THREAD(map_and_increment, CREATE_ADDRESS_SPACE(), block, counter, rounds, lock, ready,
                                nthreads) for _ in range(nthreads)]
        assert [k.join(t, timeout=60) for t in tids] == [rounds] * nthreads
        assert LOAD(counter) == nthreads * rounds
        k._check_invariants()
