"""Quotas (the lecture's denial of service) and the pager's statistics."""

import pytest

from runtime import Kernel
from runtime.errors import OutOfMemory, ThreadFailed
from runtime.memory import AddressSpace, create_address_space, statistics
from runtime.textbook import ALLOCATE_BLOCK, ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, FREE_BLOCK, LOAD, MAP, STORE

PS = 4096
pytestmark = pytest.mark.timeout(60)
FLAG = 900  # a shared page for "go" / "stop" flags between thread 0 and VPs


def _row(k, as_id):
    return [r for r in k.vm.statistics()["address_spaces"] if r["id"] == as_id][0]


def _keep_reading(npages):
    """A well-behaved thread: touch its pages, say so, then keep reading them until told to stop."""
    for p in range(npages):
        STORE(p * PS, p + 1)
    STORE(FLAG * PS, 1)
    rounds = 0
    while LOAD(FLAG * PS + 8) == 0:
        for p in range(npages):
            assert LOAD(p * PS) == p + 1
        rounds += 1
    return rounds


def _runaway(npages, rounds):
    for r in range(rounds):
        for p in range(npages):
            STORE(p * PS, r * 1000 + p)
    return [LOAD(p * PS) for p in range(npages)] == [(rounds - 1) * 1000 + p for p in range(npages)]


def test_a_runaway_thread_pages_against_itself_and_others_keep_their_frames():
    with Kernel(frames=16) as k:
        flags = ALLOCATE_BLOCK(PS)
        MAP(k.address_space, flags, FLAG, "rw")
        STORE(FLAG * PS, 0)           # the flag page is charged to thread 0's address space
        polite = CREATE_ADDRESS_SPACE()
        MAP(polite, flags, FLAG, "rw")
        MAP(polite, ALLOCATE_BLOCK(6 * PS), 0, "rw")
        greedy = CREATE_ADDRESS_SPACE(resident_limit=4)
        MAP(greedy, ALLOCATE_BLOCK(40 * PS), 0, "rw")
        reader = ALLOCATE_THREAD(_keep_reading, polite, 6)
        while LOAD(FLAG * PS) == 0:   # the polite thread has all its pages in
            pass
        assert k.join(ALLOCATE_THREAD(_runaway, greedy, 40, 3), timeout=60) is True
        STORE(FLAG * PS + 8, 1)
        assert k.join(reader, timeout=30) >= 1
        g, p = _row(k, greedy), _row(k, polite)
        assert g["resident"] <= 4 and g["evictions"] >= 100 and g["swap_in_faults"] > 0
        assert p["evictions"] == 0 and p["swap_in_faults"] == 0 and p["resident"] == 6
        k._check_invariants()


def test_without_a_quota_the_runaway_takes_the_others_frames():
    """The same experiment with no resident limit: the lecture's denial of service."""
    with Kernel(frames=16) as k:
        polite = CREATE_ADDRESS_SPACE()
        MAP(polite, ALLOCATE_BLOCK(6 * PS), 0, "rw")
        greedy = CREATE_ADDRESS_SPACE()
        MAP(greedy, ALLOCATE_BLOCK(40 * PS), 0, "rw")
        assert k.join(ALLOCATE_THREAD(_touch, polite, 6), timeout=30) == 6
        assert k.join(ALLOCATE_THREAD(_runaway, greedy, 40, 2), timeout=60) is True
        assert _row(k, polite)["evictions"] == 6 and _row(k, polite)["resident"] == 0


def _touch(npages):
    for p in range(npages):
        STORE(p * PS, p + 1)
    return npages


def test_the_resident_limit_comes_from_the_kernel_by_default():
    with Kernel(frames=16, resident_limit=3) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(10 * PS), 0, "rw")
        for p in range(10):
            STORE(p * PS, p)
        assert [LOAD(p * PS) for p in range(10)] == list(range(10))
        row = _row(k, k.address_space)
        assert row["resident_limit"] == 3 and row["resident"] == 3 and row["swapped"] == 7
        assert k.vm.statistics()["free_frames"] == 13
        assert _row(k, CREATE_ADDRESS_SPACE())["resident_limit"] == 3
        assert _row(k, CREATE_ADDRESS_SPACE(resident_limit=0))["resident_limit"] == 0


def test_a_resident_limit_without_swap_is_out_of_memory_for_the_faulting_thread():
    with Kernel(frames=8, swap_pages=0) as k:
        space = CREATE_ADDRESS_SPACE(resident_limit=2)
        MAP(space, ALLOCATE_BLOCK(3 * PS), 0, "rw")
        tid = ALLOCATE_THREAD(_touch, space, 3)
        with pytest.raises(ThreadFailed) as e:
            k.join(tid, timeout=30)
        assert e.value.exc_type == "OutOfMemory"


def _allocate(nbytes):
    return ALLOCATE_BLOCK(nbytes)


def test_the_page_limit_refuses_allocations_beyond_it():
    with Kernel(frames=16) as k:
        space = CREATE_ADDRESS_SPACE(page_limit=3)
        assert k.join(ALLOCATE_THREAD(_allocate, space, 2 * PS), timeout=30) > 0
        with pytest.raises(ThreadFailed) as e:
            k.join(ALLOCATE_THREAD(_allocate, space, 2 * PS), timeout=30)
        assert e.value.exc_type == "OutOfMemory" and "page_limit" in e.value.message
        assert k.join(ALLOCATE_THREAD(_allocate, space, PS), timeout=30) > 0
        assert _row(k, space)["pages"] == 3


def test_freeing_gives_the_page_quota_back():
    with Kernel(frames=16, page_limit=2) as k:
        b = ALLOCATE_BLOCK(2 * PS)
        with pytest.raises(OutOfMemory):
            ALLOCATE_BLOCK(1)
        FREE_BLOCK(b)
        ALLOCATE_BLOCK(1)


def test_quota_arguments_are_checked():
    with Kernel(frames=4) as k:
        for bad, error in ((-1, ValueError), (1.5, TypeError), ("2", TypeError)):
            with pytest.raises(error):
                CREATE_ADDRESS_SPACE(resident_limit=bad)
            with pytest.raises(error):
                CREATE_ADDRESS_SPACE(page_limit=bad)
        k._check_invariants()
    with pytest.raises(ValueError):
        Kernel(frames=4, resident_limit=-2).__enter__()


def test_statistics_count_every_kind_of_fault_and_name_frame_owners():
    with Kernel(frames=4, policy="fifo") as k:
        space = create_address_space()
        assert isinstance(space, AddressSpace) and space == int(space)
        MAP(k.address_space, ALLOCATE_BLOCK(6 * PS), 0, "rw")
        for p in range(6):              # 6 demand-zero faults, 2 evictions of dirty pages
            STORE(p * PS, p)
        assert LOAD(0) == 0             # page 0 comes back: a swap-in, and page 2 leaves
        with pytest.raises(Exception):
            LOAD(50 * PS)               # a segmentation fault
        MAP(k.address_space, ALLOCATE_BLOCK(PS), 60, "r")
        with pytest.raises(Exception):
            STORE(60 * PS, 1)           # a protection fault
        s = statistics()
        assert s["address_spaces"] == k.vm.statistics()["address_spaces"]
        row = _row(k, k.address_space)
        assert row["demand_zero_faults"] == 6 and row["swap_in_faults"] == 1
        assert row["segmentation_faults"] == 1 and row["protection_faults"] == 1
        assert row["evictions"] == 3 and row["swap_writes"] == 3 and row["swap_reads"] == 1
        assert row["resident"] == 4 and row["swapped"] == 2 and row["pages"] == 7 and row["mapped"] == 7
        assert s["frame_owner"] == [k.address_space] * 4 and s["free_frames"] == 0
        assert s["evictions"] == 3 and s["swap_writes"] == 3 and s["swap_reads"] == 1
        assert space.statistics()["resident"] == 0
        info = [t for t in k.thread_info() if t["tid"] == 0][0]
        assert info["faults"] == 9      # 6 + 1 + segmentation + protection


def test_statistics_need_no_lock():
    """statistics() works while the VM lock is held (by this very thread)."""
    with Kernel(frames=4) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(PS), 0, "rw")
        STORE(0, 1)
        k.vm.lock()
        try:
            assert k.vm.statistics()["address_spaces"][0]["resident"] == 1
        finally:
            k.vm.unlock()


def test_the_address_space_handle_is_a_context_manager_and_picklable():
    import pickle
    with Kernel(frames=4) as k:
        with AddressSpace.create(resident_limit=2) as space:
            assert pickle.loads(pickle.dumps(space)) == space
            b = ALLOCATE_BLOCK(PS)
            space.map(b, 3, "r")
            space.unmap(3)
            FREE_BLOCK(b)
            assert space.statistics()["resident_limit"] == 2
        assert space not in [r["id"] for r in k.vm.statistics()["address_spaces"]]
