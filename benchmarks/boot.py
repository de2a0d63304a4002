"""`vos bench boot`: the cost of a thread, and of the clock interrupt.

Rows:
  * ALLOCATE_THREAD + join from the pool (Kernel(pool=N), warm: the VPs
    wait for their next thread) vs bare multiprocessing.Process start +
    join.  Goal: at least 10x faster.
  * ALLOCATE_THREAD + join of 1, 16 and 64 threads vs bare
    multiprocessing.Process start + join of as many (same start method).
    Goal: at most 1.5x the bare cost (ratio >= 0.67).
  * the clock interrupt: a fixed amount of CPU work in one VP with the timer
    at the default quantum vs the same work in the same VP with the timer off
    (interleaved A/B, CPU time).  Goal: under 2% overhead (ratio >= 0.98).
  * preemption: three threads sharing one processor (round robin, a switch
    every quantum) vs the same three pieces of work run one after another in
    one bare process.  Shows what the switches themselves cost.
  * Kernel boot + shutdown vs creating and unlinking a bare shared-memory
    segment of the same size (no goal; for the record).
"""

import multiprocessing
import time
from multiprocessing import shared_memory

from runtime import Kernel
from runtime.textbook import ALLOCATE_THREAD

from .harness import Row, median, median_time, table

TITLE = "thread start+join vs multiprocessing.Process; clock-interrupt overhead"


def nothing():
    return 0


def work(n):
    x = 0
    for i in range(n):
        x += i
    return x


def _bare_start_join(n):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=nothing) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


def _vos_start_join(k, n):
    tids = [ALLOCATE_THREAD(nothing, k.address_space) for _ in range(n)]
    for t in tids:
        k.join(t, timeout=60)


def _calibrate(seconds):
    n = 200_000
    while True:
        t0 = time.process_time()
        work(n)
        if time.process_time() - t0 > seconds / 4:
            return int(n * seconds / (time.process_time() - t0))
        n *= 2


def _clock_ab(n, rounds):
    """In one VP, alternate the same work with the clock interrupt armed and
    disarmed; the medians of the CPU time of each.  Interleaving cancels most
    of the machine's noise, which is larger than the effect measured."""
    from runtime.context import current
    ctx = current()
    on, off = [], []
    for _ in range(rounds):
        for armed, samples in ((True, on), (False, off)):
            if armed:
                ctx.arm_clock()
            else:
                ctx.disarm_clock()
            t0 = time.process_time()
            work(n)
            samples.append(time.process_time() - t0)
    ctx.arm_clock()
    return median(on), median(off)


def _bare_work(n, copies):
    p = multiprocessing.get_context("fork").Process(target=_serial, args=(n, copies))
    p.start()
    p.join()


def _serial(n, copies):
    for _ in range(copies):
        work(n)


def _vos_work(n, copies, processors):
    with Kernel(processors=processors) as k:
        t0 = time.perf_counter()
        tids = [ALLOCATE_THREAD(work, k.address_space, n) for _ in range(copies)]
        for t in tids:
            k.join(t, timeout=120)
        return time.perf_counter() - t0


def _pooled(k, n, reps):
    for _ in range(reps):
        _vos_start_join(k, n)


def main(console, quick=False, runs=5):
    rows = []
    reps = 20 if quick else 100
    for n in (1, 4):
        with Kernel(pool=max(2, n)) as k:
            k.pool.settle()
            vos = median_time(lambda: _pooled(k, n, reps), runs) / reps
        bare = median_time(lambda: _bare_start_join(n), runs)
        rows.append(Row(f"ALLOCATE_THREAD+join x{n}, from the pool", "s", vos, "mp.Process start+join", bare,
                        higher_is_better=False, goal=10, note=f"Kernel(pool={max(2, n)}), warm"))
    with Kernel() as k:
        for n in (1, 16, 64):
            if quick and n == 64:
                continue
            vos = median_time(lambda: _vos_start_join(k, n), runs)
            bare = median_time(lambda: _bare_start_join(n), runs)
            rows.append(Row(f"ALLOCATE_THREAD+join x{n}", "s", vos, "mp.Process start+join", bare,
                            higher_is_better=False, goal=1 / 1.5))
    n = _calibrate(0.05 if quick else 0.2)
    quantum = Kernel().config.quantum
    with Kernel(processors=1) as k:
        ticking, quiet = k.join(ALLOCATE_THREAD(_clock_ab, k.address_space, n, max(3, runs) * 2), timeout=600)
    rows.append(Row(f"CPU work, clock on ({quantum * 1e3:g} ms quantum)", "s", ticking,
                    "same VP, clock off", quiet, higher_is_better=False, goal=0.98,
                    note="A/B interleaved in one VP, CPU time"))
    vos_samples, bare_samples = [], []
    for _ in range(runs):
        vos_samples.append(_vos_work(n, 3, processors=1))
        t0 = time.perf_counter()
        _bare_work(n, 3)
        bare_samples.append(time.perf_counter() - t0)
    rows.append(Row("3 threads round robin on 1 processor", "s", median(vos_samples),
                    "same work, one process", median(bare_samples), higher_is_better=False,
                    note="switch every quantum"))
    size = Kernel()._layout().size

    def boot():
        with Kernel():
            pass

    def bare_shm():
        s = shared_memory.SharedMemory(create=True, size=size)
        s.close()
        s.unlink()

    rows.append(Row("Kernel boot + shutdown", "s", median_time(boot, runs), "shm create+unlink",
                    median_time(bare_shm, runs), higher_is_better=False, note=f"{size / 2**20:.1f} MiB arena"))
    return table(console, "vos bench boot", rows, runs)
