"""Hardware atomic operations on words in shared memory, and futex waits.

Everything that coordinates virtual processors (locks, eventcounts,
sequencers, the processor dispatcher, bounded buffers) comes down to a few
read-modify-write instructions on 8-byte words that live in an arena.  Python
has no such instructions, so this module borrows GCC's: libatomic exports
`__atomic_exchange_8`, `__atomic_compare_exchange_8`, `__atomic_fetch_add_8`,
`__atomic_load_8` and `__atomic_store_8`, and ctypes calls them with pre-set
argument types (about 0.4 us a call here; no C compiler is needed on the
user's machine, only the libatomic that ships with every GCC-based Linux).

Memory ordering.  Every operation here is sequentially consistent
(`__ATOMIC_SEQ_CST`).  On x86-64 an RMW is a LOCK-prefixed instruction (a full
barrier) and a seq-cst store is an XCHG; on ARM64 libatomic uses LDAXR/STLXR
(or LSE) pairs with acquire and release semantics plus a DMB where seq-cst
needs it.  So a value written before `store`/`exchange`/`fetch_add` is visible
to any process that observes the new value through `load` or an RMW: the
"write, then publish" order the buffer and lock code relies on.  Plain
`struct.unpack_from` reads of an aligned word are single loads (never torn on
either architecture) but carry no ordering; the runtime uses them only for
statistics and for hints that are re-checked with `load`.

Blocking.  `futex_wait(addr, expected, timeout)` sleeps in the host kernel
while the low 32 bits of the word still equal `expected`; `futex_wake(addr, n)`
wakes up to n sleepers.  Both use the shared (not PRIVATE) futex so that they
work between processes.  A wait always has a timeout: the caller re-checks
its condition and whether its kernel is still alive, so neither Ctrl-C nor a
dead peer can hang a virtual processor.  Where there is no futex (macOS), a
short sleep-and-recheck loop stands in for it.

Addresses are absolute: `Arena.addr + offset`.  No state lives in this module
besides the loaded library functions, which are the same in every process.
"""

import ctypes
import ctypes.util
import errno
import os
import platform
import sys
import time

from .errors import OutOfResources

_SEQ_CST = 5
_i64 = ctypes.c_int64
_vp = ctypes.c_void_p


def _load_libatomic():
    names = ["libatomic.so.1", ctypes.util.find_library("atomic")]
    for name in names:
        if not name:
            continue
        try:
            return ctypes.PyDLL(name)  # PyDLL: keep the GIL, no release/re-acquire per call
        except OSError:
            continue
    return None


_lib = _load_libatomic()
if _lib is not None:
    _xchg = _lib.__atomic_exchange_8
    _xchg.restype, _xchg.argtypes = _i64, [_vp, _i64, ctypes.c_int]
    _cas = _lib.__atomic_compare_exchange_8
    _cas.restype, _cas.argtypes = ctypes.c_bool, [_vp, ctypes.c_void_p, _i64, ctypes.c_int, ctypes.c_int]
    _fadd = _lib.__atomic_fetch_add_8
    _fadd.restype, _fadd.argtypes = _i64, [_vp, _i64, ctypes.c_int]
    _for = _lib.__atomic_fetch_or_8
    _for.restype, _for.argtypes = _i64, [_vp, _i64, ctypes.c_int]
    _fand = _lib.__atomic_fetch_and_8
    _fand.restype, _fand.argtypes = _i64, [_vp, _i64, ctypes.c_int]
    _load = _lib.__atomic_load_8
    _load.restype, _load.argtypes = _i64, [_vp, ctypes.c_int]
    _store = _lib.__atomic_store_8
    _store.restype, _store.argtypes = None, [_vp, _i64, ctypes.c_int]


def require():
    """Raise OutOfResources with a clear message when this host has no atomics."""
    if _lib is None:
        raise OutOfResources(
            "vos needs libatomic (GCC's atomic library, libatomic.so.1) for its "
            "shared-memory atomics; install it (Debian/Ubuntu: apt install libatomic1)")


def load(addr):
    """Sequentially consistent load of the signed 64-bit word at addr."""
    return _load(addr, _SEQ_CST)


def store(addr, value):
    """Sequentially consistent store (a release: earlier writes are visible first)."""
    _store(addr, value, _SEQ_CST)


def exchange(addr, value):
    """Atomically write value and return the old word (the RSM instruction when value=1)."""
    return _xchg(addr, value, _SEQ_CST)


def compare_exchange(addr, expected, new):
    """Atomically: if word == expected, write new.  Returns the old word
    (so the swap happened iff the result == expected)."""
    e = _i64(expected)  # fresh per call: a signal handler may run between bytecodes
    _cas(addr, ctypes.byref(e), new, _SEQ_CST, _SEQ_CST)
    return e.value


def fetch_add(addr, delta):
    """Atomically add delta and return the old word."""
    return _fadd(addr, delta, _SEQ_CST)


def fetch_or(addr, bits):
    """Atomically set bits; returns the old word."""
    return _for(addr, bits, _SEQ_CST)


def fetch_and(addr, mask):
    """Atomically keep only the bits of mask; returns the old word."""
    return _fand(addr, mask, _SEQ_CST)


# --- futex -------------------------------------------------------------------

_FUTEX_WAIT, _FUTEX_WAKE = 0, 1
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine())
_HAVE_FUTEX = sys.platform.startswith("linux") and _SYS_FUTEX is not None

if _HAVE_FUTEX:
    _libc = ctypes.CDLL(None, use_errno=True)  # CDLL: releases the GIL while asleep
    _syscall = _libc.syscall
    _syscall.restype = ctypes.c_long

    class _Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _u32_as_i32(value):
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= (1 << 31) else value


def futex_wait(addr, expected, timeout):
    """Sleep while the low 32 bits of the word at addr equal `expected`, at most
    `timeout` seconds.  Returns when woken, when the word differs, on timeout or
    on a signal (the caller always re-checks its condition).  Does not raise
    for those; a Python signal handler (Ctrl-C) runs after it returns."""
    if not _HAVE_FUTEX:
        _poll_wait(addr, expected, timeout)
        return
    ts = _Timespec(int(timeout), int((timeout % 1) * 1e9))
    r = _syscall(_SYS_FUTEX, _vp(addr), _FUTEX_WAIT, _u32_as_i32(expected), ctypes.byref(ts), None, 0)
    if r == -1:
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.ETIMEDOUT, errno.EINTR):
            raise OSError(err, os.strerror(err))


def futex_wake(addr, n=1):
    """Wake up to n processes sleeping in futex_wait on addr; returns how many woke."""
    if not _HAVE_FUTEX:
        return 0
    return _syscall(_SYS_FUTEX, _vp(addr), _FUTEX_WAKE, n, None, None, 0)


def _poll_wait(addr, expected, timeout):
    deadline = time.monotonic() + timeout
    pause = 20e-6
    while (load(addr) & 0xFFFFFFFF) == (expected & 0xFFFFFFFF):
        now = time.monotonic()
        if now >= deadline:
            return
        time.sleep(min(pause, deadline - now))
        pause = min(pause * 2, 1e-3)
