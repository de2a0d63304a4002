"""The grader: one student's file, one verdict that is never luck.

The stages, in order; the first failure ends the grading:

    stage             what runs                                        points
    sanity            one run without preemption (the threads one       10
                      after another): the file works at all
    regression        the failing schedules of the starter and of the    15
                      known wrong fixes (the lab's corpus), as guides
    exhaustive <= 1   every schedule with at most 1 preemption           25
    exhaustive <= 2   every schedule with at most 2 preemptions          25
    sampled           PCT (depth 2, 3) and random walks from the fixed   15
                      seed list that every student shares
    no data race      the race detector, on in every run above           10

Every run has a step budget (the lab's max_steps: beyond it, StepLimit) and
hang detection (no thread can run: Hang; a lock cycle: DeadlockError).
Budgets are counted in runs, never in seconds, so the same file always gets
the same verdict, on any machine.  A failure is definitive: the shrunk
trace, the race report and a `vos replay` token.  A pass is a bounded
certificate -- what was explored -- never "correct".
"""

import dataclasses
import hashlib
import os
import time

from ..explore import Machine, Search
from ..sched import Schedule
from .spec import SubmissionError

STAGES = (("sanity", 10), ("regression", 15), ("exhaustive <= 1", 25), ("exhaustive <= 2", 25),
          ("sampled", 15), ("no data race", 10))
SAFETY_SECONDS = 900          # a grading that runs longer is stopped and reported incomplete


@dataclasses.dataclass
class Test:
    """One stage's line in the results: an autograder's test."""
    name: str
    max_score: int
    score: int = 0
    status: str = "not run"     # passed, failed, not run
    output: str = ""
    runs: int = 0
    seconds: float = 0.0


@dataclasses.dataclass
class Verdict:
    lab: str
    file: str
    sha256: str
    ok: bool
    tests: list
    certificate: str = ""       # a pass: what was explored
    failure: object = None      # explore.Failure: error, token, shrunk trace
    races: list = dataclasses.field(default_factory=list)    # races.Race of the failing run
    error: str = ""             # the file could not be graded at all (SubmissionError)
    runs: int = 0
    seconds: float = 0.0
    complete: bool = True       # False: stopped by SAFETY_SECONDS

    @property
    def score(self):
        return sum(t.score for t in self.tests)

    @property
    def max_score(self):
        return sum(t.max_score for t in self.tests)

    @property
    def status(self):
        return "pass" if self.ok else ("incomplete" if not self.complete else "fail")

    def to_json(self):
        """An autograder's results file (Gradescope's fields, and vos's)."""
        out = dict(score=self.score, max_score=self.max_score, lab=self.lab, file=self.file, sha256=self.sha256,
                   verdict=self.status, certificate=self.certificate, runs=self.runs,
                   execution_time=round(self.seconds, 2),
                   tests=[dict(name=t.name, score=t.score, max_score=t.max_score, status=t.status, output=t.output,
                               runs=t.runs) for t in self.tests])
        if self.error:
            out["output"] = self.error
        if self.failure is not None:
            f = self.failure
            out["failure"] = dict(error=f.error, kind=f.kind, token=f.token, preemptions=f.preemptions,
                                  found_by=f.strategy, steps=len(f.trace), replay=f"vos replay {f.token}",
                                  trace=[str(s) for s in f.trace])
            out["output"] = f.error
        out["races"] = [str(r) for r in self.races]
        return out


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def grade(lab, path, progress=None, budget=None):
    """Grade the student's file at `path` for `lab` (spec.Lab).  progress(
    stage, runs done in it, its budget) after every run.  budget: runs per
    stage over the lab's (tests shrink it; a verdict then says less)."""
    path = os.path.abspath(path)
    budget = {**lab.budget, **(budget or {})}
    tests = [Test(name, points) for name, points in STAGES]
    v = Verdict(lab.name, path, _sha256(path) if os.path.isfile(path) else "", False, tests)
    t0 = time.monotonic()
    try:
        program, options, name = lab.program_for(path)
    except SubmissionError as e:
        v.error = str(e)
        tests[0].status, tests[0].output = "failed", str(e)
        return v
    options["races"] = True
    stage = {"name": "", "start": 0, "limit": 0}

    def on_run(res):
        if progress is not None:
            progress(stage["name"], res.runs - stage["start"], stage["limit"])

    with Machine(program, options, name=name, race_failures=False) as machine:
        search = Search(machine, seconds=SAFETY_SECONDS, progress=on_run)
        res = search.res
        plan = [
            ("sanity", 1, lambda: search.one(Schedule("rr"), "sanity").error is None),
            ("regression", budget["regression"], lambda: search.corpus(lab.corpus(), guide=True)),
            ("exhaustive <= 1", budget["exhaustive_1"], lambda: search.exhaustive(1) or res.ok),
            ("exhaustive <= 2", budget["exhaustive_2"], lambda: search.exhaustive(2) or res.ok),
            ("sampled", budget["sampled"], lambda: search.sample()),
        ]
        finished = {}
        for test, (stage_name, limit, run) in zip(tests, plan):
            t1, before = time.monotonic(), res.runs
            stage.update(name=stage_name, start=before, limit=limit)
            search.limit = before + limit
            passed = run() and res.ok
            test.runs, test.seconds = res.runs - before, time.monotonic() - t1
            if search.deadline is not None and time.monotonic() >= search.deadline and passed:
                v.complete = False
                test.output = f"stopped after {SAFETY_SECONDS} s: the verdict is incomplete"
                break
            if not passed:
                test.status = "failed"
                break
            test.status, test.score = "passed", test.max_score
            finished[stage_name] = res.bound
            test.output = _covered(stage_name, test.runs, res, limit)
            if res.first_race is not None and stage_name == "exhaustive <= 1":
                break                   # a race, and no schedule of at most 1 preemption breaks the invariant:
                                        # the race is the verdict (a deeper search would only take longer)
        search.limit = None
        if not res.ok:
            failure = search.finish()
            v.failure = failure.failures[0]
            v.races = _races_of(machine, v.failure.token)
            failed = next(t for t in tests if t.status == "failed")
            failed.output = v.failure.error
            if v.failure.kind == "DataRace":
                tests[-1].status, tests[-1].output = "failed", v.failure.error
        elif v.complete and res.first_race is not None:          # the invariant held, but two accesses raced
            v.failure, v.races = res.first_race
            tests[-1].status, tests[-1].output = "failed", v.failure.error
        elif v.complete:
            tests[-1].status, tests[-1].score = "passed", tests[-1].max_score
            tests[-1].output = f"no data race in {res.runs:,} runs"
            v.ok = True
            v.certificate = _certificate(tests, res.bound)
    v.runs, v.seconds = res.runs, time.monotonic() - t0
    return v


def _covered(stage, runs, res, limit):
    if stage == "sanity":
        return "passes with the threads one after another"
    if stage == "regression":
        return f"{runs} known failing schedules replayed: none fails"
    if stage.startswith("exhaustive"):
        bound = int(stage[-1])
        if res.bound >= bound:
            return f"all {runs:,} schedules with at most {bound} preemption{'s' if bound > 1 else ''}"
        return f"{runs:,} schedules with at most {bound} preemptions: the budget ({limit:,}) ran out first"
    return f"{runs:,} sampled schedules (PCT, random), fixed seeds"


def _certificate(tests, bound):
    """What a pass covered, in one line."""
    by = {t.name: t for t in tests}
    parts = []
    ex2 = by["exhaustive <= 2"]
    if bound >= 2:
        parts.append(f"all {ex2.runs:,} schedules with at most 2 preemptions")
    else:
        parts.append(f"{ex2.runs:,} schedules with at most 2 preemptions (not all: the budget ran out)")
    parts.append(f"{by['sampled'].runs:,} sampled")
    if by["regression"].runs:
        parts.append(f"{by['regression'].runs} known failures replayed")
    return ", ".join(parts) + ", no race"


def _races_of(machine, token):
    """The race report of the failing run (its token, replayed)."""
    if not token:
        return []
    try:
        machine.run(token)
        return machine.kernel.races()
    except Exception:  # noqa: BLE001 - a report that cannot be made is no reason to lose the verdict
        return []


__all__ = ["grade", "Verdict", "Test", "STAGES"]
