"""Wrong: the locks in the right order, but the balances were read before taking them."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE

ACCOUNT = 4096
ACCOUNTS = 3


def setup():
    return [ALLOCATE_LOCK(f"account {i}") for i in range(ACCOUNTS)]


def transfer(locks, src, dst, amount):
    a, b = ACCOUNT + 8 * src, ACCOUNT + 8 * dst
    new_a, new_b = LOAD(a) - amount, LOAD(b) + amount
    first, second = min(src, dst), max(src, dst)
    ACQUIRE(locks[first])
    ACQUIRE(locks[second])
    STORE(a, new_a)
    STORE(b, new_b)
    RELEASE(locks[second])
    RELEASE(locks[first])
