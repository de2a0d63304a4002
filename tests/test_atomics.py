"""The atomic-word layer: both entry points, both implementations (the
instruction page, libatomic) giving the same results and atomic between
processes, a kernel booting and working where libatomic cannot be loaded, the
refusal at boot (not at import) where neither exists, and bitset futex
wake-ups."""

import json
import os
import random
import subprocess
import sys
import time

import psutil
import pytest

from runtime import atomics, instruction_page
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


# --- every implementation this host has, side by side -------------------------------

def _implementations():
    out = {}
    try:
        out["page"] = instruction_page.build()
    except instruction_page.PageRefused:
        pass
    lib = atomics._libatomic_ops()
    if lib is not None:
        out["libatomic"] = lib
    return out


IMPLEMENTATIONS = _implementations()


@pytest.fixture(params=["page", "libatomic"])
def impl(request):
    if request.param not in IMPLEMENTATIONS:
        pytest.skip(f"this host has no {request.param} (atomics: {atomics.IMPLEMENTATION})")
    return IMPLEMENTATIONS[request.param]


def test_the_module_uses_the_page_first_then_libatomic():
    assert IMPLEMENTATIONS, "no atomics on this host"
    assert atomics.IMPLEMENTATION == next(iter(IMPLEMENTATIONS.values())).name
    assert instruction_page.check(atomics._ops) == ""


def test_every_operation_passes_the_self_check(impl):
    assert instruction_page.check(impl) == ""


def _wrap(v):
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


OPS = ["load", "store", "exchange", "cas", "fetch_add", "fetch_or", "fetch_and"]
VALUES = [0, 1, -1, 7, -3, (1 << 31) - 1, -(1 << 31), 1 << 31, -(1 << 31) - 1, 1 << 32, 1 << 40, -(1 << 40),
          (1 << 63) - 1, -(1 << 63), 0x5555_5555_5555_5555, _wrap(0xAAAA_AAAA_AAAA_AAAA)]


def _trace(ops, addr, rng, steps):
    """A random run of every operation, prepared (C-ready arguments) and plain,
    on the word at addr: (operation, prepared, argument, returned, word after,
    what a Python model says it should have returned, and the word after)."""
    p, out, model = atomics.pointer(addr), [], 0
    ops.store(addr, 0)
    for _ in range(steps):
        op, v, e = rng.choice(OPS), rng.choice(VALUES), rng.choice(VALUES + [model] * 4)
        a, prepared = atomics.c_arg(v), rng.random() < 0.5
        if op == "load":
            got, new = (ops.load_p(p) if prepared else ops.load(addr)), model
        elif op == "store":
            got, new = (ops.store_p(p, a) if prepared else ops.store(addr, v)), v
        elif op == "exchange":
            got, new = (ops.exchange_p(p, a) if prepared else ops.exchange(addr, v)), v
        elif op == "cas":
            got = ops.compare_exchange_p(p, atomics.c_arg(e), a) if prepared else ops.compare_exchange(addr, e, v)
            new = v if e == model else model
        elif op == "fetch_add":
            got, new = (ops.fetch_add_p(p, a) if prepared else ops.fetch_add(addr, v)), _wrap(model + v)
        elif op == "fetch_or":
            got, new = (ops.fetch_or_p(p, a) if prepared else ops.fetch_or(addr, v)), model | v
        else:
            got, new = (ops.fetch_and_p(p, a) if prepared else ops.fetch_and(addr, v)), model & v
        out.append((op, prepared, v, got, ops.load(addr), None if op == "store" else model, new))
        model = new
    return out


def test_every_operation_matches_a_model_with_wide_negative_and_c_int64_values(impl, word):
    run = _trace(impl, word.addr, random.Random(5), 3000)
    wrong = [r for r in run if r[3] != r[5] or r[4] != r[6]]
    assert not wrong, wrong[:5]
    assert {(r[0], r[1]) for r in run} == {(op, prep) for op in OPS for prep in (False, True)}
    assert sum(r[0] == "cas" and r[4] != r[3] for r in run) > 10      # successful swaps, not only failures


def test_the_implementations_agree_call_for_call(word):
    if len(IMPLEMENTATIONS) < 2:
        pytest.skip(f"only {list(IMPLEMENTATIONS)} on this host")
    runs = [_trace(ops, word.addr, random.Random(11), 2000) for ops in IMPLEMENTATIONS.values()]
    assert runs[0] == runs[1]


def test_the_raw_forms_take_libatomics_memory_order_argument(impl, word):
    p = atomics.pointer(word.addr)
    impl.store_raw(p, atomics.c_arg(1 << 40), atomics.SEQ_CST)
    assert impl.load_raw(p, atomics.SEQ_CST) == 1 << 40
    assert impl.exchange_raw(p, -1, atomics.SEQ_CST) == 1 << 40
    assert impl.fetch_add_raw(p, 2, atomics.SEQ_CST) == -1
    assert impl.fetch_or_raw(p, atomics.c_arg(1 << 33), atomics.SEQ_CST) == 1
    assert impl.load(word.addr) == 1 << 33 | 1


def _hammer(ops, name, n, bit):
    """In a forked child: n CAS increments of the low half of word 0 (counting
    lost races in word 1), n fetch_adds of its high half, and n set/clear
    pairs of its own bit of word 2.  Exits 1 if its bit was ever seen wrong."""
    a = Arena.attach(name)
    p, lost, bits = atomics.pointer(a.addr), atomics.pointer(a.addr + 8), atomics.pointer(a.addr + 16)
    wrong = 0
    for _ in range(n):
        while True:
            old = ops.load_p(p)
            if ops.compare_exchange_p(p, atomics.c_arg(old), atomics.c_arg(old + 1)) == old:
                break
            ops.fetch_add_p(lost, 1)
        ops.fetch_add_p(p, atomics.c_arg(1 << 32))
        wrong += bool(ops.fetch_or_p(bits, bit) & bit) + (not ops.fetch_and_p(bits, ~bit) & bit)
    os._exit(1 if wrong else 0)


def test_cas_fetch_add_or_and_are_atomic_between_processes(impl, word):
    n, procs = 20_000, 3
    pids = []
    for i in range(procs):
        pid = os.fork()
        if pid == 0:
            _hammer(impl, word.name, n, 1 << (8 * i))
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0         # each saw its own bit clear, then set
    w = atomics.load(word.addr)
    assert w & 0xFFFFFFFF == n * procs and w >> 32 == n * procs
    assert atomics.load(word.addr + 16) == 0      # no fetch_and lost another's bit
    print(f"{atomics.load(word.addr + 8)} CAS lost a race")   # the race happened (shown with -s)


# --- hosts without libatomic ------------------------------------------------------

_TESTS = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_TESTS)


def _child(args, hide_libatomic=True, **env):
    """Run a Python child; with hide_libatomic, libatomic cannot be loaded in it
    (tests/hide_libatomic/sitecustomize.py)."""
    path = [os.path.join(_TESTS, "hide_libatomic")] if hide_libatomic else []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path + [_ROOT, os.environ.get("PYTHONPATH", "")]), **env)
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=60, cwd=_ROOT)


def test_the_hiding_works_libatomic_cannot_be_loaded_in_the_child():
    out = _child(["-c", "from runtime import atomics; import ctypes.util; "
                        "print(atomics._libatomic_ops(), ctypes.util.find_library('atomic'))"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "None"]


@pytest.mark.skipif("page" not in IMPLEMENTATIONS, reason="this host refuses the instruction page")
def test_without_libatomic_a_kernel_boots_and_its_locks_buffers_eventcounts_and_rsm_work():
    out = _child([os.path.join(_TESTS, "atomics_workload.py")])
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["implementation"].endswith("instruction page") and r["libatomic_mapped"] is False
    assert r["counter"][0] == r["counter"][1] and r["rsm_winners"][0] == r["rsm_winners"][1]
    assert r["tickets_each_once"] and r["messages_each_once"] and r["messages_in_order_per_sender"]


def test_with_neither_import_works_and_boot_refuses_with_a_clear_error():
    code = ("import runtime\n"
            "from runtime import Kernel, atomics, errors\n"
            "print(atomics.IMPLEMENTATION)\n"
            "try:\n"
            "    atomics.fetch_add(0, 1)\n"
            "except errors.AtomicsUnavailable:\n"
            "    print('operation refused')\n"
            "try:\n"
            "    Kernel().boot()\n"
            "except errors.KernelError as e:\n"
            "    print(type(e).__name__, e)\n")
    out = _child(["-c", code], VOS_NO_INSTRUCTION_PAGE="1")
    assert out.returncode == 0, out.stderr
    implementation, refused, error = out.stdout.splitlines()
    assert implementation == "none" and refused == "operation refused"
    assert error.startswith("AtomicsUnavailable vos cannot boot")
    assert "disabled by VOS_NO_INSTRUCTION_PAGE" in error and "apt install libatomic1" in error


@pytest.mark.skipif("libatomic" not in IMPLEMENTATIONS, reason="this host has no libatomic")
def test_disabling_the_page_selects_libatomic():
    code = "from runtime import atomics; print(atomics.IMPLEMENTATION, '/', atomics.CAS_IMPLEMENTATION)"
    out = _child(["-c", code], hide_libatomic=False, VOS_NO_INSTRUCTION_PAGE="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "libatomic / libatomic __atomic_compare_exchange_8"


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
