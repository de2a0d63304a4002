"""Chaos trial "memory": a thread killed while everyone pages.

Three threads, each in an address space of its own, write a pattern over 16
pages and read it back, round after round, with 24 frames for all of them:
every round evicts, writes to swap and reads back.  One thread is SIGKILLed
after a random number of its own accesses, possibly inside a page fault
while it holds the VM lock or moves a page (frames.py repairs what a dead
mover leaves).  The contract: the survivors finish, every word they read is
the one they wrote, and the kernel's tables are consistent afterwards.

Ledger (words): 8 + t: rounds finished by thread t; 16 + t: wrong words t read;
24 + t: accesses made by t (progress, for the kill).
"""

import random
import time

from ..errors import ThreadFailed
from ..kernel import Kernel
from ..textbook import ALLOCATE_BLOCK, ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, LOAD, MAP, STORE
from . import Outcome, kill
from .ledger import Ledger

ROUNDS_DONE, WRONG, ACCESSES = 8, 16, 24
THREADS, PAGES, FRAMES, ROUNDS = 3, 16, 24, 40
PS = 4096


def pager(ledger, me, seed):
    rng = random.Random(seed)
    n = 0
    for r in range(1, ROUNDS + 1):
        order = list(range(PAGES))
        rng.shuffle(order)
        for p in order:
            STORE(p * PS + 8 * (r % 500), me * 10**9 + r * 10**4 + p)
            n += 1
            ledger.put(ACCESSES + me, n)
        for p in order:
            if LOAD(p * PS + 8 * (r % 500)) != me * 10**9 + r * 10**4 + p:
                ledger.add(WRONG + me)
            if r > 1 and LOAD(p * PS + 8 * ((r - 1) % 500)) != me * 10**9 + (r - 1) * 10**4 + p:
                ledger.add(WRONG + me)
            n += 1
            ledger.put(ACCESSES + me, n)
        ledger.put(ROUNDS_DONE + me, r)
    return r


def trial(seed):
    rng = random.Random(seed)
    policy = rng.choice(["clock", "fifo", "lru", "random"])
    out = Outcome("memory", seed, f"policy={policy}")
    with Kernel(frames=FRAMES, policy=policy, seed=seed) as k, Ledger(k, 32) as ledger:
        tids = []
        for t in range(THREADS):
            space = CREATE_ADDRESS_SPACE()
            MAP(space, ALLOCATE_BLOCK(PAGES * PS), 0, "rw")
            tids.append(ALLOCATE_THREAD(pager, space, ledger, t, rng.randrange(1 << 30)))
        v = rng.randrange(THREADS)
        target = rng.randrange(1, PAGES * 2 * 12)     # in the first 12 of ROUNDS rounds
        deadline = time.monotonic() + 60
        while ledger.get(ACCESSES + v) < target:
            if time.monotonic() > deadline:
                out.hang, out.detail = True, f"thread {tids[v]} made no progress before the kill"
                return out
            time.sleep(0.0002)
        if not kill(k, tids[v]):
            out.detail += "the victim ended before the kill; "
        try:
            k.join(tids[v], timeout=30)
        except ThreadFailed:
            pass
        try:
            for t, tid in enumerate(tids):
                if t != v:
                    k.join(tid, timeout=120)
        except (TimeoutError, ThreadFailed) as e:
            out.hang, out.detail = True, f"{type(e).__name__}: {e}"
            return out
        out.torn = sum(ledger.get(WRONG + t) for t in range(THREADS) if t != v)
        if out.torn:
            out.detail = f"{out.torn} words read back wrong"
        try:
            k._check_invariants()
        except AssertionError as e:
            out.torn += 1
            out.detail += f"invariant broken after the kill: {e}"
    return out
