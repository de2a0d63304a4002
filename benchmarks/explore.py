"""`vos bench explore`: how fast the explorer runs schedules, and finds the classic bugs.

Rows:
  * schedules per second for 2 threads x 3 increments (with the lock, so
    that no run fails) and for 3 threads x 10 increments: the explorer as
    it runs (one machine, its VPs reused from run to run: Kernel.restart and
    the pool) against a fresh controlled kernel for every schedule (a new
    arena, VPs forked for every run).  Goal: 500 schedules a second for the
    small program.
  * the time to find each of the five classic bugs (demos/_classics.py),
    with explore's default portfolio.  Goal: under 5 s each.  The peer is
    the time to run the program once under a fresh kernel: how many plain
    runs the search costs.
"""

import time

from demos._classics import CLASSICS, lost_update_3x10, lost_update_fixed
from runtime.explore import Machine, explore, run_once
from runtime.sched import Schedule

from .harness import Row, median, median_time, table

TITLE = "controlled runs: schedules per second, time to find the five classic bugs"


def _rate_reused(program, seconds):
    """Schedules per second, random walks on one machine."""
    with Machine(program) as m:
        m.run(Schedule("random", 0))
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            n += 1
            m.run(Schedule("random", n))
        return n / (time.perf_counter() - t0)


def _rate_fresh(program, seconds):
    """Schedules per second, a new controlled kernel (and its VPs) per schedule."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += 1
        run_once(program, Schedule("random", n))
    return n / (time.perf_counter() - t0)


def main(console, quick=False, runs=5):
    rows = []
    seconds = 0.3 if quick else 3.0
    for label, program in (("2 threads x 3 increments", lost_update_fixed),
                           ("3 threads x 10 increments", lost_update_3x10)):
        reused = median([_rate_reused(program, seconds) for _ in range(runs)])
        fresh = median([_rate_fresh(program, seconds) for _ in range(max(1, runs // 2))])
        rows.append(Row(f"{label}: schedules/s", "/s", reused, "fresh kernel per run", fresh,
                        goal=None, note=f"with VP reuse; goal 500/s for the small one: "
                                         f"{'met' if reused >= 500 or 'x 10' in label else 'MISSED'}"))
    for name, broken, _fixed, _kind in CLASSICS:
        found = []
        for _ in range(runs):
            t0 = time.perf_counter()
            result = explore(broken, seconds=30, shrink=False)
            found.append(time.perf_counter() - t0 if not result.ok else float("inf"))
        one = median_time(lambda: run_once(broken, Schedule("rr")), max(1, runs // 2))
        t = median(found)
        rows.append(Row(f"find '{name}'", "s", t, "one plain run", one, higher_is_better=False,
                        note=f"goal under 5 s: {'met' if t < 5 else 'MISSED'}"))
    return table(console, "vos bench explore", rows, runs)
