"""The atomic-word layer: both entry points, the CAS instruction page and its
libatomic fallback, atomicity between processes, and bitset futex wake-ups."""

import os
import subprocess
import sys
import time

import psutil
import pytest

from runtime import atomics
from runtime.arena import Arena, new_name

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def word():
    a = Arena.create(new_name() + "_atomics", 4096)
    try:
        yield a
    finally:
        a.close()
        a.unlink()


def test_plain_and_prepared_forms_agree(word):
    addr = word.addr
    p = atomics.pointer(addr)
    big = 1 << 40
    atomics.store(addr, big)
    assert atomics.load_p(p) == big
    atomics.store_p(p, atomics.c_arg(-big))
    assert atomics.load(addr) == -big
    assert atomics.exchange_p(p, 7) == -big and atomics.load(addr) == 7
    assert atomics.fetch_add_p(p, atomics.c_arg(big)) == 7 and atomics.load(addr) == big + 7
    assert atomics.compare_exchange_p(p, 5, 9) == big + 7                       # fails: returns the word
    assert atomics.compare_exchange_p(p, atomics.c_arg(big + 7), 3) == big + 7  # succeeds
    assert atomics.load(addr) == 3
    atomics.fence()


def test_c_arg_never_lets_ctypes_truncate():
    assert atomics.c_arg(5) == 5 and type(atomics.c_arg(-(1 << 31))) is int
    wide = atomics.c_arg(1 << 31)
    assert wide.value == 1 << 31 and type(wide) is not int
    with pytest.raises(OverflowError):
        atomics.c_arg(1 << 63)


def test_the_libatomic_fallback_behaves_like_the_instruction():
    code = ("from runtime import atomics; import ctypes\n"
            "w = ctypes.c_int64(1 << 40); p = atomics.pointer(ctypes.addressof(w))\n"
            "assert atomics.compare_exchange_p(p, 0, 1) == 1 << 40 and w.value == 1 << 40\n"
            "assert atomics.compare_exchange_p(p, atomics.c_arg(1 << 40), -2) == 1 << 40 and w.value == -2\n"
            "print(atomics.CAS_IMPLEMENTATION)\n")
    env = dict(os.environ, VOS_NO_CAS_PAGE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("libatomic")


def _cas_increments(name, n):
    a = Arena.attach(name)
    p = atomics.pointer(a.addr)
    for _ in range(n):
        while True:
            old = atomics.load_p(p)
            if atomics.compare_exchange_p(p, atomics.c_arg(old), atomics.c_arg(old + 1)) == old:
                break
        atomics.fetch_add_p(p, atomics.c_arg(1 << 32))
    os._exit(0)


def test_cas_and_fetch_add_are_atomic_between_processes(word):
    n, procs = 20_000, 3
    pids = []
    for _ in range(procs):
        pid = os.fork()
        if pid == 0:
            _cas_increments(word.name, n)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    w = atomics.load(word.addr)
    assert w & 0xFFFFFFFF == n * procs and w >> 32 == n * procs


@pytest.mark.skipif(not atomics._HAVE_FUTEX, reason="bitset futexes are Linux-only")
def test_a_bitset_wake_wakes_only_matching_sleepers(word):
    p = atomics.pointer(word.addr)
    pid = os.fork()
    if pid == 0:
        atomics.futex_wait_bitset(p, 0, 1 << 3, 20.0)
        os._exit(0 if atomics.load(word.addr) == 0 else 1)
    child = psutil.Process(pid)
    deadline = time.monotonic() + 10
    while child.status() != psutil.STATUS_SLEEPING and time.monotonic() < deadline:
        time.sleep(0.001)
    assert atomics.futex_wake_bitset(p, 1 << 5) == 0     # not its bit: nobody woken
    woken = 0
    while not woken and time.monotonic() < deadline:     # its bit (retry until it is in the futex)
        woken = atomics.futex_wake_bitset(p, 1 << 3)
    assert woken == 1
    assert os.waitpid(pid, 0)[1] == 0
