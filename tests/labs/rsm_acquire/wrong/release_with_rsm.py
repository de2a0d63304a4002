"""Wrong: release() also uses RSM "to change the word atomically"; RSM sets 1, the lock is never freed."""

from runtime.textbook import RSM, YIELD

UNLOCKED, LOCKED = 0, 1


def acquire(lock_addr):
    while RSM(lock_addr) == LOCKED:
        YIELD()


def release(lock_addr):
    RSM(lock_addr)                      # atomic, like acquire's
