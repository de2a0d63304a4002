"""The thread manager: ALLOCATE_THREAD, EXIT_THREAD, DESTROY_THREAD, join, and bad input."""

import os
import pickle
import signal

import pytest

from runtime import Kernel
from runtime.errors import (KernelError, NoSuchAddressSpace, NoSuchThread, NotPicklable, OutOfResources,
                            ThreadFailed)
from runtime.textbook import ALLOCATE_THREAD, DESTROY_THREAD, EXIT_THREAD
from waiting import wait_for

pytestmark = pytest.mark.timeout(60)
METHODS = ["fork", "spawn", "forkserver"]


def double(x):
    return 2 * x


def fail(msg):
    raise ValueError(msg)


def exit_early(status):
    EXIT_THREAD(status)
    return "not reached"


def spin_forever():
    while True:
        pass


def spawn_child_and_join(x):
    from runtime.context import current
    k = current().kernel
    tid = ALLOCATE_THREAD(double, k.address_space, x)
    return k.join(tid, timeout=30) + 1


def state_of(k, tid):
    return next(r for r in k.thread_info() if r["tid"] == tid)


@pytest.mark.parametrize("method", METHODS)
def test_thread_returns_its_status(method):
    with Kernel(start_method=method) as k:
        tids = [ALLOCATE_THREAD(double, k.address_space, i) for i in range(4)]
        assert [k.join(t, timeout=30) for t in tids] == [0, 2, 4, 6]


@pytest.mark.parametrize("method", METHODS)
def test_exit_thread_sets_the_status(method):
    with Kernel(start_method=method) as k:
        assert k.join(ALLOCATE_THREAD(exit_early, k.address_space, {"ok": 1}), timeout=30) == {"ok": 1}


@pytest.mark.parametrize("method", METHODS)
def test_an_exception_ends_only_its_thread(method):
    with Kernel(start_method=method) as k:
        bad = ALLOCATE_THREAD(fail, k.address_space, "boom")
        good = ALLOCATE_THREAD(double, k.address_space, 5)
        with pytest.raises(ThreadFailed) as info:
            k.join(bad, timeout=30)
        assert info.value.reason == "exception"
        assert info.value.exc_type == "ValueError" and info.value.message == "boom"
        assert "raise ValueError(msg)" in info.value.traceback
        assert k.join(good, timeout=30) == 10
        assert k.join(ALLOCATE_THREAD(double, k.address_space, 1), timeout=30) == 2  # kernel still fine
        k._check_invariants()


@pytest.mark.parametrize("method", METHODS)
def test_a_thread_can_create_threads(method):
    with Kernel(start_method=method) as k:
        assert k.join(ALLOCATE_THREAD(spawn_child_and_join, k.address_space, 20), timeout=30) == 41


def test_thread_failed_survives_pickling():
    e = ThreadFailed(3, "fault", "SegmentationFault", "bad address", "tb")
    again = pickle.loads(pickle.dumps(e))
    assert (again.tid, again.reason, again.exc_type, again.message) == (3, "fault", "SegmentationFault", "bad address")


@pytest.mark.parametrize("method", METHODS)
def test_destroy_thread_leaves_the_others_running(method):
    with Kernel(start_method=method) as k:
        victim = ALLOCATE_THREAD(spin_forever, k.address_space)
        wait_for(lambda: state_of(k, victim)["state"] == "RUNNING")
        DESTROY_THREAD(victim)
        with pytest.raises(ThreadFailed) as info:
            k.join(victim, timeout=30)
        assert info.value.reason == "destroyed"
        assert k.join(ALLOCATE_THREAD(double, k.address_space, 4), timeout=30) == 8
        k._check_invariants()


def test_a_vp_killed_from_outside_is_reported_destroyed():
    with Kernel() as k:
        victim = ALLOCATE_THREAD(spin_forever, k.address_space)
        wait_for(lambda: state_of(k, victim)["state"] == "RUNNING")
        os.kill(state_of(k, victim)["pid"], signal.SIGKILL)
        with pytest.raises(ThreadFailed) as info:
            k.join(victim, timeout=30)
        assert info.value.reason == "destroyed" and "died" in info.value.message


def test_bad_input_raises_named_errors_at_once():
    with Kernel(max_threads=3) as k:
        with pytest.raises(TypeError):
            ALLOCATE_THREAD(42, k.address_space)
        with pytest.raises(NoSuchAddressSpace):
            ALLOCATE_THREAD(double, 987654, 1)
        with pytest.raises(NoSuchThread):
            k.join(12345)
        with pytest.raises(NoSuchThread):
            DESTROY_THREAD(12345)
        with pytest.raises(KernelError):
            k.join(0)
        a = ALLOCATE_THREAD(spin_forever, k.address_space)
        b = ALLOCATE_THREAD(spin_forever, k.address_space)
        with pytest.raises(OutOfResources):
            ALLOCATE_THREAD(double, k.address_space, 1)
        with pytest.raises(TimeoutError):
            k.join(a, timeout=0.05)
        DESTROY_THREAD(a)
        DESTROY_THREAD(b)
        for t in (a, b):
            with pytest.raises(ThreadFailed):
                k.join(t, timeout=30)
        assert k.join(ALLOCATE_THREAD(double, k.address_space, 2), timeout=30) == 4  # slots were freed
        tid = ALLOCATE_THREAD(double, k.address_space, 3)
        k.join(tid, timeout=30)
        with pytest.raises(NoSuchThread):
            k.join(tid)  # a thread is joined once


def test_unpicklable_arguments_fail_at_once_under_spawn():
    with Kernel(start_method="spawn") as k:
        with pytest.raises(NotPicklable):
            ALLOCATE_THREAD(lambda: 1, k.address_space)
        with pytest.raises(NotPicklable):
            ALLOCATE_THREAD(double, k.address_space, lambda: 1)
        assert k.join(ALLOCATE_THREAD(double, k.address_space, 1), timeout=30) == 2


def test_unpicklable_arguments_are_fine_under_fork():
    with Kernel(start_method="fork") as k:
        assert k.join(ALLOCATE_THREAD(lambda f: f(2), k.address_space, lambda x: x + 1), timeout=30) == 3


def test_bad_kernel_arguments():
    for kwargs in [dict(processors=0), dict(frames=0), dict(page_size=1000),
                   dict(max_threads=1), dict(start_method="teleport")]:
        with pytest.raises(ValueError):
            Kernel(**kwargs)
    for kwargs in [dict(processors="2"), dict(frames=2.0), dict(processors=True), dict(polcy="lru")]:
        with pytest.raises(TypeError):      # a wrong type, or an option that does not exist
            Kernel(**kwargs)


def test_one_kernel_per_process():
    with Kernel():
        with pytest.raises(KernelError):
            with Kernel():
                pass


def test_join_of_a_waiting_thread_shows_what_it_waits_for():
    with Kernel() as k:
        sleeper = ALLOCATE_THREAD(spin_forever, k.address_space)
        joiner = ALLOCATE_THREAD(_join_it, k.address_space, sleeper)
        wait_for(lambda: state_of(k, joiner)["state"] == "WAITING")
        assert state_of(k, joiner)["waits_for"] == f"join thread {sleeper}"
        DESTROY_THREAD(sleeper)
        assert k.join(joiner, timeout=30) == "destroyed"


def _join_it(tid):
    from runtime.context import current
    try:
        current().kernel.join(tid)
    except ThreadFailed as e:
        return e.reason


def test_a_thread_about_to_wait_shows_running_not_running_on_its_wait():
    """context.waiting writes the wait record, then gives the processor up:
    a snapshot between the two stores must not say "RUNNING on receive 1"
    (what `vos sh --trace` printed).  The window is made here by the same
    store, on thread 0, which stays RUNNING."""
    from runtime.threads import O_WAIT_KIND, O_WAIT_OBJ, WAIT_RECEIVE
    with Kernel() as k:
        t = k.threads
        o = t.off(0)
        t.put64(o + O_WAIT_OBJ, 1)
        t.put32(o + O_WAIT_KIND, WAIT_RECEIVE)
        try:
            row = state_of(k, 0)
            assert (row["state"], row["waits_for"]) == ("RUNNING", "")
        finally:
            t.put32(o + O_WAIT_KIND, 0)


def test_thread_ids_count_up_in_creation_order_and_are_never_reused():
    """The newcomer saw 513, then 1, 257, 1281: the lowest free slot was
    reused with its id grown by max_threads.  Now ids count up (skipping the
    multiples of max_threads, thread 0's slot), and a joined id stays dead."""
    with Kernel(max_threads=4) as k:
        ids = []
        for i in range(7):
            tid = ALLOCATE_THREAD(double, k.address_space, i)
            ids.append(tid)
            assert k.join(tid, timeout=30) == 2 * i
        assert ids == [1, 2, 3, 5, 6, 7, 9]
        with pytest.raises(NoSuchThread):
            k.join(1)
        busy = ALLOCATE_THREAD(spin_forever, k.address_space)          # 10, slot 2 stays taken
        later = [ALLOCATE_THREAD(double, k.address_space, 1) for _ in range(2)]
        assert busy == 10 and later == [11, 13]                          # 12 is slot 0: skipped
        DESTROY_THREAD(busy)
        for t in [busy, *later]:
            try:
                k.join(t, timeout=30)
            except ThreadFailed:
                pass
        k._check_invariants()
