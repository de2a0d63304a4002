"""Wrong: a new lock in every call; nobody else ever takes it."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE

X = 4096


def setup():
    return None


def increment(shared):
    lock = ALLOCATE_LOCK()
    ACQUIRE(lock)
    x = LOAD(X)
    STORE(X, x + 1)
    RELEASE(lock)
