"""Fixtures every test gets.

`no_leaks` (autouse) fails any test that leaves a vos shared-memory segment
in /dev/shm, a vos swap file, or a live child process behind, and cleans
up after it so that one leak does not fail every later test too.
"""

import glob
import os
import signal
import tempfile

import psutil
import pytest

from runtime import arena
from runtime.context import current_or_none


def _ours(name):
    """Segments and swap files of kernels booted in this test process.  (Other
    test runs may share the host: their segments are none of our business, and
    tests that boot kernels in child processes check those themselves.)"""
    parsed = arena.parse_name(name)
    return parsed is not None and parsed[0] == os.getpid()


def _segments():
    return {n for n in arena.list_segments() if _ours(n)}


def _swapfiles():
    return {p for p in glob.glob(os.path.join(tempfile.gettempdir(), "vos_*.swap"))
            if _ours(os.path.basename(p)[:-len(".swap")])}


def _children():
    out = {}
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        if "resource_tracker" in cmd or "forkserver" in cmd:
            continue  # multiprocessing's own helpers live as long as the test process
        out[p.pid] = cmd
    return out


def _wait_children_gone(pids, timeout=3.0):
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            pass
    _gone, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p.pid for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture(autouse=True)
def no_leaks():
    before_seg, before_swap, before_kids = _segments(), _swapfiles(), set(_children())
    yield
    problems = []
    ctx = current_or_none()
    if ctx is not None and ctx.tid == 0:
        problems.append("a kernel is still running in the test process (missing `with` or shutdown())")
        ctx.kernel.shutdown()
    new_kids = set(_children()) - before_kids
    alive = _wait_children_gone(new_kids)  # VPs that are exiting get a moment to finish
    if alive:
        problems.append(f"child processes still alive: {alive}")
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _wait_children_gone(alive)
    leaked = _segments() - before_seg
    if leaked:
        problems.append(f"shared-memory segments left in /dev/shm: {sorted(leaked)}")
        for name in leaked:
            arena.unlink(name)
    swaps = _swapfiles() - before_swap
    if swaps:
        problems.append(f"swap files left: {sorted(swaps)}")
        for path in swaps:
            os.unlink(path)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
