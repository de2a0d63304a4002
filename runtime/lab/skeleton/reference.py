"""The reference: the check and the update under one lock."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE

BALANCE = 4096


def setup():
    return ALLOCATE_LOCK("account")


def withdraw(lock, amount):
    ACQUIRE(lock)
    balance = LOAD(BALANCE)
    ok = balance >= amount
    if ok:
        STORE(BALANCE, balance - amount)
    RELEASE(lock)
    return ok
