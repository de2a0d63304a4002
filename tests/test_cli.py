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
        assert "bounded buffers" in out.stdout and "1/4 (5 B)" in out.stdout
        assert "'accounts'" in out.stdout and "thread 0" in out.stdout      # the lock and its holder
        assert "virtual memory" in out.stdout
