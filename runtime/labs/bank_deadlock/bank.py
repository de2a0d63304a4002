"""Lab 6, the bank deadlock (银行转账的死锁).  Read handout.md first.

Two tellers transfer money between accounts at the same time, in opposite
directions, while an auditor adds all balances up.  As written, the
tellers can deadlock: make every transfer atomic and deadlock-free.
Check it with `vos lab check bank_deadlock bank.py`.
"""

from runtime.textbook import *  # noqa: F401,F403 - the lecture's calls: LOAD, STORE, ACQUIRE, ...

ACCOUNT = 4096          # account i's balance is the word at ACCOUNT + 8 * i
ACCOUNTS = 3


def setup():
    """Thread 0 runs this once, before the threads start.  Return the
    accounts' locks as a list: locks[i] guards account i (the auditor
    takes them too)."""
    return [ALLOCATE_LOCK(f"account {i}") for i in range(ACCOUNTS)]


def transfer(locks, src, dst, amount):
    """Move `amount` from account src to account dst, atomically."""
    ACQUIRE(locks[src])
    ACQUIRE(locks[dst])
    a, b = ACCOUNT + 8 * src, ACCOUNT + 8 * dst
    STORE(a, LOAD(a) - amount)
    STORE(b, LOAD(b) + amount)
    RELEASE(locks[dst])
    RELEASE(locks[src])
