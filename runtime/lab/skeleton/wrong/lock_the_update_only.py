"""Wrong: the check is outside the lock; both customers pass it."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE

BALANCE = 4096


def setup():
    return ALLOCATE_LOCK("account")


def withdraw(lock, amount):
    if LOAD(BALANCE) < amount:
        return False
    ACQUIRE(lock)
    STORE(BALANCE, LOAD(BALANCE) - amount)
    RELEASE(lock)
    return True
