"""`vos bench memory`: what the Python-level pager costs, next to its peers.

Rows (every figure the median of `runs`; peers measured in the same run):
  * LOAD + STORE of a resident word vs a raw struct.unpack_from/pack_into of
    a word of a shared-memory buffer.  Goal: at most 5x (ratio >= 0.2).
    Also, for the record, vs the fastest raw access Python has (a memoryview
    cast to 8-byte words), which is what the pager itself uses.
  * LOAD_BYTES / STORE_BYTES of 1 MiB vs a raw memoryview copy of 1 MiB of
    the same shared memory.  Goal: at least 0.5x.
  * a demand-zero fault (first touch of a page) vs the host kernel's own
    demand-zero fault (first touch of a page of an anonymous mmap).
  * a swap-in fault (a clean victim leaves, the page is read back) vs a bare
    os.pread of one page from a file.
  * LOAD+STORE with races=True vs races=False, free and controlled.  Goal:
    at most 4x (ratio >= 0.25).
  * a pressure run: VPs in several address spaces writing and verifying pages
    4x the frames, in word operations per second, vs the same run with
    frames enough for everything (no paging).
"""

import mmap
import os
import struct
import tempfile
import time
from multiprocessing import shared_memory

from runtime import Kernel
from runtime.textbook import (ALLOCATE_BLOCK, ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, FREE_BLOCK, LOAD, LOAD_BYTES,
                              MAP, STORE, STORE_BYTES, UNMAP)

from .harness import Row, median, median_time, table

TITLE = "LOAD/STORE vs raw struct access, 1 MiB copies, fault costs, pressure throughput"

MIB = 1 << 20
_Q = struct.Struct("<q")


def _word_loop(n):
    for _ in range(n):
        x = LOAD(8)
        STORE(8, x + 1)


def _raw_struct_loop(buf, n):
    unpack, pack = _Q.unpack_from, _Q.pack_into
    for _ in range(n):
        x = unpack(buf, 8)[0]
        pack(buf, 8, x + 1)


def _raw_words_loop(words, n):
    for _ in range(n):
        x = words[1]
        words[1] = x + 1


def _words(k, quick, runs):
    n = 50_000 if quick else 200_000
    MAP(k.address_space, ALLOCATE_BLOCK(k.config.page_size), 0, "rw")
    STORE(8, 0)
    shm = shared_memory.SharedMemory(create=True, size=1 << 16)
    try:
        vos = median_time(lambda: _word_loop(n), runs) / n
        raw = median_time(lambda: _raw_struct_loop(shm.buf, n), runs) / n
        words = shm.buf.cast("q")
        fast = median_time(lambda: _raw_words_loop(words, n), runs) / n
        words.release()
    finally:
        shm.close()
        shm.unlink()
    UNMAP(k.address_space, 0)
    return [Row("LOAD+STORE, resident word", "s", vos, "struct unpack_from+pack_into", raw,
                higher_is_better=False, goal=0.2, note="a TLB hit: dict + epoch check"),
            Row("LOAD+STORE, resident word", "s", vos, "memoryview('q') get+set", fast,
                higher_is_better=False, note="the fastest raw word access")]


def _timed_words(n):
    """A VP's LOAD+STORE loop, timed by the VP itself: seconds per pair."""
    t0 = time.perf_counter()
    _word_loop(n)
    return (time.perf_counter() - t0) / n


def _races(quick, runs):
    """LOAD+STORE with the race detector on and off, free and controlled.
    Free: each timing is a new VP (each thread logs into a log of its own,
    racelog.py), the log well below full.  Controlled: a short loop in
    thread 0, every access a step; k.races() at the end is part of the cost."""
    n = 4_000 if quick else 12_000
    out = []
    free = {}
    for races in (False, True):
        with Kernel(frames=64, races=races) as k:
            MAP(k.address_space, ALLOCATE_BLOCK(k.config.page_size, name="words"), 0, "rw")
            free[races] = median([k.join(ALLOCATE_THREAD(_timed_words, k.address_space, n)) for _ in range(runs)])
    out.append(Row("LOAD+STORE, free, races=True", "s", free[True], "races=False", free[False],
                   higher_is_better=False, goal=0.25, note="every access logged (racelog.py)"))
    m = 1_000 if quick else 3_000
    controlled = {}
    for races in (False, True):
        times = []
        for _ in range(runs):
            with Kernel(frames=64, races=races, schedule="rr", max_steps=4 * m) as k:
                MAP(k.address_space, ALLOCATE_BLOCK(k.config.page_size, name="words"), 0, "rw")
                t0 = time.perf_counter()
                _word_loop(m)
                if races:
                    k.races()
                times.append((time.perf_counter() - t0) / m)
        controlled[races] = median(times)
    out.append(Row("LOAD+STORE, controlled, races=True", "s", controlled[True], "races=False", controlled[False],
                   higher_is_better=False, goal=0.25, note="every access a step; k.races() counted"))
    return out


def _bytes(k, runs):
    ps = k.config.page_size
    first = 16
    MAP(k.address_space, ALLOCATE_BLOCK(MIB), first, "rw")
    vaddr = first * ps
    data = os.urandom(MIB)
    STORE_BYTES(vaddr, data)
    assert LOAD_BYTES(vaddr, MIB) == data
    shm = shared_memory.SharedMemory(create=True, size=MIB)
    try:
        buf = shm.buf
        buf[:] = data
        vos_load = median_time(lambda: LOAD_BYTES(vaddr, MIB), runs)
        raw_load = median_time(lambda: bytes(buf[:MIB]), runs)

        def raw_store():
            buf[:MIB] = data

        vos_store = median_time(lambda: STORE_BYTES(vaddr, data), runs)
        raw_store_t = median_time(raw_store, runs)
        del buf
    finally:
        shm.close()
        shm.unlink()
    UNMAP(k.address_space, first)
    return [Row("LOAD_BYTES 1 MiB", "B/s", MIB / vos_load, "bytes(memoryview slice)", MIB / raw_load, goal=0.5),
            Row("STORE_BYTES 1 MiB", "B/s", MIB / vos_store, "memoryview slice assignment", MIB / raw_store_t,
                goal=0.5)]


def _demand_zero(k, quick, runs):
    ps = k.config.page_size
    pages = 64 if quick else 256
    samples = []
    for _ in range(runs):
        block = ALLOCATE_BLOCK(pages * ps)
        MAP(k.address_space, block, 2000, "rw")
        t0 = time.perf_counter()
        for p in range(pages):
            STORE((2000 + p) * ps, p)
        samples.append((time.perf_counter() - t0) / pages)
        UNMAP(k.address_space, 2000)
        FREE_BLOCK(block)
    host = []
    for _ in range(runs):
        m = mmap.mmap(-1, pages * ps)
        t0 = time.perf_counter()
        for p in range(pages):
            m[p * ps] = 1
        host.append((time.perf_counter() - t0) / pages)
        m.close()
    return Row("demand-zero fault", "s", median(samples), "host first touch (mmap)", median(host),
               higher_is_better=False, note="frame + zero fill + TLB fill")


def _swap_in(quick, runs):
    frames = 16
    with Kernel(frames=frames, policy="fifo") as k:
        ps = k.config.page_size
        pages = 2 * frames
        MAP(k.address_space, ALLOCATE_BLOCK(pages * ps), 0, "rw")
        for p in range(pages):
            STORE(p * ps, p)
        for p in range(pages):        # read passes: after this every page has a clean copy in swap
            LOAD(p * ps)
        samples = []
        for _ in range(runs):
            before = k.vm.statistics()["swap_reads"]
            t0 = time.perf_counter()
            for p in range(pages):    # cyclic over 2x the frames with FIFO: every access is a swap-in
                LOAD(p * ps)
            dt = time.perf_counter() - t0
            samples.append(dt / max(1, k.vm.statistics()["swap_reads"] - before))
    fd, path = tempfile.mkstemp()
    try:
        os.write(fd, os.urandom(pages * ps))
        host = []
        for _ in range(runs):
            t0 = time.perf_counter()
            for p in range(pages):
                os.pread(fd, ps, p * ps)
            host.append((time.perf_counter() - t0) / pages)
    finally:
        os.close(fd)
        os.unlink(path)
    return Row("swap-in fault", "s", median(samples), "os.pread of one page", median(host),
               higher_is_better=False, note="clean victim out, page read back")


GO = 1000  # a page shared with thread 0: the "go" word, so that every VP starts at once


def _pressure_worker(first, npages, rounds):
    ps = 4096
    while LOAD(GO * ps) == 0:
        pass
    ops = 0
    for r in range(rounds):
        for p in range(first, first + npages):
            STORE(p * ps, r * 1000 + p)
            STORE(p * ps + 2048, -p)
        for p in range(first, first + npages):
            if LOAD(p * ps) != r * 1000 + p or LOAD(p * ps + 2048) != -p:
                raise AssertionError(f"page {p} lost its data")
        ops += 4 * npages
    return ops


def _pressure(frames, quick):
    spaces, vps, npages, rounds = 2, 2, 16, (4 if quick else 20)
    with Kernel(frames=frames + 1) as k:  # + 1: the "go" page
        go = ALLOCATE_BLOCK(4096)
        MAP(k.address_space, go, GO, "rw")
        STORE(GO * 4096, 0)
        tids = []
        for _ in range(spaces):
            space = CREATE_ADDRESS_SPACE()
            MAP(space, ALLOCATE_BLOCK(vps * npages * 4096), 0, "rw")
            MAP(space, go, GO, "r")
            tids += [ALLOCATE_THREAD(_pressure_worker, space, v * npages, npages, rounds) for v in range(vps)]
        t0 = time.perf_counter()
        STORE(GO * 4096, 1)
        ops = sum(k.join(t, timeout=600) for t in tids)
        dt = time.perf_counter() - t0
        stats = k.vm.statistics()
    return ops / dt, stats["evictions"]


def main(console, quick=False, runs=5):
    rows = []
    with Kernel(frames=1024) as k:
        rows += _words(k, quick, runs)
        rows += _bytes(k, runs)
        rows.append(_demand_zero(k, quick, runs))
    rows.append(_swap_in(quick, runs))
    rows += _races(quick, runs)
    total_pages = 2 * 2 * 16
    tight, loose, evictions = [], [], 0
    for _ in range(max(1, runs if not quick else 1)):
        ops, ev = _pressure(total_pages // 4, quick)
        tight.append(ops)
        evictions = ev
        loose.append(_pressure(total_pages + 8, quick)[0])
    rows.append(Row(f"pressure: 4 VPs, {total_pages} pages on {total_pages // 4} frames", " ops/s", median(tight),
                    "same run, all resident", median(loose), note=f"{evictions} evictions per run"))
    return table(console, "vos bench memory", rows, runs)
