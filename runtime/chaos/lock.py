"""Chaos trial "lock": a thread killed while others take turns on a lock.

Three threads each add 1 to a shared counter (LOAD, then STORE, in a block
mapped into the boot address space) many times, each time under ACQUIRE /
RELEASE of one lock, and count their own finished increments in the ledger.
One of them is SIGKILLed after a random amount of its own progress, maybe
inside the critical section.  The contract (robust mutex):

  * nobody hangs: the dead holder's lock is handed over;
  * at most one survivor is told OwnerDied, and only if the victim died
    holding the lock;
  * the counter equals the increments everyone finished, up to the one the
    victim may have been in the middle of (it died between its LOAD and its
    STORE, or after the STORE but before it logged).

Ledger (words): 8 + t: increments thread t finished; 16 + t: OwnerDied seen by t.
"""

import random
import time

from ..errors import OwnerDied, ThreadFailed
from ..kernel import Kernel
from ..textbook import ACQUIRE, ALLOCATE_BLOCK, ALLOCATE_LOCK, ALLOCATE_THREAD, LOAD, MAP, RELEASE, STORE
from . import Outcome, kill
from .ledger import Ledger

DONE, TOLD = 8, 16
THREADS, ROUNDS = 3, 3000
COUNTER = 0     # the counter's virtual address (page 0 of the shared block)


def adder(lock, ledger, me, seed):
    rng = random.Random(seed)
    for n in range(1, ROUNDS + 1):
        try:
            ACQUIRE(lock)
        except OwnerDied:
            ledger.add(TOLD + me)           # we hold it now; the counter may be one short
        x = LOAD(COUNTER)
        for _ in range(rng.randrange(20)):  # a little work inside, so that kills land there too
            pass
        STORE(COUNTER, x + 1)
        RELEASE(lock)
        ledger.put(DONE + me, n)
    return ROUNDS


def trial(seed):
    rng = random.Random(seed)
    processors = rng.choice([None, 1, 2])
    out = Outcome("lock", seed, f"processors={processors}")
    with Kernel(processors=processors, seed=seed) as k, Ledger(k, 32) as ledger:
        MAP(k.address_space, ALLOCATE_BLOCK(4096), 0, "rw")
        lock = ALLOCATE_LOCK("counter")
        tids = [ALLOCATE_THREAD(adder, k.address_space, lock, ledger, t, rng.randrange(1 << 30))
                for t in range(THREADS)]
        v = rng.randrange(THREADS)
        target = rng.randrange(1, ROUNDS // 2)
        deadline = time.monotonic() + 30
        while ledger.get(DONE + v) < target:
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
                    k.join(tid, timeout=60)
        except (TimeoutError, ThreadFailed) as e:
            out.hang, out.detail = True, f"{type(e).__name__}: {e}"
            return out
        finished = sum(ledger.get(DONE + t) for t in range(THREADS))
        told = sum(ledger.get(TOLD + t) for t in range(THREADS))
        counter = LOAD(COUNTER)
        if told > 1:
            out.duplicated = told - 1
            out.detail += f"OwnerDied told {told} times; "
        if not 0 <= counter - finished <= 1:
            out.torn = abs(counter - finished)
            out.detail += f"counter {counter}, increments finished {finished}, OwnerDied {told}; "
    return out
