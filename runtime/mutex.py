"""The mutex word: the mechanism under ACQUIRE/RELEASE and every internal lock.

One signed 64-bit word in an arena:

    bits  0..47  holder: tid + 1 of the thread that holds it (0 = free)
    bit  62      WAITERS: some thread may sleep on the word (futex)

Acquire is one compare-and-swap 0 -> tid+1 when the lock is free (the fast
path, like xv6's `acquire` minus the spinning forever).  When it is held, the
caller spins briefly (each side has its own core: the holder is probably about
to release), then sets WAITERS and sleeps in futex_wait on the word.  Release
is one exchange to 0, and a futex_wake only if WAITERS was set.

Robustness (pthread's robust mutex, in Python): a sleeper wakes at least every
`_SLICE` seconds and asks whether the holder still lives (its thread entry is
live and its process exists).  If not, it takes the lock over with one CAS
and reports `died=True`: the lock is not lost, but the data it guards may be
half-updated.  Death hooks also wake the sleepers on a dead thread's locks at
once, so the slice is only a safety net.

The word says nothing about *why* anyone waits; callers record that in their
thread entry (see Context.waiting) around `acquire`'s sleep.

Memory ordering: the CAS that takes the lock and the exchange that frees it
are sequentially consistent, so everything written inside the critical
section is visible to the next holder (atomics.py).
"""

import os

from . import atomics
from .errors import NoSuchThread, NotOwner
from .threads import LIVE, O_PID, O_STATE, pid_alive

HOLDER = (1 << 48) - 1
WAITERS = 1 << 62
_SLICE = 0.25
_SPIN = 100 if (os.cpu_count() or 1) > 1 else 0


def holder(addr):
    """tid of the holder, or None when free (a racy hint)."""
    w = atomics.load(addr) & HOLDER
    return w - 1 if w else None


def try_acquire(addr, tid):
    """Take the lock if it is free.  True on success; never blocks."""
    return atomics.compare_exchange(addr, 0, tid + 1) == 0


def holder_alive(threads, htid):
    """Is thread htid still running?  (Joined, ended, or its process gone: no.)"""
    try:
        o = threads.off(htid)
    except NoSuchThread:
        return False
    if threads.get32(o + O_STATE) not in LIVE:
        return False
    pid = threads.get64(o + O_PID)
    return pid == 0 or pid_alive(pid)  # pid 0: still starting, so alive


def acquire(addr, tid, threads, sleep=None, deadline_check=None):
    """Take the lock for thread tid.  Returns True if the previous holder died
    holding it (the caller now holds it anyway), False otherwise.

    sleep: a context-manager factory entered around the blocking part (the
    caller's "I am WAITING on X" bracket).  deadline_check(): called after
    every sleep slice; raise from it to give up (timeouts, kernel death).
    The caller must have ruled out re-acquisition by the holder itself."""
    mine = tid + 1
    if atomics.compare_exchange(addr, 0, mine) == 0:
        return False
    for _ in range(_SPIN):
        w = atomics.load(addr)
        if w == 0 and atomics.compare_exchange(addr, 0, mine) == 0:
            return False
    if sleep is None:
        return _slow(addr, mine, threads, deadline_check)
    with sleep():
        return _slow(addr, mine, threads, deadline_check)


def _slow(addr, mine, threads, deadline_check):
    while True:
        w = atomics.load(addr)
        if w & HOLDER == 0:
            # Free: take it, and keep WAITERS set, because others may still sleep.
            if atomics.compare_exchange(addr, w, mine | WAITERS) == w:
                return False
            continue
        if not holder_alive(threads, (w & HOLDER) - 1):
            if atomics.compare_exchange(addr, w, mine | WAITERS) == w:
                return True
            continue
        if not w & WAITERS:
            if atomics.compare_exchange(addr, w, w | WAITERS) != w:
                continue
            w |= WAITERS
        atomics.futex_wait(addr, w & 0xFFFFFFFF, _SLICE)
        if deadline_check is not None:
            deadline_check()


def release(addr, tid):
    """Free the lock held by tid.  NotOwner if tid does not hold it."""
    w = atomics.load(addr)
    if w & HOLDER != tid + 1:
        h = w & HOLDER
        raise NotOwner(f"thread {tid} released a lock it does not hold "
                       f"({'held by thread %d' % (h - 1) if h else 'it is free'})")
    old = atomics.exchange(addr, 0)
    if old & WAITERS:
        atomics.futex_wake(addr, 1)


def wake_all(addr):
    """Wake every sleeper on the word (they re-check the holder)."""
    atomics.futex_wake(addr, 1 << 30)
