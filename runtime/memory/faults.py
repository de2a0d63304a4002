"""Page faults: the pager's slow path, in the faulting thread.

A LOAD or STORE whose translation is not in the calling process's TLB (or is
stale, or read-only for a write) lands here, in `fault`, bound as the MMU's
`fault` method.  It walks the page tables under the VM lock and then, in the
faulting thread itself:

    segmentation  no mapping: SegmentationFault(tid, address, page)
    protection    STORE or RSM to an "r" page: ProtectionFault(tid, address, page)
    resident      note the reference (REF, and DIRTY for a write) and load the
                  translation into the TLB: a TLB fill, not counted as a fault
    demand-zero   first touch: a frame, filled with zeros
    swap-in       the page is in swap: a frame, then read it back (WAITING on swap)
    in transit    another thread moves the page: sleep until it is done

A fault that needs a frame and finds none evicts a victim itself: shootdown
(shootdown.py), write to swap if dirty, then fill (frames.py draws the steps).
The VM lock is never held across a sleep or disk I/O.  Demand-zero, swap-in,
segmentation and protection faults are counted in the address space's
statistics and in the thread entry's `faults` field (written by the thread).

`self` below is the calling process's MMU (pager.py); every function runs in
the faulting thread.  With caching off (see pager.py) the access itself is
done here, under the VM lock, by `do_access`.
"""

import struct
import sys

from .. import atomics, checks
from ..sched import ops
from ..errors import AlignmentError, ProtectionFault, SegmentationFault
from ..threads import WAIT_SWAP
from .frames import EVICT, FREE_FRAME
from .tables import (A_FILLS, A_ID, A_PROT, A_SEGV, A_SREADS, A_SWAPIN, A_SWAPPED, A_ZERO, AS_ENTRY, B_FIRST,
                     B_ID, BLOCK_ENTRY, D_BLOCK, D_OWNER, D_WORD, DESC, DIRTY, EVICTING, F_MOVER, F_STAGE, F_USED, H_SWAP_READS, LOADING, ON_SWAP,
                     PTE_WRITE, REF, RESIDENT, STAGE_FILL, STATE_MASK, SWAPPED, ZERO)

RETRY = object()  # fault() loaded a translation: the access function tries again
MISS = object()   # race_access (pager.py) found no valid translation: the slow path resolves it
_CALLS = {"load": "LOAD", "store": "STORE", "rsm": "RSM", "read": "LOAD_BYTES", "write": "STORE_BYTES"}
_u32 = struct.Struct("<I")


def fault(self, vaddr, write, op, arg=None):
    """Resolve vaddr for a read or a write.  With caching on, loads the
    translation into the TLB and returns RETRY; with caching off, does the
    access `op` under the VM lock and returns its result.  Raises the
    faults.  The caller holds no validated translation (a safe point)."""
    if not isinstance(vaddr, int):
        checks.address(_CALLS[op], vaddr)
    if op in ("load", "store", "rsm") and vaddr & 7:
        raise AlignmentError(f"thread {self.tid}: {op.upper()} at address {vaddr:#x} (page "
                             f"{vaddr >> self.shift}) is not 8-byte aligned", self.tid, vaddr, vaddr >> self.shift)
    gate = self.gate
    if gate is not None and not gate.inside:          # a controlled run: the access is a step
        return gate.memory(self, vaddr, write, op, arg)
    if self.racelog is not None:                      # races=True, running freely: log it (pager.py)
        r = self.race_access(vaddr, write, op, arg)
        if r is not MISS:
            return r
    vpage = vaddr >> self.shift
    if self.caching:
        self.refresh_ack()
    vm = self.vm
    frames = vm.frames
    while True:
        vm.lock()
        try:
            action = _walk(self, vaddr, vpage, write, op, arg)
        finally:
            vm.unlock()
        kind = action[0]
        if kind == "done":
            return action[1]
        if kind == "wait_page":
            frames.wait_page(action[1], action[2])
        elif kind == "wait_frame":
            frames.wait_event(action[1], action[2])
        elif kind == "evict":
            _, desc, frame, epochs, from_swap = action
            vm.shootdown.wait(epochs, desc, self.refresh_ack if self.caching else _nothing)
            written = frames.write_victim(frame, self.ctx)
            vm.lock()
            try:
                frames.finish_eviction(frame, written)
            finally:
                vm.unlock()
            _fill(self, desc, frame, from_swap)
        elif kind == "fill":
            _fill(self, action[1], action[2], True)
        elif kind == "segv":
            _count(self, A_SEGV)
            raise SegmentationFault(f"thread {self.tid}: segmentation fault at address {vaddr:#x} "
                                    f"(page {vpage}): {action[1]}", self.tid, vaddr, vpage)
        elif kind == "prot":
            _count(self, A_PROT)
            raise ProtectionFault(f"thread {self.tid}: protection fault at address {vaddr:#x} (page {vpage}): "
                                  f"{op.upper()} to a page mapped read-only in address space {self.as_id}",
                                  self.tid, vaddr, vpage)

def identity(self, vaddr):
    """(block slot, block id, byte offset in the block) of the memory vaddr
    names in this thread's address space, or None when nothing is mapped
    there.  Names the same word whatever address space reaches it (the
    controlled run's targets, the race detector's shadow words).  Lock-free
    reads: the caller runs alone (a controlled run) or accepts a hint."""
    vm = self.vm
    vpage = vaddr >> self.shift
    if self.as_slot is None or not 0 <= vpage < self.vpages:
        return None
    pte = vm.get(self.pt + 8 * vpage)
    if not pte:
        return None
    desc = (pte >> 2) - 1
    bslot = _u32.unpack_from(self.buf, vm.o_descs + desc * DESC + D_BLOCK)[0] - 1
    if bslot < 0:
        return None
    bo = vm.o_blocks + bslot * BLOCK_ENTRY
    first, bid = vm.get(bo + B_FIRST), vm.get(bo + B_ID)
    return bslot, bid, (desc - first) * self.page_size + (vaddr & (self.page_size - 1))


def _walk(self, vaddr, vpage, write, op, arg):
    """(VM lock) One look at the page tables; returns what to do next."""
    vm = self.vm
    if self.as_slot is None or vm.get(vm.o_as + self.as_slot * AS_ENTRY + A_ID) != self.as_id:
        return ("segv", f"address space {self.as_id} no longer exists")
    if not 0 <= vpage < self.vpages:
        return ("segv", f"outside the address space (pages 0..{self.vpages - 1})")
    pte = vm.get(self.pt + 8 * vpage)
    if not pte:
        return ("segv", f"page {vpage} is not mapped in address space {self.as_id}")
    if write and not pte & PTE_WRITE:
        return ("prot",)
    desc = (pte >> 2) - 1
    do = vm.o_descs + desc * DESC + D_WORD
    word = vm.get(do)
    state = word & STATE_MASK
    if state == RESIDENT:
        return ("done", _hit(self, vaddr, vpage, pte, do, word, write, op, arg))
    if state in (EVICTING, LOADING):
        return ("wait_page", desc, word)
    frames = vm.frames
    kind, frame, epochs = frames.obtain(self.as_slot, desc, self.tid)
    if kind == FREE_FRAME and state == ZERO:
        o = frames.at(frame)
        self.buf[o:o + self.page_size] = frames.zero_page
        vm.put(do, RESIDENT | (frame << 32))
        _fault_counted(self, A_ZERO)
        return ("done", _hit(self, vaddr, vpage, pte, do, vm.get(do), write, op, arg))
    if kind not in (FREE_FRAME, EVICT):
        return ("wait_frame", frames.frame_event(), desc)
    if state == SWAPPED:
        owner = _u32.unpack_from(self.buf, vm.o_descs + desc * DESC + D_OWNER)[0]
        if owner:
            vm.add(vm.o_as + (owner - 1) * AS_ENTRY + A_SWAPPED, -1)
    vm.put(do, (word & ON_SWAP) | LOADING)
    if kind == FREE_FRAME:
        e = frames.entry(frame)
        vm.put(e + F_MOVER, self.tid + 1)
        vm.put(e + F_STAGE, STAGE_FILL)
        return ("fill", desc, frame)
    return ("evict", desc, frame, epochs, state == SWAPPED)

def _hit(self, vaddr, vpage, pte, do, word, write, op, arg):
    """(VM lock) The page is resident: note the reference, then load the
    translation (caching) or do the access (not caching)."""
    vm = self.vm
    frame = word >> 32
    new = word | REF | (DIRTY if write else 0)
    if new != word:
        vm.put(do, new)
    vm.put(vm.frames.entry(frame) + F_USED, vm.next_seq())
    base = vm.frames.at(frame)
    if self.trace is not None:
        self.trace.append(vpage)
    if not self.caching:
        if self.racelog is not None:
            _log_slow(self, vaddr, op, arg)
        return do_access(self, op, base + (vaddr & (self.page_size - 1)), arg)
    epoch = self.words[self.epoch_idx]
    if not self.online:
        self.online = True
        self.acked = epoch
        vm.shootdown.online(self.tid, self.as_slot, epoch)
    elif epoch != self.acked:
        self.tlb.clear()
        self.rtlb.clear()
        self.runs.clear()
        self.acked = epoch
        vm.shootdown.ack(self.tid, epoch)
    delta = base - (vpage << self.shift)
    writable = bool(pte & PTE_WRITE and new & DIRTY)
    if self.racelog is not None:                      # every access must reach the race path (pager.py)
        bslot, bid, boff = self.identity(vaddr)
        page_off = boff - (vaddr & (self.page_size - 1))
        self.rtlb[vpage] = (epoch, delta, writable, delta >> 3, ops.word_target(bslot, page_off), bid,
                            ops.page_target(bslot, page_off))
    else:
        self.tlb[vpage] = (epoch, delta, writable, delta >> 3)
    vm.add(vm.o_as + self.as_slot * AS_ENTRY + A_FILLS, 1)
    return RETRY

def _fill(self, desc, frame, from_swap):
    """(no lock) Steps 5 and 6: bring the page into its reserved frame."""
    vm = self.vm
    frames = vm.frames
    if from_swap:
        with self.ctx.waiting(WAIT_SWAP, desc):      # disk I/O: give the processor up
            vm.swap.read(desc, frames.view(frame))
    else:
        o = frames.at(frame)
        self.buf[o:o + self.page_size] = frames.zero_page
    vm.lock()
    try:
        do = vm.o_descs + desc * DESC + D_WORD
        vm.put(do, (vm.get(do) & ON_SWAP) | RESIDENT | (frame << 32))
        frames.end_move(frame)
        if from_swap:
            vm.add(vm.base + H_SWAP_READS, 1)
            vm.add(vm.o_as + self.as_slot * AS_ENTRY + A_SREADS, 1)
            _fault_counted(self, A_SWAPIN)
        else:
            _fault_counted(self, A_ZERO)
    finally:
        vm.unlock()
    frames.wake(desc)
    frames.wake_all()

def _fault_counted(self, field):
    """(VM lock) One more page fault of this kind, for the address space and the thread."""
    self.vm.add(self.vm.o_as + self.as_slot * AS_ENTRY + field, 1)
    t = self._t_faults
    self.vm.kernel.threads.put64(t, self.vm.kernel.threads.get64(t) + 1)

def _count(self, field):
    if self.as_slot is not None:
        atomics.fetch_add(self.addr + self.vm.o_as + self.as_slot * AS_ENTRY + field, 1)
    t = self._t_faults
    self.vm.kernel.threads.put64(t, self.vm.kernel.threads.get64(t) + 1)


def _nothing():
    pass


def _log_slow(m, vaddr, op, arg):
    """(VM lock, caching off) Log an access the slow path does itself."""
    bslot, bid, boff = m.identity(vaddr)
    frame = sys._getframe(3)
    code = {"load": ops.LOAD, "store": ops.STORE, "rsm": ops.RSM, "read": ops.LOAD_BYTES,
            "write": ops.STORE_BYTES}[op]
    if code == ops.RSM:
        m.racelog.rsm(ops.word_target(bslot, boff), vaddr, frame)
    elif op in ("load", "store"):
        m.racelog.memory(code, ops.word_target(bslot, boff), vaddr, bid, 8, frame)
    else:
        page = ops.page_target(bslot, boff - (vaddr & (m.page_size - 1)))
        m.racelog.memory(code, page, vaddr, bid, arg if op == "read" else len(arg), frame)


def do_access(m, op, off, arg):
    """(VM lock) An access done by the slow path itself (caching off)."""
    buf = m.buf
    if op == "load":
        return m.words[off >> 3]
    if op == "store":
        m.words[off >> 3] = arg
        return None
    if op == "rsm":
        return atomics.exchange(m.addr + off, 1)
    if op == "read":
        return bytes(buf[off:off + arg])
    if op == "write":
        buf[off:off + len(arg)] = arg
        return None
    raise AssertionError(op)
