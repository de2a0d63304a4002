"""Wrong: the book's test-then-set with a time.sleep "so that the other thread's set lands first"."""

import time

from runtime.textbook import LOAD, STORE, YIELD

UNLOCKED, LOCKED = 0, 1


def acquire(lock_addr):
    while LOAD(lock_addr) == LOCKED:
        YIELD()
    time.sleep(0.001)
    while LOAD(lock_addr) == LOCKED:    # check again after the pause
        YIELD()
    STORE(lock_addr, LOCKED)


def release(lock_addr):
    STORE(lock_addr, UNLOCKED)
