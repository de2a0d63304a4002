"""Every built-in lab's grader is sound: the reference passes, the starter
fails, and every known wrong fix (tests/labs/NAME/wrong/) fails within 60 s
with a token that replays the same failure 10 times of 10.  The tests find
the labs and their files by themselves: a new lab folder is tested as soon
as it exists."""

import os
import time

import pytest

from runtime.lab import all_labs, grade
from runtime.lab.sound import REPLAYS, WRONG_SECONDS, replays

pytestmark = pytest.mark.timeout(300)

LABS = {lab.name: lab for lab in all_labs() if lab.builtin}
HERE = os.path.dirname(os.path.abspath(__file__))


def _wrongs():
    for name in LABS:
        folder = os.path.join(HERE, name, "wrong")
        for f in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
            if f.endswith(".py"):
                yield pytest.param(name, os.path.join(folder, f), id=f"{name}-{f[:-3]}")


def test_there_are_labs_and_each_keeps_five_wrong_fixes():
    assert len(LABS) >= 1
    for name, lab in LABS.items():
        ref, wrongs = lab.solutions()
        assert ref == os.path.join(HERE, name, "reference.py")
        assert len(wrongs) >= 5, f"{name}: {len(wrongs)} wrong fixes"
        assert os.path.isfile(lab.handout) and os.path.isfile(lab.starter)


@pytest.mark.parametrize("name", LABS)
def test_the_reference_passes(name):
    lab = LABS[name]
    v = grade(lab, lab.solutions()[0])
    assert v.ok, v.error or v.failure.error
    assert v.score == v.max_score == 100
    assert "at most 2 preemptions" in v.certificate and "no race" in v.certificate
    assert [t.status for t in v.tests] == ["passed"] * len(v.tests)


@pytest.mark.parametrize("name", LABS)
def test_the_starter_fails_with_a_token_that_replays(name):
    lab = LABS[name]
    v = grade(lab, lab.starter)
    assert not v.ok and v.failure is not None and v.score < v.max_score
    assert replays(lab, lab.starter, v.failure.token) == REPLAYS


@pytest.mark.parametrize("name,path", list(_wrongs()))
def test_a_wrong_fix_fails_within_a_minute_and_its_token_replays(name, path):
    lab = LABS[name]
    t0 = time.monotonic()
    v = grade(lab, path)
    took = time.monotonic() - t0
    assert not v.ok, f"{os.path.basename(path)} passed: {v.certificate}"
    assert v.failure is not None, v.error
    assert took < WRONG_SECONDS
    assert replays(lab, path, v.failure.token) == REPLAYS
    failed = [t for t in v.tests if t.status == "failed"]
    assert failed and failed[0].output


@pytest.mark.parametrize("name", LABS)
def test_the_grader_gives_the_same_file_the_same_verdict(name):
    lab = LABS[name]
    first, second = grade(lab, lab.starter), grade(lab, lab.starter)
    assert first.to_json()["tests"] == second.to_json()["tests"]
    assert first.failure.token == second.failure.token
