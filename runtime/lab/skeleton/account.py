"""Lab __NAME__: the starter.  Read handout.md first.

Two customers withdraw 80 from one account holding 100 at the same time.
Only one of them may get the money.  As written, both can.
"""

from runtime.textbook import *  # noqa: F401,F403 - the lecture's calls

BALANCE = 4096


def setup():
    """Thread 0, once, before the customers start: return what they share."""
    return None


def withdraw(shared, amount):
    """Take `amount` if the balance covers it; True if the money was paid."""
    balance = LOAD(BALANCE)
    if balance < amount:
        return False
    STORE(BALANCE, balance - amount)
    return True
