"""Isolation by indirection, and sharing on purpose: threads in address spaces."""

import pytest

from runtime import Kernel
from runtime.errors import ThreadFailed
from runtime.textbook import (ALLOCATE_BLOCK, ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, LOAD, LOAD_BYTES, MAP,
                              RSM, STORE, STORE_BYTES)

PS = 4096
pytestmark = pytest.mark.timeout(60)


def _write_then_read(addr, value):
    STORE(addr, value)
    return LOAD(addr)


def _wild_store(addr):
    STORE(addr, -1)


def _store_to(addr, value):
    STORE(addr, value)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_the_same_address_names_different_memory_in_two_address_spaces(start_method):
    with Kernel(frames=16, start_method=start_method) as k:
        spaces = [CREATE_ADDRESS_SPACE() for _ in range(2)]
        for i, s in enumerate(spaces):
            MAP(s, ALLOCATE_BLOCK(PS), 2, "rw")
        tids = [ALLOCATE_THREAD(_write_then_read, s, 2 * PS, 100 + i) for i, s in enumerate(spaces)]
        assert [k.join(t, timeout=30) for t in tids] == [100, 101]
        # and thread 0's address space has nothing at that address
        tid = ALLOCATE_THREAD(_write_then_read, spaces[0], 2 * PS + 8, 5)
        assert k.join(tid, timeout=30) == 5


def test_enforced_modularity_a_wild_store_faults_its_own_thread_only():
    with Kernel(frames=16) as k:
        mine = ALLOCATE_BLOCK(PS)
        MAP(k.address_space, mine, 0, "rw")
        STORE(0, 1234)
        other = CREATE_ADDRESS_SPACE()
        MAP(other, ALLOCATE_BLOCK(PS), 1, "rw")
        tid = ALLOCATE_THREAD(_wild_store, other, 0)  # page 0 means nothing in `other`
        with pytest.raises(ThreadFailed) as e:
            k.join(tid, timeout=30)
        assert e.value.reason == "fault" and e.value.exc_type == "SegmentationFault"
        assert LOAD(0) == 1234
        row = [r for r in k.vm.statistics()["address_spaces"] if r["id"] == other][0]
        assert row["segmentation_faults"] == 1


def test_soft_modularity_in_one_address_space_a_wild_store_corrupts_silently():
    with Kernel(frames=16) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(2 * PS), 0, "rw")
        STORE(PS, 1234)                       # "module B's" data
        tid = ALLOCATE_THREAD(_store_to, k.address_space, PS, -1)  # "module A's" wild store
        assert k.join(tid, timeout=30) is None
        assert LOAD(PS) == -1


def test_a_block_mapped_into_two_address_spaces_is_shared_memory():
    with Kernel(frames=16) as k:
        shared = ALLOCATE_BLOCK(2 * PS)
        MAP(k.address_space, shared, 0, "rw")
        other = CREATE_ADDRESS_SPACE()
        MAP(other, shared, 30, "rw")                    # another virtual address, same pages
        tid = ALLOCATE_THREAD(_store_bytes, other, 30 * PS + PS - 3, b"shared!")
        assert k.join(tid, timeout=30) is None
        assert LOAD_BYTES(PS - 3, 7) == b"shared!"
        ro = CREATE_ADDRESS_SPACE()
        MAP(ro, shared, 0, "r")
        tid = ALLOCATE_THREAD(_store_to, ro, 0, 1)
        with pytest.raises(ThreadFailed) as e:
            k.join(tid, timeout=30)
        assert e.value.exc_type == "ProtectionFault"


def _store_bytes(addr, data):
    STORE_BYTES(addr, data)


def _count_with_rsm_lock(lock, counter, n):
    for _ in range(n):
        while RSM(lock) == 1:
            pass
        STORE(counter, LOAD(counter) + 1)
        STORE(lock, 0)
    return n


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_rsm_is_atomic_across_virtual_processors(start_method):
    with Kernel(frames=16, start_method=start_method) as k:
        b = ALLOCATE_BLOCK(PS)
        MAP(k.address_space, b, 0, "rw")
        n, vps = 3000, 3  # before the fix (STORE through struct.pack_into) this lost updates in ~1 run in 3
        tids = [ALLOCATE_THREAD(_count_with_rsm_lock, k.address_space, 0, 8, n) for _ in range(vps)]
        assert [k.join(t, timeout=60) for t in tids] == [n] * vps
        assert LOAD(8) == n * vps
        assert LOAD(0) == 0


def test_page_faults_are_counted_in_the_thread_entry():
    with Kernel(frames=16) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(3 * PS), 0, "rw")
        tid = ALLOCATE_THREAD(_touch_pages_and_report, k.address_space, 3)
        faults = k.join(tid, timeout=30)
        assert faults == 3  # three demand-zero faults; TLB refills are not faults


def _touch_pages_and_report(n):
    from runtime.context import current
    for p in range(n):
        STORE(p * PS, p)
    ctx = current()
    return ctx.kernel.threads.snapshot_one(ctx.tid)["faults"]
