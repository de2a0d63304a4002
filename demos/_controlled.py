"""受控运行 (a controlled run): the last act of the race demos.

Free running shows that a race is real; it cannot show the same race twice.
The last act of counter, broken-acquire, buffer-race and lost-wakeup runs
the demo's own racy code once more, made small, under the controlled
scheduler (runtime/explore.py), where one thread runs at a time and every
switch is a recorded choice:

  1. explore: random walks from the demo's seed (`vos demo counter --seed 3`,
     like OSTEP's `-s`), until one schedule breaks the program's invariant.
     The failure is shrunk to the fewest preemptions that still fail and
     shown one column per thread, each step with its file:line, followed by
     the token that replays it (`vos replay TOKEN`);
  2. the race report (数据竞争报告) of that very run: the token replayed
     with the race detector on (Kernel(races=True)), both accesses of the
     first race named with file and line;
  3. the fixed version, explored exhaustively -- every schedule with at
     most 2 preemptions -- with the race detector on: no failure, no race.

A program here is `program(k)`, thread 0 of a controlled kernel: it starts
the threads, joins them and raises when its invariant breaks.  Thread 0's
own steps (starting and joining) are left out of the trace shown; the
caption counts them.

Determinism: everything printed depends on the seed and the code only (no
times, no process ids, budgets counted in runs), so the same seed prints the
same act every time.  The rendering is runtime/views/traces.py's: the one
`vos explore` and `vos lab check` print.
"""

import dataclasses

from rich.text import Text

from demos import SEED

from runtime.explore import explore, run_once
from runtime.views.traces import failure_view, print_replay_line, race_view

WALKS = 400             # random walks before the search gives up
LONGEST = 24            # at most this many steps of the trace are shown (the last ones)
PREEMPTIONS = 2         # the fixed version's exhaustive bound
STRATEGY = "random"     # how the racy version is searched: random walks from the seed


@dataclasses.dataclass
class Act:
    """What the act found: the racy version's shrunk failure (None: no
    walk failed) and its races, and the fixed version's search (Result)."""
    seed: int
    failure: object
    races: list
    fixed: object


def search(racy, fixed, seed=SEED):
    """Explore `racy` (random walks from `seed`) and report the races of
    its shrunk failing run; explore `fixed` exhaustively with the race
    detector on.  Returns an Act."""
    found = explore(racy, strategy=STRATEGY, seed=seed, runs=WALKS, seconds=None)
    failure = found.failures[0] if found.failures else None
    races = []
    if failure is not None:
        races = list(run_once(racy, failure.token, {"races": True}).races)
    checked = explore(fixed, strategy="exhaustive", preemptions=PREEMPTIONS, races=True, seconds=None)
    return Act(seed, failure, races, checked)


def show(console, act, fix):
    """Print an Act; `fix` names the fixed version ("ACQUIRE/RELEASE", "RSM")."""
    f = act.failure
    if f is None:
        console.print(f"  [yellow]No schedule failed in {WALKS} random walks from seed {act.seed}[/]: try "
                      "another --seed.")
    else:
        console.print(failure_view(f, token_hint=False, threads=sorted({s.tid for s in f.trace} - {0}),
                                   inline=True, limit=LONGEST))
        console.print("  Replay it, the same steps and the same error every time:")
        print_replay_line(console, f.token)
        console.print("  The race report (数据竞争报告) of this run, with the detector on:")
        console.print(race_view(act.races, most=1))
    r = act.fixed
    if r.ok:
        console.print(Text.assemble((f"  The fix, {fix}: ", "bold"), ("no data race", "bold green"),
                                    " and no failure in ", r.summary(timed=False), "."))
    else:
        console.print(Text(f"  The fix, {fix}, failed too: {r.failures[0].error}", style="bold red"))


def act(console, racy, fixed, fix, seed=SEED):
    """Search, then print (the demos' last step)."""
    found = search(racy, fixed, seed)
    show(console, found, fix)
    return found


__all__ = ["SEED", "Act", "search", "show", "act"]
