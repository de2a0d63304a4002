"""Wrong: one order for the tellers (higher account first), the opposite of the auditor's."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE

ACCOUNT = 4096
ACCOUNTS = 3


def setup():
    return [ALLOCATE_LOCK(f"account {i}") for i in range(ACCOUNTS)]


def transfer(locks, src, dst, amount):
    first, second = max(src, dst), min(src, dst)
    ACQUIRE(locks[first])
    ACQUIRE(locks[second])
    a, b = ACCOUNT + 8 * src, ACCOUNT + 8 * dst
    STORE(a, LOAD(a) - amount)
    STORE(b, LOAD(b) + amount)
    RELEASE(locks[second])
    RELEASE(locks[first])
