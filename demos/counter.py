"""最大的惊吓: the race on shared data (数据的竞争使用), then ACQUIRE/RELEASE.

Slide: "最大的惊吓：程序员必须处理数据的竞争使用" (the biggest scare: the
programmer must deal with races on shared data).

Step 1 starts two threads on two processors.  Both run the lecture's
`x = x + 1` on one word of a shared block, written as the two memory
operations it really is:

    x = LOAD(a)          # read the shared counter
    STORE(a, x + 1)      # write it back

Each adds N; the count should be 2N.  It is not: when both LOAD the same
value, one STORE overwrites the other (a lost update).

Step 2 runs the same code on ONE processor with a short clock quantum: even
without a second core, a clock interrupt (时钟中断) between the LOAD and the
STORE switches threads, and updates are lost again.

Step 3 wraps the two lines in ACQUIRE(lock) ... RELEASE(lock): exact, every
time.  The lock statistics show how often a thread found the lock held.

Step 4 is 受控运行, a controlled run (demos/_controlled.py): the same two
lines, each thread adding once, one thread at a time, the scheduler's
choices random walks from a seed (`vos demo counter --seed 3`).  The first
schedule that loses an update is shrunk and shown one column per thread,
with the line of each step and the token that replays it (`vos replay
TOKEN`); then the race report (数据竞争报告) of that run names both lines,
and the locked version is searched exhaustively: no race, no failure.

What to notice: the lost updates vary from run to run (a race); the lock
makes the result exact but costs time.  Under the controlled scheduler the
race stops being luck: the same seed prints the same interleaving every time.
"""

import time

from rich.table import Table

from demos._controlled import SEED, act
from runtime import Kernel
from runtime.textbook import (ACQUIRE, ADVANCE, ALLOCATE_BLOCK, ALLOCATE_EVENTCOUNT, ALLOCATE_LOCK,
                              ALLOCATE_THREAD, AWAIT, LOAD, MAP, RELEASE, STORE)

TITLE = "two threads add to one counter: lost updates, then ACQUIRE/RELEASE"
SLIDE = "最大的惊吓：程序员必须处理数据的竞争使用"
ORDER = 20

PAGE = 1


def add(a, n, lock, ready):
    """x = x + 1, n times (under `lock` when there is one; `ready`: an
    eventcount to start together, or None)."""
    if ready is not None:
        ADVANCE(ready)
        AWAIT(ready, 1)      # both threads start together
    for _ in range(n):
        if lock is not None:
            ACQUIRE(lock)
        x = LOAD(a)
        STORE(a, x + 1)
        if lock is not None:
            RELEASE(lock)
    return n


def run(processors, n, with_lock, quantum=0.01):
    """Boot a machine, let two threads add n each; (count, seconds, lock statistics)."""
    with Kernel(processors=processors, quantum=quantum) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(k.config.page_size), PAGE, "rw")
        a = PAGE * k.config.page_size
        STORE(a, 0)
        lock = ALLOCATE_LOCK("counter") if with_lock else None
        ready = ALLOCATE_EVENTCOUNT()
        t0 = time.perf_counter()
        tids = [ALLOCATE_THREAD(add, k.address_space, a, n, lock, ready) for _ in range(2)]
        for t in tids:
            k.join(t, timeout=120)
        seconds = time.perf_counter() - t0
        return LOAD(a), seconds, (lock.statistics() if lock is not None else None)


def two_adds(k, lock):
    """Step 4's program, thread 0 of a controlled kernel: two threads run
    add once each; x must then be 2."""
    MAP(k.address_space, ALLOCATE_BLOCK(k.config.page_size), PAGE, "rw")
    a = PAGE * k.config.page_size
    tids = [ALLOCATE_THREAD(add, k.address_space, a, 1, lock, None) for _ in range(2)]
    for t in tids:
        k.join(t)
    x = LOAD(a)
    assert x == 2, f"x = {x} after two x = x + 1: an update was lost"


def racy(k):
    """Step 4, the racy version: no lock."""
    two_adds(k, None)


def fixed(k):
    """Step 4, the fixed version: ACQUIRE/RELEASE around the two lines."""
    two_adds(k, ALLOCATE_LOCK("counter"))


def main(console, quick=False, seed=SEED):
    n = 20_000 if quick else 200_000
    rows = []

    console.print(f"[bold]Step 1.[/] Two threads on two processors, each does [bold]x = LOAD(a); "
                  f"STORE(a, x + 1)[/] {n:,} times on one shared word.")
    m = n
    got, secs, _ = run(None, m, False)
    if got == 2 * m:  # a busy host ran the two processes one after the other; a longer run overlaps them
        m = 4 * n
        console.print(f"  (no update lost this time: the threads hardly overlapped; again with {m:,} each)")
        got, secs, _ = run(None, m, False)
    rows.append(("1. no lock, 2 processors", m, got, secs, ""))
    console.print(f"  The counter reads {got:,}, not {2 * m:,}: [red]{2 * m - got:,} updates were lost[/] "
                  "(更新丢失). Both threads LOADed the same value; one STORE overwrote the other.\n")

    console.print("[bold]Step 2.[/] The same code on [bold]one[/] processor, with a 1 ms clock quantum.")
    got, secs, _ = run(1, n, False, quantum=0.001)
    rows.append(("2. no lock, 1 processor", n, got, secs, ""))
    console.print(f"  Lost {2 * n - got:,}. No second core is needed: a clock interrupt (时钟中断) between the "
                  "LOAD and the STORE switches threads at the worst moment.\n")

    console.print("[bold]Step 3.[/] Now with a lock: [bold]ACQUIRE(lock); x = LOAD(a); STORE(a, x + 1); "
                  "RELEASE(lock)[/], two processors again.")
    got, secs, stats = run(None, n, True)
    rows.append(("3. ACQUIRE / RELEASE", n, got, secs, f"{stats.contention:,} of {stats.acquisitions:,}"))
    console.print(f"  The counter reads {got:,}: [green]exact[/]. {stats.contention:,} times a thread found "
                  "the lock held and waited (spinning briefly, then asleep, its processor given back).\n")

    table = Table(title="two threads add to one shared counter", title_justify="left")
    for col in ("run", "expected", "counter", "lost updates", "seconds", "found the lock held"):
        table.add_column(col, justify="left" if col == "run" else "right", overflow="fold")
    for name, each, got, secs, held in rows:
        lost = 2 * each - got
        table.add_row(name, f"{2 * each:,}", f"{got:,}", f"[{'red' if lost else 'green'}]{lost:,}[/]",
                      f"{secs:.2f}", held)
    console.print(table)
    console.print("  Notice: the lost updates change from run to run (that is what a race is); the lock makes "
                  "the count exact, at the price of the time in the seconds column.")

    console.print(f"\n[bold]Step 4.[/] 受控运行 (a controlled run): each thread adds once, one at a time; random "
                  f"walks from seed {seed} (--seed) until an update is lost:")
    act(console, racy, fixed, "ACQUIRE/RELEASE", seed)
