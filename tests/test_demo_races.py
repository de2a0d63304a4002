"""The race demos' last act, a controlled run (demos/_controlled.py): the
racy version fails under a schedule found from the seed, its race report
names both lines of each race, its token replays it (`vos replay`), the
fixed version has no failure and no race, and the same seed prints the same
act every time."""

import argparse
import inspect
import io
import os
import subprocess
import sys
import types

import pytest
from rich.console import Console

import demos
from demos import _controlled, broken_acquire, buffer_race, counter, lost_wakeup
from demos._student_locks import TestThenSetLock
from runtime import Kernel
from runtime.cli import demo as demo_cli
from runtime.cli import build_parser
from runtime.explore import run_once

pytestmark = pytest.mark.timeout(60)


def site(function, text):
    """'file.py:LINE' of the line of `function` holding `text`."""
    lines, first = inspect.getsourcelines(function)
    hits = [first + i for i, line in enumerate(lines) if text in line]
    assert len(hits) == 1, f"{text!r} is on {len(hits)} lines of {function.__qualname__}"
    return f"{os.path.basename(inspect.getsourcefile(function))}:{hits[0]}"


# demo: (its module, what the racy version raises, the pairs of lines that must be reported racing)
DEMOS = {
    "counter": (counter, "AssertionError", [
        ((counter.add, "x = LOAD(a)"), (counter.add, "STORE(a, x + 1)"))]),
    "broken-acquire": (broken_acquire, "AssertionError", [
        ((TestThenSetLock.acquire, "while LOAD(self.vaddr)"), (TestThenSetLock.acquire, "STORE(self.vaddr, LOCKED)")),
        ((broken_acquire.enter, "x = LOAD(a)"), (broken_acquire.enter, "STORE(a, x + 1)"))]),
    "lost-wakeup": (lost_wakeup, "Hang", [
        ((lost_wakeup.consumer, "LOAD(base + ITEM)"), (lost_wakeup.producer, "STORE(base + ITEM, 1)")),
        ((lost_wakeup.consumer, "STORE(base + ASLEEP, 1)"), (lost_wakeup.producer, "LOAD(base + ASLEEP)"))]),
    "buffer-race": (buffer_race, "AssertionError", [
        ((buffer_race.send, "STORE(slot(p, i), msg)"), (buffer_race.send, "STORE(slot(p, i), msg)"))]),
}


@pytest.fixture(scope="module")
def acts():
    """Each demo's act, searched once from the default seed."""
    return {name: _controlled.search(mod.racy, mod.fixed, demos.SEED) for name, (mod, _, _) in DEMOS.items()}


@pytest.mark.parametrize("name", DEMOS)
def test_the_racy_version_fails_and_its_report_names_both_lines(name, acts):
    mod, kind, pairs = DEMOS[name]
    act = acts[name]
    assert act.failure is not None and act.failure.kind == kind, act.failure
    assert act.races, f"{name}: the racy version's race report is empty"
    reported = {frozenset((os.path.basename(r.first.site), os.path.basename(r.second.site))) for r in act.races}
    for (f1, t1), (f2, t2) in pairs:
        assert frozenset((site(f1, t1), site(f2, t2))) in reported, (site(f1, t1), site(f2, t2), reported)
    for r in act.races:
        assert r.first.tid != r.second.tid and "write" in (r.first.kind, r.second.kind)
        assert r.first.line and r.second.line          # the source text of both lines


@pytest.mark.parametrize("name", DEMOS)
def test_the_fixed_version_has_no_race_and_no_failure(name, acts):
    mod = DEMOS[name][0]
    result = acts[name].fixed
    assert result.ok and result.exhausted and result.bound == _controlled.PREEMPTIONS, result.failures
    assert run_once(mod.fixed, "random", {"races": True}).races == []


@pytest.mark.parametrize("name", DEMOS)
def test_the_token_replays_the_same_steps_and_error(name, acts):
    mod = DEMOS[name][0]
    f = acts[name].failure
    with pytest.raises(Exception) as raised:
        with Kernel(schedule=f.token) as k:
            mod.racy(k)
    assert type(raised.value).__name__ == f.kind
    assert [str(s) for s in k.trace()] == [str(s) for s in f.trace]


def test_vos_replay_reproduces_each_demos_failure(acts, tmp_path):
    """The command the act prints, run elsewhere: it finds the demo by the token."""
    for name, act in acts.items():
        out = subprocess.run([sys.executable, "-m", "runtime", "replay", act.failure.token], cwd=tmp_path,
                             capture_output=True, text=True, timeout=50, env=dict(os.environ, COLUMNS="80"))
        assert out.returncode == 1, (name, out.stdout, out.stderr)
        assert act.failure.error.splitlines()[0][:60] in " ".join(out.stdout.split()), (name, out.stdout)


def render(act_of):
    console = Console(file=io.StringIO(), width=80, force_terminal=False)
    act_of(console)
    return console.file.getvalue()


def test_the_same_seed_prints_the_same_act(acts):
    """Searched again from scratch with the same seed: the same text, to the character."""
    first = render(lambda c: _controlled.show(c, acts["counter"], "ACQUIRE/RELEASE"))
    second = render(lambda c: _controlled.act(c, counter.racy, counter.fixed, "ACQUIRE/RELEASE", seed=demos.SEED))
    assert first == second
    assert "counter.py:" in first and "vos replay vos1:" in first and "no data race" in first
    lines = first.splitlines()
    assert len(lines) <= 30 and all(len(line) <= 80 for line in lines if "vos1:" not in line)


def test_the_act_fits_80_columns_and_says_what_it_explored(acts):
    text = render(lambda c: _controlled.show(c, acts["broken-acquire"], "ACQUIRE with RSM"))
    assert "_student_locks.py:" in text and "broken_acquire.py:" in text
    assert "data race on" in text and "数据竞争报告" in text
    assert "no data race and no failure in all " in " ".join(text.split())
    assert "schedules with at most 2 preemptions" in " ".join(text.split())
    assert all(len(line) <= 80 for line in text.splitlines() if "vos1:" not in line)


def test_the_seed_reaches_the_demos_that_take_one():
    got = []
    takes = types.SimpleNamespace(main=lambda console, quick=False, seed=demos.SEED: got.append((quick, seed)))
    plain = types.SimpleNamespace(main=lambda console, quick=False: got.append((quick, None)))
    demos.run(takes, None, quick=True, seed=3)
    demos.run(plain, None, quick=True, seed=3)
    demos.run(takes, None)
    assert got == [(True, 3), (True, None), (False, demos.SEED)]
    args = build_parser().parse_args(["demo", "counter", "--seed", "3"])
    assert args.seed == 3 and args._run is demo_cli.run
    assert build_parser().parse_args(["tour", "--seed", "5"]).seed == 5
    for mod in (counter, broken_acquire, buffer_race, lost_wakeup):
        assert "seed" in inspect.signature(mod.main).parameters


def test_the_demo_command_passes_the_seed(monkeypatch):
    seen = []
    monkeypatch.setattr(counter, "main", lambda console, quick=False, seed=demos.SEED: seen.append(seed))
    console = Console(file=io.StringIO(), width=80)
    assert demo_cli.run(argparse.Namespace(name="counter", quick=True, seed=3), console) == 0
    assert seen == [3]
