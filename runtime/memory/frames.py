"""Physical memory: the frames, who holds them, and how a page leaves one.

A fault that needs a frame asks `obtain(as_slot, desc)` under the VM lock and
gets one of three answers:

    FREE   a frame that held nothing; it is now reserved for the page
    EVICT  a frame whose page (the *victim*, chosen by the policy) is now
           EVICTING; the frame is reserved for the faulting page
    WAIT   every candidate is in transit: sleep on the frame event, try again

Quotas decide where victims come from.  An address space at its resident
limit may only evict its own frames (it pages against itself, so one runaway
thread cannot take every frame from the others: the lecture's denial of
service); otherwise the policy chooses among every resident page.

Eviction is done by the faulting thread itself, in steps, never holding the VM
lock across a sleep (faults.py is the whole fault):

    1. (lock)   victim -> EVICTING, frame reserved, epochs of every address space
                mapping the victim's block bumped                  stage EVICT
    2.          shootdown: wait until no thread can still use a cached
                translation of the victim (shootdown.py)
    3.          dirty victim: write the frame to its swap slot
    4. (lock)   victim -> SWAPPED (or back to ZERO: a clean page never written)
                                                                     stage FILL
    5.          fill the frame: zeros (demand-zero) or the page's swap slot
    6. (lock)   faulting page -> RESIDENT; mover cleared; waiters woken

`mover` and `stage` in the frame entry say which thread is between which
steps.  If that thread dies (DESTROY_THREAD is a SIGKILL), `repair()` rolls the
frame back: in stage EVICT the victim's data is still in the frame, so the
victim simply becomes RESIDENT again; in stage FILL the frame is freed and the
faulting page goes back to where it was (swap or demand-zero).
"""

import struct

from .. import atomics
from ..context import current
from ..errors import OutOfMemory
from ..threads import O_PID, O_TID, WAIT_SWAP, pid_alive
from .tables import (A_EVICTED, A_ID, A_RES_LIMIT, A_RESIDENT, A_SWAPPED, A_SWRITES, AS_ENTRY, D_OWNER, D_WORD, DESC,
                     DIRTY, EVICTING, F_LOADED, F_MOVER, F_OWNER, F_PAGE, F_STAGE, F_USED, F_VICTIM,
                     FRAME_ENTRY, H_EVICTIONS, H_FRAME_EVENT, H_FREE, H_REPAIRS, H_SLEEPERS, H_SWAP_WRITES, ON_SWAP, REF,
                     RESIDENT, STAGE_EVICT, STAGE_FILL, STATE_MASK, SWAPPED, ZERO)

FREE_FRAME, EVICT, WAIT = "free", "evict", "wait"
_i64 = struct.Struct("<q")
_u32 = struct.Struct("<I")


class Frames:
    """Frame supply and eviction.  Methods marked (lock) need the VM lock."""

    def __init__(self, vm):
        self.vm = vm
        self.buf = vm.buf
        self.ps = vm.geo.page_size
        self.zero_page = bytes(self.ps)

    # --- addresses --------------------------------------------------------------

    def entry(self, frame):
        return self.vm.o_frame_table + frame * FRAME_ENTRY

    def at(self, frame):
        """Arena offset of the frame's first byte."""
        return self.vm.o_frames + frame * self.ps

    def view(self, frame):
        o = self.at(frame)
        return self.buf[o:o + self.ps]

    def desc_word_off(self, desc):
        return self.vm.o_descs + desc * DESC + D_WORD

    # --- obtaining a frame (lock) -------------------------------------------------

    def obtain(self, as_slot, desc, tid):
        """(lock) A frame for page `desc` faulted by address-space slot as_slot.
        Returns (FREE_FRAME, frame, 0), (EVICT, frame, epochs) or (WAIT, None, 0).
        Raises OutOfMemory when the page can never get a frame."""
        vm = self.vm
        aso = vm.o_as + as_slot * AS_ENTRY
        limit = vm.get(aso + A_RES_LIMIT)
        at_limit = limit and vm.get(aso + A_RESIDENT) >= limit
        if not at_limit and vm.get(vm.base + H_FREE) > 0:
            frame = self._free_frame()
            self._assign(frame, desc, as_slot)
            return FREE_FRAME, frame, 0
        if not vm.swap.enabled:
            raise OutOfMemory(
                f"address space {vm.get(aso + A_ID)} is at its resident limit of {limit} frames and there is no swap"
                if at_limit else f"all {vm.geo.frames} frames are in use and there is no swap")
        candidates = self.candidates(as_slot if at_limit else None)
        if not candidates:
            if at_limit and vm.get(aso + A_RESIDENT) == 0:
                raise OutOfMemory(f"address space {vm.get(aso + A_ID)} has a resident limit of {limit} frames")
            return WAIT, None, 0
        frame, sampled = vm.policy.pick(vm, candidates)
        epochs = self._start_eviction(frame, desc, as_slot, tid)
        if sampled:
            vm.shootdown.bump(sampled & ~vm.block_mask_of(vm.get(self.entry(frame) + F_VICTIM)))
        return EVICT, frame, epochs

    def column(self, field):
        """(lock) One field of every frame entry, as a list (one strided copy)."""
        vm = self.vm
        w0 = (vm.o_frame_table + field) >> 3
        return vm.words[w0:w0 + vm.geo.frames * (FRAME_ENTRY // 8):FRAME_ENTRY // 8].tolist()

    def candidates(self, as_slot=None):
        """(lock) [(frame, desc)] of every evictable frame (a page in it, nobody
        moving it), of one address-space slot's frames if as_slot is given.
        A frame with a page and no mover holds a RESIDENT page (an invariant
        check_invariants verifies), so no descriptor need be read here."""
        pages, movers = self.column(F_PAGE), self.column(F_MOVER)
        if as_slot is None:
            return [(f, page - 1) for f, (page, mover) in enumerate(zip(pages, movers)) if page and not mover]
        owners = self.column(F_OWNER)
        want = as_slot + 1
        return [(f, page - 1) for f, (page, mover, owner) in enumerate(zip(pages, movers, owners))
                if page and not mover and owner == want]

    def _free_frame(self):
        vm = self.vm
        n = vm.geo.frames
        frame = bytes(self.buf[vm.o_frame_map:vm.o_frame_map + n]).find(0)
        if frame < 0:
            raise AssertionError("free-frame count and frame map disagree")
        return frame

    def _assign(self, frame, desc, as_slot):
        """(lock) Frame becomes `desc`'s, charged to as_slot."""
        vm = self.vm
        e = self.entry(frame)
        seq = vm.next_seq()
        vm.put(e + F_PAGE, desc + 1)
        vm.put(e + F_OWNER, as_slot + 1)
        vm.put(e + F_LOADED, seq)
        vm.put(e + F_USED, seq)
        self.buf[vm.o_frame_map + frame] = 1
        vm.add(vm.base + H_FREE, -1)
        vm.add(vm.o_as + as_slot * AS_ENTRY + A_RESIDENT, 1)

    def _start_eviction(self, frame, desc, as_slot, tid):
        """(lock) Step 1: the victim in `frame` becomes EVICTING, the frame is
        reserved for `desc`.  Returns {as_slot: epoch} the shootdown must reach."""
        vm = self.vm
        e = self.entry(frame)
        victim = vm.get(e + F_PAGE) - 1
        old_owner = vm.get(e + F_OWNER)
        vo = self.desc_word_off(victim)
        vm.put(vo, (vm.get(vo) & ~STATE_MASK) | EVICTING)
        if old_owner:
            oo = vm.o_as + (old_owner - 1) * AS_ENTRY
            vm.add(oo + A_RESIDENT, -1)
            vm.add(oo + A_EVICTED, 1)
        _u32.pack_into(self.buf, vm.o_descs + victim * DESC + D_OWNER, old_owner)
        seq = vm.next_seq()
        vm.put(e + F_PAGE, desc + 1)
        vm.put(e + F_OWNER, as_slot + 1)
        vm.put(e + F_LOADED, seq)
        vm.put(e + F_USED, seq)
        vm.put(e + F_MOVER, tid + 1)
        vm.put(e + F_STAGE, STAGE_EVICT)
        vm.put(e + F_VICTIM, victim)
        vm.add(vm.o_as + as_slot * AS_ENTRY + A_RESIDENT, 1)
        vm.add(vm.base + H_EVICTIONS, 1)
        return vm.shootdown.bump(vm.block_mask_of(victim))

    # --- the rest of an eviction --------------------------------------------------

    def write_victim(self, frame, ctx):
        """Step 3 (no lock): write the victim to swap if it is dirty, WAITING on
        swap meanwhile (disk I/O: the processor goes to someone else).
        Returns True if it was written."""
        vm = self.vm
        victim = vm.get(self.entry(frame) + F_VICTIM)
        word = vm.get(self.desc_word_off(victim))
        if not word & DIRTY:
            return False  # its copy in swap is current, or it was never written (all zeros)
        with ctx.waiting(WAIT_SWAP, victim):
            vm.swap.write(victim, self.view(frame))
        return True

    def finish_eviction(self, frame, written):
        """Step 4 (lock): the victim leaves the frame; stage FILL."""
        vm = self.vm
        e = self.entry(frame)
        victim = vm.get(e + F_VICTIM)
        vo = self.desc_word_off(victim)
        word = vm.get(vo)
        owner = _u32.unpack_from(self.buf, vm.o_descs + victim * DESC + D_OWNER)[0]
        if written or word & ON_SWAP:
            vm.put(vo, (word & ~(STATE_MASK | REF | DIRTY | 0xFFFFFFFF00000000)) | ON_SWAP | SWAPPED)
            if owner:
                vm.add(vm.o_as + (owner - 1) * AS_ENTRY + A_SWAPPED, 1)
        else:  # never written and never on swap: it is still all zeros
            vm.put(vo, ZERO)
            _u32.pack_into(self.buf, vm.o_descs + victim * DESC + D_OWNER, 0)
        if written:
            vm.add(vm.base + H_SWAP_WRITES, 1)
            if owner:
                vm.add(vm.o_as + (owner - 1) * AS_ENTRY + A_SWRITES, 1)
        vm.put(e + F_STAGE, STAGE_FILL)
        self.wake(victim)

    def end_move(self, frame):
        """(lock) Step 6 bookkeeping: nobody moves pages through the frame any more."""
        e = self.entry(frame)
        self.vm.put(e + F_MOVER, 0)
        self.vm.put(e + F_STAGE, 0)

    def release(self, frame):
        """(lock) The frame holds nothing any more (FREE_BLOCK, repair)."""
        vm = self.vm
        e = self.entry(frame)
        owner = vm.get(e + F_OWNER)
        if owner:
            vm.add(vm.o_as + (owner - 1) * AS_ENTRY + A_RESIDENT, -1)
        for f in (F_PAGE, F_OWNER, F_MOVER, F_STAGE, F_VICTIM):
            vm.put(e + f, 0)
        self.buf[vm.o_frame_map + frame] = 0
        vm.add(vm.base + H_FREE, 1)
        self.wake_all()

    # --- waiting for a page or a frame ----------------------------------------------

    # No lost wake-up, and no futex_wake syscall when nobody sleeps: a sleeper
    # counts itself in `sleepers` (an atomic RMW) before it sleeps on a word; a
    # waker changes the word first (under the VM lock, which it then releases
    # with an atomic RMW; or with an RMW on the frame event) and reads
    # `sleepers` after.  Both orders are sequentially consistent, so either the
    # waker sees the sleeper, or the sleeper's futex sees the changed word.

    def wake(self, desc):
        """(after the page's word changed) Wake the threads sleeping on it."""
        vm = self.vm
        # An RMW, not a plain read: the page word was just written with a plain
        # store, and only a full barrier keeps this read from passing it.
        if atomics.fetch_add(vm.addr + vm.base + H_SLEEPERS, 0):
            atomics.futex_wake(vm.addr + self.desc_word_off(desc), 1 << 30)

    def frame_event(self):
        return atomics.load(self.vm.addr + self.vm.base + H_FRAME_EVENT)

    def wake_all(self):
        """A frame freed or a transit ended: wake threads waiting for either."""
        vm = self.vm
        a = vm.addr + vm.base + H_FRAME_EVENT
        atomics.fetch_add(a, 1)
        if atomics.load(vm.addr + vm.base + H_SLEEPERS):
            atomics.futex_wake(a, 1 << 30)

    def wait_page(self, desc, word):
        """(no lock) Sleep, WAITING on swap for page `desc`, while its word is still `word`."""
        self._wait(self.vm.addr + self.desc_word_off(desc), word, desc)

    def wait_event(self, event, desc):
        """(no lock) Sleep until a frame frees or a transit ends (the event moves past `event`)."""
        self._wait(self.vm.addr + self.vm.base + H_FRAME_EVENT, event, desc)

    def _wait(self, addr, expected, desc):
        ctx = current()
        sleepers = self.vm.addr + self.vm.base + H_SLEEPERS
        with ctx.waiting(WAIT_SWAP, desc):
            atomics.fetch_add(sleepers, 1)
            try:
                atomics.futex_wait(addr, expected & 0xFFFFFFFF, 0.05)
            finally:
                atomics.fetch_add(sleepers, -1)
        ctx.check_kernel()
        self.repair_dead_movers()

    # --- a mover died -----------------------------------------------------------------

    def repair_dead_movers(self):
        """(no lock) Lock-free scan; takes the VM lock only if some mover is dead."""
        vm = self.vm
        for frame in range(vm.geo.frames):
            mover = vm.get(self.entry(frame) + F_MOVER)
            if mover and not self.mover_alive(mover - 1):
                vm.lock()
                try:
                    self.repair()
                finally:
                    vm.unlock()
                return

    def mover_alive(self, tid):
        """Is thread tid's process still there?  Judged by its process, never by
        its state word alone: a mover that ends for any reason (EXIT_THREAD is
        impossible mid-fault; an exception or a kill ends the process) leaves
        the frame to repair(), and a live mover must never be repaired under it."""
        threads = self.vm.kernel.threads
        o = threads.slot_off(tid % threads.n)
        if threads.get64(o + O_TID) != tid:
            return False  # its slot was freed and reused: it is long gone
        pid = threads.get64(o + O_PID)
        return pid == 0 or pid_alive(pid)

    def repair(self):
        """(lock) Roll back every move whose mover is dead (see the module doc)."""
        vm = self.vm
        for frame in range(vm.geo.frames):
            e = self.entry(frame)
            mover = vm.get(e + F_MOVER)
            if not mover or self.mover_alive(mover - 1):
                continue
            vm.add(vm.base + H_REPAIRS, 1)
            page = vm.get(e + F_PAGE) - 1
            po = self.desc_word_off(page)
            pword = vm.get(po)
            back = (pword & ON_SWAP) | (SWAPPED if pword & ON_SWAP else ZERO)
            if vm.get(e + F_STAGE) == STAGE_EVICT:
                victim = vm.get(e + F_VICTIM)
                vo = self.desc_word_off(victim)
                vm.put(vo, (vm.get(vo) & ~STATE_MASK) | RESIDENT | DIRTY | (frame << 32))
                vm.put(e + F_PAGE, victim + 1)
                vm.put(po, back)
                self.end_move(frame)
                self.wake(victim)
            else:
                vm.put(po, back)
                self.release(frame)
            if back & STATE_MASK == SWAPPED:
                owner = _u32.unpack_from(self.buf, vm.o_descs + page * DESC + D_OWNER)[0]
                if owner:
                    vm.add(vm.o_as + (owner - 1) * AS_ENTRY + A_SWAPPED, 1)
            self.wake(page)
        self.wake_all()

    # --- invariants -----------------------------------------------------------------------

    def check_invariants(self):
        """(lock) Frames, descriptors and counters agree."""
        vm = self.vm
        free = 0
        resident = {}
        for frame in range(vm.geo.frames):
            e = self.entry(frame)
            page = vm.get(e + F_PAGE)
            assert self.buf[vm.o_frame_map + frame] == (1 if page else 0), f"frame map wrong at {frame}"
            if not page:
                free += 1
                continue
            owner = vm.get(e + F_OWNER)
            if owner:
                resident[owner - 1] = resident.get(owner - 1, 0) + 1
            if vm.get(e + F_MOVER):
                continue
            word = vm.get(self.desc_word_off(page - 1))
            assert word & STATE_MASK == RESIDENT, f"frame {frame} holds page {page - 1} in state {word & STATE_MASK}"
            assert word >> 32 == frame, f"page {page - 1} says frame {word >> 32}, frame table says {frame}"
        assert free == vm.get(vm.base + H_FREE), f"free frames {free} != counter {vm.get(vm.base + H_FREE)}"
        for s in range(vm.geo.max_as):
            o = vm.o_as + s * AS_ENTRY
            if vm.get(o + A_ID) > 0:
                assert vm.get(o + A_RESIDENT) == resident.get(s, 0), \
                    f"address space slot {s}: resident {vm.get(o + A_RESIDENT)} != frames owned {resident.get(s, 0)}"

