"""Wrong: the lock is taken and given back before the update."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE

X = 4096


def setup():
    return ALLOCATE_LOCK("x")


def increment(lock):
    ACQUIRE(lock)
    RELEASE(lock)
    x = LOAD(X)
    STORE(X, x + 1)
