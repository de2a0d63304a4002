"""Wrong: read twice, store only if nothing changed (check, then act)."""

from runtime.textbook import LOAD, STORE

X = 4096


def setup():
    return None


def increment(shared):
    while True:
        x = LOAD(X)
        if LOAD(X) == x:
            STORE(X, x + 1)
            return
