"""What the pager survives: a thread killed in the middle of a page move, a
kernel booted outside the main Python thread, spawn; and where swap lives."""

import os
import tempfile
import threading

import pytest

from runtime import Kernel
from runtime.memory.tables import F_MOVER, F_STAGE, STAGE_EVICT, STAGE_FILL
from runtime.textbook import (ALLOCATE_BLOCK, ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, DESTROY_THREAD, LOAD,
                              LOAD_BYTES, MAP, STORE, STORE_BYTES)

PS = 4096
NPAGES = 12


def _page_forever(npages):
    while True:
        for p in range(npages):
            STORE(p * PS, p * 7 + 1)
            assert LOAD(p * PS) == p * 7 + 1


def _read_all(npages):
    return [LOAD(p * PS) for p in range(npages)]


def _moves_of(k, tid):
    """Stages of the moves thread tid is in the middle of (caller holds the VM lock)."""
    vm = k.vm
    out = []
    for frame in range(vm.geo.frames):
        e = vm.frames.entry(frame)
        if vm.get(e + F_MOVER) == tid + 1:
            out.append(vm.get(e + F_STAGE))
    return out


def _faults(k, tid):
    return [t for t in k.thread_info() if t["tid"] == tid][0]["faults"]


@pytest.mark.timeout(120)
def test_a_thread_killed_in_the_middle_of_a_page_move_loses_no_data():
    """Hold the VM lock, look for a move of the paging thread in progress, and
    kill the thread right there: once in stage EVICT (the victim still in the
    frame), once in stage FILL.  Every page must still read what was written."""
    with Kernel(frames=4) as k:
        block = ALLOCATE_BLOCK(NPAGES * PS)
        space = CREATE_ADDRESS_SPACE()
        MAP(space, block, 0, "rw")
        killed = set()
        for _attempt in range(400):
            if killed == {STAGE_EVICT, STAGE_FILL}:
                break
            tid = ALLOCATE_THREAD(_page_forever, space, NPAGES)
            while _faults(k, tid) <= NPAGES:    # every page written at least once
                pass
            for _look in range(200):
                k.vm.lock()
                try:
                    stages = _moves_of(k, tid)
                    wanted = [s for s in stages if s not in killed]
                    if wanted:
                        DESTROY_THREAD(tid)     # dies holding a frame in transit
                        killed.add(wanted[0])
                        break
                finally:
                    k.vm.unlock()
            else:
                DESTROY_THREAD(tid)
            with pytest.raises(Exception):
                k.join(tid, timeout=30)
            # Pages left in transit by the dead thread are repaired by whoever waits on them.
            # (A VP checks, so that thread 0 caches nothing of the block: no one
            # waits for thread 0's acknowledgement and the moves stay quick.)
            checker = ALLOCATE_THREAD(_read_all, space, NPAGES)
            assert k.join(checker, timeout=60) == [p * 7 + 1 for p in range(NPAGES)]
            k._check_invariants()
        assert killed == {STAGE_EVICT, STAGE_FILL}
        assert k.vm.statistics()["repairs"] >= 2


def _paging_worker(me, npages, rounds):
    for r in range(rounds):
        for p in range(npages):
            STORE_BYTES(p * PS + 100, bytes([me, r, p]) * 10)
        for p in range(npages):
            if LOAD_BYTES(p * PS + 100, 30) != bytes([me, r, p]) * 10:
                return False
    return True


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_a_kernel_booted_outside_the_main_thread_pages_correctly():   # (Python 3.12+ warns: fork from a thread)
    """Thread 0 then cannot take the shootdown interrupt: it caches no translation."""
    result = {}

    def body():
        try:
            with Kernel(frames=6) as k:
                MAP(k.address_space, ALLOCATE_BLOCK(10 * PS), 0, "rw")
                spaces = [CREATE_ADDRESS_SPACE() for _ in range(2)]
                for s in spaces:
                    MAP(s, ALLOCATE_BLOCK(8 * PS), 0, "rw")
                tids = [ALLOCATE_THREAD(_paging_worker, s, i + 1, 8, 3) for i, s in enumerate(spaces)]
                for r in range(3):
                    for p in range(10):
                        STORE(p * PS, r * 100 + p)
                ok0 = [LOAD(p * PS) for p in range(10)] == [200 + p for p in range(10)]
                result["ok"] = [ok0] + [k.join(t, timeout=100) for t in tids]
                result["caching"] = k.vm.shootdown.can_interrupt
                k._check_invariants()
        except BaseException as e:  # noqa: BLE001 - reported to the test thread
            result["error"] = e

    t = threading.Thread(target=body)
    t.start()
    t.join(110)
    assert "error" not in result, result.get("error")
    assert result == {"ok": [True, True, True], "caching": False}


@pytest.mark.timeout(120)
def test_spawned_threads_page_correctly():
    with Kernel(frames=6, start_method="spawn") as k:
        spaces = [CREATE_ADDRESS_SPACE() for _ in range(2)]
        for s in spaces:
            MAP(s, ALLOCATE_BLOCK(8 * PS), 0, "rw")
        tids = [ALLOCATE_THREAD(_paging_worker, s, i + 1, 8, 3) for i, s in enumerate(spaces)]
        assert [k.join(t, timeout=100) for t in tids] == [True, True]
        assert k.vm.statistics()["evictions"] > 10


@pytest.mark.timeout(60)
def test_the_swap_file_is_where_asked_and_removed_at_shutdown(tmp_path):
    path = tmp_path / "vm.swap"
    with Kernel(frames=2, swap=str(path)) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(6 * PS), 0, "rw")
        for p in range(6):
            STORE(p * PS, p + 1)
        assert path.exists() and os.stat(path).st_blocks > 0
        assert [LOAD(p * PS) for p in range(6)] == [1, 2, 3, 4, 5, 6]
    assert not path.exists()


@pytest.mark.timeout(60)
def test_the_default_swap_file_is_named_after_the_arena_and_removed_after_an_exception():
    with pytest.raises(RuntimeError):
        with Kernel(frames=2) as k:
            path = os.path.join(tempfile.gettempdir(), f"{k.arena.name}.swap")
            assert os.path.exists(path)
            raise RuntimeError("boom")
    assert not os.path.exists(path)


def _rewrite_own_state(n):
    from runtime.context import current
    from runtime.threads import O_STATE, RUNNING
    ctx = current()
    t = ctx.kernel.threads
    o = t.off(ctx.tid, O_STATE)
    STORE(0, 1)  # started
    for _ in range(n):
        t.put32(o, RUNNING)  # what every switch does: the thread writes its own state
    STORE(8, 1)  # done
    return n


@pytest.mark.timeout(60)
def test_a_thread_rewriting_its_state_never_looks_free_to_a_lock_free_reader():
    """The pager judges threads by their entries without locks; a live thread's
    state word must never read as 0 (FREE) while the thread rewrites it.
    (struct.pack_into clears a field before writing it: threads.put32 used it.)"""
    from runtime.threads import O_STATE
    with Kernel(frames=4) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(PS), 0, "rw")
        tid = ALLOCATE_THREAD(_rewrite_own_state, k.address_space, 300_000)
        o = k.threads.off(tid, O_STATE)
        while LOAD(0) == 0:
            pass
        seen_free = reads = 0
        while LOAD(8) == 0:
            for _ in range(100):
                if k.threads.get32(o) == 0:
                    seen_free += 1
            reads += 100
        assert k.join(tid, timeout=30) == 300_000
        assert reads > 1000 and seen_free == 0
