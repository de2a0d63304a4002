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
