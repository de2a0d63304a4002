"""What `vos clean` does: remove what dead kernels left behind.

A kernel that was SIGKILLed cannot remove its arenas and swap file, and its
VPs end themselves only at their next liveness check (a VP that is stopped,
in a debugger or by SIGSTOP, never gets there).  This module finds, for
every vos segment on the host, the kernel that owns it (the pid in its name),
and when that kernel is dead:

  * kills its remaining VPs (below);
  * unlinks every segment whose name starts with the kernel's arena name;
  * removes its swap file (tempdir/<arena name>.swap).

A live kernel's segments are never touched: the kernel is alive when its pid
exists, is not a zombie, and (if its header is readable) started at the time
its header records.

Which processes are VPs of the dead kernel.  Only those may be ended.
Mapping the kernel's segments does not make a process a VP: `vos top` maps
them too, and so may a debugger or any monitor, and used to be killed for it.
The parent does not tell either: once the kernel is dead its orphaned VPs
belong to init (or to whatever subreaper is above), like any orphan.  What
only a VP has is its entry in the kernel's thread table: every VP writes its
own pid there when it starts (and its creator writes the same value), and
the reserver records the wall-clock time at which the thread was created.
So a process is a VP of the dead kernel when

    its pid is the pid of a thread (not thread 0, the kernel itself) in the
    dead kernel's thread table, and the process was started (psutil's
    create_time, from /proc) no earlier than 2 s before that thread was
    created and no later than 60 s after it (/proc gives the start to
    the clock tick, psutil's boot time to the second).

The time test tells a pid reused by an unrelated process apart: reuse needs
the pid space to wrap around after the VP died, and the newcomer then starts
later than 60 s after the VP's creation in any but a pathological case (a
reused pid inside that window would also have to be a process of this user).
A VP that was forked but had not yet written its pid (a few bytecodes after
its creation) is not found; it ends itself at its first liveness check.
When the main arena is gone or unreadable, no process is identified and none
is killed.
"""

import glob
import os
import signal
import struct
import tempfile

import psutil

from . import arena
from .errors import KernelError
from .kernel import Kernel, _start_ticks
from .threads import pid_alive

_H_PID, _H_START = 8, 16


def _kernel_alive(main_name, pid):
    if not pid_alive(pid):
        return False
    try:
        a = arena.Arena.attach(main_name)
    except (FileNotFoundError, OSError, ValueError):
        return True  # no header to compare: trust the pid
    try:
        recorded = struct.unpack_from("<q", a.buf, _H_START)[0]
    finally:
        a.close()
    return recorded == 0 or recorded == _start_ticks(pid)


_BEFORE, _AFTER = 2.0, 60.0   # how far a VP's process start may lie from its thread's creation (s)


def _vps(main_name):
    """Pids of the running VPs of the (dead) kernel whose main arena is
    main_name, identified by its thread table (see the module doc)."""
    try:
        k = Kernel.attach_by_name(main_name)
    except (OSError, ValueError, KernelError):
        return []              # gone, not a vos arena, or a header that does not unpickle
    try:
        rows = [r for r in k.thread_info() if r["tid"] != 0 and r["pid"] > 0]
    finally:
        k.detach()
    found = []
    for r in rows:
        try:
            p = psutil.Process(r["pid"])
            started = p.create_time()
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        created = r["started_ns"] / 1e9
        if created - _BEFORE <= started <= created + _AFTER and r["pid"] != os.getpid():
            found.append(r["pid"])
    return sorted(set(found))


def find_dead():
    """{main arena name: {"pid": kernel pid, "segments": [...], "swap": [...], "vps": [...]}}
    for every kernel that is gone.  Reads only."""
    kernels = {}
    for name in arena.list_segments():
        pid, main = arena.parse_name(name)
        kernels.setdefault(main, {"pid": pid, "segments": []})["segments"].append(name)
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"{arena.PREFIX}*.swap")):
        parsed = arena.parse_name(os.path.basename(path)[:-len(".swap")])
        if parsed:
            kernels.setdefault(parsed[1], {"pid": parsed[0], "segments": []}).setdefault("swap", []).append(path)
    dead = {}
    for main, info in kernels.items():
        if _kernel_alive(main, info["pid"]):
            continue
        info.setdefault("swap", [])
        info["vps"] = _vps(main)
        dead[main] = info
    return dead


def clean(dead=None):
    """Remove everything `find_dead()` found; returns what it found."""
    dead = find_dead() if dead is None else dead
    for info in dead.values():
        for pid in info["vps"]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for name in info["segments"]:
            arena.unlink(name)
        for path in info["swap"]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    return dead
