"""Chaos trial "kernel": the kernel process SIGKILLed under its VPs.

A kernel that is killed cannot end its VPs or remove its arenas.  Its VPs
must notice by themselves, whatever they are doing, and end within
GONE_WITHIN seconds (context.py: the clock interrupt and every wait check
that the kernel lives); `vos clean` then removes the segments and the swap
file.  The boot program runs in a child process (this module, run as
`python -m runtime.chaos.kernel MODE`), prints its VPs' pids once they are all
in place, and the trial kills it:

    paging    a thread in its own address space touches 40 pages in a loop
              with 16 frames (every access faults, swaps out and in)
    blocked   one processor; threads blocked in RECEIVE on an empty buffer,
              SEND on a full one, ACQUIRE of a held lock, AWAIT, join, and
              one queued for the processor behind a spinning thread
    spinning  three threads in tight loops (only the clock interrupt runs)
"""

import json
import random
import signal
import subprocess
import sys
import time

import psutil

from .. import arena, cleanup
from . import Outcome

MODES = ("paging", "blocked", "spinning")


def trial(seed, mode=None):
    mode = mode or MODES[random.Random(seed).randrange(len(MODES))]
    out = Outcome("kernel", seed, mode)
    child = subprocess.Popen([sys.executable, "-m", __name__, mode], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = child.stdout.readline()
        if not line:
            out.hang, out.detail = True, "the boot program did not start: " + child.stderr.read()[-400:]
            return out
        info = json.loads(line)
        procs = [psutil.Process(pid) for pid in info["vps"] if psutil.pid_exists(pid)]
        t0 = time.monotonic()
        child.kill()
        child.wait(10)
        while True:
            alive = [p for p in procs if _alive(p)]
            waited = time.monotonic() - t0
            if not alive or waited > 10:
                break
            time.sleep(0.005)
        out.gone_s = round(waited, 3)
        if alive:
            out.hang = True
            out.detail = f"VPs {[p.pid for p in alive]} still run {waited:.1f} s after their kernel died"
            for p in alive:
                p.kill()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        child.stdout.close()
        child.stderr.close()
    dead = cleanup.find_dead()
    if info["arena"] in dead:
        cleanup.clean({info["arena"]: dead[info["arena"]]})
    left = [n for n in arena.list_segments() if n.startswith(info["arena"])]
    out.leaked = len(left)
    return out


def _alive(p):
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# --- the boot program (child process) ----------------------------------------------

def _pager(npages):
    from ..textbook import STORE
    r = 0
    while True:
        r += 1
        for p in range(npages):
            STORE(p * 4096, r)


def _spin():
    while True:
        pass


def _receive(buf):
    from ..textbook import RECEIVE
    RECEIVE(buf)


def _send(buf):
    from ..textbook import SEND
    while True:
        SEND(buf, b"x")


def _acquire(lock):
    from ..textbook import ACQUIRE
    ACQUIRE(lock)


def _await(ec):
    from ..textbook import AWAIT
    AWAIT(ec, 0)


def _join(tid):
    from ..context import current
    current().kernel.join(tid)


def _hold_then_receive(lock, buf):
    from ..textbook import ACQUIRE, RECEIVE
    ACQUIRE(lock)
    RECEIVE(buf)


def _boot(mode):
    from ..kernel import Kernel
    from ..textbook import (ALLOCATE_BLOCK, ALLOCATE_BOUNDED_BUFFER, ALLOCATE_EVENTCOUNT, ALLOCATE_LOCK,
                            ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, MAP)
    settings = {"paging": dict(frames=16), "blocked": dict(processors=1), "spinning": {}}[mode]
    with Kernel(**settings) as k:
        expect = {}
        if mode == "paging":
            for _ in range(1):
                space = CREATE_ADDRESS_SPACE()
                MAP(space, ALLOCATE_BLOCK(40 * 4096), 0, "rw")
                expect[ALLOCATE_THREAD(_pager, space, 40)] = ("RUNNING", "WAITING", "RUNNABLE")
        elif mode == "spinning":
            for _ in range(3):
                expect[ALLOCATE_THREAD(_spin, k.address_space)] = ("RUNNING",)
        else:
            empty, full = ALLOCATE_BOUNDED_BUFFER(4), ALLOCATE_BOUNDED_BUFFER(1)
            lock = ALLOCATE_LOCK("held")
            holder = ALLOCATE_THREAD(_hold_then_receive, k.address_space, lock, empty)
            waiting = ("WAITING",)
            expect[holder] = waiting
            _until(k, expect)
            expect[ALLOCATE_THREAD(_receive, k.address_space, empty)] = waiting
            expect[ALLOCATE_THREAD(_send, k.address_space, full)] = waiting
            expect[ALLOCATE_THREAD(_acquire, k.address_space, lock)] = waiting
            expect[ALLOCATE_THREAD(_await, k.address_space, ALLOCATE_EVENTCOUNT())] = waiting
            expect[ALLOCATE_THREAD(_join, k.address_space, holder)] = waiting
            expect[ALLOCATE_THREAD(_spin, k.address_space)] = ("RUNNING",)
            _until(k, expect)
            expect[ALLOCATE_THREAD(_spin, k.address_space)] = ("RUNNABLE",)
        _until(k, expect)
        pids = [r["pid"] for r in k.thread_info() if r["tid"] in expect]
        print(json.dumps({"arena": k.arena.name, "vps": pids}), flush=True)
        while True:
            time.sleep(1)


def _until(k, expect, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        states = {r["tid"]: r["state"] for r in k.thread_info()}
        if all(states.get(tid) in ok for tid, ok in expect.items()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"threads not in place: {states}")
        time.sleep(0.002)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _boot(sys.argv[1])
