"""Wrong: a lock made of a plain flag word, tested then set."""

from runtime.textbook import LOAD, STORE, YIELD

X, FLAG = 4096, 4104


def setup():
    return FLAG


def increment(flag):
    while LOAD(flag) == 1:
        YIELD()
    STORE(flag, 1)
    x = LOAD(X)
    STORE(X, x + 1)
    STORE(flag, 0)
