"""Controlled runs (runtime/sched/): one thread at a time, the schedule is data."""

import os
import textwrap

import pytest

from runtime import Kernel
from runtime.errors import DeadlockError, Hang, ReplayMismatch, StepLimit, ThreadFailed
from runtime.textbook import (ACQUIRE, ADVANCE, ALLOCATE_BLOCK, ALLOCATE_BOUNDED_BUFFER, ALLOCATE_EVENTCOUNT,
                              ALLOCATE_LOCK, ALLOCATE_THREAD, AWAIT, LOAD, MAP, RECEIVE, RELEASE, SEND, STORE, YIELD)

pytestmark = pytest.mark.timeout(120)


def increment(a, n):
    for _ in range(n):
        x = LOAD(a)
        STORE(a, x + 1)
    return n


def lost_update(schedule, seed, processors=None, start_method=None):
    """Two threads x 3 increments of one word; (final value, trace strings)."""
    with Kernel(processors=processors, schedule=schedule, seed=seed, start_method=start_method) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(4096), 0, "rw")
        tids = [ALLOCATE_THREAD(increment, k.address_space, 0, 3) for _ in range(2)]
        for t in tids:
            k.join(t)
        value = LOAD(0)
    return value, [str(s) for s in k.trace()]


@pytest.mark.parametrize("start_method,processors", [("fork", None), ("fork", 1), ("spawn", None), ("spawn", 2)])
def test_the_same_seed_gives_the_same_trace(start_method, processors):
    runs = 10 if start_method == "fork" else 4
    first = lost_update("random", 5, processors, start_method)
    for _ in range(runs - 1):
        assert lost_update("random", 5, processors, start_method) == first
    assert lost_update("random", 6, processors, start_method)[1] != first[1]


def test_a_random_walk_loses_updates_and_rr_does_not():
    assert lost_update("rr", 0)[0] == 6                   # no preemption: one thread after the other
    values = {lost_update("random", seed)[0] for seed in range(12)}
    assert min(values) < 6, values                        # the race, on a schedule we can name


def test_the_trace_names_every_step():
    value, trace = lost_update("random", 0)
    assert any("LOAD(0x0 (block 1 + 0))" in s and "test_controlled.py" in s for s in trace)
    assert any("(preemption)" in s for s in trace)
    assert trace[0].startswith("step   0  thread 0  ALLOCATE_THREAD")


def three_increments(k):
    MAP(k.address_space, ALLOCATE_BLOCK(4096), 0, "rw")
    tids = [ALLOCATE_THREAD(increment, k.address_space, 0, 3) for _ in range(3)]
    for t in tids:
        k.join(t)
    return LOAD(0)


def test_a_token_replays_the_run():
    with Kernel(schedule="pct", seed=3) as k:
        value = three_increments(k)
    token, trace = k.token, [str(s) for s in k.trace()]
    assert token.startswith("vos1:")
    for _ in range(3):
        with Kernel(schedule=token) as k2:
            assert three_increments(k2) == value
        assert [str(s) for s in k2.trace()] == trace


def test_a_token_refuses_a_changed_program(tmp_path):
    prog = tmp_path / "prog_v.py"
    prog.write_text(textwrap.dedent('''
        from runtime.textbook import *
        def inc(a):
            x = LOAD(a)
            STORE(a, x + 1)
        def main(k):
            MAP(k.address_space, ALLOCATE_BLOCK(4096), 0, "rw")
            t = ALLOCATE_THREAD(inc, k.address_space, 0)
            inc(0)
            k.join(t)
    '''))
    import importlib.util

    def load():
        spec = importlib.util.spec_from_file_location("prog_v", prog)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    with Kernel(schedule="random", seed=1) as k:
        load().main(k)
    token = k.token
    prog.write_text(prog.read_text().replace("x + 1", "x + 2"))
    with pytest.raises(ReplayMismatch, match="prog_v.py changed"):
        with Kernel(schedule=token) as k:
            load().main(k)


def wait_forever(ec):
    AWAIT(ec, 1)


def test_no_runnable_thread_is_a_hang_naming_every_wait_and_the_lost_wake_up():
    with pytest.raises(Hang) as e:
        with Kernel(schedule="rr") as k:
            ec = ALLOCATE_EVENTCOUNT("ready")
            ADVANCE(ec)                                   # too early: nobody waits yet
            k.join(ALLOCATE_THREAD(wait_forever, k.address_space, ec))
    msg = str(e.value)
    assert "thread 0 (boot) waits in join(thread 1 (wait_forever))" in msg
    assert "AWAIT(eventcount 1 'ready', 1): the count is 1" in msg
    assert "lost wake-up? ADVANCE(eventcount 1 'ready') by thread 0 at step 1" in msg


def two_locks(first, second):
    ACQUIRE(first)
    YIELD()
    ACQUIRE(second)
    RELEASE(second)
    RELEASE(first)


def test_a_lock_cycle_is_a_deadlock_error_naming_the_cycle():
    found = None
    for seed in range(20):
        with Kernel(schedule="random", seed=seed) as k:
            a, b = ALLOCATE_LOCK("a"), ALLOCATE_LOCK("b")
            tids = [ALLOCATE_THREAD(two_locks, k.address_space, a, b),
                    ALLOCATE_THREAD(two_locks, k.address_space, b, a)]
            failures = []
            for t in tids:
                try:
                    k.join(t)
                except ThreadFailed as e:
                    failures.append(e)
        if failures:
            found = failures[0]
            break
    assert found is not None, "no schedule of 20 closed the cycle"
    assert found.exc_type == "DeadlockError"
    assert "waits for lock" in found.message and "'a'" in found.message and "'b'" in found.message


def spin_on(a):
    while LOAD(a) == 0:
        pass


def test_a_spin_loop_nobody_ends_is_a_step_limit_not_a_hang_of_the_test():
    with pytest.raises(StepLimit, match="spinning"):
        with Kernel(schedule="random", max_steps=300) as k:
            MAP(k.address_space, ALLOCATE_BLOCK(4096), 0, "rw")
            k.join(ALLOCATE_THREAD(spin_on, k.address_space, 0))


def test_a_spinner_is_not_chosen_while_another_thread_can_run():
    """The spin rule: the spinner re-reads only after someone wrote."""
    def body(k):
        MAP(k.address_space, ALLOCATE_BLOCK(4096), 0, "rw")
        t = ALLOCATE_THREAD(spin_on, k.address_space, 0)
        for _ in range(20):
            YIELD()
        STORE(0, 1)
        k.join(t)
    with Kernel(schedule="random", seed=2) as k:
        body(k)
    loads = [s for s in k.trace() if s.op == "LOAD"]
    assert len(loads) <= 3, [str(s) for s in loads]


def sleepy_increment(a):
    import time
    time.sleep(0.5)                                       # "give the other thread time": a non-fix
    x = LOAD(a)
    STORE(a, x + 1)


def test_time_sleep_gives_no_order():
    """Virtual time: sleeping does not let the other thread finish first."""
    lost = 0
    for seed in range(20):
        with Kernel(schedule="random", seed=seed) as k:
            MAP(k.address_space, ALLOCATE_BLOCK(4096), 0, "rw")
            tids = [ALLOCATE_THREAD(increment, k.address_space, 0, 1),
                    ALLOCATE_THREAD(sleepy_increment, k.address_space, 0)]
            for t in tids:
                k.join(t)
            lost += LOAD(0) < 2
    assert lost > 0


def consumer(buf, n):
    return [RECEIVE(buf) for _ in range(n)]


def test_send_and_receive_block_and_wake_as_steps():
    with Kernel(schedule="random", seed=4) as k:
        buf = ALLOCATE_BOUNDED_BUFFER(1)
        t = ALLOCATE_THREAD(consumer, k.address_space, buf, 5)
        for i in range(5):
            SEND(buf, i)
        assert k.join(t) == [0, 1, 2, 3, 4]
    ops = [s.op for s in k.trace()]
    assert ops.count("SEND") == 5 and ops.count("RECEIVE") == 5


def test_a_timeout_fires_on_virtual_time_when_nothing_else_can_run():
    with Kernel(schedule="rr") as k:
        buf = ALLOCATE_BOUNDED_BUFFER(1)
        with pytest.raises(TimeoutError, match="virtual time"):
            buf.receive(timeout=30)               # returns at once: 30 s of virtual time


def test_the_trace_is_kept_after_the_kernel_is_gone():
    value, trace = lost_update("random", 1)
    assert trace and all(isinstance(s, str) for s in trace)
    assert os.path.basename(__file__) in trace[0]
