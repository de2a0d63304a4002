"""Wrong: a time.sleep to "let the other thread finish first"."""

import time

from runtime.textbook import LOAD, STORE

X = 4096


def setup():
    return None


def increment(shared):
    time.sleep(0.001)
    x = LOAD(X)
    STORE(X, x + 1)
