"""The five classic bugs: each is found by explore, with a token that
reproduces it every time, and each fix passes a search that is exhausted at
one and at two preemptions."""

import pytest

from demos._classics import CLASSICS
from runtime import Kernel
from runtime.explore import explore

pytestmark = pytest.mark.timeout(120)


def replay(program, token):
    """The error (class name and message) of one replay of the token."""
    try:
        with Kernel(schedule=token) as k:
            program(k)
    except Exception as e:  # noqa: BLE001 - the program's failure is what we compare
        return type(e).__name__, str(e)
    return None


@pytest.mark.parametrize("name,broken,fixed,kind", CLASSICS, ids=[c[0] for c in CLASSICS])
def test_the_bug_is_found_and_its_token_reproduces_it_ten_times_of_ten(name, broken, fixed, kind):
    result = explore(broken, seconds=30)
    assert not result.ok, f"{name}: no failing schedule found in {result.runs} runs"
    failure = result.failures[0]
    assert kind is None or failure.kind == kind, failure.error
    first = replay(broken, failure.token)
    assert first is not None and first[0] == failure.kind
    for _ in range(9):
        assert replay(broken, failure.token) == first
    assert failure.trace and any(s.preempted for s in failure.trace) == (failure.preemptions > 0)


# The locked buffer's spin loops (RELEASE, YIELD, ACQUIRE, re-read) make its search at 2 preemptions
# about 6,000 runs (15 s here): that one is a slow test; the default suite searches it at 1.
CASES = [pytest.param(fixed, bound, id=f"{name}-{bound}",
                      marks=[pytest.mark.slow] if (name, bound) == ("two senders", 2) else [])
         for name, _broken, fixed, _kind in CLASSICS for bound in (1, 2)]


@pytest.mark.parametrize("fixed,bound", CASES)
def test_the_fix_passes_an_exhausted_search(fixed, bound):
    result = explore(fixed, strategy="exhaustive", preemptions=bound, seconds=120)
    assert result.ok, result.failures[0].error if result.failures else ""
    assert result.exhausted and result.bound == bound
    assert f"at most {bound} preemption" in result.summary()
