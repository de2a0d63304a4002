"""Wrong: only the LOAD is locked; the STORE writes a value read earlier."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE

X = 4096


def setup():
    return ALLOCATE_LOCK("x")


def increment(lock):
    ACQUIRE(lock)
    x = LOAD(X)
    RELEASE(lock)
    STORE(X, x + 1)
