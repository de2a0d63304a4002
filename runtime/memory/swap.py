"""The swap file: disk standing in for memory (模拟: 硬盘 → 交换空间).

One ordinary file per kernel.  `Kernel(swap=path)` names it; by default it is
`{tempdir}/{arena name}.swap`, created at boot and removed at shutdown (also on
an exception or Ctrl-C, like the arenas).  Page descriptor g lives at byte
g * page_size (see tables.py), so the file needs no allocator; it is created
sparse, and only pages that were really written take disk space.

I/O is positional (pread / pwrite, straight between the file and the frame in
shared memory, no intermediate copy), so processes never share a file offset.
Each process opens the file itself, lazily, and re-opens it after a fork.
Callers do I/O without holding the VM lock: the page is "in transit" (its
descriptor says EVICTING or LOADING), which is what keeps everyone else away.
"""

import os

from ..errors import OutOfResources


def default_path(arena_name):
    import tempfile                      # (random, shutil: only for a machine that swaps)
    return os.path.join(tempfile.gettempdir(), f"{arena_name}.swap")


class SwapFile:
    """The swap file of one kernel.  Methods run in any process."""

    def __init__(self, path, page_size, pages):
        self.path = path
        self.page_size = page_size
        self.pages = pages
        self._fd = None
        self._pid = None

    @property
    def enabled(self):
        return self.pages > 0

    def create(self):
        """Kernel process, at boot: a fresh sparse file.  OutOfResources if impossible."""
        if not self.enabled:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as e:
            raise OutOfResources(f"cannot create the swap file {self.path}: {e}") from None
        self._fd, self._pid = fd, os.getpid()

    def _file(self):
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR)
            self._pid = os.getpid()
        return self._fd

    def write(self, slot, frame_view):
        """Write one page (a memoryview of its frame) to its slot."""
        fd = self._file()
        pos = slot * self.page_size
        done = 0
        while done < self.page_size:
            done += os.pwrite(fd, frame_view[done:], pos + done)

    def read(self, slot, frame_view):
        """Read one page from its slot into the frame (zeros past the end of file)."""
        fd = self._file()
        pos = slot * self.page_size
        done = 0
        while done < self.page_size:
            n = os.preadv(fd, [frame_view[done:]], pos + done)
            if n == 0:
                frame_view[done:] = bytes(self.page_size - done)
                break
            done += n

    def close(self):
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def remove(self):
        """Kernel process, at shutdown."""
        self.close()
        if self.enabled:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
