"""复用 (multiplexing): six threads on two processors.

Slide: "如何分时: 自觉出让 / 时钟中断" (how to share the processor in time:
give it up voluntarily, or be interrupted by the clock).

Step 1 runs six CPU-bound threads on `Kernel(processors=2)`.  None of them
ever gives the processor up; the clock interrupt (a real SIGALRM timer in each
virtual processor) preempts whoever has used up its quantum, and the next
thread in line runs.  The live table shows two RUNNING, four RUNNABLE waiting
for a processor, and the involuntary switches climbing.

Step 2 runs the same six threads, but each calls YIELD() every few thousand
iterations and the quantum is made very long: now the switches are voluntary.

What to notice: at most two threads RUNNING at any moment; every thread's CPU
time grows at about the same rate (fair round robin); which column the
switches land in (involuntary in step 1, voluntary in step 2).
"""

import time

from rich.live import Live

from runtime import Kernel
from runtime.cli.render import threads_table
from runtime.textbook import ALLOCATE_THREAD, YIELD

TITLE = "six threads on two processors: the clock interrupt, then YIELD"
SLIDE = "复用: 如何分时 — 自觉出让 / 时钟中断"
ORDER = 10


def compute(seconds):
    """CPU-bound work that never gives the processor up by itself."""
    end = time.process_time() + seconds
    n = 0
    while time.process_time() < end:
        n += 1
    return n


def compute_politely(seconds, every):
    """The same work, calling YIELD() every `every` iterations (自觉出让)."""
    end = time.process_time() + seconds
    n = 0
    while time.process_time() < end:
        n += 1
        if n % every == 0:
            YIELD()
    return n


def _watch(console, k, tids, title):
    with Live(console=console, refresh_per_second=10, transient=False) as live:
        while True:
            rows = [r for r in k.thread_info() if r["tid"] in tids]
            live.update(threads_table(rows, title, k.statistics()["processors"]))
            if all(r["state"] in ("EXITED", "FAULTED") for r in rows):
                break
            time.sleep(0.1)  # the refresh rate of the display, not a synchronisation
    console.print()
    return [k.join(t, timeout=60) for t in tids]


def main(console, quick=False):
    work = 0.3 if quick else 1.5
    console.print("[bold]Step 1.[/] Six CPU-bound threads, [bold]processors=2[/], quantum 20 ms. "
                  "Nobody calls YIELD: only the clock interrupt (时钟中断) can take a processor away.")
    with Kernel(processors=2, quantum=0.02) as k:
        tids = [ALLOCATE_THREAD(compute, k.address_space, work) for _ in range(6)]
        _watch(console, k, tids, "step 1: preemption by the clock")
    console.print("  Notice: never more than two RUNNING; the others RUNNABLE, waiting for a processor; "
                  "all the switches are [bold]involuntary[/]; every thread got about the same CPU time.\n")

    console.print("[bold]Step 2.[/] The same six threads call YIELD() every 20 000 iterations (自觉出让), "
                  "and the quantum is 10 s, so the clock never has to step in.")
    with Kernel(processors=2, quantum=10.0) as k:
        tids = [ALLOCATE_THREAD(compute_politely, k.address_space, work, 20_000) for _ in range(6)]
        _watch(console, k, tids, "step 2: voluntary YIELD")
    console.print("  Notice: now the switches are [bold]voluntary[/]. A thread that never yields would keep its "
                  "processor for the whole quantum: that is why real systems need the clock interrupt.\n")
