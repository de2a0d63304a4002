"""Wrong: a time.sleep before the READ, "so that the producer has run by then"."""

import time

from runtime.textbook import (ACQUIRE, ADVANCE, ALLOCATE_EVENTCOUNT, ALLOCATE_LOCK, AWAIT, LOAD, READ, RELEASE,
                              STORE)

# The mailbox: words of the block mapped at page 1.  Guarded by the lock.
IN = 4096           # items put so far
OUT = 4104          # items taken so far
ASLEEP = 4112       # 1 while a consumer sleeps
SLOTS = 4160        # item i is the word at SLOTS + 8 * i


def setup():
    """Thread 0 runs this once, before the threads start.  What it returns
    is passed to every put() and get() call."""
    return ALLOCATE_LOCK("mailbox"), ALLOCATE_EVENTCOUNT("wakeup")


def put(shared, item):
    """The producer: add item to the mailbox, and wake a sleeping consumer."""
    lock, wakeup = shared
    ACQUIRE(lock)
    i = LOAD(IN)
    STORE(SLOTS + 8 * i, item)
    STORE(IN, i + 1)
    sleeping = LOAD(ASLEEP)
    RELEASE(lock)
    if sleeping:                            # somebody sleeps: wake it up
        ADVANCE(wakeup)


def get(shared):
    """A consumer: take one item and return it; sleep while there is none."""
    lock, wakeup = shared
    ACQUIRE(lock)
    while LOAD(OUT) == LOAD(IN):            # nothing there: go to sleep
        STORE(ASLEEP, 1)
        RELEASE(lock)
        time.sleep(0.001)                   # give the producer time to put its item
        AWAIT(wakeup, READ(wakeup))         # sleep until the next ADVANCE
        ACQUIRE(lock)
        STORE(ASLEEP, 0)
    o = LOAD(OUT)
    item = LOAD(SLOTS + 8 * o)
    STORE(OUT, o + 1)
    RELEASE(lock)
    return item
