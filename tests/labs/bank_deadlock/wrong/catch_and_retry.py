"""Wrong: catches DeadlockError and retries in the same order: whoever else closes the cycle still deadlocks."""

from runtime.errors import DeadlockError
from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE

ACCOUNT = 4096
ACCOUNTS = 3


def setup():
    return [ALLOCATE_LOCK(f"account {i}") for i in range(ACCOUNTS)]


def transfer(locks, src, dst, amount):
    while True:
        ACQUIRE(locks[src])
        try:
            ACQUIRE(locks[dst])
            break
        except DeadlockError:
            RELEASE(locks[src])
    a, b = ACCOUNT + 8 * src, ACCOUNT + 8 * dst
    STORE(a, LOAD(a) - amount)
    STORE(b, LOAD(b) + amount)
    RELEASE(locks[dst])
    RELEASE(locks[src])
