"""Wrong: test-and-test-and-set that "undoes" a lost RSM with STORE 0, freeing the holder's lock."""

from runtime.textbook import LOAD, RSM, STORE, YIELD

UNLOCKED, LOCKED = 0, 1


def acquire(lock_addr):
    while True:
        while LOAD(lock_addr) == LOCKED:    # test with a plain LOAD first (cheap) ...
            YIELD()
        if RSM(lock_addr) == UNLOCKED:      # ... then test-and-set
            return
        STORE(lock_addr, UNLOCKED)          # lost the race: undo my set and try again


def release(lock_addr):
    STORE(lock_addr, UNLOCKED)
