"""Is a lab's grader sound?  Check it before it is handed out.

    the reference          passes
    the starter            fails
    every known wrong fix  fails, within WRONG_SECONDS, and the token of its
                           failure replays the same failure 10 times of 10

`vos lab sound NAME` prints the table; `--update-corpus` then writes the
failing tokens of the starter and the wrong fixes to the lab's corpus.txt,
the grader's regression stage.  The built-in labs' references and wrong
fixes live in tests/labs/NAME (tests/labs/test_labs.py runs this for each).
"""

import dataclasses
import os
import time

from ..explore import Machine
from .grade import grade

WRONG_SECONDS = 60
REPLAYS = 10


@dataclasses.dataclass
class Row:
    file: str
    role: str               # reference, starter, wrong
    verdict: object         # grade.Verdict
    seconds: float
    replays: int = 0        # of REPLAYS, how many gave the same failure
    problem: str = ""       # why this row makes the grader unsound ("" when it is fine)

    @property
    def name(self):
        return os.path.basename(self.file)


@dataclasses.dataclass
class Report:
    lab: str
    rows: list

    @property
    def ok(self):
        return all(not r.problem for r in self.rows)

    def corpus(self):
        """The failing tokens of the starter and the wrong fixes (not those
        of a livelock: replayed as a guide, such a schedule may starve a
        thread, and the grader does not count it)."""
        return [r.verdict.failure.token for r in self.rows if r.role != "reference" and r.verdict.failure
                and r.verdict.failure.kind != "StepLimit"]


def outcome(run):
    """What a failing run shows: the error's class name (DataRace when only
    races were found) -- compared across replays."""
    if run.error is not None:
        return type(run.error).__name__, str(run.error).split("\n")[0]
    if run.races:
        return "DataRace", str(run.races[0])
    return None


def replays(lab, path, token, times=REPLAYS):
    """How many of `times` replays of a failure's token fail the same way
    (the first in a freshly booted kernel, the others after restarts)."""
    program, options, name = lab.program_for(path)
    options["races"] = True
    with Machine(program, options, name=name, race_failures=False) as m:
        first = outcome(m.run(token))
        if first is None:
            return 0
        return 1 + sum(outcome(m.run(token)) == first for _ in range(times - 1))


def check(lab, reference=None, wrongs=None, progress=None):
    """The soundness report of `lab` (spec.Lab): its reference and wrong
    fixes default to the ones kept with the lab (Lab.solutions).
    progress(file name) before each file is graded."""
    ref, known = lab.solutions()
    reference = reference or ref
    wrongs = known if wrongs is None else wrongs
    files = ([(reference, "reference")] if reference else []) + [(lab.starter, "starter")] + \
        [(w, "wrong") for w in wrongs]
    rows = []
    for path, role in files:
        if progress is not None:
            progress(os.path.basename(path))
        t0 = time.monotonic()
        v = grade(lab, path)
        row = Row(path, role, v, time.monotonic() - t0)
        if role == "reference":
            if not v.ok:
                row.problem = f"the reference does not pass: {v.error or (v.failure and v.failure.error)}"
        elif v.ok or v.error:
            row.problem = "passes: the grader does not catch it" if v.ok else f"cannot be graded: {v.error}"
        else:
            row.replays = replays(lab, path, v.failure.token)
            if row.replays < REPLAYS:
                row.problem = f"its token replays the failure only {row.replays} times of {REPLAYS}"
            elif role == "wrong" and row.seconds > WRONG_SECONDS:
                row.problem = f"fails only after {row.seconds:.0f} s (more than {WRONG_SECONDS})"
        rows.append(row)
    if reference is None:
        rows.insert(0, Row("(none)", "reference", None, 0.0, problem="no reference.py to check the lab with"))
    return Report(lab.name, rows)


def write_corpus(lab, tokens):
    """Write the regression corpus (one token a line) beside lab.py."""
    with open(lab.corpus_file, "w", encoding="utf-8") as f:
        f.write(f"# {lab.name}: failing schedules of the starter and the known wrong fixes\n")
        f.write("# (written by `vos lab sound --update-corpus`; replayed by the grader's regression stage)\n")
        for token in dict.fromkeys(tokens):
            f.write(token + "\n")


__all__ = ["check", "replays", "write_corpus", "Report", "Row", "WRONG_SECONDS", "REPLAYS"]
