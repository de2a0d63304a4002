"""The reference: READ the eventcount under the lock, before sleeping; put() always ADVANCEs."""

from runtime.textbook import (ACQUIRE, ADVANCE, ALLOCATE_EVENTCOUNT, ALLOCATE_LOCK, AWAIT, LOAD, READ, RELEASE,
                              STORE)

IN, OUT = 4096, 4104
SLOTS = 4160


def setup():
    return ALLOCATE_LOCK("mailbox"), ALLOCATE_EVENTCOUNT("wakeup")


def put(shared, item):
    lock, wakeup = shared
    ACQUIRE(lock)
    i = LOAD(IN)
    STORE(SLOTS + 8 * i, item)
    STORE(IN, i + 1)
    RELEASE(lock)
    ADVANCE(wakeup)                     # always: an ADVANCE nobody waits for is counted, not lost


def get(shared):
    lock, wakeup = shared
    ACQUIRE(lock)
    while LOAD(OUT) == LOAD(IN):
        v = READ(wakeup)                # under the lock: every put() after my test ADVANCEs past v
        RELEASE(lock)
        AWAIT(wakeup, v)
        ACQUIRE(lock)
    o = LOAD(OUT)
    item = LOAD(SLOTS + 8 * o)
    STORE(OUT, o + 1)
    RELEASE(lock)
    return item
