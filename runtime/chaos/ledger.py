"""The trials' own record: a shared-memory segment beside the kernel's.

A trial must not trust the thing it tests, so what the threads did is kept
in a segment of its own, written with plain stores by single writers and
with atomics where several write:

    word i        plain load/store (`get`, `put`), one writer each
    add, set_bit  atomic read-modify-write (any writer)

The segment is named after the kernel's arena (`<arena>_chaos`), so that
`vos clean` removes it with the kernel's if the trial itself is killed.
"""

import struct

from .. import atomics
from ..arena import Arena

_w = struct.Struct("q")


class Ledger:
    """Create in the trial (thread 0), pass to threads as an argument (fork)."""

    def __init__(self, kernel, words):
        self.arena = Arena.create(f"{kernel.arena.name}_chaos", 8 * words)
        self.words = words

    def __reduce__(self):                 # spawn: the thread maps it by name
        return (_attach, (self.arena.name, self.words))

    def get(self, i):
        return _w.unpack_from(self.arena.buf, 8 * i)[0]

    def put(self, i, value):
        self.arena.buf[8 * i:8 * i + 8].cast("q")[0] = value   # one store, never torn

    def add(self, i, delta=1):
        return atomics.fetch_add(self.arena.addr + 8 * i, delta)

    def set_bit(self, first, bit):
        """Set bit `bit` of the bitmap starting at word `first`; True if it was set already."""
        mask = 1 << (bit & 63)
        return bool(atomics.fetch_or(self.arena.addr + 8 * (first + (bit >> 6)), mask) & mask)

    def bits(self, first, nwords):
        raw = int.from_bytes(self.arena.buf[8 * first:8 * (first + nwords)], "little")
        return {b for b in range(raw.bit_length()) if raw >> b & 1}

    def close(self):
        self.arena.close()
        self.arena.unlink()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _attach(name, words):
    ledger = Ledger.__new__(Ledger)
    ledger.arena = Arena.attach(name)
    ledger.words = words
    return ledger
