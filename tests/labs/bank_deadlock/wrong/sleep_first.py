"""Wrong: a time.sleep before the locks, so that "the tellers never collide"."""

import time

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE

ACCOUNT = 4096
ACCOUNTS = 3


def setup():
    return [ALLOCATE_LOCK(f"account {i}") for i in range(ACCOUNTS)]


def transfer(locks, src, dst, amount):
    time.sleep(0.001 * amount)
    ACQUIRE(locks[src])
    ACQUIRE(locks[dst])
    a, b = ACCOUNT + 8 * src, ACCOUNT + 8 * dst
    STORE(a, LOAD(a) - amount)
    STORE(b, LOAD(b) + amount)
    RELEASE(locks[dst])
    RELEASE(locks[src])
