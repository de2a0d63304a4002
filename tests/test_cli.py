"""The `vos` command line: help, listings, and clear errors."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)


def vos(*args):
    return subprocess.run([sys.executable, "-m", "runtime", *args], capture_output=True, text=True, timeout=60)


def test_help_lists_the_subcommands():
    out = vos("--help")
    assert out.returncode == 0
    for cmd in ("tour", "demo", "bench", "clean", "top"):
        assert cmd in out.stdout


def test_demo_lists_the_demos():
    out = vos("demo")
    assert out.returncode == 0 and "multiplex" in out.stdout


def test_unknown_demo_names_the_choices():
    out = vos("demo", "no-such-demo")
    assert out.returncode == 2 and "multiplex" in out.stdout


def test_bench_lists_the_benchmarks():
    out = vos("bench")
    assert out.returncode == 0 and "boot" in out.stdout


def test_unknown_benchmark_is_an_error():
    out = vos("bench", "nope")
    assert out.returncode == 2


def test_top_without_kernels():
    out = vos("top", "--once", "vos_1_deadbeef")
    assert out.returncode in (0, 2)


def test_top_shows_a_live_kernel_from_another_process():
    from runtime import Kernel
    from runtime.textbook import (ACQUIRE, ALLOCATE_BOUNDED_BUFFER, ALLOCATE_LOCK, ALLOCATE_THREAD, RELEASE,
                                  SEND)
    from tests.test_threads import spin_forever, state_of, wait_for
    with Kernel(processors=1) as k:
        lock = ALLOCATE_LOCK("accounts")
        ACQUIRE(lock)
        SEND(ALLOCATE_BOUNDED_BUFFER(4), b"hello")
        tid = ALLOCATE_THREAD(spin_forever, k.address_space)
        wait_for(lambda: state_of(k, tid)["state"] == "RUNNING")
        out = subprocess.run([sys.executable, "-m", "runtime", "top", "--once", k.arena.name],
                             capture_output=True, text=True, timeout=60, env={**__import__("os").environ, "COLUMNS": "150"})
        RELEASE(lock)
        assert out.returncode == 0, out.stderr
        assert out.stderr == ""                      # leaving unmapped every segment it read, quietly
        assert "spin_forever" in out.stdout and "RUNNING" in out.stdout and "boot" in out.stdout
        assert "│ console " in out.stdout                  # thread 0 runs outside the processor limit
        assert out.stdout.count("│ RUNNING ") == 1         # RUNNING: holds one of the processors
        assert "bounded buffers" in out.stdout and "│  1/4 │" in out.stdout and "│  5 B │" in out.stdout
        assert "'accounts'" in out.stdout and "thread 0" in out.stdout      # the lock and its holder
        assert "virtual memory" in out.stdout


SEQUENCE = """
import sys
from runtime import Kernel
for step in range(2):                  # a demo's steps: a kernel each, one after the other
    with Kernel() as k:
        print(k.arena.name, flush=True)
        sys.stdin.readline()
"""


def test_top_follows_the_next_kernel_of_the_same_process():
    """The newcomer's report: the demos start a kernel per step, and `vos top`
    exited after step 1."""
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.Popen([sys.executable, "-c", SEQUENCE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, cwd=root)
    top = None
    try:
        first = child.stdout.readline().strip()
        top = subprocess.Popen([sys.executable, "-m", "runtime", "top", first, "--interval", "0.05"], cwd=root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "120"})
        assert top.stdout.readline().startswith(f"following kernel {first} (process {child.pid}")
        child.stdin.write("\n")
        child.stdin.flush()                                   # step 1 ends, step 2 boots
        second = child.stdout.readline().strip()
        assert top.stdout.readline().strip() == f"kernel {first} has ended"
        line = top.stdout.readline()
        assert line.startswith(f"following kernel {second} (process {child.pid}") and "its kernel 2" in line
        child.stdin.write("\n")
        child.stdin.flush()                                   # the process ends
        assert child.wait(timeout=30) == 0
        out, err = top.communicate(timeout=30)
        assert top.returncode == 0 and err == ""
        assert f"kernel {second} has ended" in out and f"process {child.pid} has ended" in out
    finally:
        for p in (child, top):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_top_lists_the_running_kernels_to_pick_from():
    from runtime import Kernel
    with Kernel() as k:
        out = vos("top", "--list")
        assert out.returncode == 0
        assert k.arena.name in out.stdout and "running vos kernels" in out.stdout


@pytest.mark.parametrize("typed,chosen", [("2", "vos_2_b"), ("", "vos_1_a"), ("9", None), (EOFError, None)])
def test_top_asks_which_kernel_at_a_terminal(monkeypatch, typed, chosen):
    """Several kernels at a terminal: vos top asks.  Enter takes the first, a
    wrong number is refused by name, and input that ended (Ctrl-D, or no
    terminal behind stdin) is no choice, not a traceback."""
    import builtins
    import io
    import re
    from rich.console import Console
    from runtime.cli import top

    def answer(*_):
        if typed is EOFError:
            raise EOFError
        return typed
    monkeypatch.setattr(builtins, "input", answer)
    monkeypatch.setattr(top, "_command", lambda pid: "vos demo counter")
    console = Console(file=io.StringIO(), force_terminal=True, force_interactive=True, width=80)
    assert top._pick([("vos_1_a", 1, 3), ("vos_2_b", 2, 4)], console) == chosen
    if typed == "9":
        assert "no kernel number '9'" in re.sub(r"\x1b\[[0-9;]*m", "", console.file.getvalue())


def test_vos_sh_c_starts_without_the_heavy_modules():
    """`vos sh -c` is a shell: its start-up is part of every command.  It
    imports no rich (a Console only to draw a trace; `-c` once made one
    anyway: its value landed in args.command), and none of what only
    controlled runs, swapping or error messages need."""
    heavy = ("rich", "psutil", "json", "hashlib", "secrets", "difflib", "platform",
             "multiprocessing.shared_memory", "runtime.sched.trace", "runtime.views.tables")
    code = ("import sys; from runtime.cli import main; status = main(['sh', '-c', 'echo hi | cat']); "
            f"print(status, [m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout == "hi\n0 []\n", out.stderr
