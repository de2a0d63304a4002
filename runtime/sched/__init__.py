"""Controlled runs: the schedule is data.

Free running shows that races are real; it cannot show the same race twice.
A controlled kernel, `Kernel(schedule="random", seed=7)`, runs the same
virtual processors -- real OS processes on real shared memory -- but lets
exactly one of them run at a time and switches only at *yield points*: every
LOAD, STORE, RSM, LOAD_BYTES, STORE_BYTES, every textbook call on threads,
locks, eventcounts, sequencers and buffers, and thread exit.  The choice of
who runs next is made by the thread that holds the baton, from the seed and
the history on the board, so the interleaving is a value: printed as a
trace, replayed from a token, searched by the explorer (runtime/explore.py),
stepped through by hand (`vos step`).

    board.py       the shared section: baton, pending ops, trace, sites
    ops.py         the operations, their targets, which pairs conflict
    gate.py        the gateway: yield points, blocking, switching, hangs
    strategies.py  rr, random, pct, prefix, replay, pause
    wiring.py      the parts' calls routed through the gate
    describe.py    operations and waits in words
    trace.py       Steps, tokens

This is the lecture's multiplexing (复用) with the scheduler made visible:
what a clock interrupt does by accident, the baton does on purpose.

The contract, in short (docs/REFERENCE.md has it in full): the same program
with the same schedule and seed gives the identical trace and results;
a blocked thread is not runnable; no runnable thread left is `Hang` in
thread 0; a lock cycle is DeadlockError; more than max_steps steps is
StepLimit; time.sleep and timeouts run on virtual time.
"""

import dataclasses

from .board import PAUSE, PCT, PREFIX, RANDOM, REPLAY, RR

STRATEGIES = {"rr": RR, "random": RANDOM, "pct": PCT, "prefix": PREFIX, "replay": REPLAY, "pause": PAUSE}
DEFAULT_MAX_STEPS = 20_000


@dataclasses.dataclass(frozen=True)
class Schedule:
    """What `Kernel(schedule=...)` accepts besides "rr", "random", "pct",
    "pct:D" and a token: the explorer's and `vos step`'s full form."""
    strategy: str = "random"
    seed: int = 0
    depth: int = 2                 # pct: the bug depth d it aims at
    horizon: int = 100             # pct: the number of steps its change points are drawn from
    choices: tuple = ()            # prefix, replay, pause: the tid to run at each step
    sleep_at: int = -1             # prefix: at this step ...
    sleep_add: tuple = ()          # ... these tids join the sleep set (explored before)
    files: tuple = ()              # replay: ((file name, hash), ...) the program must still match

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"no schedule strategy {self.strategy!r}; there are {', '.join(STRATEGIES)}")


def parse(schedule, seed):
    """A Schedule from what Kernel(schedule=...) was given.  ValueError /
    TypeError for anything else, naming what is accepted."""
    from .trace import PREFIX as TOKEN, read_token
    if isinstance(schedule, Schedule):
        return schedule
    if not isinstance(schedule, str):
        raise TypeError(f"Kernel(schedule=...) takes 'rr', 'random', 'pct', 'pct:D', a replay token "
                        f"('vos1:...') or a Schedule, not {type(schedule).__name__} {schedule!r}")
    seed = 0 if seed is None else seed
    if schedule.startswith(TOKEN):
        chosen, files, _options, _program = read_token(schedule)
        return Schedule("replay", seed, choices=tuple(chosen), files=tuple(sorted(files.items())))
    name, _, depth = schedule.partition(":")
    if name not in ("rr", "random", "pct") or (depth and name != "pct"):
        raise ValueError(f"Kernel(schedule={schedule!r}): the schedules are 'rr', 'random', 'pct' (or "
                         "'pct:D' for depth D), or a replay token 'vos1:...'")
    if depth and (not depth.isdigit() or not 1 <= int(depth) <= 9):
        raise ValueError(f"Kernel(schedule={schedule!r}): PCT's depth is a number from 1 to 9")
    return Schedule(name, seed, depth=int(depth or 2))


__all__ = ["Schedule", "STRATEGIES", "DEFAULT_MAX_STEPS", "parse"]
