"""vos explore, vos replay and vos step from the command line."""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

RACY = textwrap.dedent('''
    from runtime.textbook import *

    def worker(n):
        for _ in range(n):
            x = LOAD(0)
            STORE(0, x + 1)

    def program(k):
        MAP(k.address_space, ALLOCATE_BLOCK(4096), 0, "rw")
        a = ALLOCATE_THREAD(worker, k.address_space, 2)
        b = ALLOCATE_THREAD(worker, k.address_space, 2)
        k.join(a)
        k.join(b)
        assert LOAD(0) == 4, f"x = {LOAD(0)}, not 4"
''')


def vos(*args, cwd, stdin=None):
    env = dict(os.environ, COLUMNS="80")
    return subprocess.run([sys.executable, "-m", "runtime", *args], cwd=cwd, capture_output=True, text=True,
                          input=stdin, timeout=110, env=env)


@pytest.fixture
def lab(tmp_path):
    (tmp_path / "racy.py").write_text(RACY)
    (tmp_path / "fixed.py").write_text(RACY.replace("x = LOAD(0)\n        STORE(0, x + 1)",
                                                    "ACQUIRE(L)\n        x = LOAD(0)\n        STORE(0, x + 1)\n"
                                                    "        RELEASE(L)").replace(
        "def worker(n):", "def worker(n, L):").replace("worker, k.address_space, 2)",
                                                        "worker, k.address_space, 2, lock)").replace(
        'MAP(k.address_space, ALLOCATE_BLOCK(4096), 0, "rw")',
        'MAP(k.address_space, ALLOCATE_BLOCK(4096), 0, "rw")\n    lock = ALLOCATE_LOCK("x")'))
    return tmp_path


def test_explore_finds_the_race_prints_the_trace_and_a_token_that_replays_it(lab):
    out = vos("explore", "racy.py", "--seconds", "30", cwd=lab)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "AssertionError: x = " in out.stdout and "thread 1" in out.stdout and "racy.py:6" in out.stdout
    assert all(len(line) <= 80 for line in out.stdout.splitlines() if "vos1:" not in line)
    token = next(w for w in out.stdout.split() if w.startswith("vos1:"))
    again = vos("replay", token, cwd=lab)
    assert again.returncode == 1 and "AssertionError: x = " in again.stdout
    assert again.stdout.count("STORE") == out.stdout.count("STORE")


def test_explore_passes_a_fixed_program_with_a_bounded_certificate(lab):
    out = vos("explore", "fixed.py", "--seconds", "30", "--strategy", "exhaustive", cwd=lab)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no failure" in out.stdout and "at most 2 preemptions" in out.stdout


def test_explore_names_what_is_missing(lab):
    (lab / "empty.py").write_text("x = 1\n")
    out = vos("explore", "empty.py", cwd=lab)
    assert out.returncode == 2 and "has no function program or main(k)" in out.stdout


def test_step_lets_the_student_choose_and_undo(lab):
    # thread 0 starts both threads, then thread 2 runs first; undo once, quit.
    out = vos("step", "racy.py", cwd=lab, stdin="0\n0\n0\n2\n2\nu\nq\n")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "who runs next?" in out.stdout and "can run?" in out.stdout
    assert "LOAD(0x0" in out.stdout or "LOAD 0x0" in out.stdout
