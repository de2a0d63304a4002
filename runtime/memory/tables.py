"""Where virtual memory lives: the byte layout of the vm section of the main arena.

Everything the pager needs to agree on between processes is here, laid out
once from the kernel's configuration, so every process computes the same
offsets without being told (see runtime/arena.py, Layout).  The section holds,
in order:

    header         one per kernel: the VM lock, counters, the clock hand
    address spaces max_as entries: epoch word, id, quotas, statistics
    page tables    max_as x vpages page-table entries (PTEs)
    blocks         max_blocks entries: a block is a run of page descriptors
    used map       one byte per page descriptor (1 = allocated to a block)
    descriptors    one per page of backing store (frames + swap pages)
    frames table   one per physical frame: which page is in it, whose it is
    cpus           one per thread slot: the TLB-shootdown acknowledgement
    frames         the physical page frames themselves, page aligned

Lock.  One lock, the *VM lock* (a robust mutex word, runtime/mutex.py), guards
every table below except the words marked "atomic" or "self".  There is no
other lock in the pager, so there is no lock order to get wrong; nobody holds
the VM lock while sleeping for I/O or for a shootdown acknowledgement.

Two levels of indirection.  A virtual address names (page, offset).  The
page-table entry of the page names a *page descriptor* (a page of some block);
the descriptor says where that page is right now: nowhere yet (demand-zero),
in a frame, or in the swap file.  A block mapped into two address spaces is
one run of descriptors reached from two page tables: shared memory.

Descriptor index = swap slot: page descriptor g, when swapped out, lives at
byte g * page_size of the swap file.  So the swap file is as large as the
backing store (sparse on disk) and swap space never needs its own allocator.
"""

import struct

from ..errors import OutOfResources

_i64 = struct.Struct("<q")
_u32 = struct.Struct("<I")

# --- header (HEADER bytes) ----------------------------------------------------
#
#   off size field         guard / writer
#     0   8  lock          the VM lock (mutex word)
#     8   8  free_frames   VM lock
#    16   8  committed     VM lock: descriptors allocated to blocks
#    24   8  hand          VM lock: clock hand (frame number)
#    32   8  frame_event   atomic: fetch_add when a frame frees or a transit ends (futex word)
#    40   8  as_gen        VM lock: generation source for address-space ids
#    48   8  block_gen     VM lock: generation source for block ids
#    56   8  rng           VM lock: xorshift state of the random policy (from seed)
#    64   8  seq           VM lock: reference clock (FIFO load order, LRU use order)
#    72   8  shootdowns    atomic: shootdowns that had to wait for someone
#    80   8  interrupts    atomic: shootdown interrupts (signals) sent
#    88   8  evictions     VM lock
#    96   8  swap_reads    VM lock
#   104   8  swap_writes   VM lock
#   112   8  repairs       VM lock: moves rolled back because their mover died
#   120   8  cpus_used     VM lock (read lock-free): 1 + the highest thread slot that ever
#                          went online; a shootdown scans the cpu entries below it
#   128   8  sleepers      atomic: threads asleep (or about to sleep) on a page word or the
#                          frame event; a waker makes the futex_wake syscall only if > 0
HEADER = 192
H_LOCK, H_FREE, H_COMMITTED, H_HAND, H_FRAME_EVENT = 0, 8, 16, 24, 32
H_AS_GEN, H_BLOCK_GEN, H_RNG, H_SEQ = 40, 48, 56, 64
H_SHOOTDOWNS, H_INTERRUPTS, H_EVICTIONS, H_SWAP_READS, H_SWAP_WRITES, H_REPAIRS, H_CPUS_USED = (
    72, 80, 88, 96, 104, 112, 120)
H_SLEEPERS = 128

# --- address-space entry (AS_ENTRY bytes) -------------------------------------
#
#   off size field          guard / writer
#     0   8  epoch          bumped (atomic fetch_add) under the VM lock; read by anyone, lock-free:
#                           every LOAD/STORE compares it with the tag of its cached translation
#     8   8  id             VM lock (> 0: live; <= 0: free, minus the last id, for the next generation)
#    16   8  resident       VM lock: frames charged to this address space
#    24   8  pages          VM lock: pages of blocks charged to it (ALLOCATE_BLOCK by its threads)
#    32   8  resident_limit VM lock (0 = none)
#    40   8  page_limit     VM lock (0 = none)
#    48   8  swapped        VM lock: its pages now in swap
#    56   8  zero_faults    VM lock
#    64   8  swapin_faults  VM lock
#    72   8  prot_faults    atomic (fetch_add by the faulting thread)
#    80   8  seg_faults     atomic
#    88   8  evictions      VM lock: its frames taken away
#    96   8  swap_reads     VM lock
#   104   8  swap_writes    VM lock
#   112   8  tlb_fills      atomic: translations loaded into some thread's TLB
#   120   8  mapped         VM lock: pages mapped
AS_ENTRY = 128
A_EPOCH, A_ID, A_RESIDENT, A_PAGES, A_RES_LIMIT, A_PAGE_LIMIT, A_SWAPPED = 0, 8, 16, 24, 32, 40, 48
A_ZERO, A_SWAPIN, A_PROT, A_SEGV, A_EVICTED, A_SREADS, A_SWRITES, A_FILLS, A_MAPPED = (
    56, 64, 72, 80, 88, 96, 104, 112, 120)
AS_STATS = (("resident", A_RESIDENT), ("swapped", A_SWAPPED), ("pages", A_PAGES), ("mapped", A_MAPPED),
            ("resident_limit", A_RES_LIMIT), ("page_limit", A_PAGE_LIMIT),
            ("demand_zero_faults", A_ZERO), ("swap_in_faults", A_SWAPIN),
            ("protection_faults", A_PROT), ("segmentation_faults", A_SEGV), ("evictions", A_EVICTED),
            ("swap_reads", A_SREADS), ("swap_writes", A_SWRITES), ("tlb_fills", A_FILLS))

# --- page-table entry (8 bytes; VM lock) --------------------------------------
#
#   0 = not mapped.  Otherwise  (descriptor + 1) << 2 | WRITE << 1 | VALID
PTE_VALID, PTE_WRITE = 1, 2

# --- block entry (BLOCK_ENTRY bytes; VM lock) ---------------------------------
#
#   off size field
#     0   8  id        > 0: generation * max_blocks + slot + 1; <= 0: free (minus the last id)
#     8   8  first     first page descriptor
#    16   8  npages
#    24   8  mapcount  mappings anywhere (FREE_BLOCK refuses while > 0)
#    32   8  as_mask   bit s set while address-space slot s maps it (whose epochs an eviction bumps)
#    40   8  owner     address-space slot + 1 charged for its pages (0: none)
#    48  16  name      ALLOCATE_BLOCK(n, name=...): UTF-8, NUL padded (race reports, traces)
BLOCK_ENTRY = 64
B_ID, B_FIRST, B_NPAGES, B_MAPCOUNT, B_MASK, B_OWNER, B_NAME = 0, 8, 16, 24, 32, 40, 48
BLOCK_NAME = 16

# --- page descriptor (DESC bytes; VM lock, futex-waited by faulting threads) --
#
#   off size field
#     0   8  word    state (bits 0-7) | REF | DIRTY | ON_SWAP (bits 8-10) | frame << 32
#     8   4  block   block slot + 1 (0: not allocated)
#    12   4  owner   address-space slot + 1 charged while it is in swap
#
#   states:  FREE -> ZERO (allocated, never touched) -> RESIDENT <-> EVICTING -> SWAPPED
#            SWAPPED -> LOADING -> RESIDENT;  any -> FREE at FREE_BLOCK
#   EVICTING and LOADING are "in transit": a thread that faults on such a page
#   sleeps on the word (futex) until the state changes.
DESC = 16
D_WORD, D_BLOCK, D_OWNER = 0, 8, 12
FREE, ZERO, RESIDENT, SWAPPED, EVICTING, LOADING = range(6)
STATE_NAMES = ["free", "zero", "resident", "swapped", "evicting", "loading"]
REF, DIRTY, ON_SWAP = 1 << 8, 1 << 9, 1 << 10
STATE_MASK = 0xFF

# --- frame entry (FRAME_ENTRY bytes; VM lock) ---------------------------------
#
#   off size field
#     0   8  page     descriptor + 1 of the page in it, or reserved for (0 = free)
#     8   8  owner    address-space slot + 1 charged for it
#    16   8  loaded   seq when the page came in (FIFO)
#    24   8  used     seq of its last observed reference (LRU; a TLB fill is the observation)
#    32   8  mover    tid + 1 of the thread moving pages through it (0 = none)
#    40   8  stage    what the mover is doing: EVICT (victim still in the frame) or FILL
#    48   8  victim   descriptor of the page being evicted from it (stage EVICT)
#
#   The frame map (one byte per frame, 1 = in use) mirrors `page != 0` so that a
#   free frame is found with one bytes.find.
FRAME_ENTRY = 64
F_PAGE, F_OWNER, F_LOADED, F_USED, F_MOVER, F_STAGE, F_VICTIM = 0, 8, 16, 24, 32, 40, 48
STAGE_EVICT, STAGE_FILL = 1, 2

# --- cpu entry (CPU_ENTRY bytes, one per thread slot) -------------------------
#
#   off size field
#     0   8  ack    self (atomic store, a release): the epoch of its address space this thread
#                   has acknowledged; OFFLINE = holds no cached translation.  Also written
#                   OFFLINE by whoever buries the thread.  A futex word: the acknowledger wakes
#                   a shootdown waiting on it.
#     8   8  as     self, once, under the VM lock, with one word store, before its first
#                   ack: the address-space slot whose translations it caches
CPU_ENTRY = 16
C_ACK, C_AS = 0, 8
OFFLINE = -1


class Geometry:
    """The numbers every process derives from the kernel's Config."""

    def __init__(self, config):
        get = config.get
        self.page_size = config.page_size
        self.shift = config.page_size.bit_length() - 1
        self.frames = config.frames
        self.max_as = get("max_address_spaces", 64)
        self.vpages = get("address_space_pages", 4096)
        self.max_blocks = get("max_blocks", 1024)
        self.swap_pages = get("swap_pages", max(16384, 4 * config.frames))
        self.max_threads = config.max_threads
        if not isinstance(self.max_as, int) or not 1 <= self.max_as <= 64:
            raise ValueError(f"max_address_spaces must be an int from 1 to 64, not {self.max_as!r}")
        if not isinstance(self.vpages, int) or not 1 <= self.vpages <= 1 << 20:
            raise ValueError(f"address_space_pages must be an int from 1 to 2**20, not {self.vpages!r}")
        if not isinstance(self.max_blocks, int) or self.max_blocks < 1:
            raise ValueError(f"max_blocks must be a positive int, not {self.max_blocks!r}")
        if not isinstance(self.swap_pages, int) or self.swap_pages < 0:
            raise ValueError(f"swap_pages must be an int >= 0, not {self.swap_pages!r}")
        if self.frames >= 1 << 31:
            raise OutOfResources("at most 2**31 frames")
        self.ndesc = self.frames + self.swap_pages
        o = HEADER
        self.as_table = o
        o += AS_ENTRY * self.max_as
        self.page_tables = o
        o += 8 * self.max_as * self.vpages
        self.blocks = _align(o, 64)
        o = self.blocks + BLOCK_ENTRY * self.max_blocks
        self.used = o
        o += self.ndesc
        self.descs = _align(o, 64)
        o = self.descs + DESC * self.ndesc
        self.frame_table = o
        o += FRAME_ENTRY * self.frames
        self.frame_map = o
        o = _align(o + self.frames, 64)
        self.cpus = o
        o += CPU_ENTRY * self.max_threads
        self.frames_at = o  # relative to the section start; page-aligned in the arena at wiring
        self.size = self.frames_at + self.page_size * (self.frames + 1)

    def pt(self, as_slot):
        return self.page_tables + 8 * self.vpages * as_slot


def _align(x, a):
    return -(-x // a) * a
