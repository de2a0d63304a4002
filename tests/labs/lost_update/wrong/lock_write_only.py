"""Wrong: only the STORE is locked; the other thread still reads in between."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE

X = 4096


def setup():
    return ALLOCATE_LOCK("x")


def increment(lock):
    x = LOAD(X)
    ACQUIRE(lock)
    STORE(X, x + 1)
    RELEASE(lock)
