"""复用 (multiplexing): six threads on two processors.

Slide: "如何分时: 自觉出让 / 时钟中断" (how to share the processor in time:
give it up voluntarily, or be interrupted by the clock).

Step 1 runs six CPU-bound threads on `Kernel(processors=2)` for a fixed
wall-clock time.  None of them ever gives the processor up; the clock
interrupt (a real SIGALRM timer in each virtual processor) preempts whoever
has used up its quantum, and the next thread in line runs.  The live table
shows two RUNNING, four RUNNABLE waiting for a processor, and the
involuntary switches climbing.

Step 2 runs the same six threads, but each calls YIELD() every few thousand
iterations and the quantum is made very long: now the switches are voluntary.

Each thread runs until the same wall-clock deadline, not for a budget of
CPU time, and reports the CPU time it got: so the shares are measured, and a
scheduler that starved one thread would show it (a fair share is a sixth of
the CPU time the six got).  `measure` and `verdict` are what the demo and
its test use.

What to notice: at most two threads RUNNING at any moment; the measured
shares (fair round robin: about a sixth each); which column
the switches land in (involuntary in step 1, voluntary in step 2).
"""

import time

from rich.live import Live
from rich.table import Table

from runtime import Kernel
from runtime.views.tables import threads_table
from runtime.textbook import ALLOCATE_THREAD, YIELD

TITLE = "six threads on two processors: the clock interrupt, then YIELD"
SLIDE = "复用: 如何分时 — 自觉出让 / 时钟中断"
ORDER = 10

UNFAIR = 1.5     # the largest share over the smallest beyond which the demo calls the run unfair


def compute_until(deadline, every=0):
    """CPU-bound work until the wall clock (CLOCK_MONOTONIC, one clock for
    every process) reaches `deadline`; with every > 0, YIELD() every `every`
    iterations (自觉出让).  Returns (iterations, CPU seconds this thread got)."""
    start = time.process_time()
    n = 0
    while time.monotonic() < deadline:
        n += 1
        if every and n % every == 0:
            YIELD()
    return n, time.process_time() - start


def measure(processors, threads, seconds, quantum, every=0, watch=None):
    """Run `threads` compute_until threads on a Kernel(processors=...) for
    `seconds` of wall time; [(tid, iterations, CPU seconds)].  watch(k, tids)
    runs in thread 0 meanwhile (the live table)."""
    with Kernel(processors=processors, quantum=quantum) as k:
        deadline = time.monotonic() + seconds
        tids = [ALLOCATE_THREAD(compute_until, k.address_space, deadline, every) for _ in range(threads)]
        if watch is not None:
            watch(k, tids)
        return [(t, *k.join(t, timeout=60 + seconds)) for t in tids]


def verdict(results):
    """(lowest share, highest share, fair share, fair?): a thread's share is
    its CPU time over the CPU time all of them got (the host's other
    processes take their part of the processors too)."""
    total = sum(cpu for _, _, cpu in results)
    shares = [cpu / total if total else 0.0 for _, _, cpu in results]
    lo, hi = min(shares), max(shares)
    return lo, hi, 1 / len(results), lo > 0 and hi / lo <= UNFAIR


def _watch(console, title):
    def watch(k, tids):
        with Live(console=console, refresh_per_second=10, transient=False) as live:
            while True:
                rows = [r for r in k.thread_info() if r["tid"] in tids]
                live.update(threads_table(rows, title, k.statistics()["processors"]))
                if all(r["state"] in ("EXITED", "FAULTED") for r in rows):
                    break
                time.sleep(0.1)  # the refresh rate of the display, not a synchronisation
        console.print()
    return watch


def _report(console, results, processors, seconds):
    total = sum(cpu for _, _, cpu in results)
    t = Table(title=f"what each thread got in the same {seconds:g} s", title_justify="left")
    for col in ("thread", "CPU time", "share", "iterations"):
        t.add_column(col, justify="right")
    for tid, n, cpu in results:
        t.add_row(str(tid), f"{cpu:.2f} s", f"{cpu / total:.1%}" if total else "-", f"{n:,}")
    console.print(t)
    lo, hi, fair, ok = verdict(results)
    console.print(f"  Measured: the {len(results)} threads got {total:.2f} s of CPU time in {seconds:g} s on "
                  f"{processors} processors (the host's other processes had the rest); each thread's share "
                  f"of it was between {lo:.1%} and {hi:.1%}, where a fair share is {fair:.1%}.")
    if ok:
        console.print(f"  Fair: the largest share is {hi / lo:.2f} times the smallest.")
    else:
        console.print(f"  [bold red]Not fair[/]: the largest share is "
                      f"{'infinitely many' if not lo else f'{hi / lo:.1f}'} times the smallest.")


def main(console, quick=False):
    seconds = 1.0 if quick else 3.0
    console.print(f"[bold]Step 1.[/] Six CPU-bound threads, [bold]processors=2[/], quantum 20 ms, each running "
                  f"until the same moment, {seconds:g} s from now.  Nobody calls YIELD: only the clock "
                  "interrupt (时钟中断) can take a processor away.")
    results = measure(2, 6, seconds, 0.02, watch=_watch(console, "step 1: preemption by the clock"))
    _report(console, results, 2, seconds)
    console.print("  Notice: never more than two RUNNING; the others RUNNABLE, waiting for a processor; "
                  "all the switches are [bold]involuntary[/] (the second number of vol/invol).\n")

    console.print("[bold]Step 2.[/] The same six threads call YIELD() every 20 000 iterations (自觉出让), "
                  "and the quantum is 10 s, so the clock never has to step in.")
    results = measure(2, 6, seconds, 10.0, every=20_000, watch=_watch(console, "step 2: voluntary YIELD"))
    _report(console, results, 2, seconds)
    console.print("  Notice: now the switches are [bold]voluntary[/] (the first number). A thread that never "
                  "yields would keep its processor for the whole quantum: that is why real systems need the "
                  "clock interrupt.\n")
