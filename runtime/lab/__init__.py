"""Labs that grade themselves.

    spec.py    a lab: one folder, one documented lab.py; finding labs; loading
               a student's file
    grade.py   the grader: sanity, regression corpus, exhaustive <= 1 and <= 2
               preemptions, PCT and random from fixed seeds, races on every run
    sound.py   is a lab's grader sound? the reference passes, the starter and
               every known wrong fix fail, each failure replays 10 of 10
    status.py  what a student did with each lab (started, passed, failed)
    pytest.py  graders as pytest tests, for a class's submissions

The command line is runtime/cli/lab.py (`vos lab ...`).
"""

from .grade import Verdict, grade
from .spec import Lab, LabError, SubmissionError, all_labs, find

__all__ = ["grade", "Verdict", "Lab", "LabError", "SubmissionError", "all_labs", "find"]
