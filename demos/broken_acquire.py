"""The book's first ACQUIRE tests and then sets -- and fails; RSM fixes it.

Slide: the race on shared data, and why a lock needs an atomic instruction.

The first lock anyone writes keeps the lock's state in memory and does:

    procedure ACQUIRE (L):                procedure RELEASE (L):
        while L = LOCKED do nothing           L <- UNLOCKED
        L <- LOCKED

Step 1 protects the counter of `vos demo counter` with it, three threads on
two processors.  Two threads can both see UNLOCKED, both set LOCKED, and both enter: the test and the set are
two memory operations, and the other processor runs between them (the demo
puts a YIELD there so that it happens often enough to count).  The count is
wrong, and the demo counts how often two threads were inside at once.

Step 2 uses the instruction the hardware offers for this, RSM
(read-and-set-memory): it reads the old value and writes LOCKED in one
indivisible step, so exactly one thread sees UNLOCKED:

    procedure ACQUIRE (L):
        while RSM(L) = LOCKED do nothing

In vos, RSM is a real atomic exchange on the word behind the virtual address
(runtime/memory/pager.py).  The spin loop YIELDs instead of "do nothing", to
give its processor to the holder.  Exact, every time.

Step 3 is 受控运行, a controlled run (demos/_controlled.py): the book's
test-then-set ACQUIRE exactly (no YIELD added: the scheduler finds the
window by itself), two threads entering once, one thread at a time, the
choices random walks from a seed (`vos demo broken-acquire --seed 3`).  The
schedule that lets both in is shrunk and shown with its lines and replay
token; the race report (数据竞争报告) names the lock word's own test and
set; the RSM version, searched exhaustively, has no race and no failure.

What to notice: the broken lock *looks* right and works most of the time;
only the "two inside" column gives it away -- and the race report, which
names the lock's LOAD and STORE as racing with each other.
"""

from rich.table import Table

from demos._controlled import SEED, act
from demos._student_locks import RSMSpinLock, TestThenSetLock
from runtime import Kernel
from runtime.textbook import (ADVANCE, ALLOCATE_BLOCK, ALLOCATE_EVENTCOUNT, ALLOCATE_THREAD, AWAIT, LOAD, MAP,
                              READ, STORE)

TITLE = "the book's ACQUIRE that tests and then sets fails on two cores; the RSM one works"
SLIDE = "最大的惊吓: 数据的竞争使用 — 为什么锁需要原子指令 (RSM)"
ORDER = 21

PAGE = 1
COUNTER, LOCKWORD = 0, 8


THREADS, PROCESSORS = 3, 2


def add(a, n, lock, entered, left, ready):
    """x = x + 1 under `lock`; returns how often another thread was inside too."""
    ADVANCE(ready)
    AWAIT(ready, THREADS - 1)
    both_inside = 0
    for _ in range(n):
        lock.acquire()
        ADVANCE(entered)
        if READ(entered) - READ(left) > 1:
            both_inside += 1
        x = LOAD(a)
        STORE(a, x + 1)
        ADVANCE(left)
        lock.release()
    return both_inside


def run(lock_class, n):
    with Kernel(processors=PROCESSORS) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(k.config.page_size), PAGE, "rw")
        base = PAGE * k.config.page_size
        STORE(base + COUNTER, 0)
        lock = lock_class(base + LOCKWORD)
        entered, left, ready = ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT()
        tids = [ALLOCATE_THREAD(add, k.address_space, base + COUNTER, n, lock, entered, left, ready)
                for _ in range(THREADS)]
        both = sum(k.join(t, timeout=120) for t in tids)
        return LOAD(base + COUNTER), both


def enter(a, lock):
    """Step 3's thread: x = x + 1 once, under `lock`."""
    lock.acquire()
    x = LOAD(a)
    STORE(a, x + 1)
    lock.release()


def two_enter(k, lock_class, **options):
    """Step 3's program, thread 0 of a controlled kernel: two threads enter
    once each; x must then be 2."""
    MAP(k.address_space, ALLOCATE_BLOCK(k.config.page_size), PAGE, "rw")
    base = PAGE * k.config.page_size
    lock = lock_class(base + LOCKWORD, **options)
    tids = [ALLOCATE_THREAD(enter, k.address_space, base + COUNTER, lock) for _ in range(2)]
    for t in tids:
        k.join(t)
    x = LOAD(base + COUNTER)
    assert x == 2, f"x = {x} after two x = x + 1 under the lock: both threads were inside"


def racy(k):
    """Step 3, the racy version: the book's test-then-set ACQUIRE, exactly."""
    two_enter(k, TestThenSetLock, window=False)


def fixed(k):
    """Step 3, the fixed version: ACQUIRE with RSM."""
    two_enter(k, RSMSpinLock)


def main(console, quick=False, seed=SEED):
    n = 3_000 if quick else 20_000
    total = THREADS * n
    console.print("[bold]Step 1.[/] The book's first ACQUIRE: [bold]while L = LOCKED do nothing; "
                  f"L ← LOCKED[/], a LOAD and then a STORE. {THREADS} threads on {PROCESSORS} processors (复用).")
    got, both = run(TestThenSetLock, n)
    for longer in (4 * n, 16 * n):
        if got != total or both:
            break
        console.print(f"  (no collision this time: the threads hardly overlapped; again with {longer:,} each)")
        n, total = longer, THREADS * longer
        got, both = run(TestThenSetLock, n)
    rows = [("1. test, then set", got, both, "red")]
    console.print(f"  Counter {got:,} of {total:,}: {total - got:,} updates lost; {both:,} times [red]two threads "
                  "were inside the critical section[/]. Both saw UNLOCKED before either wrote LOCKED.\n")

    console.print("[bold]Step 2.[/] ACQUIRE with RSM: [bold]while RSM(L) = LOCKED do YIELD[/] — read the old "
                  "value and set LOCKED in one atomic step.")
    got, both = run(RSMSpinLock, n)
    rows.append(("2. RSM (read-and-set-memory)", got, both, "green"))
    console.print(f"  Counter {got:,}: [green]exact[/], and never two inside: of two threads that RSM at the "
                  "same moment, exactly one reads UNLOCKED.\n")

    table = Table(title=f"{THREADS} threads, each adds {n:,} under the lock (expected {total:,})",
                  title_justify="left")
    for col in ("lock", "counter", "lost updates", "times two were inside"):
        table.add_column(col, justify="left" if col == "lock" else "right")
    for name, got, both, colour in rows:
        table.add_row(name, f"{got:,}", f"[{colour}]{total - got:,}[/]", f"[{colour}]{both:,}[/]")
    console.print(table)
    console.print("  Notice: the broken lock is not always wrong, just sometimes; a test that passes once proves "
                  "nothing about a race. RSM works because the hardware makes read-and-set one indivisible step.")

    console.print(f"\n[bold]Step 3.[/] 受控运行 (a controlled run): the book's ACQUIRE exactly (no YIELD), two "
                  f"threads, one at a time; random walks from seed {seed} (--seed) until both get in:")
    act(console, racy, fixed, "ACQUIRE with RSM", seed)
