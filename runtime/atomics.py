"""Hardware atomic operations on words in shared memory, and futex waits.

Everything that coordinates virtual processors (locks, eventcounts,
sequencers, the processor dispatcher, bounded buffers) comes down to a few
read-modify-write instructions on 8-byte words that live in an arena.  Python
has no such instructions, so this module borrows GCC's: libatomic exports
`__atomic_exchange_8`, `__atomic_compare_exchange_8`, `__atomic_fetch_add_8`,
`__atomic_load_8` and `__atomic_store_8`, and ctypes calls them (no C
compiler is needed on the user's machine, only the libatomic that ships with
every GCC-based Linux).

Two ways in.  The plain functions (`load(addr)`, `exchange(addr, v)`, ...)
take an absolute address (`Arena.addr + offset`) and any 64-bit int; ctypes
converts both on every call (about 0.3 us a call).  The hot paths of locks
and eventcounts use the *prepared* forms instead: `p = pointer(addr)` is built
once per process, and `load_p(p)`, `exchange_p(p, a)`, `compare_exchange_p`,
`fetch_add_p(p, a)` skip ctypes' argument conversion (about 0.17 us a call).
Their value arguments must be *C-ready*: an int that fits in 32 bits, or what
`c_arg(v)` returns for any 64-bit int.  (Called without argument types, ctypes
passes a Python int as a C int and silently truncates a wider one; `c_arg`
wraps such a value in a c_int64 once, outside the hot loop.)

Compare-and-swap.  libatomic's CAS takes a pointer to the expected value and
overwrites it on failure, so each call needs a fresh ctypes buffer (+0.1 us).
On x86-64 the prepared form instead calls the instruction itself, nine bytes
placed in an executable page at import:

    mov rax, rsi ; lock cmpxchg [rdi], rdx ; ret      (returns the old word)

If the host refuses an executable mapping (SELinux execmem, W^X policies) or
the machine is not x86-64, `compare_exchange_p` falls back to libatomic.
`CAS_IMPLEMENTATION` says which one this process uses.

Memory ordering.  Every operation here is sequentially consistent
(`__ATOMIC_SEQ_CST`), which compiles to:

    operation                      x86-64                  ARM64 (v8.0 / with LSE)
    load, load_p                   MOV                     LDAR
    store, store_p                 XCHG                    STLR
    exchange, exchange_p           XCHG (implied LOCK)     LDAXR/STLXR loop / SWPAL
    fetch_add/_or/_and, ..._p      LOCK XADD / LOCK OR ... LDAXR/STLXR loop / LDADDAL, LDSETAL, LDCLRAL
    compare_exchange               LOCK CMPXCHG            LDAXR/STLXR loop / CASAL
    compare_exchange_p (CAS page)  LOCK CMPXCHG            (libatomic, as above)
    fence                          MFENCE                  DMB ISH

A LOCK-prefixed instruction and XCHG are full barriers on x86; the other
reordering x86-TSO allows (a later load passing an earlier store) is excluded
because every store here is an XCHG.  On ARM64 the acquire half of an RMW
(LDAXR, or the A of ...AL) keeps later accesses after it, the release half
(STLXR, the L) keeps earlier ones before it, and LDAR/STLR are sequentially
consistent with each other (ARMv8's RCsc).  Why that is enough for vos:

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
besides the loaded library functions and the CAS page, which are rebuilt the
same way in every process (a forked child inherits them unchanged).
"""

import ctypes
import ctypes.util
import errno
import mmap
import os
import platform
import sys
import time

TSO = platform.machine() in ("x86_64", "AMD64")   # plain aligned loads are acquire loads (doc above)

from .errors import OutOfResources

_SEQ_CST = 5
SEQ_CST = _SEQ_CST
_i64 = ctypes.c_int64
_vp = ctypes.c_void_p
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


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


def _raw(name, restype):
    """A second, argument-type-free handle on a libatomic function (the fast path)."""
    f = _lib[name]  # item access builds a new function object; attribute access would share one
    f.restype = restype
    return f


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

    # The prepared-pointer entry points: no argtypes, so ctypes does no conversion.
    load_raw = _raw("__atomic_load_8", _i64)           # load_raw(p, SEQ_CST)
    store_raw = _raw("__atomic_store_8", None)         # store_raw(p, a, SEQ_CST)
    exchange_raw = _raw("__atomic_exchange_8", _i64)   # exchange_raw(p, a, SEQ_CST)
    fetch_add_raw = _raw("__atomic_fetch_add_8", _i64)  # fetch_add_raw(p, a, SEQ_CST)
    fetch_or_raw = _raw("__atomic_fetch_or_8", _i64)   # fetch_or_raw(p, a, SEQ_CST)
    _cas_raw = _raw("__atomic_compare_exchange_8", ctypes.c_bool)
    try:
        _fence = _lib.atomic_thread_fence
        _fence.restype, _fence.argtypes = None, [ctypes.c_int]
    except AttributeError:  # libatomic older than 1.2: any seq-cst RMW is a full fence too
        _fence = None


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


def fence():
    """A full sequentially consistent fence (orders plain reads and writes too)."""
    if _fence is not None:
        _fence(_SEQ_CST)
    else:
        _fadd(ctypes.addressof(_FENCE_WORD), 0, _SEQ_CST)


_FENCE_WORD = _i64(0)


# --- prepared pointers: the hot paths ---------------------------------------------

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


def load_p(p):
    """`load` through a prepared pointer."""
    return load_raw(p, _SEQ_CST)


def store_p(p, a):
    """`store` through a prepared pointer; `a` is C-ready (see c_arg)."""
    store_raw(p, a, _SEQ_CST)


def exchange_p(p, a):
    """`exchange` through a prepared pointer; `a` is C-ready (see c_arg)."""
    return exchange_raw(p, a, _SEQ_CST)


def fetch_add_p(p, a):
    """`fetch_add` through a prepared pointer; `a` is C-ready (see c_arg)."""
    return fetch_add_raw(p, a, _SEQ_CST)


def _compare_exchange_libatomic(p, expected, new):
    e = _i64(expected) if type(expected) is int else _i64(expected.value)
    _cas_raw(p, ctypes.byref(e), new, _SEQ_CST, _SEQ_CST)
    return e.value


# x86-64 System V: rdi = word, rsi = expected, rdx = new; returns rax = old word.
_CAS_X86_64 = bytes.fromhex(
    "4889f0"        # mov  rax, rsi
    "f0480fb117"    # lock cmpxchg [rdi], rdx
    "c3")           # ret


def _build_cas():
    """The CAS instruction itself in an executable page, or None (then libatomic)."""
    if platform.machine() not in ("x86_64", "AMD64") or not sys.platform.startswith("linux") \
            or os.environ.get("VOS_NO_CAS_PAGE"):
        return None, None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        page = mmap.PAGESIZE
        addr = libc.mmap(None, page, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            return None, None
        ctypes.memmove(addr, _CAS_X86_64, len(_CAS_X86_64))
        # W^X: write the bytes, then make the page read+execute (never both writable and executable).
        if libc.mprotect(addr, page, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
            return None, None
        fn = ctypes.PYFUNCTYPE(_i64)(addr)  # no argtypes: C-ready arguments, like the other *_p
        # Check it on a private word before trusting it.
        w = _i64(7)
        pw = _vp(ctypes.addressof(w))
        if fn(pw, 7, -3) != 7 or w.value != -3 or fn(pw, 5, 9) != -3 or w.value != -3 \
                or fn(pw, _i64(-3), _i64(1 << 40)) != -3 or w.value != 1 << 40:
            return None, None
        return fn, "x86-64 lock cmpxchg"
    except (OSError, AttributeError, ValueError, TypeError):
        return None, None


if _lib is not None:
    _cas_page, CAS_IMPLEMENTATION = _build_cas()
    if _cas_page is not None:
        compare_exchange_p = _cas_page
    else:
        compare_exchange_p = _compare_exchange_libatomic
        CAS_IMPLEMENTATION = "libatomic __atomic_compare_exchange_8"
    compare_exchange_p.__doc__ = """compare_exchange_p(p, expected, new) -> old word.
    `compare_exchange` through a prepared pointer; both values C-ready."""
else:
    CAS_IMPLEMENTATION = "none"


# --- futex -------------------------------------------------------------------

_FUTEX_WAIT, _FUTEX_WAKE, _FUTEX_WAIT_BITSET, _FUTEX_WAKE_BITSET = 0, 1, 9, 10
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine())
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
