"""Virtual memory: address spaces, a Python-level pager, page faults and swap.

The lecture's second virtual resource (虚拟内存): memory isolated by
indirection.  Every LOAD and STORE of a virtual processor is translated through
page tables that live in shared memory; a wild access faults only the thread
that made it; an address space may use more pages than there are physical
frames, because the pager emulates the rest on disk (模拟: 硬盘 → 交换空间).

Where things are (one concept per file):

    tables.py          the byte layout of every shared table
    address_spaces.py  CREATE/DELETE_ADDRESS_SPACE, ALLOCATE/FREE_BLOCK, MAP/UNMAP, quotas
    pager.py           LOAD/STORE/LOAD_BYTES/STORE_BYTES/RSM, the TLB (the fast path)
    faults.py          page faults: the slow path of the pager
    frames.py          physical frames, eviction, repair after a dead mover
    shootdown.py       epochs and TLB shootdown: why no stale translation is ever used
    swap.py            the swap file
    policies.py        clock, FIFO, LRU, random; OPT and the others offline on traces
    vm.py              the kernel part that wires them ("vm" in kernel.PARTS)

Two layers, one code path.  The textbook names (runtime.textbook) and the
Pythonic layer here (`load`, `store`, ..., `AddressSpace`) are the same
functions: `load is LOAD`.

The limits of a Python-level pager, honestly:

* Isolation holds *through the interface*.  The frames are bytes in a shared
  memory segment that every VP has mapped; Python code in a VP can still reach
  `kernel.arena.buf` directly and read or write any frame, any page table.
  Hardware enforces what this pager can only offer: a thread that uses only
  LOAD/STORE cannot touch another address space, and a wild STORE faults only
  its own thread.  The lecture's "escape" is one attribute access away.
* Speed.  A resident LOAD is a dict lookup and two word reads (a few times a
  raw struct access, see `vos bench memory`), not one instruction; a fault costs
  microseconds (demand-zero) to tens of microseconds (swap-in), more when a
  shootdown has to interrupt a thread that is not using memory.
* Memory ordering of user data is the host's: a LOAD/STORE is a plain load or
  store (TSO on x86-64, weaker on ARM64); RSM is a sequentially consistent
  exchange.  Locks built on RSM and STORE are correct on x86-64; on ARM64 the
  releasing STORE is not a release (use the runtime's ACQUIRE/RELEASE there).
* Thread 0 of a kernel booted outside the main Python thread cannot take the
  shootdown interrupt, so it caches no translation: every access it makes is
  done under the VM lock: correct, and an order of magnitude slower.
* Reference bits are sampled at TLB fills, not set by every access (policies.py
  explains what that does to clock and LRU).
* The fast path checks a TLB entry and then uses it with no lock and no
  atomic; the argument that this is safe against eviction is in
  shootdown.py.  It rests on CPython running a signal handler only between
  bytecodes, on one-store word accesses (memoryview, not struct.pack_into,
  which clears a field before writing it), and on release/acquire atomics.
* The shootdown interrupt is SIGUSR2: user code in a VP must not take it over.
  A thread stuck inside one long C call cannot acknowledge until it returns,
  and evictions of its address space's pages wait for it meanwhile.
* Quotas are per address space, not per thread; a shared block's frames are
  charged to whichever address space faulted them in.
"""

from .address_spaces import (ALLOCATE_BLOCK, CREATE_ADDRESS_SPACE, DELETE_ADDRESS_SPACE, FREE_BLOCK, MAP,
                             UNMAP)
from .pager import LOAD, LOAD_BYTES, RSM, STORE, STORE_BYTES, recording
from .policies import compare, simulate

# --- the Pythonic layer: the same functions under lower-case names ------------------

load = LOAD
store = STORE
load_bytes = LOAD_BYTES
store_bytes = STORE_BYTES
rsm = RSM
allocate_block = ALLOCATE_BLOCK
free_block = FREE_BLOCK


class AddressSpace(int):
    """A handle on an address space: an int (its id, picklable, usable wherever
    an as_id is) with methods.

        with AddressSpace.create(resident_limit=8) as space:
            block = allocate_block(3 * 4096)
            space.map(block, page=16, permission="rw")
            tid = ALLOCATE_THREAD(worker, space, ...)
            ...
        # leaving the block deletes the address space (its blocks stay)
    """

    __slots__ = ()

    @classmethod
    def create(cls, resident_limit=None, page_limit=None):
        return cls(CREATE_ADDRESS_SPACE(resident_limit=resident_limit, page_limit=page_limit))

    def map(self, block, page, permission="rw"):
        MAP(int(self), block, page, permission)

    def unmap(self, page):
        UNMAP(int(self), page)

    def delete(self):
        DELETE_ADDRESS_SPACE(int(self))

    def statistics(self):
        """This address space's row of statistics() (lock-free)."""
        for row in statistics()["address_spaces"]:
            if row["id"] == int(self):
                return row
        from ..errors import NoSuchAddressSpace
        raise NoSuchAddressSpace(f"no address space {int(self)}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.delete()

    def __repr__(self):
        return f"AddressSpace({int(self)})"

    def __reduce__(self):
        return (AddressSpace, (int(self),))


def create_address_space(resident_limit=None, page_limit=None):
    return AddressSpace.create(resident_limit, page_limit)


def delete_address_space(as_id):
    DELETE_ADDRESS_SPACE(as_id)


def map(as_id, block, page, permission="rw"):  # noqa: A001 - the lecture's verb
    MAP(as_id, block, page, permission)


def unmap(as_id, page):
    UNMAP(as_id, page)


def statistics():
    """The pager's statistics, read without locks (see VirtualMemory.statistics)."""
    from ..context import current
    return current().kernel.vm.statistics()


__all__ = ["CREATE_ADDRESS_SPACE", "DELETE_ADDRESS_SPACE", "ALLOCATE_BLOCK", "FREE_BLOCK", "MAP", "UNMAP",
           "LOAD", "STORE", "LOAD_BYTES", "STORE_BYTES", "RSM", "AddressSpace", "create_address_space",
           "delete_address_space", "allocate_block", "free_block", "map", "unmap", "load", "store",
           "load_bytes", "store_bytes", "rsm", "statistics", "recording", "simulate", "compare"]
