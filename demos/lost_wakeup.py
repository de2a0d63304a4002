"""唤醒丢失 (the lost wake-up): check, then sleep -- and the notification falls between.

Slide: "如何结合计算任务，有条件出让处理器？如何唤醒？" (how does a thread give
its processor up on a condition, and how is it woken?).

Step 1 builds wait/notify the obvious way, with a flag in shared memory.  The
consumer checks whether an item is there and, if not, goes to sleep until
notified; the producer puts an item there and notifies whoever sleeps:

    consumer                              producer
    if LOAD(item) = 0:                    STORE(item, 1)
        (the producer runs here)          if LOAD(asleep) = 1: STORE(wakeup, 1)
        SLEEP until wakeup = 1

If the producer runs between the consumer's check and its sleep, nobody is
asleep yet, the notification goes nowhere, and the consumer then sleeps
although its item is there: a lost wake-up.  It would sleep forever; the demo
gives up after a fraction of a second and counts it.  The demo plays the
scheduler: it switches the consumer out in the window until the producer has
run (a clock interrupt could do exactly that at any moment), so the bad
interleaving happens in every round.

Step 2 uses AWAIT/ADVANCE instead: the consumer waits with AWAIT(items, i),
the producer announces with ADVANCE(items).  The check and the sleep are one
operation: the eventcount remembers every ADVANCE, and the sleep in the host
kernel happens only if the count is still the one just checked (a futex
compares it atomically).  Same window, same schedule: nothing is lost.

Step 3 is 受控运行, a controlled run (demos/_controlled.py): one consumer
and one producer of one item, step 1's flags with no window added, one
thread at a time, the choices random walks from a seed (`vos demo
lost-wakeup --seed 3`).  The consumer's sleep is a real one there (AWAIT on
an eventcount only a notification advances), so a lost wake-up is a Hang:
no thread can run.  The schedule is shrunk and shown with its lines and
replay token; the race report (数据竞争报告) names the check and the store
it missed; the AWAIT/ADVANCE version, searched exhaustively, has no race
and no failure.

What to notice: step 1 loses the wake-up in every round; step 2 never:
the ADVANCE that came "too early" is not lost, it is counted.
"""

import time

from rich.table import Table

from demos._controlled import SEED, act
from runtime import Kernel
from runtime.textbook import (ADVANCE, ALLOCATE_BLOCK, ALLOCATE_EVENTCOUNT, ALLOCATE_THREAD, AWAIT, LOAD, MAP,
                              STORE, YIELD)

TITLE = "a flag-based wait/notify loses a wake-up; AWAIT/ADVANCE does not"
SLIDE = "如何结合计算任务，有条件出让处理器？如何唤醒？"
ORDER = 22

PAGE = 1
ITEM, ASLEEP, WAKEUP = 0, 8, 16


def window(checked, notified, i):
    """The demo plays the scheduler: right after its check the consumer is
    switched out until the producer has stored round i's item and notified
    (a clock interrupt could cause exactly this at any moment; here it
    happens every round)."""
    ADVANCE(checked)
    AWAIT(notified, i)


# --- step 1: wait/notify with flags ------------------------------------------------

def flag_sleep(base, patience):
    """Announce that we sleep, then wait for a notification (False: none came)."""
    STORE(base + ASLEEP, 1)
    give_up = time.monotonic() + patience
    while LOAD(base + WAKEUP) == 0:
        if time.monotonic() > give_up:
            STORE(base + ASLEEP, 0)
            return False
        YIELD()
    STORE(base + WAKEUP, 0)
    STORE(base + ASLEEP, 0)
    return True


def flag_notify(base):
    """Wake the sleeper, if one sleeps now; otherwise the notification is dropped."""
    if LOAD(base + ASLEEP) == 1:
        STORE(base + WAKEUP, 1)


def flag_consumer(base, rounds, checked, notified, patience):
    lost = 0
    for i in range(rounds):
        empty = LOAD(base + ITEM) == 0    # the check: no item?
        window(checked, notified, i)      # <- the producer runs here
        if empty and not flag_sleep(base, patience):
            lost += 1                     # slept through the notification
        STORE(base + ITEM, 0)             # take the item
    return lost


def flag_producer(base, rounds, checked, notified):
    for i in range(rounds):
        AWAIT(checked, i)                 # (the demo's schedule: after the consumer's check)
        STORE(base + ITEM, 1)
        flag_notify(base)
        ADVANCE(notified)


# --- step 2: AWAIT/ADVANCE ----------------------------------------------------------

def ec_consumer(items, rounds, checked, notified, patience):
    lost = 0
    for i in range(rounds):
        window(checked, notified, i)      # the same schedule: item i is announced before we wait
        try:
            items.await_(i, timeout=patience)   # AWAIT(items, i): until item i + 1 has been produced
        except TimeoutError:
            lost += 1
    return lost


def ec_producer(items, rounds, checked, notified):
    for i in range(rounds):
        AWAIT(checked, i)
        ADVANCE(items)
        ADVANCE(notified)


# --- step 3: the same two, under the controlled scheduler --------------------------------

def consumer(base, wakeup):
    """Step 3's consumer: check, then sleep -- with no window added.  The
    sleep is a real one here: AWAIT on an eventcount that only a
    notification advances (a sleeping thread cannot run)."""
    if LOAD(base + ITEM) == 0:            # the check: no item?
        STORE(base + ASLEEP, 1)           # going to sleep ...
        AWAIT(wakeup, 0)                  # ... SLEEP until notified
    STORE(base + ITEM, 0)                 # take the item


def producer(base, wakeup):
    STORE(base + ITEM, 1)
    if LOAD(base + ASLEEP) == 1:          # notify the sleeper, if one sleeps now
        ADVANCE(wakeup)


def ec_consumer_once(base, items):
    AWAIT(items, 0)                       # until the first item has been produced
    STORE(base + ITEM, 0)


def ec_producer_once(base, items):
    STORE(base + ITEM, 1)
    ADVANCE(items)


def one_item(k, threads, *sync):
    """Step 3's program, thread 0 of a controlled kernel: a consumer and a
    producer of one item; both must end, the item taken."""
    MAP(k.address_space, ALLOCATE_BLOCK(k.config.page_size), PAGE, "rw")
    base = PAGE * k.config.page_size
    tids = [ALLOCATE_THREAD(t, k.address_space, base, *sync) for t in threads]
    for t in tids:
        k.join(t)                         # a lost wake-up: the consumer never ends (Hang)
    assert LOAD(base + ITEM) == 0, "the item was never taken"


def racy(k):
    """Step 3, the racy version: the flags of step 1."""
    one_item(k, (consumer, producer), ALLOCATE_EVENTCOUNT("wakeup"))


def fixed(k):
    """Step 3, the fixed version: AWAIT/ADVANCE."""
    one_item(k, (ec_consumer_once, ec_producer_once), ALLOCATE_EVENTCOUNT("items"))


def run(step, rounds, patience):
    with Kernel() as k:
        checked, notified = ALLOCATE_EVENTCOUNT("checked"), ALLOCATE_EVENTCOUNT("notified")
        t0 = time.perf_counter()
        if step == 1:
            MAP(k.address_space, ALLOCATE_BLOCK(k.config.page_size), PAGE, "rw")
            base = PAGE * k.config.page_size
            c = ALLOCATE_THREAD(flag_consumer, k.address_space, base, rounds, checked, notified, patience)
            p = ALLOCATE_THREAD(flag_producer, k.address_space, base, rounds, checked, notified)
        else:
            items = ALLOCATE_EVENTCOUNT("items")
            c = ALLOCATE_THREAD(ec_consumer, k.address_space, items, rounds, checked, notified, patience)
            p = ALLOCATE_THREAD(ec_producer, k.address_space, items, rounds, checked, notified)
        lost = k.join(c, timeout=120)
        k.join(p, timeout=120)
        return lost, time.perf_counter() - t0


def main(console, quick=False, seed=SEED):
    patience = 0.1 if quick else 0.25
    flag_rounds = 5 if quick else 12
    ec_rounds = 200 if quick else 2000

    console.print("[bold]Step 1.[/] Wait/notify with flags: the consumer checks for an item, then sleeps; "
                  "the producer stores the item, then notifies a sleeper [italic]if there is one[/]. "
                  "The demo plays the scheduler: it switches the consumer out between its check and its "
                  "sleep, until the producer has run.")
    lost1, secs1 = run(1, flag_rounds, patience)
    console.print(f"  [red]{lost1} of {flag_rounds} wake-ups lost[/] (唤醒丢失): each time the producer ran in the "
                  "window, found nobody asleep, and its notification went nowhere. The consumer then slept with "
                  f"its item waiting; the demo gave up after {patience} s each time (a real consumer would sleep "
                  "forever).\n")

    console.print("[bold]Step 2.[/] AWAIT/ADVANCE: the consumer does [bold]AWAIT(items, i)[/], the producer "
                  "[bold]ADVANCE(items)[/]. The same schedule: the producer runs between the consumer's check "
                  "and its wait.")
    lost2, secs2 = run(2, ec_rounds, patience)
    console.print(f"  [green]{lost2} of {ec_rounds} lost[/]. The eventcount remembers every ADVANCE, and AWAIT "
                  "sleeps only if the count is still the value it checked (the host compares it atomically "
                  "as it puts the thread to sleep), so no notification can fall between check and sleep.\n")

    table = Table(title="one producer, one consumer", title_justify="left")
    for col in ("wait/notify", "rounds", "wake-ups lost", "seconds"):
        table.add_column(col, justify="left" if col == "wait/notify" else "right")
    table.add_row("1. check a flag, then sleep", str(flag_rounds), f"[red]{lost1}[/]", f"{secs1:.2f}")
    table.add_row("2. AWAIT / ADVANCE", str(ec_rounds), f"[green]{lost2}[/]", f"{secs2:.2f}")
    console.print(table)
    console.print("  Notice: the broken version is slow only because the demo gives up on each lost wake-up; "
                  "in a real system those consumers would never wake.")

    console.print(f"\n[bold]Step 3.[/] 受控运行 (a controlled run): step 1's flags, one item, one thread at a "
                  f"time; random walks from seed {seed} (--seed) until the consumer sleeps for ever:")
    act(console, racy, fixed, "AWAIT/ADVANCE", seed)
