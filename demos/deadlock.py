"""死锁 (deadlock): two locks taken in opposite orders; the cycle is reported; then a lock order.

Slide: the race on shared data and its fix, locks -- and the new danger locks
bring: threads that wait for each other forever.

Step 1.  Thread A takes lock `accounts` then `audit`; thread B takes `audit`
then `accounts`.  Each gets its first lock, then asks for the other's:

    A: ACQUIRE(accounts) ... ACQUIRE(audit)      waits for B
    B: ACQUIRE(audit)    ... ACQUIRE(accounts)   waits for A   <- a cycle

Without help both would wait forever.  The runtime keeps a wait-for graph in
shared memory (each thread's entry says which lock it waits for, each lock
word says who holds it); the ACQUIRE that would close the cycle raises
DeadlockError in exactly one thread, naming the cycle.  That thread releases
what it holds, and the other one completes.

Step 2 runs the same two threads many times, but both take the locks in one
global order (accounts before audit): a cycle cannot form, and nothing is
ever reported.

What to notice: the error names the threads and the locks of the cycle; the
fix is not the detector but the lock order (the detector only tells you).
"""

from rich.table import Table

from runtime import Kernel
from runtime.errors import DeadlockError
from runtime.textbook import (ACQUIRE, ADVANCE, ALLOCATE_EVENTCOUNT, ALLOCATE_LOCK, ALLOCATE_THREAD, AWAIT, RELEASE,
                              YIELD)

TITLE = "two locks in opposite order: the cycle reported, then a lock order"
SLIDE = "锁带来的新问题: 死锁 (两个线程互相等待)"
ORDER = 23


def transfer(first, second, ready, meet, rounds):
    """Take `first`, then `second`, `rounds` times; report DeadlockErrors.
    meet: after taking `first`, wait until the other thread holds its first
    lock too (the unlucky schedule, made certain)."""
    ADVANCE(ready)
    AWAIT(ready, 1)                          # start together
    reports = []
    for r in range(rounds):
        ACQUIRE(first)
        if meet:
            ADVANCE(ready)
            AWAIT(ready, 2 * (r + 2) - 1)    # both hold their first lock now
        try:
            ACQUIRE(second)
        except DeadlockError as e:
            RELEASE(first)                  # give way: the other thread can finish
            reports.append(str(e))
            continue
        YIELD()                              # (some work with both locks held: others get to run)
        RELEASE(second)
        RELEASE(first)
    return reports


def run(opposite, rounds):
    with Kernel() as k:
        accounts, audit = ALLOCATE_LOCK("accounts"), ALLOCATE_LOCK("audit")
        ready = ALLOCATE_EVENTCOUNT("ready")
        a = ALLOCATE_THREAD(transfer, k.address_space, accounts, audit, ready, opposite, rounds)
        b_order = (audit, accounts) if opposite else (accounts, audit)
        b = ALLOCATE_THREAD(transfer, k.address_space, *b_order, ready, opposite, rounds)
        reports = {a: k.join(a, timeout=60), b: k.join(b, timeout=60)}
        return reports, k.statistics()["locks"]


def main(console, quick=False):
    console.print("[bold]Step 1.[/] Thread A: ACQUIRE(accounts), then ACQUIRE(audit). Thread B: ACQUIRE(audit), "
                  "then ACQUIRE(accounts). Each takes its first lock and waits until the other has taken its own: "
                  "the new problem locks bring (锁带来的新问题), 死锁 (deadlock), two threads waiting for each "
                  "other (两个线程互相等待).")
    reports, stats = run(opposite=True, rounds=1)
    victim = next(t for t, r in reports.items() if r)
    survivor = next(t for t, r in reports.items() if not r)
    console.print(f"  Thread {victim} got [red]DeadlockError[/]:")
    console.print(f"    [italic]{reports[victim][0]}[/]")
    console.print(f"  It released its lock, and thread {survivor} completed. Deadlocks reported: "
                  f"{stats['deadlocks']}.\n")

    rounds = 200 if quick else 2000
    console.print(f"[bold]Step 2.[/] The fix: one lock order for everybody (accounts before audit). The same two "
                  f"threads, {rounds} rounds each, started together.")
    reports2, stats2 = run(opposite=False, rounds=rounds)
    table = Table(title="the two runs", title_justify="left")
    for col in ("run", "rounds", "DeadlockErrors", "acquisitions", "found the lock held"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for name, n, rep, st in (("1. opposite orders", 1, reports, stats), ("2. one lock order", rounds, reports2, stats2)):
        errors = sum(len(r) for r in rep.values())
        acq = sum(lk["acquisitions"] for lk in st["locks"])
        held = sum(lk["contention"] for lk in st["locks"])
        table.add_row(name, str(n), f"[{'red' if errors else 'green'}]{errors}[/]", f"{acq:,}", f"{held:,}")
    console.print(table)
    console.print("  Notice: with one lock order the threads still wait for each other's locks (see the last "
                  "column), but the wait-for graph never has a cycle. The detector names a deadlock; the lock "
                  "order prevents it.")
