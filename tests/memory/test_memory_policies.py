"""Replacement policies on reference traces with known fault counts."""

import pytest

from runtime import Kernel
from runtime.memory import policies, recording, simulate
from runtime.textbook import ALLOCATE_BLOCK, LOAD, MAP, STORE

PS = 4096
BELADY = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]
# The classic textbook trace (Silberschatz et al.): 20 references, 8 pages.
CLASSIC = [7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1]
pytestmark = pytest.mark.timeout(60)


def test_beladys_anomaly_fifo_takes_more_faults_with_more_frames():
    assert simulate(BELADY, 3, "fifo") == 9
    assert simulate(BELADY, 4, "fifo") == 10


def test_lru_and_opt_are_stack_algorithms_no_anomaly():
    assert simulate(BELADY, 3, "lru") == 10 and simulate(BELADY, 4, "lru") == 8
    assert simulate(BELADY, 3, "opt") == 7 and simulate(BELADY, 4, "opt") == 6


def test_the_classic_trace_with_three_frames():
    assert policies.compare(CLASSIC, 3, ("opt", "fifo", "lru")) == {"opt": 9, "fifo": 15, "lru": 12}


def test_clock_gives_a_second_chance():
    # a, b referenced again before c arrives: clock keeps them and evicts... the hand decides
    assert simulate([1, 2, 3, 1, 4], 3, "clock") == 4
    assert simulate([1, 2, 3, 1, 2, 4, 1, 2], 3, "clock") == 6
    assert simulate([1, 2, 3, 1, 2, 4, 1, 2], 3, "lru") == 4


def test_opt_is_a_lower_bound_for_every_policy():
    import random
    rng = random.Random(3)
    for _ in range(20):
        trace = [rng.randrange(9) for _ in range(60)]
        for frames in (2, 3, 5):
            best = simulate(trace, frames, "opt")
            for p in ("fifo", "lru", "clock", "random"):
                assert simulate(trace, frames, p, seed=1) >= best


def test_random_is_repeatable_with_a_seed():
    trace = [i % 7 for i in range(100)] + [3, 1, 4, 1, 5, 9, 2, 6]
    assert simulate(trace, 4, "random", seed=5) == simulate(trace, 4, "random", seed=5)


def test_bad_arguments():
    with pytest.raises(ValueError):
        simulate(BELADY, 0, "fifo")
    with pytest.raises(ValueError):
        simulate(BELADY, 3, "belady")
    with pytest.raises(ValueError):
        Kernel(frames=4, policy="mru").__enter__()


def _faults(k):
    row = k.vm.statistics()["address_spaces"][0]
    return row["demand_zero_faults"] + row["swap_in_faults"]


@pytest.mark.parametrize("frames, expected", [(3, 9), (4, 10)])
def test_the_live_fifo_pager_shows_beladys_anomaly(frames, expected):
    """The real pager, with `frames` frames, touching pages in the Belady order."""
    with Kernel(frames=frames, policy="fifo") as k:
        MAP(k.address_space, ALLOCATE_BLOCK(5 * PS), 1, "rw")
        for page in BELADY:
            STORE(page * PS, page)
        assert _faults(k) == expected
        for page in range(1, 6):
            assert LOAD(page * PS) == page


def test_a_recorded_trace_feeds_opt():
    with Kernel(frames=3, policy="fifo") as k:
        MAP(k.address_space, ALLOCATE_BLOCK(5 * PS), 1, "rw")
        with recording() as trace:
            for page in BELADY:
                LOAD(page * PS + 8)
        assert trace == BELADY
        assert _faults(k) == 9            # recording changes speed, not the pager's choices
        assert simulate(trace, 3, "opt") == 7
        STORE(PS, 5)                      # caching is back on after recording
        assert LOAD(PS) == 5


@pytest.mark.parametrize("policy", policies.NAMES)
def test_every_live_policy_keeps_the_data(policy):
    with Kernel(frames=3, policy=policy, seed=2) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(8 * PS), 0, "rw")
        for rnd in range(4):
            for page in CLASSIC:
                STORE(page * PS + 8 * rnd, page * 10 + rnd)
        for page in set(CLASSIC):
            assert [LOAD(page * PS + 8 * rnd) for rnd in range(4)] == [page * 10 + rnd for rnd in range(4)]
        k._check_invariants()
        stats = k.vm.statistics()
        assert stats["policy"] == policy and stats["evictions"] > 0
