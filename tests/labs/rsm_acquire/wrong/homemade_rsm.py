"""Wrong: a read-and-set made of LOAD then STORE: two steps, so not atomic."""

from runtime.textbook import LOAD, STORE, YIELD

UNLOCKED, LOCKED = 0, 1


def read_and_set(addr):
    old = LOAD(addr)
    STORE(addr, LOCKED)
    return old


def acquire(lock_addr):
    while read_and_set(lock_addr) == LOCKED:
        YIELD()


def release(lock_addr):
    STORE(lock_addr, UNLOCKED)
