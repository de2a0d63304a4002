"""Lab 1, the lost update (丢失的更新).  Read handout.md first.

Two threads run increment() at the same time, three times each, on one
word of a shared block.  As written, updates get lost: make it exact.
Check it with `vos lab check lost_update counter.py`.
"""

from runtime.textbook import *  # noqa: F401,F403 - the lecture's calls: LOAD, STORE, ALLOCATE_LOCK, ...

X = 4096        # the shared counter: a word of the block mapped at page 1


def setup():
    """Thread 0 runs this once, before the threads start.  Allocate what
    the threads share and return it: every increment() call gets it."""
    return None


def increment(shared):
    """x = x + 1, written as the two memory operations it really is."""
    x = LOAD(X)
    STORE(X, x + 1)
