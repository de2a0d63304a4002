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

from .errors import DataRace, StepLimit
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
    first_race: object = None   # (Failure, races) of the first run with a race, when races are not failures

    def summary(self, timed=True):
        """What was covered, in one line (timed: with the seconds it took)."""
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
        return ", ".join(parts) + (f" in {self.seconds:.1f} s" if timed else "")


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
    races: list = ()           # races.Race of this run (Kernel(races=True))


class Machine:
    """One controlled kernel (and its pool of VPs) for many runs: each run
    begins with Kernel.restart, so no arena and no process is made again."""

    def __init__(self, program, options=None, name=None, race_failures=True):
        self.program = program
        self.race_failures = race_failures   # False: a run's races are reported beside it, not as its error
        self.options = {**SMALL, **(options or {})}
        self.name = name or _name_of(program)       # what tokens name: `vos replay` finds it again
        self.kernel = None

    def run(self, schedule, full=False):
        """program(k) under one schedule.  full: keep its Steps and token too."""
        k = self.kernel
        if k is None:
            k = self.kernel = Kernel(schedule=schedule, **self.options)
            k.boot()
            k.program = self.name
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
        found = k.races() if k.config.get("races") and not pruned else []
        if found and self.race_failures and (error is None or isinstance(error, AssertionError)):
            error = race_error(found)                   # a race is a failure even if the invariant held
        r = Run(error, read_raw(k), pruned=pruned, races=found)
        if full or error is not None or found:
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


def race_error(found):
    return DataRace(f"{len(found)} data race{'s' if len(found) > 1 else ''}: {found[0]}", found)


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


# --- the search --------------------------------------------------------------------------------

class Search:
    """Runs of one machine, counted into one Result: the parts of a search
    (a corpus, the bounded exhaustive search, sampling), each stopping at
    the first failure.  explore() runs them in the portfolio's order; the
    lab grader (lab/grade.py) runs them as its stages, each with a budget
    of runs of its own.  Every part returns True while nothing failed."""

    def __init__(self, machine, seconds=None, runs=None, progress=None):
        self.machine = machine
        self.res = Result()
        self.t0 = time.monotonic()
        self.deadline = self.t0 + seconds if seconds is not None else None
        self.runs = runs
        self.progress = progress
        self.limit = None               # the current part's own budget: no runs beyond this count

    def budget_left(self):
        if self.runs is not None and self.res.runs >= self.runs:
            return False
        if self.limit is not None and self.res.runs >= self.limit:
            return False
        return self.deadline is None or time.monotonic() < self.deadline

    def one(self, schedule, label, unfair=False):
        """One run, counted under `label`; a failure is recorded.  unfair: the
        schedule may starve a thread (a guide), so running past the step
        limit proves nothing and is no failure."""
        res = self.res
        r = self.machine.run(schedule)
        if unfair and isinstance(r.error, StepLimit):
            r.error = None
        res.runs += 1
        res.by_strategy[label] = res.by_strategy.get(label, 0) + 1
        res.pruned += r.pruned
        res.seconds = time.monotonic() - self.t0
        if r.error is not None:
            res.failures.append(Failure(_describe(r.error), type(r.error).__name__, r.token, r.trace,
                                        sum(s[3] for s in r.steps), label, res.runs))
            res.ok = False
        elif r.races and res.first_race is None:
            res.first_race = (Failure(_describe(race_error(r.races)), "DataRace", r.token, r.trace,
                                      sum(s[3] for s in r.steps), label, res.runs), list(r.races))
        if self.progress is not None:
            self.progress(res)
        return r

    def corpus(self, tokens, guide=False):
        """Replay earlier failures: exactly (tokens of this program), or as
        guides (another program's: its choices where they still apply)."""
        from .sched.trace import read_token
        for token in tokens:
            if not self.budget_left():
                break
            schedule = Schedule("guide", 0, choices=tuple(read_token(token)[0])) if guide else token
            self.one(schedule, "corpus", unfair=guide)
            if not self.res.ok:
                return False
        return True

    def exhaustive(self, bound, seed=0):
        """The bounded exhaustive search at `bound` preemptions.  True when
        it finished without a failure (then `res.bound` is `bound`)."""
        nodes = []
        schedule = Schedule("prefix", seed)
        label = f"exhaustive <= {bound}"
        while True:
            if not self.budget_left():
                return False
            r = self.one(schedule, label)
            if r.error is not None:
                return False
            _path(r.steps, nodes)
            nxt = _backtrack(nodes, bound)
            if nxt is None:
                self.res.bound = max(self.res.bound, bound)
                return True
            choices, at, sleep_add = nxt
            schedule = Schedule("prefix", seed, choices=tuple(choices), sleep_at=at, sleep_add=sleep_add)

    def sample(self, kinds=("pct", "random"), seed=0):
        """PCT (depth 2 and 3) and random walks from the fixed seed list,
        while the budget lasts."""
        horizon = max(len(self.machine.run(Schedule("rr")).steps), 10)
        i = 0
        while self.budget_left() and i < len(SEEDS):
            s = SEEDS[(seed + i) % len(SEEDS)]
            for kind in kinds:
                schedules = [(Schedule("pct", s, depth=d, horizon=horizon), f"pct d={d}") for d in (2, 3)] \
                    if kind == "pct" else [(Schedule("random", s), "random")]
                for schedule, label in schedules:
                    if not self.budget_left():
                        return True
                    self.one(schedule, label)
                    if not self.res.ok:
                        return False
            i += 1
        return True

    def finish(self, shrink=True):
        res = self.res
        if shrink and res.failures:
            res.failures[0] = shrink_failure(self.machine, res.failures[0])
        res.seconds = time.monotonic() - self.t0
        return res


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
        search = Search(machine, seconds, runs, progress)
        if search.corpus(corpus):
            if strategy in ("portfolio", "exhaustive"):
                for bound in range(0, preemptions + 1):
                    if not search.exhaustive(bound, seed):
                        break
                search.res.exhausted = search.res.bound == preemptions
            if search.res.ok and strategy != "exhaustive":
                search.sample({"portfolio": ("pct", "random")}.get(strategy, (strategy,)), seed)
        return search.finish(shrink)


# --- shrinking ---------------------------------------------------------------------------

def shrink_failure(machine, failure, max_runs=200):
    """A failure with as few preemptions as this can find.  Two moves, each
    kept when the run still fails the same way with fewer preemptions, tried
    until none helps:

      cut    stop the schedule before one of its preemptions: the rest runs
             without preempting;
      merge  let a preempted thread run on: its next stretch of steps moves
             up to where it was preempted, the other choices follow as a
             guide (a chosen thread that cannot run is passed over).

    Cuts keep a failure's beginning; merges remove the needless switches in
    its middle, which a random walk or PCT leaves many of."""
    best = failure
    runs = 0
    improved = True
    while improved and best.preemptions and runs < max_runs:
        improved = False
        for schedule in _shrink_moves(best.trace):
            if runs >= max_runs:
                break
            r = machine.run(schedule)
            runs += 1
            if r.error is not None and type(r.error).__name__ == best.kind:
                p = sum(s.preempted for s in r.trace)
                if p < best.preemptions:
                    best = Failure(_describe(r.error), best.kind, r.token, r.trace, p, best.strategy, best.run)
                    improved = True
                    break
    return best


def _shrink_moves(trace):
    """The schedules shrink_failure tries for a trace: the cuts (latest
    first), then the merges (earliest first)."""
    for at in reversed([s.index for s in trace if s.preempted]):
        yield Schedule("prefix", 0, choices=tuple(s.tid for s in trace[:at]))
    stretches = []                      # [tid, [tids of its steps]]: the runs of one thread
    for s in trace:
        if stretches and stretches[-1][0] == s.tid:
            stretches[-1][1].append(s.tid)
        else:
            stretches.append([s.tid, [s.tid]])
    starts = [0]
    for _, steps in stretches:
        starts.append(starts[-1] + len(steps))
    for j in range(len(stretches) - 1):
        if not trace[starts[j + 1]].preempted:
            continue                    # that thread stopped by itself (blocked, yielded, ended)
        nxt = next((k for k in range(j + 2, len(stretches)) if stretches[k][0] == stretches[j][0]), None)
        if nxt is None:
            continue
        order = stretches[:j + 1] + [stretches[nxt]] + stretches[j + 1:nxt] + stretches[nxt + 1:]
        yield Schedule("guide", 0, choices=tuple(t for _, steps in order for t in steps))


__all__ = ["explore", "run_once", "shrink_failure", "Machine", "Search", "Result", "Failure", "SEEDS"]
