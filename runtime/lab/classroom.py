"""Graders as pytest tests: a class's submissions, one test each.

An instructor's test file (say test_class.py, beside a folder of
submissions) holds one line per lab:

    from runtime.lab.classroom import submissions

    test_lost_update = submissions("lost_update", "submissions/*/counter.py")

`pytest test_class.py` then grades every file the pattern matches (relative
to the test file's folder); a failing submission's message is the verdict:
what broke, the replay token, the score.  `pytest --junitxml` gives the CI
report; `vos lab check NAME FILE --json` gives one file's autograder results.
"""

import glob
import inspect
import os


def submissions(lab_name, pattern, timeout=900):
    """A pytest test function over the files `pattern` matches."""
    import pytest

    from .grade import grade
    from .spec import find

    caller = os.path.dirname(os.path.abspath(inspect.stack()[1].filename))
    files = sorted(glob.glob(os.path.join(caller, pattern), recursive=True))
    ids = [os.path.relpath(f, caller) for f in files]

    @pytest.mark.timeout(timeout)
    @pytest.mark.parametrize("path", files, ids=ids)
    def test_submission(path):
        v = grade(find(lab_name), path)
        if not v.ok:
            lines = [f"{os.path.relpath(path, caller)}: {v.status}, score {v.score}/{v.max_score}"]
            if v.error:
                lines.append(v.error)
            if v.failure is not None:
                lines += [v.failure.error, f"replay: vos replay {v.failure.token}"]
            lines += [str(r) for r in v.races[:3]]
            pytest.fail("\n".join(lines), pytrace=False)

    test_submission.__name__ = f"test_{lab_name}"
    return test_submission


__all__ = ["submissions"]
