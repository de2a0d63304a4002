"""The virtual-memory part of the kernel: wires the pager's pieces together.

`VirtualMemory` is the object the kernel lists in PARTS as "vm".  It owns no
algorithm; it knows where each table of tables.py sits in the main arena,
holds the one VM lock, and hands out the pieces:

    spaces      address spaces, blocks, MAP/UNMAP, quotas   (address_spaces.py)
    frames      physical frames, faults' frame supply, eviction (frames.py)
    shootdown   epochs, TLB-shootdown acknowledgements         (shootdown.py)
    swap        the swap file                                   (swap.py)
    policy      the replacement policy                          (policies.py)

and the per-process MMU (the TLB and LOAD/STORE) lives in pager.py, its slow
path (page faults) in faults.py.

Settings (Kernel(**part_settings)):

    policy="clock"            clock, fifo, lru or random
    swap_pages=max(16384, 4*frames)   pages the swap file can hold (0: no swap)
    resident_limit=0          default per address space: frames it may hold (0: no limit)
    page_limit=0              default per address space: pages its threads may allocate
    max_address_spaces=64     (at most 64)
    address_space_pages=4096  virtual pages per address space
    max_blocks=1024

Lock: the VM lock (header word 0) guards the tables, see tables.py.  It is a
robust mutex: if its holder dies, the next taker gets it and the pager repairs
pages left in transit by the dead thread (frames.repair).
"""

import signal
import struct
import threading

from .. import mutex
from ..context import current
from ..threads import WAIT_LOCK
from . import pager, policies
from .address_spaces import AddressSpaces
from .frames import Frames
from .shootdown import Shootdown
from .swap import SwapFile, default_path
from .tables import (A_ID, AS_ENTRY, AS_STATS, B_MASK, B_NAME, BLOCK_ENTRY, BLOCK_NAME, C_ACK, CPU_ENTRY, D_BLOCK, D_WORD, DESC,
                     F_OWNER, F_PAGE, FRAME_ENTRY, H_COMMITTED, H_EVICTIONS, H_FREE, H_HAND, H_INTERRUPTS,
                     H_LOCK, H_REPAIRS, H_RNG, H_SEQ, H_SHOOTDOWNS, H_SWAP_READS, H_SWAP_WRITES, OFFLINE, STATE_MASK,
                     STATE_NAMES, Geometry, _align)

_i64 = struct.Struct("<q")
_u32 = struct.Struct("<I")
VM_LOCK_OBJ = -1  # what a thread waiting for the VM lock shows as its wait object


class VirtualMemory:
    """The kernel part.  One instance per process per kernel."""

    @staticmethod
    def section_size(config):
        return Geometry(config).size

    def __init__(self, kernel, offset):
        self.kernel = kernel
        c = kernel.config
        self.geo = g = Geometry(c)
        self.buf = kernel.arena.buf
        self.addr = kernel.arena.addr
        self.base = offset
        self.o_lock = offset + H_LOCK
        self.a_lock = self.addr + self.o_lock
        self.o_as = offset + g.as_table
        self.o_pt = offset + g.page_tables
        self.o_blocks = offset + g.blocks
        self.o_used = offset + g.used
        self.o_descs = offset + g.descs
        self.o_frame_table = offset + g.frame_table
        self.o_frame_map = offset + g.frame_map
        self.o_cpus = offset + g.cpus
        self.o_frames = _align(offset + g.frames_at, g.page_size)
        self.policy = policies.make(c.get("policy", "clock"))
        path = c.swap or (default_path(kernel.arena.name) if g.swap_pages else None)    # no swap: no file
        self.swap = SwapFile(path, g.page_size, g.swap_pages)
        self.resident_limit = _limit("resident_limit", c.get("resident_limit", 0))
        self.page_limit = _limit("page_limit", c.get("page_limit", 0))
        # The arena as 8-byte words: one word access is one 8-byte load or store
        # (see pager.STORE for why struct.pack_into is not used on user words).
        self._whole = self.buf[:len(self.buf) & ~7]
        self.words = self._whole.cast("q")
        self.spaces = AddressSpaces(self)
        self.frames = Frames(self)
        self.shootdown = Shootdown(self)
        self._boot_as = None
        self._old_handler = None

    # --- kernel hooks ------------------------------------------------------------

    def boot(self):
        """Kernel process, once: empty tables, the swap file, thread 0's address space."""
        g = self.geo
        _i64.pack_into(self.buf, self.base + H_FREE, g.frames)
        _i64.pack_into(self.buf, self.base + H_RNG, ((self.kernel.config.seed or 0x1E3779B97F4A7C15) | 1) & (2**63 - 1))
        for slot in range(g.max_threads):
            _i64.pack_into(self.buf, self.o_cpus + slot * CPU_ENTRY + C_ACK, OFFLINE)
        self.swap.create()
        self._boot_as = self.spaces.create(owner_tid=0)
        pager.reset()
        self._install_interrupt()

    def reset(self):
        """(kernel process, nothing running: a controlled kernel's restart)
        Empty tables and thread 0's address space again, as at boot; the
        frames keep their bytes (a page is zero-filled when first touched)
        and the swap file its size."""
        pager.reset()
        self.buf[self.base:self.o_frames] = bytes(self.o_frames - self.base)
        g = self.geo
        _i64.pack_into(self.buf, self.base + H_FREE, g.frames)
        _i64.pack_into(self.buf, self.base + H_RNG, ((self.kernel.config.seed or 0x1E3779B97F4A7C15) | 1) & (2**63 - 1))
        for slot in range(g.max_threads):
            _i64.pack_into(self.buf, self.o_cpus + slot * CPU_ENTRY + C_ACK, OFFLINE)
        self._boot_as = self.spaces.create(owner_tid=0)

    def enter_vp(self):
        """First thing in a new VP: forget the creator's TLB, take shootdown interrupts."""
        pager.reset()
        self.swap.close()
        self._install_interrupt()

    def _install_interrupt(self):
        if threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(self.shootdown.SIGNAL, pager.shootdown_interrupt)
            self.shootdown.can_interrupt = True
        else:
            self.shootdown.can_interrupt = False  # see pager.py: this process then caches no translation

    def on_thread_death(self, tid):
        """Any process: a dead thread caches nothing any more; wake anyone waiting on it."""
        self.shootdown.offline(tid)
        if mutex.holder(self.a_lock) == tid:
            mutex.wake_all(self.a_lock)
        self.frames.wake_all()

    def shutdown(self):
        """Kernel process, at the end: remove the swap file, forget the TLB."""
        pager.reset()
        self.swap.remove()
        self.words.release()  # let the arena unmap: no view of it may outlive the kernel
        self._whole.release()
        if self._old_handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(self.shootdown.SIGNAL, self._old_handler)
            self._old_handler = None

    # --- what the kernel asks ---------------------------------------------------

    @property
    def boot_address_space(self):
        """Thread 0's address-space id."""
        if self._boot_as is None:  # a spawned VP's view: slot 0 was created first, generation 0
            self._boot_as = 1
        return self._boot_as

    def check_address_space(self, as_id):
        """NoSuchAddressSpace unless as_id names a live address space (lock-free)."""
        self.spaces.slot(as_id)

    # --- the VM lock -----------------------------------------------------------

    def lock(self):
        """Take the VM lock for the calling thread (blocks, WAITING on it, without
        a processor).  Repairs what a dead previous holder left in transit."""
        ctx = current()
        died = mutex.acquire(self.a_lock, ctx.tid, self.kernel.threads,
                             sleep=lambda: ctx.waiting(WAIT_LOCK, VM_LOCK_OBJ),
                             deadline_check=ctx.check_kernel)
        if died:
            self.frames.repair()

    def unlock(self):
        mutex.release(self.a_lock, current().tid)

    # --- small table accessors (callers hold the VM lock unless noted) -----------

    # Every table field these touch is an aligned 8-byte word, read and written
    # with one access (a struct.pack_into would clear it first, see pager.STORE).

    def get(self, off):
        return self.words[off >> 3]

    def put(self, off, value):
        self.words[off >> 3] = value

    def add(self, off, delta):
        self.words[off >> 3] += delta

    def next_seq(self):
        o = self.base + H_SEQ
        s = self.get(o) + 1
        self.put(o, s)
        return s

    def clock_hand(self):
        return self.get(self.base + H_HAND)

    def set_clock_hand(self, frame):
        self.put(self.base + H_HAND, frame)

    def random_below(self, n):
        """xorshift64 on the shared state: repeatable from Kernel(seed=...)."""
        o = self.base + H_RNG
        x = self.get(o) & 0xFFFFFFFFFFFFFFFF
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        self.put(o, x - (1 << 64) if x >= 1 << 63 else x)
        return x % n

    def block_mask_of(self, desc):
        """Address-space slots mapping the block of page descriptor `desc`."""
        bslot = _u32.unpack_from(self.buf, self.o_descs + desc * DESC + D_BLOCK)[0] - 1
        return self.get(self.o_blocks + bslot * BLOCK_ENTRY + B_MASK) if bslot >= 0 else 0

    def live_as_mask(self):
        mask = 0
        for s in range(self.geo.max_as):
            if self.get(self.o_as + s * AS_ENTRY + A_ID) > 0:
                mask |= 1 << s
        return mask

    # --- statistics (lock-free: plain reads, may be a few microseconds apart) ----

    def block_name(self, block):
        """The name given to ALLOCATE_BLOCK for block id `block` ('' if none or gone)."""
        g = self.geo
        if not isinstance(block, int) or block <= 0:
            return ""
        bo = self.o_blocks + (block - 1) % g.max_blocks * BLOCK_ENTRY
        if self.get(bo) != block:
            return ""
        return bytes(self.buf[bo + B_NAME:bo + B_NAME + BLOCK_NAME]).rstrip(b"\0").decode("utf-8", "replace")

    def block_id_of_slot(self, slot):
        """The id of the block in table slot `slot` (0 when it is free)."""
        bid = self.get(self.o_blocks + slot * BLOCK_ENTRY)
        return bid if bid > 0 else 0

    def statistics(self):
        g = self.geo
        spaces = []
        for s in range(g.max_as):
            o = self.o_as + s * AS_ENTRY
            as_id = self.get(o + A_ID)
            if as_id > 0:
                row = {"id": as_id}
                row.update({name: self.get(o + off) for name, off in AS_STATS})
                spaces.append(row)
        owners = []
        for f in range(g.frames):
            o = self.o_frame_table + f * FRAME_ENTRY
            page, owner = self.get(o + F_PAGE), self.get(o + F_OWNER)
            owner_id = self.get(self.o_as + (owner - 1) * AS_ENTRY + A_ID) if owner else 0
            owners.append(owner_id if page and owner_id > 0 else None)
        h = self.base
        return {
            "policy": self.policy.name,
            "page_size": g.page_size,
            "frames": g.frames,
            "free_frames": self.get(h + H_FREE),
            "swap_pages": g.swap_pages,
            "committed_pages": self.get(h + H_COMMITTED),
            "evictions": self.get(h + H_EVICTIONS),
            "swap_reads": self.get(h + H_SWAP_READS),
            "swap_writes": self.get(h + H_SWAP_WRITES),
            "shootdowns": self.get(h + H_SHOOTDOWNS),
            "shootdown_interrupts": self.get(h + H_INTERRUPTS),
            "repairs": self.get(h + H_REPAIRS),
            "address_spaces": spaces,
            "frame_owner": owners,
        }

    def page_state(self, desc):
        """'resident' / 'swapped' / ... of a page descriptor (lock-free, for tests and demos)."""
        return STATE_NAMES[self.get(self.o_descs + desc * DESC + D_WORD) & STATE_MASK]

    # --- invariants (tests call this while nothing runs) --------------------------

    def _check_invariants(self):
        """Raise AssertionError if the tables disagree.  Call it while no thread
        touches memory (it takes the VM lock only for the snapshot)."""
        self.lock()
        try:
            self.frames.check_invariants()
            self.spaces.check_invariants()
        finally:
            self.unlock()


def _limit(name, value):
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0 (0: no limit), not {value!r}")
    return value
