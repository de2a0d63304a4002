"""The locks a student builds from the lecture, next to the runtime's own.

Every lock of the project, with one interface (`acquire()`, `release()`,
small picklable values that can be passed to ALLOCATE_THREAD), so that the
demos can show them and one parametrised test suite
(tests/test_lock_conformance.py) can hold them all to the same exclusion
checks:

    KernelLock     the runtime's ACQUIRE/RELEASE (locks.py)
    RSMSpinLock    the book's ACQUIRE built on RSM, read-and-set-memory:
                       while RSM(L) = LOCKED do YIELD
    TicketLock     a ticket lock from a sequencer and an eventcount:
                       t = TICKET(s); AWAIT(e, t - 1) ... ADVANCE(e)
    TestThenSetLock  the book's *broken* first attempt, which tests and then
                   sets in two steps (never for real use: the demo
                   broken-acquire shows it failing)

The spin locks YIELD instead of "do nothing" while they spin: a spinning
thread gives its processor to the holder, which matters when there are
fewer processors than threads (processors=1 would otherwise spin for a
whole quantum each time).
"""

from runtime.textbook import (ACQUIRE, ADVANCE, ALLOCATE_EVENTCOUNT, ALLOCATE_LOCK, ALLOCATE_SEQUENCER, AWAIT,
                              LOAD, RELEASE, RSM, STORE, TICKET, YIELD)

LOCKED, UNLOCKED = 1, 0


class KernelLock:
    """ACQUIRE/RELEASE: the runtime's lock (futex sleep, owner-died, deadlock detection)."""
    name = "ACQUIRE/RELEASE"

    def __init__(self):
        self.lock = ALLOCATE_LOCK("kernel")

    def acquire(self):
        ACQUIRE(self.lock)

    def release(self):
        RELEASE(self.lock)


class RSMSpinLock:
    """The lock word is one word of shared memory at virtual address `vaddr`
    (mapped read-write into every address space that uses the lock)."""
    name = "RSM spin lock"

    def __init__(self, vaddr):
        self.vaddr = vaddr

    def acquire(self):
        while RSM(self.vaddr) == LOCKED:   # read-and-set-memory: one atomic instruction
            YIELD()

    def release(self):
        STORE(self.vaddr, UNLOCKED)


class TicketLock:
    """FIFO: tickets are served in the order they were taken."""
    name = "ticket lock"

    def __init__(self):
        self.seq = ALLOCATE_SEQUENCER("tickets")
        self.turn = ALLOCATE_EVENTCOUNT("turn")

    def acquire(self):
        t = TICKET(self.seq)
        AWAIT(self.turn, t - 1)      # S&K: returns once READ(turn) > t - 1, i.e. turn == t

    def release(self):
        ADVANCE(self.turn)


class TestThenSetLock:
    """The book's first, broken ACQUIRE: between the test and the set, another
    thread can test too, and both enter."""
    name = "test-then-set (broken)"
    __test__ = False  # not a pytest class, despite its name

    def __init__(self, vaddr, window=True):
        self.vaddr = vaddr
        self.window = window         # False: the book's code exactly (a controlled run needs no wider window)

    def acquire(self):
        while LOAD(self.vaddr) == LOCKED:
            YIELD()
        if self.window:
            YIELD()  # the window between the test and the set, made wide enough to see
        STORE(self.vaddr, LOCKED)

    def release(self):
        STORE(self.vaddr, UNLOCKED)
