"""Processors: n threads on m processors, the clock interrupt, YIELD."""

import time

import pytest

from runtime import Kernel
from runtime.textbook import ALLOCATE_THREAD, YIELD

pytestmark = pytest.mark.timeout(60)


def burn_cpu(seconds):
    """Use `seconds` of this process's own CPU time, never yielding; return
    the wall-clock moment it finished."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return time.time()


def yield_until_switched(times):
    """YIELD until this thread has given its processor away `times` times
    (a YIELD with nobody waiting is not a switch).  Returns the YIELD calls made."""
    from runtime.context import current
    ctx = current()
    calls = 0
    deadline = time.monotonic() + 20
    while ctx.kernel.threads.snapshot_one(ctx.tid)["voluntary"] < times and time.monotonic() < deadline:
        YIELD()
        calls += 1
    return calls


def test_preemption_shares_one_processor_fairly():
    # With processors=1 and no YIELD, only the clock interrupt can switch.
    # Run to completion, three threads would end at about 1x, 2x and 3x the
    # work; round robin makes them all end near the end.
    work = 0.3
    with Kernel(processors=1, quantum=0.01) as k:
        start = time.time()
        tids = [ALLOCATE_THREAD(burn_cpu, k.address_space, work) for _ in range(3)]
        ends = sorted(k.join(t, timeout=30) - start for t in tids)
        k._check_invariants()
    assert ends[0] > 0.6 * ends[-1], f"not fair: finish times {ends}"


def test_the_clock_interrupt_preempts_cpu_bound_threads():
    with Kernel(processors=1, quantum=0.005) as k:
        tids = [ALLOCATE_THREAD(burn_cpu, k.address_space, 0.15) for _ in range(2)]
        _wait_until(lambda: all(r["involuntary"] >= 3 for r in k.thread_info() if r["tid"] in tids))
        for t in tids:
            k.join(t, timeout=30)


def test_at_most_m_threads_run_at_once():
    with Kernel(processors=2) as k:
        tids = [ALLOCATE_THREAD(burn_cpu, k.address_space, 0.2) for _ in range(5)]
        seen_waiting = False
        while any(r["state"] not in ("EXITED", "FAULTED") for r in k.thread_info() if r["tid"] in tids):
            rows = [r for r in k.thread_info() if r["tid"] in tids]
            assert len(k.processors.on_cpu()) <= 2     # a consistent read (a plain snapshot may see a
            k._check_invariants()                      # switch half-done: the old holder and the new)
            seen_waiting |= any(r["waits_for"] == "processor" for r in rows)
            time.sleep(0.005)  # sampling rate of an observer, not ordering
        assert seen_waiting
        for t in tids:
            k.join(t, timeout=30)


def test_yield_gives_the_processor_to_the_next_thread():
    # Two threads on one processor that only YIELD must take turns: each
    # YIELD of one hands the processor to the other, so both reach 20
    # switches (the first one to get there leaves the other at 19 or 20).
    with Kernel(processors=1, quantum=10.0) as k:  # a long quantum: no clock switches
        tids = [ALLOCATE_THREAD(yield_until_switched, k.address_space, 20) for _ in range(2)]
        _wait_until(lambda: any(r["state"] == "EXITED" for r in k.thread_info() if r["tid"] in tids))
        rows = {r["tid"]: r for r in k.thread_info() if r["tid"] in tids}
        for t in tids:
            k.join(t, timeout=30)
    assert all(r["voluntary"] >= 18 for r in rows.values()), rows
    assert all(r["involuntary"] == 0 for r in rows.values()), rows


def test_without_a_limit_every_thread_runs():
    with Kernel(processors=None) as k:
        tids = [ALLOCATE_THREAD(burn_cpu, k.address_space, 0.05) for _ in range(4)]
        for t in tids:
            k.join(t, timeout=30)
        assert k.statistics()["processors"] == {"count": None, "busy": None, "waiting": 0}


def test_statistics_are_readable_without_locks():
    with Kernel(processors=1) as k:
        tid = ALLOCATE_THREAD(burn_cpu, k.address_space, 0.1)
        _wait_until(lambda: next(r for r in k.thread_info() if r["tid"] == tid)["run_ms"] > 20)
        row = next(r for r in k.thread_info() if r["tid"] == tid)
        assert row["name"] == "burn_cpu" and row["pid"] > 0
        k.join(tid, timeout=30)


def _wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.002)


# --- a thread killed between taking a processor ticket and recording it ----------

def die_between_ticket_and_record():
    """What Processors.acquire does, cut where a SIGKILL can land: after the
    ticket's fetch_add, before the thread entry records it."""
    import os
    import signal

    from runtime import atomics, processors
    from runtime.context import current
    from runtime.threads import O_TICKET
    TAKING = getattr(processors, "TAKING", -2)      # (so that this test fails, not errs, before the fix)
    ctx = current()
    k = ctx.kernel
    k.processors.release(ctx.tid)                 # as a thread that blocks or yields does
    t = k.threads
    t.put64(t.off(ctx.tid, O_TICKET), TAKING)
    atomics.fetch_add(k.processors.addr + processors.O_TICKETS, 1)
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_ticket_taken_by_a_thread_killed_before_recording_it_is_given_back():
    from runtime.errors import ThreadFailed
    with Kernel(processors=1) as k:
        victim = ALLOCATE_THREAD(die_between_ticket_and_record, k.address_space)
        with pytest.raises(ThreadFailed):
            k.join(victim, timeout=10)            # burying it recovers the ticket
        assert k.processors.in_use() == (0, 0)
        after = ALLOCATE_THREAD(burn_cpu, k.address_space, 0.01)
        assert k.join(after, timeout=10) > 0      # the one processor is there to be had
        k._check_invariants()


def test_recovery_gives_back_nothing_when_nothing_leaked():
    with Kernel(processors=2) as k:
        tids = [ALLOCATE_THREAD(burn_cpu, k.address_space, 0.05) for _ in range(4)]
        assert k.processors.recover(0) == 0
        for tid in tids:
            k.join(tid, timeout=10)
        assert k.processors.recover(0) == 0
        assert k.processors.in_use() == (0, 0)
