"""What the command line prints fits a terminal of 80 columns (and 100):
no title, table cell or header cut with rich's "…" (or "...").

Each test renders into a rich Console(width=W, file=StringIO()) the way the
command does.  The demos themselves are checked at 80 columns by their smoke
test (test_demos.py)."""

import argparse
import io
import types

import pytest
from rich.console import Console

import demos
from runtime import Kernel
from runtime.cli import clean as clean_cli
from runtime.cli import demo as demo_cli
from runtime.cli import top as top_cli
from runtime.cli import tour as tour_cli
from runtime.views.tables import kernel_view
from runtime.textbook import (ACQUIRE, ALLOCATE_BOUNDED_BUFFER, ALLOCATE_EVENTCOUNT, ALLOCATE_LOCK,
                              ALLOCATE_THREAD, DESTROY_THREAD, RELEASE, SEND)
from tests.test_demos import cropped
from tests.test_threads import spin_forever, state_of, wait_for

pytestmark = pytest.mark.timeout(60)
WIDTHS = [80, 100]


def render(width, draw):
    console = Console(width=width, file=io.StringIO(), force_terminal=False)
    draw(console)
    return console.file.getvalue()


def cut_lines(text):
    """Lines cut by rich ("…"), or rows of a table wider than the console (cropped at its edge)."""
    return [line for line in text.splitlines() if "…" in line or "..." in line or cropped(line)]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_demo_list_with_its_chinese_slides(width):
    text = render(width, lambda c: demo_cli.run(argparse.Namespace(name=None, quick=True), c))
    assert "multiplex" in text and "复用" in text
    assert cut_lines(text) == []


@pytest.mark.parametrize("width", WIDTHS)
def test_the_tours_headings(width, monkeypatch):
    """Every demo's heading in the tour, with its title and slide (the demos
    themselves replaced by nothing)."""
    real = demos.all_demos()
    fake = [(name, types.SimpleNamespace(TITLE=mod.TITLE, SLIDE=getattr(mod, "SLIDE", ""),
                                         main=lambda console, quick: None)) for name, mod in real]
    monkeypatch.setattr(demos, "all_demos", lambda: fake)
    text = render(width, lambda c: tour_cli.run(argparse.Namespace(quick=True, pause=False), c))
    for _, mod in real:
        assert mod.TITLE.split()[0] in text
    assert cut_lines(text) == []


def test_the_tour_pauses_only_when_someone_can_press_enter(monkeypatch):
    """Piped: straight through.  At a terminal: Enter between demos.  An
    ended standard input stops the pausing instead of failing."""
    fake = [(f"d{i}", types.SimpleNamespace(TITLE=f"demo {i}", SLIDE="", main=lambda console, quick: None))
            for i in range(3)]
    monkeypatch.setattr(demos, "all_demos", lambda: fake)
    asked = []
    console = Console(width=80, file=io.StringIO(), force_terminal=False)
    monkeypatch.setattr(console, "input", lambda prompt="": asked.append(prompt) or "")
    tour_cli.run(argparse.Namespace(quick=True, pause=None), console)       # the file is no terminal
    assert asked == []
    monkeypatch.setattr(tour_cli, "interactive", lambda console: True)
    tour_cli.run(argparse.Namespace(quick=True, pause=None), console)
    assert len(asked) == 2 and "d1" in asked[0] and "d2" in asked[1]   # between demos, not after the last
    tour_cli.run(argparse.Namespace(quick=True, pause=False), console)     # --no-pause
    assert len(asked) == 2

    def ended(prompt=""):
        asked.append(prompt)
        raise EOFError
    monkeypatch.setattr(console, "input", ended)
    tour_cli.run(argparse.Namespace(quick=True, pause=True), console)
    assert len(asked) == 3                                              # asked once, then ran through


@pytest.mark.parametrize("width", WIDTHS)
def test_top_with_every_table(width):
    with Kernel(processors=2) as k:
        name = k.arena.name
        lock = ALLOCATE_LOCK("accounts")
        ACQUIRE(lock)
        SEND(ALLOCATE_BOUNDED_BUFFER(4), b"hello")
        ALLOCATE_EVENTCOUNT("items")
        tids = [ALLOCATE_THREAD(spin_forever, k.address_space) for _ in range(3)]
        try:
            wait_for(lambda: sum(state_of(k, t)["state"] == "RUNNING" for t in tids) == 2)
            title = top_cli._title(k, k.threads.get64(k.threads.slot_off(0, 16)), 2)
            text = render(width, lambda c: c.print(kernel_view(k.statistics(), title)))
            listing = render(width, lambda c: c.print(top_cli._listing(top_cli._running())))
        finally:
            for t in tids:
                DESTROY_THREAD(t)
            for t in tids:
                try:
                    k.join(t, timeout=30)
                except Exception:
                    pass
            RELEASE(lock)
    for table in ("bounded buffers", "locks", "eventcounts", "virtual memory", "switches"):
        assert table in text
    assert cut_lines(text) == []
    assert name in listing and cut_lines(listing) == []


@pytest.mark.parametrize("width", WIDTHS)
def test_bench_table(width):
    from benchmarks.harness import Row, table
    rows = [Row("ACQUIRE + RELEASE, uncontended", "s", 1.03e-6, "multiprocessing.Lock", 0.09e-6, False, 1 / 3,
                "CAS: ctypes libatomic"),
            Row("the floor: a bare ring, round trip", "s", 4.7e-6, "os.pipe", 21.1e-6, False, None,
                "what a Python ring can reach; the goal asks 5x"),
            Row("64 KiB, zero-copy receive_view", " B/s", 9.69e9, "os.pipe", 2.11e9, True, 4.0,
                "goal: at most 0.2x the pipe's time")]
    text = render(width, lambda c: table(c, "vos bench ipc", rows, 5))
    assert "multiprocessing.Lock" in text and "Python ring" in text
    assert cut_lines(text) == []


@pytest.mark.parametrize("width", WIDTHS)
def test_clean_table_and_its_nothing_to_clean(width, monkeypatch):
    dead = {"vos_123456_0123abcd": {"pid": 123456, "segments": ["a", "b"], "swap": ["s"],
                                    "vps": [123457, 123458, 123459]}}
    monkeypatch.setattr(clean_cli, "find_dead", lambda: dead)
    text = render(width, lambda c: clean_cli.run(argparse.Namespace(dry_run=True), c))
    assert "vos_123456_0123abcd" in text and cut_lines(text) == []
    monkeypatch.setattr(clean_cli, "find_dead", lambda: {})
    monkeypatch.setattr(clean_cli, "list_segments", lambda: [])
    text = render(width, lambda c: clean_cli.run(argparse.Namespace(dry_run=False), c))
    assert "nothing to clean" in text and "every vos segment belongs to a live kernel" not in text
