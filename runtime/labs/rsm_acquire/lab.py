"""Lab 2, ACQUIRE from RSM (用 RSM 实现 ACQUIRE): the book's broken lock, then the right one.

The student's spinlock.py defines acquire(lock_addr) and release(lock_addr)
on a lock word in shared memory, with LOAD, STORE, RSM and YIELD only.  Two
threads each enter a critical section twice.  Inside it, the harness counts
who is there (`inside`) and adds 1 to a counter `x`; a thread that enters
while `inside` is not 0 records itself in `crowded`.  Afterwards no thread
may have found another inside, x must be 4, and no two accesses may race.

Memory, two blocks mapped by thread 0:

    page 1  block "lock"       LOCK     the lock word: 0 free, 1 taken (the student's)
    page 2  block "critical"   INSIDE   threads inside the critical section now
                               X        critical sections completed
                               CROWDED  the worker number that found another inside (0: none)

"""

from runtime.textbook import ALLOCATE_BLOCK, ALLOCATE_THREAD, LOAD, MAP, STORE

TITLE = "ACQUIRE from RSM"
TITLE_ZH = "用 RSM 实现 ACQUIRE"
IDEA = "test-then-set lets two threads in; RSM (read-and-set-memory) makes the test and the set one step"
ORDER = 2
STUDENT_FILE = "spinlock.py"
REQUIRED = ("acquire", "release")
KERNEL = dict(max_steps=160)

LOCK = 4096                                     # page 1: the lock word
INSIDE, X, CROWDED = 8192, 8200, 8208           # page 2: the critical section's words
THREADS, TIMES = 2, 2

HINTS = (
    "Find the two steps of your acquire() that another thread can run between. What has each "
    "thread seen, and what has it done, when both think the lock is theirs? `vos lab check` "
    "prints that schedule, one column per thread.",
    "RSM(lock_addr) reads the lock word and sets it to 1 in one indivisible step, and returns what "
    "was there before. Only one thread can ever get 0 back from it while the lock is taken. What "
    "does it mean when it returns 1?",
    "The test of the lock word and the setting of it must be the same RSM: do not decide anything "
    "from a LOAD. Try again (YIELD, then RSM again) for as long as RSM returns 1; release() makes "
    "the word 0 again with one STORE.",
)


def _worker(acquire, release, me, times):
    """Worker `me` (1, 2, ...): `times` critical sections under the student's lock."""
    for _ in range(times):
        acquire(LOCK)
        n = LOAD(INSIDE)                    # who is inside besides me?
        STORE(INSIDE, n + 1)
        if n != 0:
            STORE(CROWDED, me)              # I came in while another thread was inside
        x = LOAD(X)                         # the protected work: x = x + 1
        STORE(X, x + 1)
        STORE(INSIDE, LOAD(INSIDE) - 1)
        release(LOCK)


def program(student, k):
    MAP(k.address_space, ALLOCATE_BLOCK(4096, name="lock"), 1, "rw")
    MAP(k.address_space, ALLOCATE_BLOCK(4096, name="critical"), 2, "rw")
    tids = [ALLOCATE_THREAD(_worker, k.address_space, student.acquire, student.release, me, TIMES)
            for me in range(1, THREADS + 1)]
    for t in tids:
        k.join(t)
    crowded, x = LOAD(CROWDED), LOAD(X)
    assert crowded == 0, (f"thread {tids[crowded - 1]} entered the critical section while another thread was "
                          f"inside: acquire() let two threads in (x = {x} after {THREADS} threads x {TIMES} "
                          f"critical sections)")
    assert x == THREADS * TIMES, (f"x = {x} after {THREADS} threads x {TIMES} critical sections: "
                                  f"{THREADS * TIMES - x} update(s) lost under the lock")
