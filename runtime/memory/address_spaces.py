"""Address spaces and blocks: CREATE/DELETE_ADDRESS_SPACE, ALLOCATE/FREE_BLOCK, MAP/UNMAP.

The lecture's virtual memory in two steps: first a manager that keeps memories
apart (permissions), then a level of indirection (names resolved in a context:
every thread resolves virtual addresses in its own address space, so two
threads can use the same address for different memory).  Here:

    address space   a page table (vpages entries) plus quotas and statistics
    block           a run of whole pages of backing store, zero-filled on
                    first touch, that lives until FREE_BLOCK
    MAP             writes the block's pages into a page table at a virtual
                    page, with a permission ("r" or "rw")
    UNMAP           removes a whole mapping (given any of its pages), and waits
                    until no thread of that address space can still use a
                    cached translation of it (a shootdown), so that FREE_BLOCK
                    can then hand its frames to someone else

A block mapped into two address spaces is memory shared between them; threads
of one address space share all of it.  Nothing else is shared.

Ids.  An address-space id or block id is generation * table size + slot + 1:
a small int, picklable, and a stale id names nothing (NoSuchAddressSpace,
NoSuchBlock) instead of the slot's next occupant.

Quotas (the lecture's denial of service).  `resident_limit`: frames the
address space may hold; at the limit its faults evict its own pages (it
pages against itself).  `page_limit`: pages of blocks its threads may
allocate; beyond it ALLOCATE_BLOCK raises OutOfMemory.  Defaults come from
Kernel(resident_limit=..., page_limit=...); CREATE_ADDRESS_SPACE takes both as
keyword arguments.

Every call runs in any thread and takes the VM lock for its table work; UNMAP
drops it before it waits for the shootdown.
"""

import struct

from .. import checks
from ..context import current
from ..errors import (AddressSpaceBusy, AlreadyMapped, BlockInUse, NoSuchAddressSpace, NoSuchBlock, NotMapped,
                      OutOfMemory, OutOfResources)
from ..threads import LIVE, O_AS
from .tables import (A_ID, A_MAPPED, A_PAGE_LIMIT, A_PAGES, A_RES_LIMIT, A_SWAPPED, AS_ENTRY,
                     B_FIRST, B_ID, B_MAPCOUNT, B_MASK, B_NAME, B_NPAGES, B_OWNER, BLOCK_ENTRY, BLOCK_NAME, D_BLOCK, D_OWNER, D_WORD,
                     DESC, EVICTING, F_OWNER, H_COMMITTED, LOADING, PTE_VALID, PTE_WRITE, RESIDENT, STATE_MASK,
                     SWAPPED, ZERO)

_i64 = struct.Struct("<q")
_u32 = struct.Struct("<I")
PERMISSIONS = ("r", "rw")
_I64_MAX = (1 << 63) - 1


class AddressSpaces:
    """The address-space and block tables.  Methods run in any process."""

    def __init__(self, vm):
        self.vm = vm
        self.buf = vm.buf
        self.geo = vm.geo

    # --- lookups (lock-free reads of words the VM lock guards) ---------------------

    def slot(self, as_id):
        """Slot of a live address space; NoSuchAddressSpace otherwise."""
        n = self.geo.max_as
        if isinstance(as_id, int) and not isinstance(as_id, bool) and as_id > 0:
            s = (as_id - 1) % n
            if self.vm.get(self.vm.o_as + s * AS_ENTRY + A_ID) == as_id:
                return s
        raise NoSuchAddressSpace(f"no address space {as_id!r} (never created, or deleted)")

    def id_of(self, as_slot):
        return self.vm.get(self.vm.o_as + as_slot * AS_ENTRY + A_ID)

    def block_slot(self, block):
        n = self.geo.max_blocks
        if isinstance(block, int) and not isinstance(block, bool) and block > 0:
            s = (block - 1) % n
            if self.vm.get(self.vm.o_blocks + s * BLOCK_ENTRY + B_ID) == block:
                return s
        raise NoSuchBlock(f"no block {block!r} (never allocated, or freed)")

    def caller_slot(self):
        ctx = current()
        t = ctx.kernel.threads
        return self.slot(t.get64(t.off(ctx.tid, O_AS)))

    # --- CREATE / DELETE ------------------------------------------------------------

    def create(self, resident_limit=None, page_limit=None, owner_tid=None):
        """A new, empty address space; returns its id.  OutOfResources when the
        table is full."""
        vm = self.vm
        resident_limit = vm.resident_limit if resident_limit is None else resident_limit
        page_limit = vm.page_limit if page_limit is None else page_limit
        for name, v in (("resident_limit", resident_limit), ("page_limit", page_limit)):
            checks.integer("CREATE_ADDRESS_SPACE", f"{name} as an int >= 0 (0: no limit) or None", v, 0, _I64_MAX)
        if owner_tid is None:
            vm.lock()
        try:
            for s in range(self.geo.max_as):
                o = vm.o_as + s * AS_ENTRY
                old = vm.get(o + A_ID)
                if old > 0:
                    continue
                gen = (-old - 1) // self.geo.max_as + 1 if old < 0 else 0
                as_id = gen * self.geo.max_as + s + 1
                self.buf[o + 8:o + AS_ENTRY] = bytes(AS_ENTRY - 8)  # keep the epoch: it only grows
                pt = vm.o_pt + 8 * self.geo.vpages * s
                self.buf[pt:pt + 8 * self.geo.vpages] = bytes(8 * self.geo.vpages)
                vm.put(o + A_RES_LIMIT, resident_limit)
                vm.put(o + A_PAGE_LIMIT, page_limit)
                vm.put(o + A_ID, as_id)
                return as_id
            raise OutOfResources(f"all {self.geo.max_as} address spaces are in use: delete one, or boot the "
                                 "Kernel with a larger max_address_spaces (at most 64)")
        finally:
            if owner_tid is None:
                vm.unlock()

    def delete(self, as_id):
        """Remove an address space: its mappings go, its blocks stay (free them
        with FREE_BLOCK).  AddressSpaceBusy while a live thread runs in it."""
        vm = self.vm
        s = self.slot(as_id)
        threads = vm.kernel.threads
        for _slot, tid, _pid, state in threads.live_slots():
            if state in LIVE and threads.get64(threads.slot_off(_slot, O_AS)) == as_id:
                raise AddressSpaceBusy(f"address space {as_id} still runs thread {tid}")
        vm.lock()
        try:
            s = self.slot(as_id)
            pt = vm.o_pt + 8 * self.geo.vpages * s
            page = 0
            while page < self.geo.vpages:
                pte = vm.get(pt + 8 * page)
                if pte:
                    page = self._unmap_locked(s, page, pte)
                else:
                    page += 1
            for f in range(self.geo.frames):  # its frames stay with their blocks, uncharged
                fo = vm.frames.entry(f) + F_OWNER
                if vm.get(fo) == s + 1:
                    vm.put(fo, 0)
            for d in range(self.geo.ndesc):
                if _u32.unpack_from(self.buf, vm.o_descs + d * DESC + D_OWNER)[0] == s + 1:
                    _u32.pack_into(self.buf, vm.o_descs + d * DESC + D_OWNER, 0)
            for b in range(self.geo.max_blocks):
                bo = vm.o_blocks + b * BLOCK_ENTRY
                if vm.get(bo + B_ID) > 0 and vm.get(bo + B_OWNER) == s + 1:
                    vm.put(bo + B_OWNER, 0)
            vm.put(vm.o_as + s * AS_ENTRY + A_ID, -as_id)
        finally:
            vm.unlock()

    # --- ALLOCATE / FREE ---------------------------------------------------------------

    def allocate_block(self, nbytes, name=None):
        """A block of ceil(nbytes / page_size) pages, zero-filled on first touch.
        Charged to the calling thread's address space.  `name` (up to 16
        bytes) names it in traces and race reports.  ValueError, OutOfMemory,
        OutOfResources (block table full)."""
        checks.integer("ALLOCATE_BLOCK", "an int byte count nbytes >= 1", nbytes, lo=1)
        checks.name("ALLOCATE_BLOCK", name, 16)
        vm = self.vm
        g = self.geo
        npages = -(-nbytes // g.page_size)
        vm.lock()
        try:
            me = self.caller_slot()
            ao = vm.o_as + me * AS_ENTRY
            committed = vm.get(vm.base + H_COMMITTED)
            if committed + npages > g.ndesc:
                raise OutOfMemory(
                    f"a block of {npages} pages does not fit: {committed} of {g.ndesc} pages "
                    f"({g.frames} frames + {g.swap_pages} swap pages) are allocated already")
            limit = vm.get(ao + A_PAGE_LIMIT)
            if limit and vm.get(ao + A_PAGES) + npages > limit:
                raise OutOfMemory(f"address space {self.id_of(me)} may allocate at most {limit} pages "
                                  f"(page_limit); it has {vm.get(ao + A_PAGES)} and asked for {npages} more")
            first = bytes(self.buf[vm.o_used:vm.o_used + g.ndesc]).find(bytes(npages))
            if first < 0:
                raise OutOfMemory(f"no run of {npages} free pages of backing store is left (fragmented)")
            for b in range(g.max_blocks):
                bo = vm.o_blocks + b * BLOCK_ENTRY
                old = vm.get(bo + B_ID)
                if old <= 0:
                    break
            else:
                raise OutOfResources(f"all {g.max_blocks} blocks are in use: free some, or boot the Kernel "
                                     "with a larger max_blocks")
            gen = (-old - 1) // g.max_blocks + 1 if old < 0 else 0
            block = gen * g.max_blocks + b + 1
            self.buf[vm.o_used + first:vm.o_used + first + npages] = b"\x01" * npages
            d0 = vm.o_descs + first * DESC
            self.buf[d0:d0 + npages * DESC] = struct.pack("<qII", ZERO, b + 1, 0) * npages
            vm.put(bo + B_FIRST, first)
            vm.put(bo + B_NPAGES, npages)
            vm.put(bo + B_MAPCOUNT, 0)
            vm.put(bo + B_MASK, 0)
            vm.put(bo + B_OWNER, me + 1)
            raw = (name or "").encode("utf-8", "replace")[:BLOCK_NAME]
            self.buf[bo + B_NAME:bo + B_NAME + BLOCK_NAME] = raw.ljust(BLOCK_NAME, b"\0")
            vm.put(bo + B_ID, block)
            vm.add(vm.base + H_COMMITTED, npages)
            vm.add(ao + A_PAGES, npages)
            return block
        finally:
            vm.unlock()

    def free_block(self, block):
        """Give a block's pages back.  BlockInUse while it is mapped anywhere."""
        vm = self.vm
        while True:
            vm.lock()
            try:
                b = self.block_slot(block)
                bo = vm.o_blocks + b * BLOCK_ENTRY
                if vm.get(bo + B_MAPCOUNT):
                    raise BlockInUse(f"block {block} is still mapped {vm.get(bo + B_MAPCOUNT)} time(s): UNMAP it first")
                first, n = vm.get(bo + B_FIRST), vm.get(bo + B_NPAGES)
                busy = [d for d in range(first, first + n)
                        if vm.get(vm.o_descs + d * DESC + D_WORD) & STATE_MASK in (EVICTING, LOADING)]
                if not busy:
                    self._free_locked(b, bo, first, n)
                    return
                event = vm.frames.frame_event()
            finally:
                vm.unlock()
            vm.frames.wait_event(event, busy[0])  # a fault still moves one of its pages: let it finish

    def _free_locked(self, b, bo, first, n):
        vm = self.vm
        for d in range(first, first + n):
            do = vm.o_descs + d * DESC
            word = vm.get(do + D_WORD)
            state = word & STATE_MASK
            if state == RESIDENT:
                vm.frames.release(word >> 32)
            elif state == SWAPPED:
                owner = _u32.unpack_from(self.buf, do + D_OWNER)[0]
                if owner:
                    vm.add(vm.o_as + (owner - 1) * AS_ENTRY + A_SWAPPED, -1)
        self.buf[vm.o_descs + first * DESC:vm.o_descs + (first + n) * DESC] = bytes(n * DESC)
        self.buf[vm.o_used + first:vm.o_used + first + n] = bytes(n)
        owner = vm.get(bo + B_OWNER)
        if owner:
            vm.add(vm.o_as + (owner - 1) * AS_ENTRY + A_PAGES, -n)
        vm.add(vm.base + H_COMMITTED, -n)
        vm.put(bo + B_ID, -vm.get(bo + B_ID))

    # --- MAP / UNMAP -----------------------------------------------------------------------

    def map(self, as_id, block, page, permission):
        """Map every page of `block` at virtual pages page, page+1, ... of as_id."""
        as_id = _as_id("MAP", as_id)
        _block_id("MAP", block)
        checks.integer("MAP", "an int virtual page number >= 0", page, lo=0)
        if not isinstance(permission, str):
            raise checks.refused("MAP", 'a permission "r" or "rw"', permission)
        if permission not in PERMISSIONS:
            raise ValueError(f'MAP needs a permission "r" (read-only) or "rw" (read-write), not {permission!r}')
        vm = self.vm
        g = self.geo
        vm.lock()
        try:
            s = self.slot(as_id)
            b = self.block_slot(block)
            bo = vm.o_blocks + b * BLOCK_ENTRY
            first, n = vm.get(bo + B_FIRST), vm.get(bo + B_NPAGES)
            if page + n > g.vpages:
                raise ValueError(f"MAP needs a page where the {n} pages of block {block} fit: mapped at page "
                                 f"{page} they would end past the last virtual page ({g.vpages - 1})")
            pt = vm.o_pt + 8 * g.vpages * s
            ptes = struct.unpack_from(f"<{n}q", self.buf, pt + 8 * page)
            taken = [page + i for i, pte in enumerate(ptes) if pte]
            if taken:
                raise AlreadyMapped(f"page {taken[0]} of address space {as_id} is already mapped")
            w = PTE_WRITE if permission == "rw" else 0
            struct.pack_into(f"<{n}q", self.buf, pt + 8 * page,
                             *[((first + i + 1) << 2) | w | PTE_VALID for i in range(n)])
            vm.add(bo + B_MAPCOUNT, 1)
            vm.put(bo + B_MASK, vm.get(bo + B_MASK) | (1 << s))
            vm.add(vm.o_as + s * AS_ENTRY + A_MAPPED, n)
        finally:
            vm.unlock()

    def unmap(self, as_id, page):
        """Remove the mapping that covers virtual page `page` of as_id.  Returns
        once no thread of as_id can use it any more.  NotMapped if none does."""
        as_id = _as_id("UNMAP", as_id)
        checks.integer("UNMAP", "an int virtual page number", page)
        vm = self.vm
        g = self.geo
        vm.lock()
        try:
            s = self.slot(as_id)
            if not 0 <= page < g.vpages:
                raise NotMapped(f"page {page} of address space {as_id} is not mapped "
                                f"(an address space has pages 0..{g.vpages - 1})")
            pte = vm.get(vm.o_pt + 8 * g.vpages * s + 8 * page)
            if not pte:
                raise NotMapped(f"page {page} of address space {as_id} is not mapped")
            self._unmap_locked(s, page, pte)
            epochs = vm.shootdown.bump(1 << s)
        finally:
            vm.unlock()
        from . import pager
        vm.shootdown.wait(epochs, page, pager.refresh_own_ack)

    def _unmap_locked(self, s, page, pte):
        """(lock) Clear the whole mapping containing `page`; returns the page after it."""
        vm = self.vm
        g = self.geo
        desc = (pte >> 2) - 1
        b = _u32.unpack_from(self.buf, vm.o_descs + desc * DESC + D_BLOCK)[0] - 1
        bo = vm.o_blocks + b * BLOCK_ENTRY
        first, n = vm.get(bo + B_FIRST), vm.get(bo + B_NPAGES)
        start = page - (desc - first)
        pt = vm.o_pt + 8 * g.vpages * s
        self.buf[pt + 8 * start:pt + 8 * (start + n)] = bytes(8 * n)
        vm.add(bo + B_MAPCOUNT, -1)
        vm.add(vm.o_as + s * AS_ENTRY + A_MAPPED, -n)
        lo, hi = (first + 1) << 2, (first + n + 1) << 2
        if not any(lo <= p < hi for p in struct.unpack_from(f"<{g.vpages}q", self.buf, pt)):
            vm.put(bo + B_MASK, vm.get(bo + B_MASK) & ~(1 << s))
        return start + n

    # --- reading ---------------------------------------------------------------------------

    def block_pages(self, block):
        """(first descriptor, npages) of a block (lock-free)."""
        b = self.block_slot(block)
        bo = self.vm.o_blocks + b * BLOCK_ENTRY
        return self.vm.get(bo + B_FIRST), self.vm.get(bo + B_NPAGES)

    def check_invariants(self):
        """(lock) Map counts, masks and page charges agree with the page tables."""
        vm = self.vm
        g = self.geo
        maps = {}
        for s in range(g.max_as):
            if vm.get(vm.o_as + s * AS_ENTRY + A_ID) <= 0:
                continue
            pt = vm.o_pt + 8 * g.vpages * s
            mapped = 0
            for pte in struct.unpack_from(f"<{g.vpages}q", self.buf, pt):
                if pte:
                    mapped += 1
                    d = (pte >> 2) - 1
                    b = _u32.unpack_from(self.buf, vm.o_descs + d * DESC + D_BLOCK)[0] - 1
                    assert b >= 0, f"a page table of slot {s} maps free page {d}"
                    maps.setdefault(b, set()).add(s)
            assert mapped == vm.get(vm.o_as + s * AS_ENTRY + A_MAPPED), f"slot {s}: mapped count is off"
        committed = 0
        for b in range(g.max_blocks):
            bo = vm.o_blocks + b * BLOCK_ENTRY
            if vm.get(bo + B_ID) <= 0:
                assert b not in maps, f"free block slot {b} is mapped"
                continue
            committed += vm.get(bo + B_NPAGES)
            mask = sum(1 << s for s in maps.get(b, ()))
            assert vm.get(bo + B_MASK) == mask, f"block slot {b}: mask {vm.get(bo + B_MASK):#x} != {mask:#x}"
            assert (vm.get(bo + B_MAPCOUNT) > 0) == bool(mask), f"block slot {b}: mapcount disagrees"
        assert committed == vm.get(vm.base + H_COMMITTED), "committed pages counter is off"


# --- the textbook calls ------------------------------------------------------------------

def _as_id(call, as_id):
    """An address-space id's type, checked at the door (whether it names one: slot())."""
    return checks.integer(call, "an address-space id (an int from CREATE_ADDRESS_SPACE or k.address_space)",
                          as_id)


def _block_id(call, block):
    return checks.integer(call, "a block id (an int from ALLOCATE_BLOCK)", block)


def _vm():
    ctx = current()
    vm = getattr(ctx.kernel, "vm", None)
    if vm is None:
        raise NoSuchAddressSpace("this kernel has no virtual memory part")
    return vm


def CREATE_ADDRESS_SPACE(resident_limit=None, page_limit=None):
    """A new empty address space; returns its id.  OutOfResources when the table
    is full.  Optional quotas: resident_limit (frames), page_limit (pages)."""
    return _vm().spaces.create(resident_limit, page_limit)


def DELETE_ADDRESS_SPACE(as_id):
    """Remove address space as_id.  NoSuchAddressSpace; AddressSpaceBusy while a
    live thread runs in it."""
    vm = _vm()
    vm.spaces.delete(_as_id("DELETE_ADDRESS_SPACE", as_id))


def ALLOCATE_BLOCK(nbytes, name=None):
    """A block of whole pages holding at least nbytes, zero-filled on first
    touch; returns its id.  `name` (optional, up to 16 bytes) shows in traces
    and race reports.  ValueError for nbytes <= 0; OutOfMemory."""
    return _vm().spaces.allocate_block(nbytes, name)


def FREE_BLOCK(block):
    """Give the block's pages back.  BlockInUse while mapped; NoSuchBlock."""
    vm = _vm()
    vm.spaces.free_block(_block_id("FREE_BLOCK", block))


def MAP(as_id, block, page, permission):
    """Map block at virtual page `page` of as_id with permission "r" or "rw".
    AlreadyMapped; NoSuchBlock; NoSuchAddressSpace; ValueError."""
    _vm().spaces.map(as_id, block, page, permission)


def UNMAP(as_id, page):
    """Remove the mapping covering virtual page `page` of as_id.  NotMapped."""
    _vm().spaces.unmap(as_id, page)
