"""The coordination demos, run in their quick form: each must show the race
(or the lost wake-up, or the deadlock) happen first, and then the fix work."""

import io
import re

import pytest
from rich.console import Console

import demos

pytestmark = pytest.mark.timeout(120)


def run(name):
    out = io.StringIO()
    demos.get(name).main(Console(file=out, width=200, force_terminal=False), quick=True)
    return out.getvalue()


def test_counter_loses_updates_then_the_lock_makes_it_exact():
    text = run("counter")
    lost = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) updates were lost", text)]
    assert lost and lost[0] > 0
    assert "exact" in text
    assert re.search(r"3\. ACQUIRE / RELEASE\s+│\s+([\d,]+)\s+│\s+\1\s+│\s+0\s", text), text


def test_broken_acquire_lets_two_in_and_rsm_does_not():
    text = run("broken-acquire")
    inside = re.search(r"([\d,]+) times two threads were inside", text)
    assert inside and int(inside.group(1).replace(",", "")) > 0, text
    assert re.search(r"2\. RSM \(read-and-set-memory\)\s+│\s+([\d,]+)\s+│\s+0\s+│\s+0\s", text), text


def test_lost_wakeup_then_await_advance_loses_none():
    text = run("lost-wakeup")
    assert "5 of 5 wake-ups lost" in text
    assert "0 of 200 lost" in text


def test_deadlock_is_named_then_a_lock_order_avoids_it():
    text = run("deadlock")
    assert "DeadlockError" in text and "'accounts'" in text and "'audit'" in text
    assert re.search(r"2\. one lock order\s+│\s+200\s+│\s+0\s", text), text


def test_the_tour_runs_them_in_lecture_order():
    names = [n for n, _ in demos.all_demos()]
    mine = ["counter", "broken-acquire", "lost-wakeup", "deadlock"]
    assert [n for n in names if n in mine] == mine
