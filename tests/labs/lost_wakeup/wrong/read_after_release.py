"""Wrong: put() always ADVANCEs, but get() READs the eventcount after RELEASE, after the test."""

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
    ADVANCE(wakeup)


def get(shared):
    lock, wakeup = shared
    ACQUIRE(lock)
    while LOAD(OUT) == LOAD(IN):
        RELEASE(lock)
        v = READ(wakeup)                # a put() may have come and ADVANCEd already
        AWAIT(wakeup, v)
        ACQUIRE(lock)
    o = LOAD(OUT)
    item = LOAD(SLOTS + 8 * o)
    STORE(OUT, o + 1)
    RELEASE(lock)
    return item
