"""Escape checks: who maps this kernel's memory, and may anyone else open it.

The pager isolates address spaces through its interface only (memory/
__init__.py says so): the frames are bytes in the kernel's main arena, a
shared-memory segment that every VP maps, so a thread that reads the arena
with plain Python -- or any process that opens the segment by name -- can
read every address space (the lecture's 逃逸, escape).  A software MMU cannot
stop that; it can narrow it and notice some of it.  This module is the
noticing and the narrowing that can be checked:

  * `audit(kernel)` reads /proc/<pid>/maps of every process it may read
    (Linux) and reports
      - a process that maps one of the kernel's segments and is neither the
        kernel's process, nor one of its live VPs, nor a VP of its pool
        (pool.py: ready containers, no thread yet): an *outsider*;
      - a VP that maps the main arena more than once: the kernel gives each
        VP one mapping, so a second one was opened by name, past the pager.
    The process that runs the audit is left out (`vos top` maps the arena to
    watch it).  What it cannot see: a VP reading the frames through the
    mapping it was given looks like every other VP.
  * `permissions(kernel)` lists each segment's mode and owner: vos creates
    them 0600 (owner only; Python's SharedMemory does), so processes of
    another user cannot open them -- the same user can.

Both run in any process and take no lock; they only read /proc and stat.
"""

import dataclasses
import os
import stat

from .arena import SHM_DIR

_DELETED = " (deleted)"


@dataclasses.dataclass(frozen=True)
class Finding:
    """One process that maps the kernel's memory where it should not."""
    pid: int
    tid: int | None          # its thread id if it is a VP of the kernel, else None
    who: str                 # the thread's name, or the process's command line
    segment: str             # the segment it maps
    mappings: int            # how many times
    reason: str

    def __str__(self):
        who = f"thread {self.tid} ({self.who}, pid {self.pid})" if self.tid is not None else \
            f"pid {self.pid} ({self.who})"
        return f"{who}: {self.reason} [{self.segment}, {self.mappings} mapping(s)]"


def _segments_of(kernel):
    main = kernel.arena.name
    return main, (lambda name: name == main or name.startswith(main + "_"))


def maps(kernel, pids=None):
    """{pid: {segment name: mappings}} of every readable process that maps one
    of this kernel's segments (Linux /proc; {} where there is none)."""
    main, ours = _segments_of(kernel)
    out = {}
    for pid in (pids if pids is not None else _pids()):
        try:
            with open(f"/proc/{pid}/maps") as f:
                lines = f.readlines()
        except OSError:
            continue
        seen = {}
        for line in lines:
            parts = line.rstrip("\n").split(None, 5)
            if len(parts) < 6 or not parts[5].startswith(SHM_DIR + "/"):
                continue
            name = parts[5][len(SHM_DIR) + 1:]
            if name.endswith(_DELETED):
                name = name[:-len(_DELETED)]
            if ours(name):
                seen[name] = seen.get(name, 0) + 1
        if seen:
            out[pid] = seen
    return out


def audit(kernel):
    """The findings (see the module doc), outsiders first."""
    main, _ = _segments_of(kernel)
    kernel_pid = kernel.threads.get64(kernel.threads.slot_off(0, 16))   # thread 0's pid: the kernel process
    vps = {r["pid"]: r for r in kernel.thread_info() if r["state"] in ("RUNNABLE", "RUNNING", "WAITING")}
    pool = getattr(kernel, "pool", None)
    ready = set(pool.pids()) if pool is not None and hasattr(pool, "pids") else set()   # idle pool VPs
    me = os.getpid()
    found = []
    for pid, segs in sorted(maps(kernel).items()):
        if pid == me:
            continue
        row = vps.get(pid)
        if pid != kernel_pid and row is None and pid not in ready:
            for name, n in sorted(segs.items()):
                found.append(Finding(pid, None, _cmdline(pid), name, n,
                                     "maps the kernel's memory but is not one of its threads"))
            continue
        if segs.get(main, 0) > 1:
            tid = row["tid"] if row is not None else 0
            who = row["name"] if row is not None else "the kernel process"
            found.append(Finding(pid, tid, who, main, segs[main],
                                 "mapped the main arena again, by name: past the pager"))
    found.sort(key=lambda f: f.tid is not None)
    return found


def permissions(kernel):
    """[(segment name, mode, owner uid)] of the kernel's segments, from stat."""
    _, ours = _segments_of(kernel)
    out = []
    try:
        names = sorted(n for n in os.listdir(SHM_DIR) if ours(n))
    except FileNotFoundError:
        return out
    for name in names:
        try:
            st = os.stat(os.path.join(SHM_DIR, name))
        except FileNotFoundError:
            continue
        out.append((name, stat.S_IMODE(st.st_mode), st.st_uid))
    return out


def _pids():
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except FileNotFoundError:
        return []


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            text = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return (text[:60] + "...") if len(text) > 63 else (text or "?")


__all__ = ["Finding", "audit", "maps", "permissions"]
