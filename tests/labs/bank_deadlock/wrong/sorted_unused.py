"""Wrong: sorts the two accounts, then locks the unsorted pair anyway."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE

ACCOUNT = 4096
ACCOUNTS = 3


def setup():
    return [ALLOCATE_LOCK(f"account {i}") for i in range(ACCOUNTS)]


def transfer(locks, src, dst, amount):
    first, second = sorted((src, dst))
    ACQUIRE(locks[src])
    ACQUIRE(locks[dst])
    a, b = ACCOUNT + 8 * src, ACCOUNT + 8 * dst
    STORE(a, LOAD(a) - amount)
    STORE(b, LOAD(b) + amount)
    RELEASE(locks[dst])
    RELEASE(locks[src])
