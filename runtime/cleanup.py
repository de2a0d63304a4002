"""What `vos clean` does: remove what dead kernels left behind.

A kernel that was SIGKILLed cannot remove its arenas and swap file, and its
VPs end themselves only at their next liveness check.  This module finds, for
every vos segment on the host, the kernel that owns it (the pid in its name),
and when that kernel is dead:

  * kills its remaining VPs: processes that still map one of its segments
    (read from /proc/PID/maps, so an unrelated process that reused a pid is
    never touched);
  * unlinks every segment whose name starts with the kernel's arena name;
  * removes its swap file (tempdir/<arena name>.swap).

A live kernel's segments are never touched: the kernel is alive when its pid
exists, is not a zombie, and (if its header is readable) started at the time
its header records.
"""

import glob
import os
import signal
import struct
import tempfile

from . import arena
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
    from .kernel import _start_ticks
    return recorded == 0 or recorded == _start_ticks(pid)


def _mappers(main_name):
    """Pids of processes that map any segment of this kernel (Linux)."""
    found = []
    needle = f"/dev/shm/{main_name}".encode()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/maps", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


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
        info["vps"] = _mappers(main)
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
