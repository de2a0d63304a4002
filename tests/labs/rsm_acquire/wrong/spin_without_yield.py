"""Wrong here: the book's "do nothing" spin without YIELD; on one processor the holder never runs again."""

from runtime.textbook import RSM, STORE

UNLOCKED, LOCKED = 0, 1


def acquire(lock_addr):
    r1 = RSM(lock_addr)
    while r1 == LOCKED:                 # do nothing: ask again
        r1 = RSM(lock_addr)


def release(lock_addr):
    STORE(lock_addr, UNLOCKED)
