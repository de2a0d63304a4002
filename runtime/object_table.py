"""The skeleton of the kernel's object tables: locks, eventcounts and sequencers.

A table is a section of the main arena: a header, then numbered records.
Allocation is lock-free and never reuses a number:

    header (HEADER = 64 bytes), little-endian 64-bit words:
      0   allocated   fetch_add by the allocator: records handed out so far
      8   capacity    written once at boot
     16.. the part's own words
    record i (i = 1, 2, ...) at records_off + (i - 1) * RECORD:
          the part's words, then the name (UTF-8, NUL padded), written by the
          allocator before it publishes the record with a seq-cst store of
          its `published` word -- whoever sees the record published sees its
          name too

One byte order for every word (`<q`, here), one name for the invariant
check (`_check_invariants`, which Kernel._check_invariants calls).  Bounded
buffers keep a table of their own shape (buffer_table.py): their slots are
reused after DEALLOCATE and each has a side arena, which this skeleton does
not do.
"""

import struct
from array import array

from . import atomics
from .errors import OutOfResources

H_ALLOCATED, H_CAPACITY = 0, 8
HEADER = 64
WORD = struct.Struct("<q")


class ObjectTable:
    """Base of LockTable and EventcountTable.  A subclass sets RECORD,
    NAME_SIZE, R_NAME, SETTING (the Kernel option of its capacity), WHAT
    (its objects, plural) and DEFAULT_CAPACITY, and calls _map."""

    RECORD = 64
    NAME_SIZE = 16
    R_NAME = 48
    SETTING = ""
    WHAT = ""
    DEFAULT_CAPACITY = 1024

    def _map(self, kernel, offset, records_off, size):
        """Bind this process's view of the section (any process)."""
        self.kernel = kernel
        self.threads = kernel.threads
        arena = kernel.arena
        self.buf = arena.buf
        self.base = offset
        self.addr = arena.addr + offset
        self.records_off = records_off
        self._q = arena.buf[offset:offset + size].cast("q")  # the section as words (counters, reset)

    # --- lifecycle ------------------------------------------------------------------

    def boot(self):
        WORD.pack_into(self.buf, self.base + H_CAPACITY, self.capacity)

    def shutdown(self):
        self._q.release()

    def reset(self):
        """(kernel process, nothing running: a controlled kernel's restart) As at boot."""
        self._q[:] = array("q", bytes(len(self._q) * 8))
        self.boot()
        self.forget()

    def forget(self):
        """Drop this process's caches of the table (a pool VP between threads)."""

    # --- records ---------------------------------------------------------------------

    def _rec(self, i):
        return self.records_off + (i - 1) * self.RECORD

    def _word(self, off):
        return WORD.unpack_from(self.buf, off)[0]

    def name_of(self, i):
        o = self._rec(i) + self.R_NAME
        return bytes(self.buf[o:o + self.NAME_SIZE]).rstrip(b"\0").decode("utf-8", "replace")

    def allocated(self):
        return min(self.capacity, self._word(self.base + H_ALLOCATED))

    def _claim(self, name, default_name):
        """A new record, its name written: (number, offset).  The caller
        publishes it last (`_publish`).  OutOfResources when the table is full."""
        index = atomics.fetch_add(self.addr + H_ALLOCATED, 1)
        if index >= self.capacity:
            raise OutOfResources(f"all {self.capacity} {self.WHAT} are allocated; boot the Kernel with a larger "
                                 f"{self.SETTING}=")
        i = index + 1
        o = self._rec(i)
        raw = (name if name is not None else default_name(i)).encode("utf-8")[:self.NAME_SIZE]
        self.buf[o + self.R_NAME:o + self.R_NAME + self.NAME_SIZE] = raw.ljust(self.NAME_SIZE, b"\0")
        return i, o

    def _publish(self, off, value):
        """The record's last write, seq-cst: it is allocated from now on."""
        atomics.store(self.kernel.arena.addr + off, value)


__all__ = ["ObjectTable", "HEADER", "H_ALLOCATED", "H_CAPACITY", "WORD"]
