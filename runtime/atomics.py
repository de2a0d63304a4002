"""Hardware atomic operations on words in shared memory, and futex waits.

Everything that coordinates virtual processors (locks, eventcounts,
sequencers, the processor dispatcher, bounded buffers) comes down to a few
read-modify-write instructions on 8-byte words that live in an arena.  Python
has no such instructions, so this module borrows them, from one of two
places, chosen once at import (`IMPLEMENTATION` says which):

  1. the instruction page (instruction_page.py): the machine code of every
     operation below -- a few instructions each, x86-64 or AArch64 --
     written into a page of this process, made read+execute, checked on a
     private word, and called through ctypes.  Needs nothing but Python;
  2. libatomic, GCC's atomic library (`__atomic_exchange_8`,
     `__atomic_compare_exchange_8`, `__atomic_fetch_add_8`, ...), when the
     host refuses an executable page (SELinux execmem, a W^X policy), the
     page is disabled (VOS_NO_INSTRUCTION_PAGE=1), or the machine is
     neither x86-64 nor AArch64.

With neither, `import runtime` still works and every operation raises
AtomicsUnavailable, which Kernel.boot raises first (`require`), with the
reason the page was refused and what to install.

Two ways in.  The plain functions (`load(addr)`, `exchange(addr, v)`, ...)
take an absolute address (`Arena.addr + offset`) and any 64-bit int; ctypes
converts both on every call.  The hot paths of locks and eventcounts use the
*prepared* forms instead: `p = pointer(addr)` is built once per process, and
`load_p(p)`, `exchange_p(p, a)`, `compare_exchange_p(p, e, n)`,
`fetch_add_p(p, a)` skip ctypes' argument conversion.  Their value arguments
must be *C-ready*: an int that fits in 32 bits, or what `c_arg(v)` returns
for any 64-bit int.  (Called without argument types, ctypes passes a Python
int as a C int and silently truncates a wider one; `c_arg` wraps such a
value in a c_int64 once, outside the hot loop.)  The `*_raw` names
(`load_raw(p, SEQ_CST)`, `store_raw(p, a, SEQ_CST)`, `exchange_raw`,
`fetch_add_raw`, `fetch_or_raw`) are the same prepared calls with
libatomic's trailing memory-order argument, which the page ignores: every
operation here is sequentially consistent.  `compare_exchange_p` returns the
old word (the swap happened iff it equals `expected`); through libatomic,
whose CAS overwrites a buffer with the old word, it costs a fresh c_int64.

    operation            contract                                   returns
    load(addr)           seq-cst load                               the word
    store(addr, v)       seq-cst store (earlier writes visible first) None
    exchange(addr, v)    write v (the RSM instruction when v = 1)   old word
    compare_exchange(addr, e, n)  if word == e: write n             old word
    fetch_add(addr, d)   add d (wraps at 64 bits)                   old word
    fetch_or(addr, b)    set the bits of b                          old word
    fetch_and(addr, m)   keep only the bits of m                    old word
    fence()              full seq-cst fence (plain accesses too)    None

Memory ordering.  Every operation is sequentially consistent
(`__ATOMIC_SEQ_CST`); both implementations run the same instructions on
x86-64, and on ARM64 the page runs the ARMv8.0 sequences (libatomic picks
the LSE ones where the core has them):

    operation                      x86-64                  ARM64 (v8.0 / with LSE)
    load, load_p                   MOV                     LDAR
    store, store_p                 XCHG                    STLR
    exchange, exchange_p           XCHG (implied LOCK)     LDAXR/STLXR loop / SWPAL
    fetch_add, fetch_add_p         LOCK XADD               LDAXR/STLXR loop / LDADDAL
    fetch_or/_and                  LOCK CMPXCHG loop       LDAXR/STLXR loop / LDSETAL, LDCLRAL
    compare_exchange, ..._p        LOCK CMPXCHG            LDAXR/STLXR loop / CASAL
    fence                          MFENCE                  DMB ISH

A LOCK-prefixed instruction and XCHG are full barriers on x86; the other
reordering x86-TSO allows (a later load passing an earlier store) is excluded
because every store here is an XCHG.  On ARM64 the acquire half of an RMW
(LDAXR, or the A of ...AL) keeps later accesses after it, the release half
(STLXR, the L) keeps earlier ones before it, and LDAR/STLR are sequentially
consistent with each other (ARMv8's RCsc).  (instruction_page.py has the
bytes, the disassembly and the argument for each sequence.)  Why that is
enough for vos:

  * lock/unlock: the RMW that takes a lock is an acquire and the one that
    frees it a release, so the plain reads and writes of a critical section
    (the pager's memoryview copies, statistics counters) cannot leak out of
    it on either architecture;
  * "publish, then check" (Dekker's pattern: a sleeper announces itself and
    then re-reads the word; a waker changes the word and then looks for
    sleepers; a thread publishes its wait-for edge, then reads the others'):
    both sides use seq-cst atomics, so at least one of them sees the other's
    write.  This is exactly the store->load order that plain accesses would
    not give on x86, and the reason these paths never use plain reads;
  * eventcounts: a count read by `load` is at least as new as every ADVANCE
    that happened before the write it is compared with.

Plain `struct.unpack_from` or memoryview reads of an aligned word are single
loads (never torn on either architecture).  On ARM64 they carry no ordering;
on x86-64 (`TSO` below) every plain load is an acquire load -- TSO never lets
a later load pass an earlier one, and stores become visible in program
order -- so a count read plainly there is as good as `load` for concluding
"the ADVANCE happened, and everything written before it is visible" (AWAIT's
fast path).  The runtime uses plain reads for that on x86-64 only, and for
statistics and hints (spin loops) that elsewhere are confirmed with an
atomic operation before anything is concluded.  `fence()` is a full seq-cst
fence for code that must order plain accesses (a store then a load).

Blocking.  `futex_wait(addr, expected, timeout)` sleeps in the host kernel
while the low 32 bits of the word still equal `expected`; `futex_wake(addr, n)`
wakes up to n sleepers.  The bitset twins let a waker choose whom to wake
(eventcounts wake only the waiters whose value was just exceeded).  All use
the shared (not PRIVATE) futex so that they work between processes.  A wait
always has a timeout: the caller re-checks its condition and whether its
kernel is still alive, so neither Ctrl-C nor a dead peer can hang a virtual
processor.  Where there is no futex (macOS), a short sleep-and-recheck loop
stands in for it.

Addresses are absolute: `Arena.addr + offset`.  No state lives in this module
besides the chosen implementation (the page, or the loaded library
functions), which every process chooses the same way from the same host and
environment (a forked child inherits it unchanged).
"""

import ctypes
import errno
import os
import sys
import time

from . import instruction_page
from .errors import AtomicsUnavailable

MACHINE = os.uname().machine                      # (platform.machine(), without importing platform)
TSO = MACHINE in ("x86_64", "AMD64")   # plain aligned loads are acquire loads (doc above)

_SEQ_CST = 5
SEQ_CST = _SEQ_CST
_i64 = ctypes.c_int64
_vp = ctypes.c_void_p
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


def pointer(addr):
    """A prepared address for the *_p functions.  Build it once per process
    (it is a ctypes c_void_p; it holds no reference to the arena, so drop it
    before the arena is unmapped)."""
    return _vp(addr)


def c_arg(value):
    """`value` made C-ready for the *_p functions: the int itself when it fits
    in 32 bits, else a c_int64 holding it.  Raises OverflowError beyond 64 bits."""
    if _I32_MIN <= value <= _I32_MAX:
        return value
    if not -(1 << 63) <= value < (1 << 63):
        raise OverflowError(f"{value} does not fit in a signed 64-bit word")
    return _i64(value)


# --- the fallback: libatomic -----------------------------------------------------

class _Libatomic:
    """libatomic's functions under the instruction page's names (see Page)."""

    name = "libatomic"
    cas_name = "libatomic __atomic_compare_exchange_8"

    def __init__(self, lib):
        def typed(name, restype, *argtypes):
            f = lib[name]  # item access builds a new function object; attribute access would share one
            f.restype, f.argtypes = restype, list(argtypes)
            return f

        def raw(name, restype):  # no argtypes: the prepared forms' fast path
            f = lib[name]
            f.restype = restype
            return f

        i, cas = ctypes.c_int, "__atomic_compare_exchange_8"
        self._load = typed("__atomic_load_8", _i64, _vp, i)
        self._store = typed("__atomic_store_8", None, _vp, _i64, i)
        self._xchg = typed("__atomic_exchange_8", _i64, _vp, _i64, i)
        self._cas = typed(cas, ctypes.c_bool, _vp, _vp, _i64, i, i)
        self._fadd = typed("__atomic_fetch_add_8", _i64, _vp, _i64, i)
        self._for = typed("__atomic_fetch_or_8", _i64, _vp, _i64, i)
        self._fand = typed("__atomic_fetch_and_8", _i64, _vp, _i64, i)
        self.load_raw = raw("__atomic_load_8", _i64)           # load_raw(p, SEQ_CST)
        self.store_raw = raw("__atomic_store_8", None)         # store_raw(p, a, SEQ_CST)
        self.exchange_raw = raw("__atomic_exchange_8", _i64)   # exchange_raw(p, a, SEQ_CST)
        self.fetch_add_raw = raw("__atomic_fetch_add_8", _i64)  # fetch_add_raw(p, a, SEQ_CST)
        self.fetch_or_raw = raw("__atomic_fetch_or_8", _i64)   # fetch_or_raw(p, a, SEQ_CST)
        self.fetch_and_raw = raw("__atomic_fetch_and_8", _i64)
        self._cas_raw = raw(cas, ctypes.c_bool)
        try:
            self._fence = typed("atomic_thread_fence", None, i)
        except AttributeError:  # libatomic older than 1.2: any seq-cst RMW is a full fence too
            self._fence = None
        self._fence_word = _i64(0)

    def load(self, addr):
        return self._load(addr, _SEQ_CST)

    def store(self, addr, value):
        self._store(addr, value, _SEQ_CST)

    def exchange(self, addr, value):
        return self._xchg(addr, value, _SEQ_CST)

    def compare_exchange(self, addr, expected, new):
        e = _i64(expected)  # fresh per call: a signal handler may run between bytecodes
        self._cas(addr, ctypes.byref(e), new, _SEQ_CST, _SEQ_CST)
        return e.value

    def fetch_add(self, addr, delta):
        return self._fadd(addr, delta, _SEQ_CST)

    def fetch_or(self, addr, bits):
        return self._for(addr, bits, _SEQ_CST)

    def fetch_and(self, addr, mask):
        return self._fand(addr, mask, _SEQ_CST)

    def fence(self):
        if self._fence is not None:
            self._fence(_SEQ_CST)
        else:
            self._fadd(ctypes.addressof(self._fence_word), 0, _SEQ_CST)

    def load_p(self, p):
        return self.load_raw(p, _SEQ_CST)

    def store_p(self, p, a):
        self.store_raw(p, a, _SEQ_CST)

    def exchange_p(self, p, a):
        return self.exchange_raw(p, a, _SEQ_CST)

    def fetch_add_p(self, p, a):
        return self.fetch_add_raw(p, a, _SEQ_CST)

    def fetch_or_p(self, p, a):
        return self.fetch_or_raw(p, a, _SEQ_CST)

    def fetch_and_p(self, p, a):
        return self.fetch_and_raw(p, a, _SEQ_CST)

    def compare_exchange_p(self, p, expected, new):
        e = _i64(expected) if type(expected) is int else _i64(expected.value)
        self._cas_raw(p, ctypes.byref(e), new, _SEQ_CST, _SEQ_CST)
        return e.value


def _libatomic_ops():
    """libatomic's operations, or None when the library cannot be loaded."""
    import ctypes.util                          # (shutil, subprocess, tempfile: only on this fallback path)
    for name in ("libatomic.so.1", ctypes.util.find_library("atomic")):
        if not name:
            continue
        try:
            return _Libatomic(ctypes.PyDLL(name))  # PyDLL: keep the GIL, no release/re-acquire per call
        except (OSError, AttributeError):          # missing, or not libatomic (a function is absent)
            continue
    return None


# --- the choice, once per process ------------------------------------------------

def _page_ops():
    """The instruction page, or (None, why not)."""
    if os.environ.get("VOS_NO_INSTRUCTION_PAGE"):
        return None, "disabled by VOS_NO_INSTRUCTION_PAGE"
    try:
        return instruction_page.build(), ""
    except instruction_page.PageRefused as e:
        return None, str(e)


def _refusal():
    return AtomicsUnavailable(
        f"vos cannot boot: it found no atomic instructions for shared memory on this "
        f"{MACHINE or 'unknown'} {sys.platform} host.  Its instruction page was not built "
        f"({_page_refused}), and libatomic.so.1 (GCC's atomic library) could not be loaded.  Install "
        f"libatomic (Debian/Ubuntu: apt install libatomic1; Fedora: dnf install libatomic; "
        f"Alpine: apk add libatomic), or allow this process executable memory.")


class _Unavailable:
    """Stands in for an implementation on a host with neither: every operation
    raises AtomicsUnavailable (Kernel.boot raises it first, through require)."""

    name = cas_name = "none"

    def __getattr__(self, operation):
        def refuse(*args):
            raise _refusal()
        return refuse


_ops, _page_refused = _page_ops()
if _ops is None:
    _ops = _libatomic_ops() or _Unavailable()

IMPLEMENTATION = _ops.name                 # "x86-64 instruction page", "aarch64 ...", "libatomic" or "none"
CAS_IMPLEMENTATION = _ops.cas_name


def require():
    """Raise AtomicsUnavailable, saying why and what to install, when this
    host has neither the instruction page nor libatomic."""
    if isinstance(_ops, _Unavailable):
        raise _refusal()


# The public operations (contracts in the module doc), bound to the chosen implementation.
load, store, exchange, compare_exchange = _ops.load, _ops.store, _ops.exchange, _ops.compare_exchange
fetch_add, fetch_or, fetch_and, fence = _ops.fetch_add, _ops.fetch_or, _ops.fetch_and, _ops.fence
load_p, store_p, exchange_p, fetch_add_p = _ops.load_p, _ops.store_p, _ops.exchange_p, _ops.fetch_add_p
compare_exchange_p = _ops.compare_exchange_p
load_raw, store_raw, exchange_raw = _ops.load_raw, _ops.store_raw, _ops.exchange_raw
fetch_add_raw, fetch_or_raw = _ops.fetch_add_raw, _ops.fetch_or_raw


# --- futex -------------------------------------------------------------------

_FUTEX_WAIT, _FUTEX_WAKE, _FUTEX_WAIT_BITSET, _FUTEX_WAKE_BITSET = 0, 1, 9, 10
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98, "arm64": 98}.get(MACHINE)
_HAVE_FUTEX = sys.platform.startswith("linux") and _SYS_FUTEX is not None
ALL = 1 << 30  # "wake everybody"

if _HAVE_FUTEX:
    _libc = ctypes.CDLL(None, use_errno=True)  # CDLL: releases the GIL while asleep
    _syscall = _libc.syscall
    _syscall.restype = ctypes.c_long

    class _Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _u32_as_i32(value):
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= (1 << 31) else value


def _check_futex_result(r):
    if r == -1:
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.ETIMEDOUT, errno.EINTR):
            raise OSError(err, os.strerror(err))


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
    _check_futex_result(r)


def futex_wake(addr, n=1):
    """Wake up to n processes sleeping in futex_wait on addr; returns how many woke."""
    if not _HAVE_FUTEX:
        return 0
    return _syscall(_SYS_FUTEX, _vp(addr), _FUTEX_WAKE, n, None, None, 0)


def futex_wait_p(p, expected, timeout):
    """`futex_wait` through a prepared pointer (same contract)."""
    if not _HAVE_FUTEX:
        _poll_wait(p.value, expected, timeout)
        return
    ts = _Timespec(int(timeout), int((timeout % 1) * 1e9))
    _check_futex_result(_syscall(_SYS_FUTEX, p, _FUTEX_WAIT, _u32_as_i32(expected), ctypes.byref(ts), None, 0))


def futex_wake_p(p, n=1):
    """`futex_wake` through a prepared pointer."""
    if not _HAVE_FUTEX:
        return 0
    return _syscall(_SYS_FUTEX, p, _FUTEX_WAKE, n, None, None, 0)


def futex_wait_bitset(p, expected, bits, timeout):
    """Like futex_wait (prepared pointer), but only a futex_wake_bitset whose
    bits overlap `bits` (a nonzero 32-bit mask) wakes this sleeper."""
    if not _HAVE_FUTEX:
        _poll_wait(p.value, expected, timeout)
        return
    # FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline (time.monotonic's clock on Linux).
    deadline = time.monotonic() + timeout
    ts = _Timespec(int(deadline), int((deadline % 1) * 1e9))
    _check_futex_result(_syscall(_SYS_FUTEX, p, _FUTEX_WAIT_BITSET, _u32_as_i32(expected), ctypes.byref(ts),
                                 None, _u32_as_i32(bits)))


def futex_wake_bitset(p, bits, n=ALL):
    """Wake up to n sleepers on the word whose wait bits overlap `bits`."""
    if not _HAVE_FUTEX:
        return 0
    return _syscall(_SYS_FUTEX, p, _FUTEX_WAKE_BITSET, n, None, None, _u32_as_i32(bits))


def _poll_wait(addr, expected, timeout):
    deadline = time.monotonic() + timeout
    pause = 20e-6
    while (load(addr) & 0xFFFFFFFF) == (expected & 0xFFFFFFFF):
        now = time.monotonic()
        if now >= deadline:
            return
        time.sleep(min(pause, deadline - now))
        pause = min(pause * 2, 1e-3)
