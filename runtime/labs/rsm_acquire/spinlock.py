"""Lab 2, ACQUIRE from RSM (用 RSM 实现 ACQUIRE).  Read handout.md first.

The book's first lock: a word in shared memory, 0 when free, 1 when taken.
Two threads use it around their critical sections (临界区), and both get
in.  Make acquire() let exactly one thread in, using only LOAD, STORE, RSM
and YIELD on the lock word.  Check it with
`vos lab check rsm_acquire spinlock.py`.
"""

from runtime.textbook import LOAD, RSM, STORE, YIELD  # noqa: F401 - RSM is yours to use

UNLOCKED, LOCKED = 0, 1


def acquire(lock_addr):
    """Return when the calling thread holds the lock at lock_addr."""
    while LOAD(lock_addr) == LOCKED:        # wait until the lock is free ...
        YIELD()
    STORE(lock_addr, LOCKED)                # ... then take it


def release(lock_addr):
    """Give the lock at lock_addr up (the caller holds it)."""
    STORE(lock_addr, UNLOCKED)
