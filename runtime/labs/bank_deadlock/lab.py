"""Lab 6, the bank deadlock (银行转账的死锁): take two locks in one global order.

Three accounts (账户) are words of a shared block, one lock per account.
The student's bank.py defines setup() (thread 0, once: allocate the
accounts' locks and return them, locks[i] guarding account i) and
transfer(locks, src, dst, amount) (move `amount` from account src to
account dst, holding both accounts' locks).  Two tellers transfer money in
opposite directions at the same time while an auditor (审计员, this file's
code) takes every account's lock in increasing account number and adds the
balances up.  Afterwards:

    no thread deadlocked          (a lock cycle: DeadlockError in the thread
                                   that closes it; nobody able to run: Hang)
    the auditor saw the total     (no money vanished in the middle of a
                                   transfer: each transfer is atomic)
    every balance is exact        (no update lost)
    no two accesses raced         (the race detector, on in every run)
"""

from runtime.errors import DeadlockError, ThreadFailed
from runtime.textbook import ACQUIRE, ALLOCATE_BLOCK, ALLOCATE_THREAD, LOAD, MAP, RELEASE, STORE

TITLE = "bank deadlock"
TITLE_ZH = "银行转账的死锁"
IDEA = "two locks taken in opposite orders deadlock: take them in one global order"
ORDER = 6
STUDENT_FILE = "bank.py"
REQUIRED = ("setup", "transfer")
KERNEL = dict(max_steps=300)       # the longest run of the reference: 62 steps

ACCOUNT = 4096          # account i is the word at ACCOUNT + 8 * i (the block mapped at page 1)
ACCOUNTS = 3
OPENING = 100           # every account opens with 100
TELLERS = (             # each teller's transfers, in order: (src, dst, amount)
    ((0, 1, 10), (2, 1, 5)),
    ((1, 0, 20), (1, 2, 30)),
)

HINTS = (
    "Read the failing trace column by column: which lock does each thread hold, and which one "
    "does it wait for? A cycle in that 'waits for' picture (等待图) is a deadlock (死锁).",
    "Giving the first lock back before taking the second breaks the cycle, but then the auditor can "
    "look while the money is in neither account: a transfer must hold both locks from the first "
    "LOAD to the last STORE.",
    "A cycle cannot close if every thread takes the locks it needs in one agreed order. The auditor "
    "already has one; does your transfer follow it, whichever way the money goes?",
)


def account(i):
    """The virtual address of account i's balance."""
    return ACCOUNT + 8 * i


def _teller(transfer, locks, transfers):
    for src, dst, amount in transfers:
        transfer(locks, src, dst, amount)


def _auditor(locks):
    """Take every account's lock in increasing account number, add up."""
    for i in range(ACCOUNTS):
        ACQUIRE(locks[i])
    total = sum(LOAD(account(i)) for i in range(ACCOUNTS))
    for i in reversed(range(ACCOUNTS)):
        RELEASE(locks[i])
    return total


def _expected():
    balances = [OPENING] * ACCOUNTS
    for transfers in TELLERS:
        for src, dst, amount in transfers:
            balances[src] -= amount
            balances[dst] += amount
    return balances


def program(student, k):
    MAP(k.address_space, ALLOCATE_BLOCK(4096, name="accounts"), 1, "rw")
    for i in range(ACCOUNTS):
        STORE(account(i), OPENING)
    locks = student.setup()
    try:
        ok = len(locks) == ACCOUNTS
    except TypeError:
        ok = False
    assert ok, (f"setup() returned {locks!r}: it must return a list of {ACCOUNTS} locks, "
                f"locks[i] guarding account i")
    names = ["teller " + " ".join(f"{s}->{d}" for s, d, _ in t) for t in TELLERS]
    tids = [ALLOCATE_THREAD(_teller, k.address_space, student.transfer, list(locks), t) for t in TELLERS]
    auditor = ALLOCATE_THREAD(_auditor, k.address_space, list(locks))
    results, failed = {}, []
    for tid, name in zip(tids + [auditor], names + ["auditor"]):
        try:
            results[name] = k.join(tid)
        except ThreadFailed as e:
            failed.append((e.exc_type != "DeadlockError", e.exc_type == "OwnerDied", tid, name, e))
    if failed:          # the cause first: a deadlock, then a failure that left a lock behind (OwnerDied)
        *_, tid, name, e = min(failed, key=lambda f: f[:3])
        error = DeadlockError if e.exc_type == "DeadlockError" else AssertionError    # the kind the grader shows
        raise error(f"the {name} (thread {tid}) failed with {e.exc_type or e.reason}: {e.message}")
    total = OPENING * ACCOUNTS
    counted = results["auditor"]
    assert counted == total, (
        f"the auditor, holding every account's lock, counted {counted}, but the bank holds {total}: money "
        + ("vanished. Did it look while a transfer had taken the money out of one account and not yet put it "
           "into the other (the transfer was not atomic), or was a balance written from a stale value?"
           if counted < total else
           "appeared. Was a balance written without its account's lock, or from a stale value?"))
    balances, expected = [LOAD(account(i)) for i in range(ACCOUNTS)], _expected()
    assert balances == expected, (f"balances {balances} after the transfers, expected {expected}: "
                                  f"an update was lost")
