"""Data integrity under memory pressure: eviction races with cached translations.

Several VPs in several address spaces write, then verify, pages many times the
number of frames, over and over.  Every eviction bumps epochs and waits for
the shootdown; a single stale translation used after its frame was reused
would show up as a wrong word in someone's page.  Thread 0 holds translations
of the shared block and then sleeps in join, so evictors must interrupt it.
"""

import pytest

from runtime import Kernel
from runtime.textbook import (ALLOCATE_BLOCK, ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, LOAD, LOAD_BYTES, MAP, STORE,
                              STORE_BYTES)

PS = 4096
PRIVATE_PAGE, SHARED_PAGE = 0, 1000


def _worker(me, first, npages, rounds):
    """Write a pattern over pages first..first+npages-1 and one shared slot,
    verify it all, repeat.  Returns what was wrong (nothing, we hope)."""
    bad = []
    for r in range(rounds):
        for p in range(first, first + npages):
            base = p * PS
            word = me * 1_000_000 + r * 1000 + p
            STORE(base, word)
            STORE(base + PS - 16, -word)
            STORE_BYTES(base + PS - 8, bytes([me, r % 256, p % 256]) * 4)  # crosses into the next page
        STORE(SHARED_PAGE * PS + 8 * me, me * 1000 + r)
        for p in range(first, first + npages):
            base = p * PS
            word = me * 1_000_000 + r * 1000 + p
            if LOAD(base + PS - 16) != -word:
                bad.append(("tail", r, p))
            if LOAD_BYTES(base + PS - 8, 8) != bytes([me, r % 256, p % 256]) * 2 + bytes([me, r % 256]):
                bad.append(("bytes", r, p))
            # the head word was overwritten by the previous page's STORE_BYTES run (4 bytes of it)
            head = LOAD(base + 8)
            if p > first and head != 0:
                bad.append(("zero", r, p, head))
        if LOAD(SHARED_PAGE * PS + 8 * me) != me * 1000 + r:
            bad.append(("shared", r))
    return bad


def _run(k, spaces, vps_per_space, npages, rounds):
    """`spaces` address spaces, each with `vps_per_space` threads working on
    disjoint regions of one private block; all share one block with thread 0."""
    shared = ALLOCATE_BLOCK(PS)
    MAP(k.address_space, shared, SHARED_PAGE, "rw")
    STORE(SHARED_PAGE * PS, 1)  # thread 0 now caches a translation of the shared page
    tids = []
    me = 0
    for _ in range(spaces):
        space = CREATE_ADDRESS_SPACE()
        MAP(space, shared, SHARED_PAGE, "rw")
        MAP(space, ALLOCATE_BLOCK((vps_per_space * npages + 1) * PS), PRIVATE_PAGE, "rw")
        for v in range(vps_per_space):
            me += 1
            tids.append(ALLOCATE_THREAD(_worker, space, me, PRIVATE_PAGE + v * npages, npages, rounds))
    results = [k.join(t, timeout=240) for t in tids]
    assert results == [[]] * len(tids)
    for m in range(1, me + 1):
        assert LOAD(SHARED_PAGE * PS + 8 * m) == m * 1000 + rounds - 1
    k._check_invariants()
    return k.vm.statistics()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy", ["clock", "fifo", "lru", "random"])
def test_no_word_is_lost_under_pressure(policy):
    with Kernel(frames=12, policy=policy, seed=7) as k:
        stats = _run(k, spaces=3, vps_per_space=2, npages=8, rounds=3)
    assert stats["evictions"] > 50 and stats["swap_writes"] > 20 and stats["swap_reads"] > 20
    print({key: stats[key] for key in ("evictions", "swap_writes", "swap_reads", "shootdowns",
                                       "shootdown_interrupts")})


@pytest.mark.timeout(120)
def test_no_word_is_lost_with_threads_sharing_one_address_space():
    """Two threads in one address space evict each other's pages: their own TLBs must be shot down."""
    with Kernel(frames=6) as k:
        space = CREATE_ADDRESS_SPACE()
        MAP(space, ALLOCATE_BLOCK(40 * PS), 0, "rw")
        tids = [ALLOCATE_THREAD(_region_worker, space, i * 20, 20, 3, i + 1) for i in range(2)]
        assert [k.join(t, timeout=100) for t in tids] == [[], []]
        k._check_invariants()
        assert k.vm.statistics()["evictions"] > 40


def _region_worker(first, npages, rounds, me):
    bad = []
    for r in range(rounds):
        for p in range(first, first + npages):
            STORE(p * PS + 8 * (p % 512), me * 100_000 + r * 100 + p)
        for p in range(first, first + npages):
            if LOAD(p * PS + 8 * (p % 512)) != me * 100_000 + r * 100 + p:
                bad.append((r, p))
    return bad


@pytest.mark.timeout(120)
def test_pressure_with_fewer_processors_than_threads():
    """With processors=2 the shootdown must give its processor up while it waits."""
    with Kernel(frames=10, processors=2) as k:
        stats = _run(k, spaces=2, vps_per_space=2, npages=8, rounds=2)
    assert stats["evictions"] > 20


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("policy", ["clock", "fifo", "lru", "random"])
def test_no_word_is_lost_under_long_pressure(policy):
    with Kernel(frames=16, policy=policy, seed=11) as k:
        stats = _run(k, spaces=4, vps_per_space=4, npages=12, rounds=12)  # 16 VPs
    assert stats["evictions"] > 1000


def _evict_everything(npages, rounds):
    for r in range(rounds):
        for p in range(npages):
            STORE(p * PS + 8, r * 100 + p)
    return [LOAD(p * PS + 8) for p in range(npages)]


@pytest.mark.timeout(60)
def test_an_idle_thread_holding_translations_is_interrupted_and_never_sees_a_stale_frame():
    """Thread 0 caches translations of every page of a block, then sleeps in
    join while a VP evicts those pages: each eviction must interrupt thread 0
    (SIGUSR2) for its acknowledgement.  Afterwards thread 0's first LOADs must
    see the VP's data, not whatever its stale translations pointed at."""
    with Kernel(frames=4) as k:
        block = ALLOCATE_BLOCK(8 * PS)
        MAP(k.address_space, block, 0, "rw")
        for p in range(4):
            STORE(p * PS + 8, -1)          # 4 resident pages, all in thread 0's TLB
        other = CREATE_ADDRESS_SPACE()
        MAP(other, block, 0, "rw")
        got = k.join(ALLOCATE_THREAD(_evict_everything, other, 8, 3), timeout=30)
        assert got == [200 + p for p in range(8)]
        assert [LOAD(p * PS + 8) for p in range(8)] == got
        stats = k.vm.statistics()
        assert stats["shootdowns"] > 0 and stats["shootdown_interrupts"] > 0
        k._check_invariants()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("page_size", [64, 1024, 65536])
def test_other_page_sizes(page_size):
    with Kernel(frames=4, page_size=page_size) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(6 * page_size), 2, "rw")
        base = 2 * page_size
        for p in range(6):
            STORE(base + p * page_size + page_size - 8, p)
        data = bytes(range(256)) * (3 * page_size // 256 + 1)
        STORE_BYTES(base + page_size // 2, data[:3 * page_size])
        assert LOAD_BYTES(base + page_size // 2, 3 * page_size) == data[:3 * page_size]
        assert LOAD(base + 5 * page_size + page_size - 8) == 5
        k._check_invariants()
