"""The reference: the whole read-modify-write under one lock."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE

X = 4096


def setup():
    return ALLOCATE_LOCK("x")


def increment(lock):
    ACQUIRE(lock)
    x = LOAD(X)
    STORE(X, x + 1)
    RELEASE(lock)
