"""Lab 1, the lost update (丢失的更新): make x = x + 1 by two threads exact.

The student's counter.py defines setup() (thread 0, once: allocate what the
threads share) and increment(shared) (x = x + 1 on the word at X).  Two
threads each call increment three times; afterwards x must be 6, and no
two accesses to x may race.
"""

from runtime.textbook import ALLOCATE_BLOCK, ALLOCATE_THREAD, LOAD, MAP

TITLE = "lost update"
TITLE_ZH = "丢失的更新"
IDEA = "x = x + 1 by two threads: ACQUIRE / RELEASE around the read-modify-write"
ORDER = 1
STUDENT_FILE = "counter.py"
REQUIRED = ("setup", "increment")
KERNEL = dict(max_steps=2000)

X = 4096                # the counter: the first word of the block mapped at page 1
THREADS, TIMES = 2, 3

HINTS = (
    "x = LOAD(X); STORE(X, x + 1) is two steps: another thread can run between them. Which "
    "interleaving loses an update? Try `vos step` on your file, or read the trace `vos lab check` prints.",
    "A lock makes a sequence of steps indivisible for every thread that takes the same lock: "
    "allocate it once in setup() and return it, so that every increment() gets the same one.",
    "Both the LOAD and the STORE must be inside ACQUIRE ... RELEASE: a lock around only one of them "
    "still lets the other thread read between your read and your write.",
)


def _worker(increment, shared, times):
    for _ in range(times):
        increment(shared)


def program(student, k):
    MAP(k.address_space, ALLOCATE_BLOCK(4096, name="counter"), 1, "rw")
    shared = student.setup()
    tids = [ALLOCATE_THREAD(_worker, k.address_space, student.increment, shared, TIMES) for _ in range(THREADS)]
    for t in tids:
        k.join(t)
    x = LOAD(X)
    assert x == THREADS * TIMES, (f"x = {x} after {THREADS} threads x {TIMES} increments: "
                                  f"{THREADS * TIMES - x} update(s) lost")
