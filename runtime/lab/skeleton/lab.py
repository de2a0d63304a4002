"""Lab __NAME__: one documented file that says how to grade it.

(Written by `vos lab new`: a complete, sound little lab -- two threads
withdraw from one account -- to change into yours.  Check it before you hand
it out: `vos lab sound __FOLDER__`.)

The folder:
    lab.py        this file: the harness and the grading settings
    handout.md    } what `vos lab start` hands out
    account.py    } (the starter: STUDENT_FILE, wrong in the classic way)
    reference.py  the right answer          } kept here, never handed out;
    wrong/*.py    the wrong fixes you expect } `vos lab sound` grades them
    corpus.txt    their failing schedules (`vos lab sound --update-corpus`)

Make `vos lab` list it: put the folder (or its parent) in $VOS_LABS.
"""

from runtime.textbook import ALLOCATE_BLOCK, ALLOCATE_THREAD, LOAD, MAP, STORE

TITLE = "__NAME__"                      # the list's row
TITLE_ZH = "取款"                         # its name in the lecture's words
IDEA = "check, then act: a withdrawal must test and take the money in one step"
ORDER = 50                               # its place in `vos lab`'s list
STUDENT_FILE = "account.py"              # the file students write
REQUIRED = ("setup", "withdraw")         # the functions it must define
KERNEL = dict(max_steps=2000)            # a run longer than this is a livelock: StepLimit
BUDGET = dict(exhaustive_2=6000, sampled=600)   # runs per grading stage (runtime/lab/spec.py)

HINTS = (                                # `vos lab hint`: vague first, never the answer
    "Between the LOAD that checks the balance and the STORE that takes the money, the other "
    "thread can run. What does it see?",
    "The check and the update must be one indivisible step for every thread: what makes "
    "steps indivisible?",
)

BALANCE = 4096                           # the account: the first word of the block at page 1


def _customer(withdraw, shared, amount, results):
    """A thread: one withdrawal; its result goes to a word of its own."""
    ok = withdraw(shared, amount)
    STORE(results, 1 if ok else 0)


def program(student, k):
    """Thread 0 of a controlled kernel: set up, start the threads, join them,
    raise AssertionError when the invariant breaks.  The grader runs it under
    every schedule it explores, with the race detector on."""
    MAP(k.address_space, ALLOCATE_BLOCK(4096, name="account"), 1, "rw")
    STORE(BALANCE, 100)
    shared = student.setup()
    tids = [ALLOCATE_THREAD(_customer, k.address_space, student.withdraw, shared, 80, BALANCE + 8 * (i + 1))
            for i in range(2)]
    for t in tids:
        k.join(t)
    paid = sum(LOAD(BALANCE + 8 * (i + 1)) for i in range(2))
    balance = LOAD(BALANCE)
    assert balance >= 0, f"the balance is {balance}: the bank paid out money it did not have"
    assert balance == 100 - 80 * paid, f"{paid} withdrawals of 80 paid, but the balance is {balance}"
