"""The reference: RSM tests and sets in one step; try again while it finds the lock taken."""

from runtime.textbook import RSM, STORE, YIELD

UNLOCKED, LOCKED = 0, 1


def acquire(lock_addr):
    while RSM(lock_addr) == LOCKED:
        YIELD()


def release(lock_addr):
    STORE(lock_addr, UNLOCKED)
