"""Wrong: `if` instead of `while`: after one YIELD it goes in without asking RSM again."""

from runtime.textbook import RSM, STORE, YIELD

UNLOCKED, LOCKED = 0, 1


def acquire(lock_addr):
    if RSM(lock_addr) == LOCKED:        # taken: give the holder a turn, then it must be free
        YIELD()


def release(lock_addr):
    STORE(lock_addr, UNLOCKED)
