"""The explorer: run a program under many schedules, find the one that breaks it.

    result = explore(program, seconds=60, preemptions=2, seed=0)
    result.ok, result.runs, result.exhausted, result.failures

`program(k)` runs as thread 0 of a fresh controlled kernel (Kernel(schedule=
...)); it starts threads and raises (an AssertionError, or any error) when
its invariant breaks.  The explorer tries schedules in this order, and stops
at the first failure:

  1. replays of earlier failures (`corpus`: tokens), the cheapest proof;
  2. bounded exhaustive search, at most 0, then 1, then `preemptions`
     preemptions (CHESS's iterative context bounding): a stateless
     depth-first search over the choices of who runs, with *sleep sets*
     (Godefroid): after the subtree of one choice is explored, that choice
     sleeps in the sibling subtrees until a dependent step (ops.py) wakes
     it, so two independent steps are never tried in both orders.  A run
     that reaches a state whose every runnable thread sleeps is cut short
     (pruned).  When the search ends, `exhausted` is true: every schedule
     with at most that many preemptions was covered;
  3. PCT with depth 2 and 3, then random walks, from a fixed list of seeds
     shared by everyone (the same file gets the same verdict).

A failure is definitive and repeatable: its `token` replays it
(Kernel(schedule=token), `vos replay`), and its `trace` is shrunk to the
fewest preemptions that still fail.  A pass is a bounded certificate: what
was explored, never "correct".
"""

import dataclasses
import time

from .errors import DataRace
from .kernel import Kernel
from .sched import Schedule
from .sched.gate import Paused, Pruned
from .sched.trace import read_raw, read_trace

SEEDS = tuple(range(1, 1 + 10_000))          # the fixed seed list of the sampling strategies


@dataclasses.dataclass
class Failure:
    """A schedule under which the program failed."""
    error: str                  # "AssertionError: lost an update: 5 != 6"
    kind: str                   # the exception's class name
    token: str                  # replays it
    trace: list                 # the (shrunk) run's Steps
    preemptions: int
    strategy: str               # which part of the portfolio found it
    run: int                    # its number among the runs

    def __str__(self):
        return f"{self.error}  (found by {self.strategy} at run {self.run}, {self.preemptions} preemptions)"


@dataclasses.dataclass
class Result:
    ok: bool = True
    runs: int = 0
    exhausted: bool = False     # the bounded exhaustive search finished (at `bound` preemptions)
    bound: int = -1             # the largest preemption bound whose search finished
    failures: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    by_strategy: dict = dataclasses.field(default_factory=dict)
    pruned: int = 0             # runs cut short by sleep sets

    def summary(self):
        """What was covered, in one line."""
        parts = []
        dfs = sum(v for k, v in self.by_strategy.items() if k.startswith("exhaustive"))
        if self.bound >= 0:
            parts.append(f"all {dfs:,} schedules with at most {self.bound} preemption"
                         f"{'s' if self.bound != 1 else ''}")
        elif dfs:
            parts.append(f"{dfs:,} schedules of the bounded search (not finished)")
        sampled = sum(v for k, v in self.by_strategy.items() if not k.startswith("exhaustive")
                      and k != "corpus")
        if sampled:
            parts.append(f"{sampled:,} sampled (pct, random)")
        if self.by_strategy.get("corpus"):
            parts.append(f"{self.by_strategy['corpus']} earlier failures replayed")
        return ", ".join(parts) + f" in {self.seconds:.1f} s"


# --- one run -------------------------------------------------------------------------------

# A program explored gets a small machine unless it asks for more (options=, or
# KERNEL = {...} in its file): a restart then has little to clear.
SMALL = dict(frames=32, max_threads=16, max_address_spaces=8, address_space_pages=1024, swap_pages=64,
             max_locks=64, max_eventcounts=64, max_buffers=16, pool=4)


@dataclasses.dataclass
class Run:
    error: BaseException | None
    steps: list                # (tid, enabled, sleep, preempted) per step: what the search needs
    trace: list = None         # Steps, for a failure
    token: str = None
    pruned: bool = False


class Machine:
    """One controlled kernel (and its pool of VPs) for many runs: each run
    begins with Kernel.restart, so no arena and no process is made again."""

    def __init__(self, program, options=None):
        self.program = program
        self.options = {**SMALL, **(options or {})}
        self.kernel = None

    def run(self, schedule, full=False):
        """program(k) under one schedule.  full: keep its Steps and token too."""
        k = self.kernel
        if k is None:
            k = self.kernel = Kernel(schedule=schedule, **self.options)
            k.boot()
            k.program = _name_of(self.program)
        else:
            k.restart(schedule)
        error, pruned = None, False
        try:
            self.program(k)
        except Pruned:
            pruned = True
        except (Paused, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - any error of the program is its verdict
            error = e
        if k.config.get("races") and not pruned:       # a race is a failure even if the invariant held
            found = k.races()
            if found and (error is None or isinstance(error, AssertionError)):
                error = DataRace(f"{len(found)} data race{'s' if len(found) > 1 else ''}: {found[0]}", found)
        r = Run(error, read_raw(k), pruned=pruned)
        if full or error is not None:
            r.trace, r.token = read_trace(k), k.token
        return r

    def close(self):
        if self.kernel is not None:
            self.kernel.shutdown()
            self.kernel = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_once(program, schedule, options=None):
    """program(k) under one schedule, in a fresh controlled kernel (with its
    Steps and token)."""
    with Machine(program, options) as m:
        return m.run(schedule, full=True)


def _name_of(program):
    mod = getattr(program, "__module__", None)
    name = getattr(program, "__qualname__", None)
    import sys
    f = getattr(sys.modules.get(mod), "__file__", None) if mod else None
    return f"{f}:{name}" if f and name and "<" not in name else None


def _describe(e):
    from .errors import ThreadFailed
    if isinstance(e, ThreadFailed) and e.exc_type:
        return f"{type(e).__name__}: thread {e.tid} ended by {e.exc_type}: {e.message}"
    return f"{type(e).__name__}: {e}"


# --- the bounded exhaustive search ------------------------------------------------------------

class _Node:
    """One step of the current path: what could run, what ran, what sleeps."""
    __slots__ = ("enabled", "chosen", "sleep", "done", "preempts", "costly", "default")

    def __init__(self, step):
        tid, enabled, sleep, _pre, costly, default = step
        self.enabled = enabled
        self.chosen = tid
        self.sleep = set(sleep)
        self.done = {tid}
        self.costly = costly            # choosing another than `default` here is a preemption
        self.default = default
        self.preempts = 0

    def cost(self, t):
        return 1 if self.costly and t != self.default else 0


def _path(steps, nodes):
    """Extend the node stack with the steps of a run beyond it."""
    total = sum(n.cost(n.chosen) for n in nodes)
    for step in steps[len(nodes):]:
        node = _Node(step)
        node.preempts = total
        total += node.cost(node.chosen)
        nodes.append(node)


def _backtrack(nodes, bound):
    """The next prefix of the depth-first search, or None when it is done.
    Returns (choices, step, sleep_add)."""
    while nodes:
        i = len(nodes) - 1
        n = nodes[i]
        for t in sorted(set(n.enabled) - n.sleep - n.done):
            cost = n.preempts + n.cost(t)
            if cost > bound:
                continue
            n.done.add(t)
            choices = [m.chosen for m in nodes[:i]] + [t]
            sleep_add = tuple(sorted((n.done - {t}) | n.sleep))
            del nodes[i + 1:]
            n.chosen = t
            return choices, i, sleep_add
        nodes.pop()
    return None


# --- the portfolio -------------------------------------------------------------------------

def explore(program, *, strategy="portfolio", seconds=60, runs=None, preemptions=2, seed=0, races=False,
            corpus=(), options=None, shrink=True, progress=None):
    """Run program(k) under many schedules (module doc).  strategy:
    "portfolio" (all of it, in order), "exhaustive", "pct", "random".
    seconds / runs: the budget (whichever ends first).  progress(result):
    called after every run (a progress bar)."""
    if strategy not in ("portfolio", "exhaustive", "pct", "random"):
        raise ValueError(f"explore: strategy is 'portfolio', 'exhaustive', 'pct' or 'random', not {strategy!r}")
    if not callable(program):
        raise TypeError(f"explore needs a program(k) to run, not {type(program).__name__}")
    options = dict(options or {})
    if races:
        options["races"] = True
    with Machine(program, options) as machine:
        return _explore(machine, program, strategy, seconds, runs, preemptions, seed, corpus, options, shrink,
                        progress)


def _explore(machine, program, strategy, seconds, runs, preemptions, seed, corpus, options, shrink, progress):
    res = Result()
    t0 = time.monotonic()
    deadline = t0 + seconds if seconds is not None else None

    def budget_left():
        if runs is not None and res.runs >= runs:
            return False
        return deadline is None or time.monotonic() < deadline

    def one(schedule, label):
        r = machine.run(schedule)
        res.runs += 1
        res.by_strategy[label] = res.by_strategy.get(label, 0) + 1
        res.pruned += r.pruned
        res.seconds = time.monotonic() - t0
        if r.error is not None:
            f = Failure(_describe(r.error), type(r.error).__name__, r.token, r.trace,
                        sum(s[3] for s in r.steps), label, res.runs)
            res.failures.append(f)
            res.ok = False
        if progress is not None:
            progress(res)
        return r

    # 1. the corpus
    for token in corpus:
        if not budget_left():
            break
        one(token, "corpus")
        if not res.ok:
            return _finish(res, machine, shrink, t0)
    # 2. bounded exhaustive search
    if strategy in ("portfolio", "exhaustive"):
        for bound in range(0, preemptions + 1):
            finished = _dfs(bound, one, budget_left, seed)
            if not res.ok:
                return _finish(res, machine, shrink, t0)
            if not finished:
                break
            res.bound, res.exhausted = bound, bound == preemptions
    # 3. sampling
    if strategy in ("portfolio", "pct", "random"):
        kinds = {"portfolio": ("pct", "random"), "pct": ("pct",), "random": ("random",)}[strategy]
        horizon = max(len(machine.run(Schedule("rr")).steps), 10)
        i = 0
        while budget_left() and i < len(SEEDS):
            s = SEEDS[(seed + i) % len(SEEDS)]
            for kind in kinds:
                if not budget_left():
                    break
                if kind == "pct":
                    for depth in (2, 3):
                        one(Schedule("pct", s, depth=depth, horizon=horizon), f"pct d={depth}")
                        if not res.ok:
                            return _finish(res, machine, shrink, t0)
                else:
                    one(Schedule("random", s), "random")
                    if not res.ok:
                        return _finish(res, machine, shrink, t0)
            i += 1
    return _finish(res, machine, shrink, t0)


def _dfs(bound, one, budget_left, seed):
    """The bounded exhaustive search at `bound` preemptions.  True when it finished."""
    nodes = []
    schedule = Schedule("prefix", seed)
    label = f"exhaustive <= {bound}"
    while True:
        if not budget_left():
            return False
        r = one(schedule, label)
        if r.error is not None:
            return False
        _path(r.steps, nodes)
        nxt = _backtrack(nodes, bound)
        if nxt is None:
            return True
        choices, at, sleep_add = nxt
        schedule = Schedule("prefix", seed, choices=tuple(choices), sleep_at=at, sleep_add=sleep_add)


def _finish(res, machine, shrink, t0):
    if shrink and res.failures:
        res.failures[0] = shrink_failure(machine, res.failures[0])
    res.seconds = time.monotonic() - t0
    return res


# --- shrinking ---------------------------------------------------------------------------

def shrink_failure(machine, failure, max_runs=200):
    """A failure with as few preemptions as this can find: cut the schedule
    before each of its preemptions in turn (the rest runs without
    preempting); keep every cut that still fails the same way."""
    best = failure
    runs = 0
    improved = True
    while improved and best.preemptions and runs < max_runs:
        improved = False
        points = [s.index for s in best.trace if s.preempted]
        for at in reversed(points):
            choices = tuple(s.tid for s in best.trace[:at])
            r = machine.run(Schedule("prefix", 0, choices=choices))
            runs += 1
            if r.error is not None and type(r.error).__name__ == best.kind:
                p = sum(s.preempted for s in r.trace)
                if p < best.preemptions:
                    best = Failure(_describe(r.error), best.kind, r.token, r.trace, p, best.strategy, best.run)
                    improved = True
                    break
    return best


__all__ = ["explore", "run_once", "shrink_failure", "Machine", "Result", "Failure", "SEEDS"]
