"""Wrong: backs off when the second lock is busy -- after the money left the first account."""

from runtime.errors import WouldBlock
from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE, YIELD

ACCOUNT = 4096
ACCOUNTS = 3


def setup():
    return [ALLOCATE_LOCK(f"account {i}") for i in range(ACCOUNTS)]


def transfer(locks, src, dst, amount):
    a, b = ACCOUNT + 8 * src, ACCOUNT + 8 * dst
    ACQUIRE(locks[src])
    STORE(a, LOAD(a) - amount)
    while True:
        try:
            locks[dst].acquire_nowait()          # try the second lock ...
            break
        except WouldBlock:                       # ... busy: give the first back, let the other go
            RELEASE(locks[src])
            YIELD()
            ACQUIRE(locks[src])
    STORE(b, LOAD(b) + amount)
    RELEASE(locks[dst])
    RELEASE(locks[src])
