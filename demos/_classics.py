"""The five classic concurrency bugs of the lecture, as programs to explore.

Each is a pair: the broken program a student writes first, and its fix.
A program is `program(k)`: it runs as thread 0 of a controlled kernel,
starts threads, joins them, and raises AssertionError when its invariant
breaks (runtime/explore.py runs it under many schedules):

    lost_update     x = x + 1 by two threads        / ACQUIRE ... RELEASE
    two_senders     the book's one-sender buffer,   / the same, under a lock
                    used by two senders
    flag_lock       ACQUIRE made of LOAD then STORE / made of RSM
                    (test, then set)                  (read-and-set-memory)
    lost_wakeup     "if nothing there, sleep; the   / an eventcount: AWAIT the
                    producer wakes a sleeper"         count, ADVANCE it
    deadlock        two locks taken in opposite     / in one global order
                    orders by two threads

The demos, the tests (tests/sched/test_classics.py) and `vos bench explore`
share them.  Shared words live in one block mapped at page 1 of the boot
address space (threads run there too).
"""

from runtime.textbook import (ACQUIRE, ADVANCE, ALLOCATE_BLOCK, ALLOCATE_EVENTCOUNT, ALLOCATE_LOCK,
                              ALLOCATE_THREAD, AWAIT, LOAD, MAP, READ, RELEASE, RSM, STORE, YIELD)

BASE = 4096           # page 1
X, IN, OUT, FLAG, ITEM, ASLEEP = BASE, BASE + 8, BASE + 16, BASE + 24, BASE + 32, BASE + 40
SLOTS = BASE + 64     # the book's buffer: N words from here
N = 2


def _memory(k):
    MAP(k.address_space, ALLOCATE_BLOCK(4096), 1, "rw")


def _start(k, procedure, *args):
    return ALLOCATE_THREAD(procedure, k.address_space, *args)


# --- 1. the lost update ------------------------------------------------------------------

def _increment(n, lock):
    for _ in range(n):
        if lock is not None:
            ACQUIRE(lock)
        x = LOAD(X)
        STORE(X, x + 1)
        if lock is not None:
            RELEASE(lock)


def _lost_update(k, threads, n, locked):
    _memory(k)
    lock = ALLOCATE_LOCK("x") if locked else None
    tids = [_start(k, _increment, n, lock) for _ in range(threads)]
    for t in tids:
        k.join(t)
    assert LOAD(X) == threads * n, f"x = {LOAD(X)} after {threads} x {n} increments: an update was lost"


def lost_update(k):
    """Two threads, x = x + 1 three times each, no lock."""
    _lost_update(k, 2, 3, False)


def lost_update_fixed(k):
    _lost_update(k, 2, 3, True)


def lost_update_3x10(k):
    """Three threads, ten increments each, with the lock (the benchmark's larger program)."""
    _lost_update(k, 3, 10, True)


# --- 2. two senders on the book's one-sender buffer ----------------------------------------

def _book_send(message, lock):
    """SEND(p, msg): while p.in - p.out = N wait; p.message[p.in mod N] = msg; p.in = p.in + 1."""
    if lock is not None:
        ACQUIRE(lock)
    while LOAD(IN) - LOAD(OUT) == N:
        if lock is not None:
            RELEASE(lock)
        YIELD()
        if lock is not None:
            ACQUIRE(lock)
    i = LOAD(IN)
    STORE(SLOTS + 8 * (i % N), message)
    STORE(IN, i + 1)
    if lock is not None:
        RELEASE(lock)


def _sender(messages, lock):
    for m in messages:
        _book_send(m, lock)


def _receiver(count, lock):
    got = []
    for _ in range(count):
        if lock is not None:
            ACQUIRE(lock)
        while LOAD(IN) == LOAD(OUT):
            if lock is not None:
                RELEASE(lock)
            YIELD()
            if lock is not None:
                ACQUIRE(lock)
        o = LOAD(OUT)
        got.append(LOAD(SLOTS + 8 * (o % N)))
        STORE(OUT, o + 1)
        if lock is not None:
            RELEASE(lock)
    return got


def _two_senders(k, locked):
    _memory(k)
    lock = ALLOCATE_LOCK("buffer") if locked else None
    r = _start(k, _receiver, 3, lock)
    senders = [_start(k, _sender, [10], lock), _start(k, _sender, [20, 21], lock)]
    for t in senders:
        k.join(t)
    got = k.join(r)
    assert sorted(got) == [10, 20, 21], f"received {got}, sent 10 and 20, 21: messages lost or doubled"


def two_senders(k):
    """Two senders on a buffer made for one (no lock around SEND)."""
    _two_senders(k, False)


def two_senders_fixed(k):
    _two_senders(k, True)


# --- 3. a lock made of a plain flag ------------------------------------------------------------

def _flag_acquire():
    while LOAD(FLAG) == 1:          # test ...
        YIELD()
    STORE(FLAG, 1)                  # ... then set: another thread may have tested meanwhile


def _rsm_acquire():
    while RSM(FLAG) == 1:           # read-and-set-memory: test and set in one atomic step
        YIELD()


def _critical(acquire, n):
    for _ in range(n):
        acquire()
        x = LOAD(X)
        STORE(X, x + 1)
        STORE(FLAG, 0)              # RELEASE


def _flag_lock(k, acquire):
    _memory(k)
    tids = [_start(k, _critical, acquire, 2) for _ in range(2)]
    for t in tids:
        k.join(t)
    assert LOAD(X) == 4, f"x = {LOAD(X)} after 2 x 2 increments under the lock: two threads were inside"


def flag_lock(k):
    """ACQUIRE built from LOAD and STORE: both threads get in."""
    _flag_lock(k, _flag_acquire)


def flag_lock_fixed(k):
    _flag_lock(k, _rsm_acquire)


# --- 4. the lost wake-up --------------------------------------------------------------------------

def _flag_consumer(wake):
    if LOAD(ITEM) == 0:             # nothing there ...
        STORE(ASLEEP, 1)            # ... so sleep; but the producer may come in between
        AWAIT(wake, READ(wake))
    STORE(ITEM, 0)


def _flag_producer(wake):
    STORE(ITEM, 1)
    if LOAD(ASLEEP) == 1:           # wake a sleeper -- if it is already asleep
        ADVANCE(wake)


def _ec_consumer(items):
    AWAIT(items, 0)                 # until one item has been produced: count > 0
    STORE(ITEM, 0)


def _ec_producer(items):
    STORE(ITEM, 1)
    ADVANCE(items)


def lost_wakeup(k):
    """A flag-based sleep/wake-up: the wake-up comes before the sleep."""
    _memory(k)
    wake = ALLOCATE_EVENTCOUNT("wake")
    tids = [_start(k, _flag_consumer, wake), _start(k, _flag_producer, wake)]
    for t in tids:
        k.join(t)                   # a lost wake-up: the consumer sleeps for ever (Hang)


def lost_wakeup_fixed(k):
    _memory(k)
    items = ALLOCATE_EVENTCOUNT("items")
    tids = [_start(k, _ec_consumer, items), _start(k, _ec_producer, items)]
    for t in tids:
        k.join(t)


# --- 5. two locks in opposite orders -------------------------------------------------------------

def _transfer(first, second):
    ACQUIRE(first)
    ACQUIRE(second)
    x = LOAD(X)
    STORE(X, x + 1)
    RELEASE(second)
    RELEASE(first)


def _deadlock(k, ordered):
    _memory(k)
    a, b = ALLOCATE_LOCK("a"), ALLOCATE_LOCK("b")
    tids = [_start(k, _transfer, a, b), _start(k, _transfer, *((a, b) if ordered else (b, a)))]
    for t in tids:
        k.join(t)                   # a DeadlockError in one thread: ThreadFailed here
    assert LOAD(X) == 2


def deadlock(k):
    """Thread 1 takes a then b, thread 2 b then a."""
    _deadlock(k, False)


def deadlock_fixed(k):
    _deadlock(k, True)


# (name, the broken program, its fix, what the broken one raises: None when it may raise one of several --
# two senders lose a message (AssertionError) or leave the receiver waiting for it for ever (StepLimit))
CLASSICS = [
    ("lost update", lost_update, lost_update_fixed, "AssertionError"),
    ("two senders", two_senders, two_senders_fixed, None),
    ("flag lock", flag_lock, flag_lock_fixed, "AssertionError"),
    ("lost wake-up", lost_wakeup, lost_wakeup_fixed, "Hang"),
    ("deadlock", deadlock, deadlock_fixed, "ThreadFailed"),
]
