"""Leaving the kernel: Ctrl-C, SIGTERM, SIGKILL of the kernel, and `vos clean`.

Each test runs a boot program in its own process (tests/kernel_child.py) and
checks, from outside, that its VPs end and its segments go."""

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from runtime import Kernel, arena, cleanup

pytestmark = pytest.mark.timeout(60)
CHILD = os.path.join(os.path.dirname(__file__), "kernel_child.py")
METHODS = ["fork", "spawn", "forkserver"]


def start(method, pool=0):
    proc = subprocess.Popen([sys.executable, CHILD, method, str(pool)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail(f"the boot program did not start: {proc.stderr.read()}")
    return proc, json.loads(line)


def segments_of(info):
    return [n for n in arena.list_segments() if n.startswith(info["arena"])]


def all_gone(pids, timeout):
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("method", METHODS)
def test_ctrl_c_ends_every_vp_and_removes_every_segment(method):
    proc, info = start(method)
    assert segments_of(info)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: the whole foreground group
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert all_gone(info["vps"], 5) == []
    assert segments_of(info) == []


@pytest.mark.parametrize("method", METHODS)
def test_sigterm_ends_every_vp_and_removes_every_segment(method):
    proc, info = start(method)
    proc.terminate()
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert all_gone(info["vps"], 5) == []
    assert segments_of(info) == []


@pytest.mark.parametrize("method", METHODS)
def test_sigkill_of_the_kernel_then_vos_clean(method):
    proc, info = start(method)
    proc.kill()
    proc.wait(timeout=10)
    # The VPs notice that their kernel is gone (clock-interrupt liveness check) within ~1 s.
    assert all_gone(info["vps"], 5) == []
    assert segments_of(info), "a SIGKILLed kernel cannot remove its own arena"
    dead = cleanup.find_dead()
    assert info["arena"] in dead
    cleanup.clean({info["arena"]: dead[info["arena"]]})   # only ours: other test runs may share the host
    assert segments_of(info) == []


MONITOR = """
import sys
from runtime.kernel import Kernel

def watch(name):
    k = Kernel.attach_by_name(name)            # what `vos top` does, to a dead kernel too
    print(len(k.thread_info()), flush=True)
    sys.stdin.read()
    k.detach()

watch(sys.argv[1])
"""


def test_vos_clean_ends_the_dead_kernels_vps_but_not_a_monitor_attached_to_it():
    """Issue 10: `vos clean` took a `vos top` attached to a dead kernel for one
    of its VPs (it maps the same segments) and SIGKILLed it.  The VPs are
    stopped here, so that they cannot notice the death and end themselves:
    only `vos clean` can end them."""
    proc, info = start("fork")
    for pid in info["vps"]:
        os.kill(pid, signal.SIGSTOP)
    proc.kill()
    proc.wait(timeout=10)
    monitor = subprocess.Popen([sys.executable, "-c", MONITOR, info["arena"]], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=os.path.dirname(os.path.dirname(CHILD)))
    try:
        assert int(monitor.stdout.readline()) == 4   # attached: thread 0 and the three VPs
        dead = cleanup.find_dead()
        assert info["arena"] in dead
        assert dead[info["arena"]]["vps"] == sorted(info["vps"])
        cleanup.clean({info["arena"]: dead[info["arena"]]})   # only ours: other test runs may share the host
        assert all_gone(info["vps"], 5) == []
        assert segments_of(info) == []
        assert monitor.poll() is None, "vos clean killed the monitor"
    finally:
        for pid in info["vps"]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        monitor.stdin.close()
        monitor.wait(timeout=10)
    assert monitor.returncode == 0 and monitor.stderr.read() == ""


def test_vos_clean_never_touches_a_live_kernel():
    with Kernel() as k:
        assert k.arena.name not in cleanup.find_dead()
        out = subprocess.run([sys.executable, "-m", "runtime", "clean"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0
        assert k.arena.name in arena.list_segments()


def test_an_exception_in_the_boot_program_cleans_up():
    with pytest.raises(RuntimeError):
        with Kernel() as k:
            name = k.arena.name
            raise RuntimeError("the boot program failed")
    assert name not in arena.list_segments()


def test_a_kernel_of_another_version_is_skipped_by_top_and_clean():
    """An arena whose config names a class this version of vos does not have
    (Config moved modules between versions): `vos top` and `vos clean` skip
    it instead of crashing on a ModuleNotFoundError from unpickling."""
    import pickle
    import struct
    from runtime.cli import top
    from runtime.kernel import H_MAGIC, MAGIC

    config = pickle.dumps(arena.Arena)                 # a class, by module and name ...
    config = config.replace(b"runtime.arena", b"runtime.gone!")   # ... whose module is gone
    a = arena.Arena.create(arena.new_name(), 4096)
    try:
        a.buf[H_MAGIC:H_MAGIC + 8] = MAGIC
        struct.pack_into("<q", a.buf, 64, len(config))
        a.buf[72:72 + len(config)] = config
        with pytest.raises(ValueError, match="does not unpickle"):
            Kernel.attach_by_name(a.name)
        assert top._attach(a.name) is None
        assert cleanup._vps(a.name) == []
    finally:
        a.close()
        a.unlink()


def test_the_idle_pool_vps_of_a_killed_kernel_are_gone_within_two_seconds():
    """Issue 15: every lifecycle promise holds under the pool: the running
    VPs and the idle pooled ones notice the kernel's SIGKILL by themselves."""
    proc, info = start("fork", pool=6)     # three run the spinners, the rest wait idle
    try:
        vps = [c.pid for c in psutil.Process(proc.pid).children()]
        idle = sorted(set(vps) - set(info["vps"]))
        assert len(idle) >= 3, f"the pool VPs: {idle} beside the running {info['vps']}"
        proc.kill()
        proc.wait(timeout=10)
        assert all_gone(vps, 2) == [], "VPs outlived their kernel by 2 s"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        dead = cleanup.find_dead()
        if info["arena"] in dead:
            cleanup.clean({info["arena"]: dead[info["arena"]]})   # only ours
    assert segments_of(info) == []
