"""Wrong: tests with LOAD, then sets with RSM and ignores what RSM returns."""

from runtime.textbook import LOAD, RSM, STORE, YIELD

UNLOCKED, LOCKED = 0, 1


def acquire(lock_addr):
    while LOAD(lock_addr) == LOCKED:
        YIELD()
    RSM(lock_addr)                      # "set it atomically"


def release(lock_addr):
    STORE(lock_addr, UNLOCKED)
