"""Arenas: the named shared-memory segments that hold the machine.

A kernel owns one *main arena* (its tables and the physical page frames) and a
few *side arenas* (one per bounded buffer, so a buffer can be any size).  All
are `multiprocessing.shared_memory` segments named

    vos_<kernel pid>_<token>            the main arena
    vos_<kernel pid>_<token>_<what>     a side arena

so that `vos clean` can tell from a name alone which kernel a segment belongs
to, and whether that kernel still lives.

Ownership.  Only the kernel process creates and unlinks the main arena; side
arenas are created by whichever process allocates the object and unlinked by
the kernel at shutdown (or by DEALLOCATE).  Every other process merely maps
them.  Segments are opened with shm_open and mapped with mmap directly
(_Segment), not through multiprocessing.shared_memory, so Python's resource
tracker never hears of them: it would otherwise unlink a live arena when the
*first* process that mapped it exits, and print leak warnings for segments
the kernel cleans up itself.

Reservation.  A new segment's pages are reserved with posix_fallocate at
creation, so a /dev/shm too small for the machine fails at boot with
OutOfResources instead of a SIGBUS in some virtual processor later.
"""

import ctypes
import mmap
import os
import re
import sys

import _posixshmem

from .errors import OutOfResources

PREFIX = "vos_"
_NAME = re.compile(r"^vos_(\d+)_([0-9a-f]+)(?:_(\w+))?$")
SHM_DIR = "/dev/shm"


def new_name(pid=None):
    """A fresh main-arena name for a kernel running in process pid."""
    return f"{PREFIX}{pid or os.getpid()}_{os.urandom(4).hex()}"


def parse_name(name):
    """(kernel pid, main arena name) for a vos segment name, or None."""
    m = _NAME.match(name.lstrip("/"))
    if not m:
        return None
    return int(m.group(1)), f"{PREFIX}{m.group(1)}_{m.group(2)}"


class _Segment:
    """A POSIX shared-memory segment, mapped: the part of
    multiprocessing.shared_memory.SharedMemory vos needs, without its
    resource tracker (see the module doc) and without the modules it
    imports (secrets, hashlib: a tenth of `vos sh -c`'s imports).  Mode
    0600, as SharedMemory's: only this user's processes may map it."""

    def __init__(self, name, create, size):
        self.name = name
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        self._fd = _posixshmem.shm_open("/" + name, flags, mode=0o600)
        try:
            if create:
                os.ftruncate(self._fd, size)
            else:
                size = os.fstat(self._fd).st_size
            self._mmap = mmap.mmap(self._fd, size)
        except BaseException:
            os.close(self._fd)
            if create:
                unlink(name)
            raise
        self.size = size
        self.buf = memoryview(self._mmap)

    def close(self):
        """Unmap and close.  BufferError while a view into it is alive (then
        nothing is closed: the caller keeps the segment until exit)."""
        self.buf.release()
        self._mmap.close()          # BufferError here too, with a view still exported
        os.close(self._fd)
        self._fd = -1


class Arena:
    """One mapped segment: `buf` (a memoryview) and `addr` (its base address,
    for the atomics).  Create with `Arena.create`, map with `Arena.attach`."""

    def __init__(self, shm, owner):
        self._shm = shm
        self.name = shm.name.lstrip("/")
        self.size = shm.size
        self.buf = shm.buf
        self._pin = ctypes.c_char.from_buffer(self.buf)  # dropped before close
        self.addr = ctypes.addressof(self._pin)
        self.owner = owner

    @classmethod
    def create(cls, name, size):
        """Create and reserve a zero-filled segment of `size` bytes.
        Raises OutOfResources when the host cannot reserve it."""
        try:
            shm = _Segment(name, True, size)
        except OSError as e:
            raise OutOfResources(f"cannot create shared memory segment {name} of {size} bytes: {e}") from None
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(shm._fd, 0, size)
            except OSError as e:
                shm.close()
                unlink(name)
                free = _free_bytes()
                raise OutOfResources(
                    f"cannot reserve {size / 2**20:.1f} MiB of shared memory for {name} "
                    f"({os.strerror(e.errno)}; {SHM_DIR} has {free / 2**20:.1f} MiB free): "
                    "ask for fewer frames or a smaller buffer, or enlarge /dev/shm") from None
        return cls(shm, owner=True)

    @classmethod
    def attach(cls, name):
        """Map an existing segment.  FileNotFoundError when it is gone."""
        return cls(_Segment(name, False, 0), owner=False)

    def close(self):
        """Unmap (this process only).  Idempotent."""
        if self._shm is None:
            return
        self._pin = None
        self.buf = None
        try:
            self._shm.close()
        except BufferError:
            # A memoryview into the arena is still alive somewhere; the mapping
            # goes at exit.  Keep the segment object until then, or its __del__
            # would try to close it again and print the same BufferError.
            _still_mapped.append(self._shm)
        self._shm = None

    def unlink(self):
        """Remove the name (the memory goes when the last process unmaps it)."""
        unlink(self.name)


_still_mapped = []   # segments a live memoryview keeps mapped (private to this process)


def unlink(name):
    """Remove a segment by name; a missing one is fine.  (Straight to
    shm_unlink: SharedMemory.unlink would also "unregister" the name with a
    resource tracker that never registered it, which prints a KeyError.)"""
    try:
        _posixshmem.shm_unlink("/" + name.lstrip("/"))
    except FileNotFoundError:
        pass


def list_segments():
    """Names of every vos segment on this host (Linux: /dev/shm)."""
    try:
        return sorted(n for n in os.listdir(SHM_DIR) if parse_name(n))
    except FileNotFoundError:
        return []


def _free_bytes():
    try:
        st = os.statvfs(SHM_DIR)
        return st.f_bavail * st.f_frsize
    except OSError:
        return 0


class Layout:
    """Carves one arena into named sections at 64-byte (cache line) boundaries.
    Built the same way from the same parameters in every process, so every
    process agrees on every offset without sending any."""

    def __init__(self):
        self.size = 0
        self.sections = {}

    def add(self, name, size, align=64):
        offset = -(-self.size // align) * align
        self.sections[name] = (offset, size)
        self.size = offset + size
        return offset

    def __repr__(self):
        rows = "\n".join(f"  {o:>10}  {s:>10}  {n}" for n, (o, s) in self.sections.items())
        return f"<Layout {self.size} bytes\n      offset        size  section\n{rows}>"
