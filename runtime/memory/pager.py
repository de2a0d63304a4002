"""The pager: LOAD, STORE, LOAD_BYTES, STORE_BYTES and RSM through page tables.

Every memory access of a thread names a *virtual* address, resolved in the
calling thread's address space (its thread-table entry says which):

    vaddr -> (page, offset) -> page-table entry (valid, write) -> page descriptor
          -> state: resident in frame f | demand-zero | in swap | in transit
          -> arena offset  frames + f * page_size + offset

Fast path.  The walk above, under the VM lock, costs microseconds; a LOAD must
cost about as much as a struct.unpack_from.  So each process keeps a TLB, a
dict  page -> (epoch tag, arena offset - page base, writable, the same in
words),  and an access that hits it costs a dict lookup, one read of the
address space's epoch word (is the tag still current?) and the access itself:
no lock, no atomic.  LOAD_BYTES/STORE_BYTES also remember runs of pages that
sit in consecutive frames (`runs`, tagged like TLB entries), so a large copy is
one memoryview slice per run, not one per page.

Words.  A word is read and written through a memoryview of the arena cast to
8-byte items: one 8-byte load or store (CPython packs an item with a
fixed-size memcpy).  Never struct.pack_into: it clears the target before it
writes the bytes, so a concurrent reader, or an RSM by another VP, can see or
be overwritten by a transient 0 (the RSM spin lock lost updates that way).
The view has the host's byte order; the contract's little-endian words hold
on every host vos runs on (x86-64, ARM64).

Slow path.  A miss, a stale tag, a misaligned word or a STORE through a
read-only entry goes to `MMU.fault` (faults.py): it raises the segmentation
and protection faults, takes the demand-zero and swap-in faults, and loads a
translation; the access function then tries again.  shootdown.py argues why
no thread can use a translation after its frame was given to another page.

Referenced and dirty bits.  A fault sets REF in the page descriptor when it
loads a translation (like the x86 accessed bit, on the page walk).  A clean
page gets a read-only TLB entry even when mapped "rw": its first STORE faults
once more, sets DIRTY and upgrades the entry, so DIRTY is exact and a clean
victim need not be written to swap.

Processes and state.  `_mmu` is this process's MMU: the TLB of the one thread
this process runs.  It is a cache, rebuilt lazily whenever the process's
context changes (a new VP, a new kernel), never meaningful across processes.
A process that cannot take the shootdown interrupt (a kernel booted outside
the main Python thread) runs with `caching` off: every access is done by the
slow path under the VM lock, correct and slow.  `recording()` uses the same
mode to record every page the thread references (for OPT, policies.py).
"""

import sys
from contextlib import contextmanager

from .. import atomics
from .. import checks
from .. import context as _context
from ..errors import KernelError, NoSuchAddressSpace
from ..racelog import RECORDS as _RECORDS
from ..sched.ops import LOAD as _LOAD, LOAD_BYTES as _LOAD_BYTES, STORE as _STORE, STORE_BYTES as _STORE_BYTES
from ..threads import O_AS, O_FAULTS
from . import faults


_mmu = None      # this process's MMU (a per-process cache; see the module doc)
_RETRY = faults.RETRY


def reset():
    """Forget this process's MMU (new VP, kernel shutdown)."""
    global _mmu
    _mmu = None


def _attach():
    global _mmu
    ctx = _context.current()
    vm = getattr(ctx.kernel, "vm", None)
    if vm is None:
        raise KernelError("this kernel has no virtual memory part")
    _mmu = MMU(vm, ctx)
    return _mmu


# --- the textbook calls: the fast paths -------------------------------------------
#
# Each validates a TLB entry and uses it inside the same function, with no call
# in between: the shootdown interrupt never acknowledges while one of these
# frames is on the stack (above the slow path), see shootdown_interrupt().

def LOAD(vaddr):
    """The signed 64-bit word at virtual address vaddr (8-byte aligned).
    SegmentationFault, AlignmentError; may wait for swap."""
    m = _mmu
    if m is None or m.ctx is not _context._current:
        m = _attach()
    try:                                     # (a try costs one NOP: outside the loop)
        while True:
            ent = m.tlb.get(vaddr >> m.shift)
            w = m.words
            if ent is not None and ent[0] == w[m.epoch_idx] and not vaddr & 7:
                return w[(vaddr >> 3) + ent[3]]
            if m.racelog is not None and not vaddr & 7:      # races=True: the logged path (below)
                r = race_access(m, vaddr, False, "load", None)
                if r is not MISS:
                    return r
            r = m.fault(vaddr, False, "load")
            if r is not _RETRY:
                return r
    except TypeError:
        checks.address("LOAD", vaddr)        # names a non-int address (`>>` failed); else as it was
        raise


def STORE(vaddr, value):
    """Write the signed 64-bit word at vaddr.  SegmentationFault,
    ProtectionFault, AlignmentError, OverflowError; may wait for swap.

    The word is written with one 8-byte store (a memoryview item assignment),
    never with struct.pack_into, which clears its target before writing the
    bytes: a lock released by STORE(lock, 0) would then briefly read 0 and
    overwrite another VP's RSM that landed in between."""
    m = _mmu
    if m is None or m.ctx is not _context._current:
        m = _attach()
    try:
        while True:
            ent = m.tlb.get(vaddr >> m.shift)
            w = m.words
            if ent is not None and ent[2] and ent[0] == w[m.epoch_idx] and not vaddr & 7:
                try:
                    w[(vaddr >> 3) + ent[3]] = value
                except (ValueError, TypeError):
                    raise _bad_word(value) from None
                return
            if m.racelog is not None and not vaddr & 7:
                if race_access(m, vaddr, True, "store", value) is not MISS:
                    return
            _check_word(value)
            r = m.fault(vaddr, True, "store", value)
            if r is not _RETRY:
                return
    except TypeError:
        checks.address("STORE", vaddr)       # see LOAD
        raise


def RSM(vaddr):
    """Read-and-set-memory: atomically set the word at vaddr to 1 and return
    its old value (a real atomic exchange on the word in the frame).  Errors
    as STORE."""
    m = _mmu
    if m is None or m.ctx is not _context._current:
        m = _attach()
    try:
        while True:
            ent = m.tlb.get(vaddr >> m.shift)
            if ent is not None and ent[2] and ent[0] == m.words[m.epoch_idx] and not vaddr & 7:
                return atomics.exchange(m.addr + vaddr + ent[1], 1)
            if m.racelog is not None and not vaddr & 7:
                r = race_access(m, vaddr, True, "rsm", None)
                if r is not MISS:
                    return r
            r = m.fault(vaddr, True, "rsm")
            if r is not _RETRY:
                return r
    except TypeError:
        checks.address("RSM", vaddr)         # see LOAD
        raise


def LOAD_BYTES(vaddr, n):
    """n bytes from virtual address vaddr (any alignment, may cross pages)."""
    m = _mmu
    if m is None or m.ctx is not _context._current:
        m = _attach()
    checks.address("LOAD_BYTES", vaddr)
    checks.integer("LOAD_BYTES", "an int byte count n >= 0", n, lo=0)
    if m.gate is not None and not m.gate.inside:     # a controlled run: the whole call is one step
        return m.gate.memory_bytes(m, LOAD_BYTES, vaddr, n, False)
    buf, tlb, runs, shift = m.buf, m.tlb, m.runs, m.shift
    words, eidx = m.words, m.epoch_idx
    ps, mask = m.page_size, m.page_size - 1
    pos, end = vaddr, vaddr + n
    done = []           # copied pieces
    todo = []           # validated, not yet copied: arena (start, stop)
    a = b = -1          # the arena run being extended
    p0 = d0 = t0 = -1   # the page run being learnt: first page, delta, tag
    while pos < end:
        page = pos >> shift
        r = runs.get(page)
        e = words[eidx]
        if r is not None and r[0] == e:          # a known run of contiguous frames
            if p0 >= 0:                          # (which ends the run being learnt)
                if page - 1 > p0:
                    _learn(runs, t0, p0, page - 1, d0, tlb)
                p0 = -1
            stop = (r[1] + 1) << shift
            if stop > end:
                stop = end
        else:
            ent = tlb.get(page)
            if ent is None or ent[0] != e:
                # A miss: copy what was validated before leaving this frame for the slow path.
                if a >= 0:
                    todo.append((a, b))
                    a = b = -1
                if todo:
                    done.append(b"".join([buf[x:y] for x, y in todo]))
                    todo = []
                if p0 >= 0 and page - 1 > p0:
                    _learn(runs, t0, p0, page - 1, d0, tlb)
                p0 = -1
                take = ps - (pos & mask)
                if take > end - pos:
                    take = end - pos
                got = m.fault(pos, False, "read", take)
                if got is not _RETRY:
                    done.append(got)
                    pos += take
                continue
            r = ent
            if r[1] != d0 or p0 < 0:
                if p0 >= 0 and page - 1 > p0:
                    _learn(runs, t0, p0, page - 1, d0, tlb)
                p0, d0, t0 = page, r[1], r[0]
            stop = (page + 1) << shift
            if stop > end:
                stop = end
            o = pos + r[1]
            if o != b:
                if a >= 0:
                    todo.append((a, b))
                a = b = o
            b += stop - pos
            pos = stop
            continue
        o = pos + r[2]
        if o != b:
            if a >= 0:
                todo.append((a, b))
            a = b = o
        b += stop - pos
        pos = stop
    if p0 >= 0 and (pos - 1) >> shift > p0:
        _learn(runs, t0, p0, (pos - 1) >> shift, d0, tlb)
    if a >= 0:
        if not done and not todo:
            return bytes(buf[a:b])
        todo.append((a, b))
    return b"".join(done + [buf[x:y] for x, y in todo])


def STORE_BYTES(vaddr, data):
    """Write the bytes of `data` (any bytes-like object) at vaddr, across pages."""
    m = _mmu
    if m is None or m.ctx is not _context._current:
        m = _attach()
    checks.address("STORE_BYTES", vaddr)
    try:
        src = memoryview(data).cast("B")
    except (TypeError, ValueError):
        raise checks.refused("STORE_BYTES", "bytes-like data (bytes, bytearray, a contiguous memoryview)",
                             data) from None
    if m.gate is not None and not m.gate.inside:     # a controlled run: the whole call is one step
        return m.gate.memory_bytes(m, STORE_BYTES, vaddr, data, True)
    buf, tlb, runs, shift = m.buf, m.tlb, m.runs, m.shift
    words, eidx = m.words, m.epoch_idx
    ps, mask = m.page_size, m.page_size - 1
    n = len(src)
    pos, end = vaddr, vaddr + n
    a = b = ia = -1     # validated run: arena [a, b) <- src[ia:]
    p0 = d0 = t0 = -1   # the page run being learnt: first page, delta, tag
    while pos < end:
        page = pos >> shift
        r = runs.get(page)
        e = words[eidx]
        if r is not None and r[0] == e and r[3]:
            if p0 >= 0:
                if page - 1 > p0:
                    _learn(runs, t0, p0, page - 1, d0, tlb)
                p0 = -1
            stop = (r[1] + 1) << shift
            if stop > end:
                stop = end
            o = pos + r[2]
        else:
            ent = tlb.get(page)
            if ent is None or not ent[2] or ent[0] != e:
                if a >= 0:  # write what was validated before leaving this frame
                    buf[a:b] = src[ia:ia + (b - a)]
                    a = b = -1
                if p0 >= 0 and page - 1 > p0:
                    _learn(runs, t0, p0, page - 1, d0, tlb)
                p0 = -1
                take = ps - (pos & mask)
                if take > end - pos:
                    take = end - pos
                i = pos - vaddr
                if m.fault(pos, True, "write", src[i:i + take]) is not _RETRY:
                    pos += take
                continue
            if ent[1] != d0 or p0 < 0:
                if p0 >= 0 and page - 1 > p0:
                    _learn(runs, t0, p0, page - 1, d0, tlb)
                p0, d0, t0 = page, ent[1], ent[0]
            stop = (page + 1) << shift
            if stop > end:
                stop = end
            o = pos + ent[1]
        if o != b:
            if a >= 0:
                buf[a:b] = src[ia:ia + (b - a)]
            a = b = o
            ia = pos - vaddr
        b += stop - pos
        pos = stop
    if p0 >= 0 and (pos - 1) >> shift > p0:
        _learn(runs, t0, p0, (pos - 1) >> shift, d0, tlb)
    if a >= 0:
        buf[a:b] = src[ia:ia + (b - a)]


def _learn(runs, epoch, first, last, delta, tlb):
    """Remember that pages first..last sit in consecutive frames (one delta),
    so the next LOAD_BYTES/STORE_BYTES over them copies one slice.  A run is a
    cache like a TLB entry: tagged with the epoch of the entries it was built
    from, used only while that epoch is current.  Called from inside an access
    function, so the shootdown interrupt never acknowledges in between."""
    writable = all(tlb[p][2] for p in range(first, last + 1))
    run = (epoch, last, delta, writable)
    for p in range(first, last + 1):
        runs[p] = run


# --- a free kernel with races=True: every access logged -------------------------------
#
# The fast paths above would skip the log, so such a kernel keeps its TLB
# empty and its translations in `rtlb` instead (faults._hit): every access
# misses and comes here (LOAD, STORE and RSM call it on their miss path;
# `fault` first thing, for the others).  It is an access function too (the
# shootdown interrupt never acknowledges while it is on the stack), and logs
# the access (racelog.py) with the word it names whatever address space
# reaches it.  rtlb: page -> (epoch, delta, writable, delta >> 3, word
# target of the page's first word, block id, page target).

MISS = faults.MISS


def race_access(m, vaddr, write, op, arg):
    """Log and do one access through `rtlb`; MISS when it holds no valid entry."""
    ent = m.rtlb.get(vaddr >> m.shift)
    if ent is None or ent[0] != m.words[m.epoch_idx] or (write and not ent[2]):
        return MISS
    off = vaddr & (m.page_size - 1)
    log, frame = m.racelog, sys._getframe(2)     # LOAD's caller (or a runtime frame: the log walks up)
    if op == "load" or op == "store":
        if op == "store":
            try:
                m.words[(vaddr >> 3) + ent[3]] = arg
            except (ValueError, TypeError):
                raise _bad_word(arg) from None
        # ThreadLog.memory, inlined (a call is a tenth of the cost): the site, then the
        # record -- unless this thread logged the same access (word, kind, site) since
        # its last synchronisation event: it says nothing new (FastTrack's same epoch)
        n = log.n
        if n < _RECORDS:
            code = frame.f_code
            hit = log.by_lasti.get(frame.f_lasti)
            if hit is not None and hit[1] is code:
                sid = hit[0]
            else:
                sid = log.logs.site(frame)
                log.by_lasti[frame.f_lasti] = (sid, code)
            w0 = (_LOAD if op == "load" else _STORE) | sid << 16    # < 2**33
            target = ent[4] + off
            key = target << 33 | w0
            if key not in log.seen:
                log.seen.add(key)
                q, i = log.q, log.at + 4 * n
                q[i] = w0
                q[i + 1] = target
                q[i + 2] = ent[5]
                q[i + 3] = vaddr
                log.n = n + 1
                q[log.count_idx] = n + 1
        return m.words[(vaddr >> 3) + ent[3]] if op == "load" else None
    if op == "rsm":
        old = atomics.exchange(m.addr + vaddr + ent[1], 1)
        log.rsm(ent[4] + off, vaddr, frame)
        return old
    o = vaddr + ent[1]
    if op == "read":
        log.memory(_LOAD_BYTES, ent[6], vaddr, ent[5], arg, frame)
        return bytes(m.buf[o:o + arg])
    log.memory(_STORE_BYTES, ent[6], vaddr, ent[5], len(arg), frame)
    m.buf[o:o + len(arg)] = arg
    return None


_ACCESS_CODES = frozenset(f.__code__ for f in (LOAD, STORE, RSM, LOAD_BYTES, STORE_BYTES, race_access))


def _check_word(value):
    if not isinstance(value, int) or not -(1 << 63) <= value < (1 << 63):
        raise _bad_word(value)


def _bad_word(value):
    if isinstance(value, int):
        return OverflowError(f"STORE needs a word that fits in 64 bits (-2**63 to 2**63 - 1), not {value}")
    return checks.refused("STORE", "an int word", value)


# --- the shootdown interrupt ---------------------------------------------------------

def shootdown_interrupt(signum, frame):
    """SIGUSR2 handler: acknowledge the current epoch if the interrupted code is
    at a safe point.  Not safe: some access function is on the stack *above* the
    slow path (it may hold a validated translation it has not used yet); then
    do nothing, the evictor asks again in a few milliseconds."""
    m = _mmu
    if m is None or m.ctx is not _context.current_or_none() or not m.caching:
        return
    f = frame
    while f is not None:
        code = f.f_code
        if code is _FAULT_CODE:
            break
        if code in _ACCESS_CODES:
            return
        f = f.f_back
    m.refresh_ack()


def refresh_own_ack():
    """The calling thread is at a safe point: acknowledge its current epoch."""
    m = _mmu
    if m is not None and m.ctx is _context.current_or_none():
        m.refresh_ack()


# --- the MMU: one per process --------------------------------------------------------

class MMU:
    """This process's translation state.  Private to one process."""

    def __init__(self, vm, ctx):
        self.ctx = ctx
        self.vm = vm
        self.tid = ctx.tid
        self.buf = vm.buf
        self.addr = vm.addr
        self.page_size = vm.geo.page_size
        self.shift = vm.geo.shift
        self.vpages = vm.geo.vpages
        self.tlb = {}
        self.rtlb = {}   # a free kernel with races=True: its translations (race_access), the TLB stays empty
        self.racelog = ctx.racelog if ctx.gate is None else None
        self.runs = {}  # page -> (epoch, last page, delta, all writable): runs of consecutive frames
        threads = vm.kernel.threads
        self.as_id = threads.get64(threads.off(ctx.tid, O_AS))
        try:
            self.as_slot = vm.spaces.slot(self.as_id)
        except NoSuchAddressSpace:
            self.as_slot = None  # deleted under us: every access is a segmentation fault
        self.epoch_off = vm.shootdown.epoch_off(self.as_slot or 0)
        self.words = vm.words
        self.epoch_idx = self.epoch_off >> 3
        self.pt = vm.o_pt + 8 * vm.geo.vpages * (self.as_slot or 0)
        self.gate = ctx.gate             # a controlled run's gateway (sched/gate.py), or None
        self.caching = vm.shootdown.can_interrupt and self.gate is None   # controlled: every access is a step
        self.online = False
        self.acked = None
        self.trace = None
        self._t_faults = threads.off(ctx.tid, O_FAULTS)

    # --- acknowledgements --------------------------------------------------------

    def refresh_ack(self):
        """At a safe point: drop stale entries and acknowledge the current epoch."""
        e = self.words[self.epoch_idx]
        if e != self.acked:
            self.tlb.clear()
            self.rtlb.clear()
            self.runs.clear()
            self.acked = e
            if self.online:
                self.vm.shootdown.ack(self.tid, e)

    def _go_offline(self):
        self.tlb.clear()
        self.rtlb.clear()
        self.runs.clear()
        if self.online:
            self.online = False
            self.vm.shootdown.offline(self.tid)

    # --- the slow path -----------------------------------------------------------------

    fault = faults.fault  # the slow path (faults.py); its frame is a safe point
    identity = faults.identity
    race_access = race_access

_FAULT_CODE = faults.fault.__code__


# --- recording a reference trace -----------------------------------------------------

@contextmanager
def recording():
    """Record every virtual page the calling thread references, in order:

        with recording() as trace:
            ...LOAD/STORE...
        policies.simulate(trace, frames=8, policy="opt")

    While recording, the thread caches no translation (each access takes the
    slow path under the VM lock), so the trace is complete: slow, for study."""
    m = _mmu
    if m is None or m.ctx is not _context._current:
        m = _attach()
    trace = []
    was = m.caching
    m._go_offline()
    m.caching = False
    m.trace = trace
    try:
        yield trace
    finally:
        m.trace = None
        m.caching = was
        m.acked = None
