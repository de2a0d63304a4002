"""The pool of ready VPs (runtime/pool.py): reuse without leaks, and every
lifecycle promise kept."""

import os
import signal
import time

import pytest

from runtime import Kernel
from runtime.errors import OwnerDied, ThreadFailed
from runtime.textbook import (ACQUIRE, ALLOCATE_BLOCK, ALLOCATE_LOCK, ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, LOAD,
                              MAP, RELEASE, STORE)

pytestmark = pytest.mark.timeout(60)

SETTING = "clean"


def pid_and(value):
    return os.getpid(), value


def set_global():
    global SETTING
    SETTING = "dirty"
    return os.getpid(), SETTING


def read_global():
    return os.getpid(), SETTING


def change_the_process(path):
    signal.signal(signal.SIGUSR1, lambda *a: None)
    os.chdir(path)
    os.environ["VOS_POOL_TEST"] = "left behind"
    fd = os.open(os.devnull, os.O_RDONLY)
    return os.getpid(), fd


def look_at_the_process():
    null = []
    for f in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{f}") == os.devnull:
                null.append(int(f))
        except OSError:
            pass
    return os.getpid(), signal.getsignal(signal.SIGUSR1), os.getcwd(), os.environ.get("VOS_POOL_TEST"), null


def hold_a_lock(lock):
    ACQUIRE(lock)
    return os.getpid()                       # ends holding it


def take_the_lock(lock):
    try:
        ACQUIRE(lock)
        died = False
    except OwnerDied:
        died = True
    RELEASE(lock)
    return os.getpid(), died


def touch_page(value):
    STORE(0, value)
    return os.getpid(), LOAD(0)


def run(k, procedure, *args):
    """Run a thread to its end, and let its VP put itself back before the next
    (on a loaded host that can take longer than a claimer waits: then a
    second VP would be started, and these tests are about one VP's hygiene)."""
    result = k.join(ALLOCATE_THREAD(procedure, k.address_space, *args), timeout=20)
    k.pool.settle()
    return result


def pool_vp_pids(k):
    return {row["pid"] for row in k.statistics()["pool"]["vps"]}


def test_threads_run_in_the_same_few_processes():
    with Kernel(pool=2) as k:
        k.pool.settle()                                          # the two warm VPs are up
        pids = {run(k, pid_and, i)[0] for i in range(20)}
        assert pids <= pool_vp_pids(k) and len(pids) <= 2       # a VP putting itself back is waited for
        assert all(row["runs"] > 0 for row in k.statistics()["pool"]["vps"] if row["pid"] in pids)


def test_a_global_a_thread_set_is_not_seen_by_the_next():
    with Kernel(pool=1) as k:
        k.pool.settle()
        pid, value = run(k, set_global)
        assert value == "dirty"
        again, seen = run(k, read_global)
        assert again == pid and seen == "clean"


def test_signal_handlers_cwd_environment_and_fds_are_put_back(tmp_path):
    with Kernel(pool=1) as k:
        k.pool.settle()
        before = run(k, look_at_the_process)
        pid, fd = run(k, change_the_process, str(tmp_path))
        after = run(k, look_at_the_process)
        assert pid == before[0] == after[0]
        assert after == before and fd not in after[4]            # (the thread's fd on /dev/null is gone)


def test_a_lock_held_at_exit_is_owner_died_and_not_the_next_threads():
    with Kernel(pool=1) as k:
        k.pool.settle()
        lock = ALLOCATE_LOCK("kept")
        pid = run(k, hold_a_lock, lock)
        again, died = run(k, take_the_lock, lock)
        assert again == pid and died is True          # handed over, as for any thread that ends holding it
        assert run(k, take_the_lock, lock) == (pid, False)


def test_a_thread_sees_only_its_own_address_space():
    with Kernel(pool=1) as k:
        spaces = []
        for value in (11, 22):
            space = CREATE_ADDRESS_SPACE()
            MAP(space, ALLOCATE_BLOCK(4096), 0, "rw")
            spaces.append(space)
            t = ALLOCATE_THREAD(touch_page, space, value)
            assert k.join(t, timeout=20)[1] == value


def test_a_lambda_falls_back_to_a_fresh_fork_and_says_so():
    with Kernel(pool=1) as k:
        k.pool.settle()
        run(k, pid_and, 0)
        t = ALLOCATE_THREAD(lambda: os.getpid(), k.address_space)
        row = next(r for r in k.thread_info() if r["tid"] == t)
        k.join(t, timeout=20)
        assert row["started"] == "fork"                          # a lambda cannot travel by name
        t2 = ALLOCATE_THREAD(pid_and, k.address_space, 1)
        assert next(r for r in k.thread_info() if r["tid"] == t2)["started"] == "pool"
        k.join(t2, timeout=20)


def sleep_forever():
    while True:
        time.sleep(1)


def test_a_pooled_vp_killed_while_it_runs_a_thread_is_buried_and_replaced():
    with Kernel(pool=1) as k:
        t = ALLOCATE_THREAD(sleep_forever, k.address_space)
        pid = next(r["pid"] for r in k.thread_info() if r["tid"] == t)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ThreadFailed) as e:
            k.join(t, timeout=20)
        assert e.value.reason == "destroyed"
        assert run(k, pid_and, 7)[1] == 7


def test_an_idle_pooled_vp_killed_is_passed_over():
    from runtime.threads import pid_alive
    with Kernel(pool=2) as k:
        first = run(k, pid_and, 0)[0]
        k.pool.settle()
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(first) and time.monotonic() < deadline:   # dead (a zombie: not reaped by us,
            time.sleep(0.001)                                      # the pool's to see) before the next thread
        for i in range(4):
            assert run(k, pid_and, i)[0] != first


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_the_pool_under_spawn_and_forkserver(method):
    with Kernel(pool=1, start_method=method) as k:
        assert k.pool.settle(30)
        pids = {run(k, pid_and, i)[0] for i in range(4)}
        assert len(pids) <= 2          # reused (a spawned VP's first thread imports the program: it may be slow
                                       # to come back the first time, and then a second one is started)
        assert run(k, read_global)[1] == "clean"


def test_leaving_the_kernel_ends_every_pool_vp():
    with Kernel(pool=3) as k:
        run(k, pid_and, 0)
        pids = pool_vp_pids(k)
        assert len(pids) >= 3
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z"


def test_a_vp_that_died_while_starting_is_replaced():
    """A pool VP killed before it was ready leaves its entry STARTING, with
    no pid of its own in it: only the kernel's Process knows it died.  The
    pool must not count it as ready (the pool one short for good) nor wait
    for it (settle timing out)."""
    from runtime.pool import E_STATE, IDLE, STARTING
    with Kernel(pool=2) as k:
        pool = k.pool
        assert pool.settle(10)
        e = next(e for e in range(pool.capacity) if pool.get(e, E_STATE) == IDLE)
        proc = pool._procs[e]
        proc.kill()
        proc.join(10)
        pool.put(e, E_STATE, STARTING)           # as if it had died on its way to IDLE
        assert pool.settle(2), "settle waited for a dead VP"
        pool.warm()
        assert pool.settle(10)
        vps = k.statistics()["pool"]["vps"]
        assert sum(v["state"] == "idle" for v in vps) == 2 and proc.pid not in {v["pid"] for v in vps}
