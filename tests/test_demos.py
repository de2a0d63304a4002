"""Smoke test: every demo runs to the end in its quick form, at 80 columns,
says something, with at least one term of the lecture in Chinese, and cuts
nothing (no rich "…" in a title, table or header).

Parametrised over demos.all_demos(), so a new demo is covered the moment it exists."""

import io
import re

import pytest
from rich.console import Console

import demos

pytestmark = pytest.mark.timeout(90)


def cropped(line):
    """A table row whose right border fell off: the table was wider than the console."""
    line = line.rstrip()
    return line[:1] in ("┏", "┃", "┡", "│", "└", "┗") and line[-1:] not in ("┓", "┃", "┩", "│", "┘", "┛")


@pytest.mark.parametrize("name", [n for n, _ in demos.all_demos()])
def test_demo_runs(name):
    mod = demos.get(name)
    assert mod.TITLE and getattr(mod, "SLIDE", None), f"demo {name} needs TITLE and SLIDE"
    out = io.StringIO()
    mod.main(Console(file=out, width=80, force_terminal=False), quick=True)   # a terminal of 80 columns
    text = out.getvalue()
    assert "Step 1" in text or "1." in text, f"demo {name} should narrate in numbered steps"
    assert len(text.splitlines()) > 5
    cut = [line for line in text.splitlines() if "…" in line or cropped(line)]
    assert not cut, f"demo {name} cuts text at 80 columns (rich's …, or a table wider than 80): {cut}"
    assert re.search("[\u4e00-\u9fff]", text), f"demo {name} speaks no Chinese term of the lecture"


@pytest.mark.timeout(60)
def test_multiplex_measures_the_shares_so_that_unfairness_would_show():
    """The demo used to run every thread for a fixed CPU budget, so "every
    thread got about the same CPU time" could not fail.  Now each runs until
    one wall-clock deadline: three threads on two processors with a quantum
    longer than the run, and nobody yields, leave the third thread next to
    nothing, and the verdict says so."""
    from demos.multiplex import measure, verdict
    results = measure(2, 3, 0.5, 30.0)
    lo, hi, fair, ok = verdict(results)
    assert not ok and lo < fair / 3
    assert [r[0] for r in results] == sorted(r[0] for r in results)
