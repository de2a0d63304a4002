"""The mutex word: the mechanism under ACQUIRE/RELEASE and every internal lock.

One signed 64-bit word in an arena (a futex word: the host kernel compares
its low 32 bits, which hold both flags):

    bit  0      WAITERS  some thread may sleep on the word
    bit  1      DIED     the last holder died holding it (holder bits are 0)
    bits 2..62  HOLDER   tid + 1 of the holder; 0 = free

Acquire is one compare-and-swap 0 -> (tid+1) << 2 when the lock is free (the
fast path, xv6's `acquire` minus the spinning forever).  When it is held, the
caller spins briefly if the holder is running on another core (it is probably
about to release), then sets WAITERS and sleeps in futex_wait on the word.
Release is one compare-and-swap (tid+1) << 2 -> 0 when nobody waits, else an
exchange to 0 and one futex_wake.

No lost wake-up.  A sleeper passes the futex the word it last saw, with
WAITERS set; the host sleeps it only if the word still equals that.  WAITERS
lives in the low 32 bits precisely so that this comparison covers it: while
the word has WAITERS, whoever frees it (exchange to 0 sees WAITERS) or takes
it over (keeps WAITERS) will wake a sleeper.  A takeover keeps WAITERS set
because other sleepers may remain; the cost is one needless futex_wake.

Robustness (pthread's robust mutex, in Python).  A holder that dies is
noticed two ways.  (1) Its death hook (run by the thread itself on EXIT, or
by whoever buries it after DESTROY_THREAD or a SIGKILL) calls
`mark_owner_died`: the word becomes DIED, and the sleepers are woken at once.
(2) A sleeper whose futex wait timed out (every `_SLICE` seconds) asks
whether the holder still lives (its thread entry is live and its process
exists), which covers a killed process that nobody has buried yet.  Either
way the next acquirer takes the lock with one CAS and is told `died=True`:
the lock is not lost, but the data it guards may be half-updated.

The word says nothing about *why* anyone waits; callers record that in their
thread entry (see Context.waiting) around `acquire`'s sleep, and may detect
deadlocks before sleeping (locks.py).

Memory ordering: the CAS that takes the lock and the CAS or exchange that
frees it are sequentially consistent RMWs, i.e. an acquire and a release on
both x86-64 (LOCK-prefixed instructions) and ARM64 (LDAXR/STLXR or CASAL/
SWPAL), so everything written inside the critical section is visible to the
next holder, and nothing of it moves outside (atomics.py).  Spinning uses
seq-cst loads; nothing is concluded from a plain read.

Which process writes the word: the acquirer (CAS), the holder (release),
a sleeper (CAS setting WAITERS, CAS taking over from a dead holder) and a
death hook (CAS to DIED) -- all by atomic RMW, never by a plain store.
"""

import os
import time

from . import atomics
from .atomics import c_arg, compare_exchange_p, exchange_raw, load_raw, pointer, SEQ_CST
from .errors import NoSuchThread, NotOwner
from .threads import LIVE, O_PID, O_STATE, RUNNING, pid_alive

WAITERS = 1
DIED = 2
SHIFT = 2
_SLICE = 0.25
_SPIN = 200 if (os.cpu_count() or 1) > 1 else 0


def encode(tid):
    """The word of a lock held by tid (no flags)."""
    return (tid + 1) << SHIFT


def holder_of(word):
    """tid of the holder recorded in a word, or None when free."""
    h = word >> SHIFT
    return h - 1 if h else None


def holder(addr):
    """tid of the holder, or None when free (a racy hint)."""
    return holder_of(atomics.load(addr))


def owner_died(addr):
    """True when the last holder died holding the lock and nobody took it since."""
    return bool(atomics.load(addr) & DIED)


def try_acquire(addr, tid):
    """Take the lock if it is free and clean.  True on success; never blocks.
    (A lock whose holder died is taken by `try_acquire_robust` or `acquire`.)"""
    return compare_exchange_p(pointer(addr), 0, c_arg(encode(tid))) == 0


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


def _holder_state_live(threads, htid):
    """The cheap half of holder_alive: the entry says the thread lives (no syscall)."""
    try:
        return threads.get32(threads.off(htid) + O_STATE) in LIVE
    except NoSuchThread:
        return False


def _holder_running(threads, htid):
    try:
        return threads.get32(threads.off(htid) + O_STATE) == RUNNING
    except NoSuchThread:
        return False


def try_acquire_robust(addr, tid, threads):
    """Never blocks.  Returns (acquired, died): takes a free lock, or one whose
    holder died (then died=True)."""
    return _try_p(pointer(addr), tid, threads, check_pid=True)


def _try_p(p, tid, threads, check_pid):
    mine = encode(tid)
    while True:
        w = load_raw(p, SEQ_CST)
        h = w >> SHIFT
        if h:
            dead = not (holder_alive(threads, h - 1) if check_pid else _holder_state_live(threads, h - 1))
            if not dead:
                return False, False
        new = mine | (w & WAITERS)
        if compare_exchange_p(p, c_arg(w), c_arg(new)) == w:
            return True, bool(h) or bool(w & DIED)


def acquire(addr, tid, threads, sleep=None, deadline_check=None, timeout=None):
    """Take the lock for thread tid.  Returns True if the previous holder died
    holding it (the caller now holds it anyway), False otherwise.

    sleep: a context-manager factory entered around the blocking part (the
    caller's "I am WAITING on X" bracket; it may raise to refuse the wait).
    deadline_check(): called after every sleep slice; raise from it to give up
    (kernel death).  timeout: seconds, then TimeoutError (not holding).
    The caller must have ruled out re-acquisition by the holder itself."""
    p = pointer(addr)
    mine = c_arg(encode(tid))
    if compare_exchange_p(p, 0, mine) == 0:
        return False
    return acquire_slow_p(p, tid, threads, sleep, deadline_check, timeout)


def acquire_slow_p(p, tid, threads, sleep=None, deadline_check=None, timeout=None, slice_=_SLICE, spin=True):
    """`acquire` after its fast-path CAS failed, on a prepared pointer.
    slice_: the longest single futex sleep (a safety net: wake-ups are not
    lost, but a holder killed unburied is only noticed when a slice ends).
    spin: allow the short spin before sleeping."""
    deadline = None if timeout is None else _now() + timeout
    mine = encode(tid)
    w = load_raw(p, SEQ_CST)
    h = w >> SHIFT
    if spin and _SPIN and h and h != tid + 1 and _holder_running(threads, h - 1):
        for _ in range(_SPIN):
            w = load_raw(p, SEQ_CST)
            if w >> SHIFT == 0 and compare_exchange_p(p, c_arg(w), c_arg(mine | (w & WAITERS))) == w:
                return bool(w & DIED)
    else:
        got, died = _try_p(p, tid, threads, check_pid=False)
        if got:
            return died
    if sleep is None:
        return _slow(p, mine, threads, deadline_check, deadline, slice_)
    with sleep():
        return _slow(p, mine, threads, deadline_check, deadline, slice_)


_now = time.monotonic


def _slow(p, mine, threads, deadline_check, deadline, max_slice):
    timed_out = False
    while True:
        w = load_raw(p, SEQ_CST)
        h = w >> SHIFT
        if h == 0:
            # Free (or owner-died): take it, keeping WAITERS, because others may still sleep.
            if compare_exchange_p(p, c_arg(w), c_arg(mine | WAITERS)) == w:
                return bool(w & DIED)
            continue
        # Dead holder?  The thread table is cheap to read; the pid check (a
        # syscall) only after a whole slice passed without a wake-up.
        alive = holder_alive(threads, h - 1) if timed_out else _holder_state_live(threads, h - 1)
        if not alive:
            if compare_exchange_p(p, c_arg(w), c_arg(mine | WAITERS)) == w:
                return True
            continue
        if not w & WAITERS:
            if compare_exchange_p(p, c_arg(w), c_arg(w | WAITERS)) != w:
                continue
            w |= WAITERS
        slice_ = max_slice
        if deadline is not None:
            left = deadline - _now()
            if left <= 0:
                raise TimeoutError("the lock was not acquired in time "
                                   f"(held by thread {h - 1})")
            slice_ = min(slice_, left)
        t0 = _now()
        atomics.futex_wait_p(p, w & 0xFFFFFFFF, slice_)
        timed_out = _now() - t0 >= slice_ * 0.9
        if deadline_check is not None:
            deadline_check()


def release(addr, tid):
    """Free the lock held by tid.  NotOwner if tid does not hold it."""
    release_slow_p(pointer(addr), tid)


def release_slow_p(p, tid):
    """`release` after its fast-path CAS failed (someone waits, or tid is not the holder)."""
    w = load_raw(p, SEQ_CST)
    if w >> SHIFT != tid + 1:
        h = holder_of(w)
        why = f"held by thread {h}" if h is not None else (
            "its holder died and nobody took it since" if w & DIED else "it is free")
        raise NotOwner(f"thread {tid} released a lock it does not hold ({why})")
    old = exchange_raw(p, 0, SEQ_CST)
    if old & WAITERS:
        atomics.futex_wake_p(p, 1)


def mark_owner_died(addr, tid):
    """Death hook: if dead thread tid holds the lock, make the word DIED (free,
    owner-died) and wake every sleeper.  Any process.  True if it marked it."""
    p = pointer(addr)
    while True:
        w = load_raw(p, SEQ_CST)
        if w >> SHIFT != tid + 1:
            return False
        if compare_exchange_p(p, c_arg(w), DIED | (w & WAITERS)) == w:
            atomics.futex_wake_p(p, atomics.ALL)
            return True


def wake_all(addr):
    """Wake every sleeper on the word (they re-check the holder)."""
    atomics.futex_wake(addr, atomics.ALL)
