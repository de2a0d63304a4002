"""Shrinking: a failure found by a random walk comes back with as few
preemptions as the bug needs, and its token still replays it."""

import pytest

from demos._classics import deadlock, flag_lock, lost_wakeup
from runtime import Kernel
from runtime.explore import explore

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("program,fewest", [(flag_lock, 2), (lost_wakeup, 1), (deadlock, 1)],
                         ids=["flag lock", "lost wake-up", "deadlock"])
def test_a_random_walks_failure_shrinks_to_the_preemptions_the_bug_needs(program, fewest):
    """A random walk switches threads at almost every step.  Cutting the
    schedule before a preemption loses the later switches the bug needs
    (the flag lock stayed at 6); letting a preempted thread run on removes
    the needless ones in the middle."""
    found = explore(program, strategy="random", seed=0, runs=400, seconds=None, shrink=False)
    assert not found.ok and found.failures[0].preemptions > fewest     # a walk's failure: more than needed
    shrunk = explore(program, strategy="random", seed=0, runs=400, seconds=None).failures[0]
    assert shrunk.preemptions == fewest and shrunk.kind == found.failures[0].kind
    assert sum(s.preempted for s in shrunk.trace) == fewest
    with pytest.raises(Exception) as raised:
        with Kernel(schedule=shrunk.token) as k:
            program(k)
    assert type(raised.value).__name__ == shrunk.kind
    assert [str(s) for s in k.trace()] == [str(s) for s in shrunk.trace]
