"""Wrong: never two locks at once -- no deadlock, but the transfer is not atomic."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE

ACCOUNT = 4096
ACCOUNTS = 3


def setup():
    return [ALLOCATE_LOCK(f"account {i}") for i in range(ACCOUNTS)]


def transfer(locks, src, dst, amount):
    a, b = ACCOUNT + 8 * src, ACCOUNT + 8 * dst
    ACQUIRE(locks[src])
    STORE(a, LOAD(a) - amount)
    RELEASE(locks[src])
    ACQUIRE(locks[dst])
    STORE(b, LOAD(b) + amount)
    RELEASE(locks[dst])
