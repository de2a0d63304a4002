"""vos lab from the command line: list, start, check (--json), hint, new,
sound, and the graders as pytest tests.  Subprocesses, as a student runs it;
$VOS_STATE points the status file into the test's folder."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "lost_update", "reference.py")


def vos(*args, cwd):
    env = dict(os.environ, COLUMNS="80", VOS_STATE=os.path.join(str(cwd), "state.json"))
    return subprocess.run([sys.executable, "-m", "runtime", "lab", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=110, env=env)


def test_start_check_fail_then_pass_and_the_list_shows_it(tmp_path):
    r = vos(cwd=tmp_path)
    assert r.returncode == 0 and "lost_update" in r.stdout and "not started" in r.stdout
    r = vos("start", "lost_update", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "lost_update" / "counter.py").is_file() and (tmp_path / "lost_update" / "handout.md").is_file()
    assert "vos lab check lost_update" in r.stdout

    r = vos("check", "lost_update", cwd=tmp_path)            # the starter, found where start put it
    assert r.returncode == 1, r.stdout + r.stderr
    assert "update(s) lost" in r.stdout and "vos replay vos1:" in r.stdout
    assert "data race on 0x1000" in r.stdout and "counter.py:" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80 or "vos replay" in r.stdout
    assert "failed (" in vos(cwd=tmp_path).stdout

    (tmp_path / "lost_update" / "counter.py").write_text(open(REFERENCE).read())
    r = vos("check", "lost_update", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pass" in r.stdout and "at most 2 preemptions" in r.stdout and "no race" in r.stdout
    assert "passed" in vos(cwd=tmp_path).stdout


def test_check_json_is_an_autograders_results_file(tmp_path):
    vos("start", "lost_update", cwd=tmp_path)
    out = tmp_path / "results.json"
    r = vos("check", "lost_update", "lost_update/counter.py", "--json", str(out), cwd=tmp_path)
    assert r.returncode == 1
    d = json.loads(out.read_text())
    assert d["verdict"] == "fail" and d["lab"] == "lost_update" and len(d["sha256"]) == 64
    assert d["max_score"] == 100 and 0 <= d["score"] < 100
    assert d["score"] == sum(t["score"] for t in d["tests"])
    assert [t["name"] for t in d["tests"]] == ["sanity", "regression", "exhaustive <= 1", "exhaustive <= 2",
                                               "sampled", "no data race"]
    assert {"name", "score", "max_score", "status", "output"} <= set(d["tests"][0])
    assert "failed" in [t["status"] for t in d["tests"]]
    f = d["failure"]
    assert f["token"].startswith("vos1:") and f["replay"] == f"vos replay {f['token']}" and f["trace"]
    assert d["races"] and "data race" in d["races"][0]

    r = vos("check", "lost_update", REFERENCE, "--json", cwd=tmp_path)     # to standard output
    assert r.returncode == 0
    d = json.loads(r.stdout)
    assert d["verdict"] == "pass" and d["score"] == 100 and "at most 2 preemptions" in d["certificate"]
    assert all(t["status"] == "passed" for t in d["tests"]) and d["races"] == []


def test_a_file_that_cannot_run_is_a_verdict_not_a_crash(tmp_path):
    (tmp_path / "counter.py").write_text("def setup(:\n")
    r = vos("check", "lost_update", "counter.py", cwd=tmp_path)
    assert r.returncode == 1 and "does not compile" in r.stdout
    (tmp_path / "counter.py").write_text("def setup():\n    return None\n")
    r = vos("check", "lost_update", "counter.py", cwd=tmp_path)
    assert r.returncode == 1 and "increment()" in r.stdout
    r = vos("check", "lost_updat", "counter.py", cwd=tmp_path)
    assert r.returncode == 2 and "did you mean 'lost_update'" in r.stdout


def test_hints_come_one_at_a_time(tmp_path):
    first = vos("hint", "lost_update", cwd=tmp_path).stdout
    second = vos("hint", "lost_update", cwd=tmp_path).stdout
    assert "hint 1 of" in first and "hint 2 of" in second
    assert vos("hint", "lost_update", "--all", cwd=tmp_path).stdout.count("hint ") >= 3


def test_an_instructors_new_lab_is_sound_and_listed(tmp_path):
    r = vos("new", "withdraw", "labs", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = vos("sound", "labs/withdraw", "--update-corpus", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sound: hand it out" in r.stdout and "10/10" in r.stdout
    assert (tmp_path / "labs" / "withdraw" / "corpus.txt").read_text().count("vos1:") >= 2
    env_listed = subprocess.run([sys.executable, "-m", "runtime", "lab"], cwd=tmp_path, capture_output=True,
                                text=True, timeout=60,
                                env=dict(os.environ, VOS_LABS=str(tmp_path / "labs"), COLUMNS="80",
                                         VOS_STATE=str(tmp_path / "s.json")))
    assert "withdraw" in env_listed.stdout

    (tmp_path / "labs" / "withdraw" / "wrong" / "passes.py").write_text(
        open(tmp_path / "labs" / "withdraw" / "reference.py").read())
    r = vos("sound", "labs/withdraw", cwd=tmp_path)            # a "wrong fix" the grader lets through
    assert r.returncode == 1 and "passes.py: passes: the grader does not catch it" in r.stdout


def test_a_class_graded_with_pytest(tmp_path):
    sub = tmp_path / "submissions"
    (sub / "alice").mkdir(parents=True)
    (sub / "bob").mkdir()
    (sub / "alice" / "counter.py").write_text(open(REFERENCE).read())
    (sub / "bob" / "counter.py").write_text(open(os.path.join(HERE, "lost_update", "wrong",
                                                              "lock_write_only.py")).read())
    (tmp_path / "test_class.py").write_text(textwrap.dedent('''
        from runtime.lab.classroom import submissions

        test_lost_update = submissions("lost_update", "submissions/*/counter.py")
    '''))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_class.py"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=110)
    assert "1 failed, 1 passed" in r.stdout, r.stdout + r.stderr
    assert "bob/counter.py: fail" in r.stdout and "vos replay vos1:" in r.stdout
