"""The atomic instructions themselves, in one executable page per process.

atomics.py needs eight operations on an 8-byte word (load, store, exchange,
compare-and-swap, fetch-and-add/-or/-and, fence), and each is only a few
machine instructions.  Rather than ask a C library for them (libatomic is
missing from slim containers and from macOS), this module writes those
instructions into a page of its own and calls them through ctypes:

  1. mmap one anonymous page, readable and writable (not executable);
  2. copy the machine code below into it;
  3. mprotect it read + execute (W^X: never writable and executable at once);
  4. wrap each function's address in a ctypes function pointer;
  5. try every function on a private word, with narrow, wide and negative
     values, and trust the page only if every result is right.

Any refusal (no such machine, no executable mapping allowed -- SELinux
execmem, a hardened W^X policy --, a wrong result) raises PageRefused with
the reason, and atomics.py falls back to libatomic.  The page is built at
import in every process (a forked child inherits it, mapped the same) and
never unmapped.

Calling convention.  Each function takes (word, a, b) in the C ABI's first
three integer registers and returns the old word in the return register:

    x86-64 System V:  rdi = word, rsi = a, rdx = b; return rax
    AArch64 AAPCS64:  x0 = word,  x1 = a,  x2 = b;  return x0

Functions that need fewer arguments ignore the rest, so the *_raw call
sites may keep passing libatomic's trailing memory-order argument.  The
prepared forms are called without argtypes: ctypes passes a c_void_p or a
c_int64 as 64 bits, and a Python int as a C int, which libffi widens with
its sign on both machines (the self-check in step 5 would catch one that
did not); hence atomics.c_arg.

x86-64 (every operation sequentially consistent).  x86-TSO reorders only a
later load before an earlier store; a LOCK-prefixed instruction or XCHG
with memory is a full barrier, and the seq-cst store is an XCHG, so any
store->load pair made of these operations stays in order.  The same
sequences GCC emits for __ATOMIC_SEQ_CST:

    load        48 8b 07          mov    rax, [rdi]
                c3                ret
    store       48 87 37          xchg   [rdi], rsi        ; implied LOCK: full barrier
                c3                ret
    exchange    48 89 f0          mov    rax, rsi
                48 87 07          xchg   [rdi], rax
                c3                ret
    cas         48 89 f0          mov    rax, rsi          ; rax = expected
                f0 48 0f b1 17    lock cmpxchg [rdi], rdx  ; rax = old word either way
                c3                ret
    fetch_add   48 89 f0          mov    rax, rsi
                f0 48 0f c1 07    lock xadd [rdi], rax     ; rax = old word
                c3                ret
    fetch_or    48 8b 07          mov    rax, [rdi]        ; a guess; the CAS checks it
            1:  48 89 c1          mov    rcx, rax
                48 09 f1          or     rcx, rsi
                f0 48 0f b1 0f    lock cmpxchg [rdi], rcx  ; fails: rax = the word now
                75 f3             jne    1b
                c3                ret
    fetch_and   as fetch_or, with 48 21 f1  and rcx, rsi
    fence       0f ae f0          mfence
                c3                ret

AArch64 (ARMv8.0 exclusives, which every ARMv8 core has; LSE's CASAL and
LDADDAL are optional and not used).  LDAR/STLR are sequentially consistent
with each other (RCsc): a store-release is never passed by a later
load-acquire.  In each RMW loop LDAXR is an acquire (later accesses stay
after it) and STLXR a release (earlier ones stay before it), and the loop
retries until the store-exclusive succeeds, i.e. until no other write to the
word came between the load and the store: the read-modify-write is atomic.
These are the sequences GCC emits for __ATOMIC_SEQ_CST without LSE (and
libatomic runs on such cores), so the ordering contract of atomics.py is
unchanged: an RMW is an acquire and a release, not a fence for plain
accesses (fence() is, DMB ISH).

    load        c8dffc00          ldar   x0, [x0]
                d65f03c0          ret
    store       c89ffc01          stlr   x1, [x0]
                d65f03c0          ret
    exchange 0: c85ffc02          ldaxr  x2, [x0]
                c803fc01          stlxr  w3, x1, [x0]      ; w3 = 0 iff stored
                35ffffc3          cbnz   w3, 0b
                aa0203e0          mov    x0, x2
                d65f03c0          ret
    cas      0: c85ffc03          ldaxr  x3, [x0]
                eb01007f          cmp    x3, x1
                54000061          b.ne   1f                ; differs: no store
                c804fc02          stlxr  w4, x2, [x0]
                35ffff84          cbnz   w4, 0b
             1: aa0303e0          mov    x0, x3
                d65f03c0          ret
    fetch_add 0: c85ffc02         ldaxr  x2, [x0]
                8b010043          add    x3, x2, x1
                c804fc03          stlxr  w4, x3, [x0]
                35ffffa4          cbnz   w4, 0b
                aa0203e0          mov    x0, x2
                d65f03c0          ret
    fetch_or    as fetch_add, with aa010043  orr x3, x2, x1
    fetch_and   as fetch_add, with 8a010043  and x3, x2, x1
    fence       d5033bbf          dmb    ish
                d65f03c0          ret

The instruction cache: x86 keeps it coherent with stores.  On AArch64 the
new code must reach the instruction side before it runs; Linux does that
when a user page becomes executable (set_pte_at -> __sync_icache_dcache
cleans the data cache and invalidates the instruction cache for a page not
yet marked clean), which step 3's mprotect triggers.

tests/test_instruction_page.py runs these exact bytes (read from this
module) in a C harness, tests/page_harness.c: natively on x86-64, and under
qemu-aarch64 where the cross compiler and qemu are installed.
"""

import ctypes
import mmap
import os
import sys

_i64 = ctypes.c_int64
_vp = ctypes.c_void_p

OPERATIONS = ("load", "store", "exchange", "cas", "fetch_add", "fetch_or", "fetch_and", "fence")

X86_64 = {
    "load":      "48 8b 07  c3",
    "store":     "48 87 37  c3",
    "exchange":  "48 89 f0  48 87 07  c3",
    "cas":       "48 89 f0  f0 48 0f b1 17  c3",
    "fetch_add": "48 89 f0  f0 48 0f c1 07  c3",
    "fetch_or":  "48 8b 07  48 89 c1  48 09 f1  f0 48 0f b1 0f  75 f3  c3",
    "fetch_and": "48 8b 07  48 89 c1  48 21 f1  f0 48 0f b1 0f  75 f3  c3",
    "fence":     "0f ae f0  c3",
}
X86_64_PAD = b"\xcc"                 # int3 between functions

# AArch64 words, written as the disassembler shows them (little-endian in memory).
AARCH64 = {
    "load":      "c8dffc00 d65f03c0",
    "store":     "c89ffc01 d65f03c0",
    "exchange":  "c85ffc02 c803fc01 35ffffc3 aa0203e0 d65f03c0",
    "cas":       "c85ffc03 eb01007f 54000061 c804fc02 35ffff84 aa0303e0 d65f03c0",
    "fetch_add": "c85ffc02 8b010043 c804fc03 35ffffa4 aa0203e0 d65f03c0",
    "fetch_or":  "c85ffc02 aa010043 c804fc03 35ffffa4 aa0203e0 d65f03c0",
    "fetch_and": "c85ffc02 8a010043 c804fc03 35ffffa4 aa0203e0 d65f03c0",
    "fence":     "d5033bbf d65f03c0",
}
AARCH64_PAD = bytes.fromhex("000020d4")  # brk #0 between functions

_ALIGN = 16


class PageRefused(Exception):
    """This host will not run the instruction page; the message says why."""


def code_for(machine):
    """{operation: bytes} for a platform.machine() name, and the padding."""
    if machine in ("x86_64", "AMD64"):
        return {op: bytes.fromhex(X86_64[op]) for op in OPERATIONS}, X86_64_PAD
    if machine in ("aarch64", "arm64"):
        return {op: b"".join(int(w, 16).to_bytes(4, "little") for w in AARCH64[op].split())
                for op in OPERATIONS}, AARCH64_PAD
    raise PageRefused(f"no instruction page for a {machine or 'unknown'} machine")


def layout(code, pad):
    """The page's bytes and each operation's offset in it (16-byte aligned)."""
    image, offsets = bytearray(), {}
    for op in OPERATIONS:
        offsets[op] = len(image)
        image += code[op]
        image += pad * (-len(image) % _ALIGN // len(pad))
    return bytes(image), offsets


class Page:
    """The ctypes entry points of one built and checked page.

    Prepared forms (no argtypes; C-ready arguments, see module doc):
    load_p(p), store_p(p, a), exchange_p(p, a), compare_exchange_p(p, e, n),
    fetch_add_p(p, a), fetch_or_p(p, a), fetch_and_p(p, a), fence(); the
    same under libatomic's *_raw names, which pass a memory order the code
    ignores.  Plain forms (argtypes: any address int, any 64-bit int):
    load(addr), store(addr, v), exchange, compare_exchange, fetch_add,
    fetch_or, fetch_and.
    """

    def __init__(self, addr, offsets, machine):
        arch = "x86-64" if machine in ("x86_64", "AMD64") else "aarch64"
        self.addr, self.name = addr, f"{arch} instruction page"
        self.cas_name = {"x86-64": "x86-64 lock cmpxchg", "aarch64": "aarch64 ldaxr/stlxr"}[arch] \
            + " (instruction page)"
        at = {op: addr + off for op, off in offsets.items()}
        word, nothing = ctypes.PYFUNCTYPE(_i64), ctypes.PYFUNCTYPE(None)  # PY: keep the GIL, like PyDLL
        self.load_p, self.store_p, self.fence = word(at["load"]), nothing(at["store"]), nothing(at["fence"])
        self.exchange_p, self.compare_exchange_p = word(at["exchange"]), word(at["cas"])
        self.fetch_add_p, self.fetch_or_p, self.fetch_and_p = word(at["fetch_add"]), word(at["fetch_or"]), \
            word(at["fetch_and"])
        self.load_raw, self.store_raw, self.exchange_raw = self.load_p, self.store_p, self.exchange_p
        self.fetch_add_raw, self.fetch_or_raw, self.fetch_and_raw = self.fetch_add_p, self.fetch_or_p, \
            self.fetch_and_p
        one, two = ctypes.PYFUNCTYPE(_i64, _vp, _i64), ctypes.PYFUNCTYPE(_i64, _vp, _i64, _i64)
        self.load = ctypes.PYFUNCTYPE(_i64, _vp)(at["load"])
        self.store = ctypes.PYFUNCTYPE(None, _vp, _i64)(at["store"])
        self.exchange, self.compare_exchange = one(at["exchange"]), two(at["cas"])
        self.fetch_add, self.fetch_or, self.fetch_and = one(at["fetch_add"]), one(at["fetch_or"]), \
            one(at["fetch_and"])


def build(machine=None):
    """Map, fill, protect and check the page for this machine; returns a Page.
    Raises PageRefused (with the reason) when the host will not have it."""
    machine = machine or os.uname().machine             # platform.machine(), without importing platform
    code, pad = code_for(machine)
    if not (sys.platform.startswith("linux") or (sys.platform == "darwin" and machine in ("x86_64", "AMD64"))):
        raise PageRefused(f"no instruction page on {sys.platform} {machine}")
    try:
        return _map_and_check(machine, *layout(code, pad))
    except (OSError, AttributeError, ValueError, TypeError) as e:   # no mmap in libc, no MAP_ANONYMOUS, ...
        raise PageRefused(f"cannot map the page here ({type(e).__name__}: {e})") from None


def _map_and_check(machine, image, offsets):
    libc = ctypes.CDLL(None, use_errno=True)
    mmap_, mprotect, munmap = libc.mmap, libc.mprotect, libc.munmap
    mmap_.restype = _vp
    mmap_.argtypes = [_vp, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    mprotect.argtypes, munmap.argtypes = [_vp, ctypes.c_size_t, ctypes.c_int], [_vp, ctypes.c_size_t]
    size = mmap.PAGESIZE
    addr = mmap_(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if addr in (None, _vp(-1).value):
        raise PageRefused(f"mmap of one page failed (errno {ctypes.get_errno()})")
    ctypes.memmove(addr, image, len(image))
    if mprotect(addr, size, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        err = ctypes.get_errno()
        munmap(addr, size)
        raise PageRefused(f"the host refused an executable page (mprotect errno {err}: "
                          f"SELinux execmem or a W^X policy)")
    page = Page(addr, offsets, machine)
    wrong = check(page)
    if wrong:
        munmap(addr, size)
        raise PageRefused(f"the instruction page gave a wrong result ({wrong})")
    return page


def check(ops):
    """Run every operation of `ops` (a Page, or atomics' libatomic twin) on a
    private word; returns '' when all are right, else what went wrong."""
    word = _i64(0)
    p = _vp(ctypes.addressof(word))
    big, wide = 1 << 40, _i64
    steps = [   # (what, call, expected result or None, expected word after)
        ("store narrow negative", lambda: ops.store_p(p, -3), None, -3),
        ("load", lambda: ops.load_p(p), -3, -3),
        ("store wide", lambda: ops.store_p(p, wide(-big)), None, -big),
        ("exchange", lambda: ops.exchange_p(p, 7), -big, 7),
        ("cas that fails", lambda: ops.compare_exchange_p(p, 5, 9), 7, 7),
        ("cas that succeeds", lambda: ops.compare_exchange_p(p, 7, wide(big)), 7, big),
        ("cas, wide expected", lambda: ops.compare_exchange_p(p, wide(big), -1), big, -1),
        ("fetch_add", lambda: ops.fetch_add_p(p, wide(big + 1)), -1, big),
        ("fetch_add negative", lambda: ops.fetch_add_p(p, wide(-2 * big)), big, -big),
        ("fetch_or", lambda: ops.fetch_or_p(p, wide(1 << 62)), -big, -big | 1 << 62),
        ("fetch_and", lambda: ops.fetch_and_p(p, wide(big | 1 << 62)), -big | 1 << 62, big | 1 << 62),
        ("fetch_or narrow", lambda: ops.fetch_or_p(p, 1), big | 1 << 62, big | 1 << 62 | 1),
        ("fetch_and negative", lambda: ops.fetch_and_p(p, -2), big | 1 << 62 | 1, big | 1 << 62),
        ("plain store", lambda: ops.store(ctypes.addressof(word), -(1 << 63)), None, -(1 << 63)),
        ("plain load", lambda: ops.load(ctypes.addressof(word)), -(1 << 63), -(1 << 63)),
        ("plain fetch_add", lambda: ops.fetch_add(ctypes.addressof(word), (1 << 63) - 1), -(1 << 63), -1),
        ("plain cas", lambda: ops.compare_exchange(ctypes.addressof(word), -1, big), -1, big),
        ("plain exchange", lambda: ops.exchange(ctypes.addressof(word), 5), big, 5),
        ("plain fetch_or", lambda: ops.fetch_or(ctypes.addressof(word), 1 << 33), 5, 5 | 1 << 33),
        ("plain fetch_and", lambda: ops.fetch_and(ctypes.addressof(word), 1 << 33), 5 | 1 << 33, 1 << 33),
        ("fence", lambda: ops.fence(), None, 1 << 33),
    ]
    for what, call, result, after in steps:
        got = call()
        if (result is not None and got != result) or word.value != after:
            return f"{what}: returned {got}, word {word.value}; expected {result}, word {after}"
    return ""
