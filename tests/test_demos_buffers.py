"""The bounded-buffer demo, run in its quick form: two senders on the book's
one-sender code must lose messages for real, and the lock, the eventcount
version and vos's own SEND/RECEIVE must each deliver every message exactly once."""

import io
import re

import pytest
from rich.console import Console

import demos


def run(name):
    out = io.StringIO()
    demos.get(name).main(Console(file=out, width=200, force_terminal=False), quick=True)
    return out.getvalue()


def row(text, label):
    """(sent, received, again, lost) from the demo's final table."""
    cells = r"\s+│\s+([\d,]+)" * 4
    found = re.search(re.escape(label) + cells + r"\s+│", text)
    assert found, f"no table row {label!r} in:\n{text}"
    return tuple(int(n.replace(",", "")) for n in found.groups())


@pytest.mark.timeout(120)
def test_two_senders_lose_messages_then_lock_and_eventcounts_lose_none():
    text = run("buffer-race")
    m = int(re.search(r"A sends A#1\.\.A#([\d,]+)", text).group(1).replace(",", ""))

    sent, received, again, lost = row(text, "1. no lock")
    assert lost > 0, text
    assert re.search(r"lost: .*(slot \d+)", text), "step 1 should name lost messages"

    for label in ("2. ACQUIRE/RELEASE", "3. eventcounts", "4. vos SEND/RECEIVE"):
        assert row(text, label) == (2 * m, 2 * m, 0, 0), label
    assert "this fix did not hold" not in text


@pytest.mark.timeout(30)
def test_the_tour_places_it_after_the_coordination_demos_and_before_memory():
    names = [n for n, _ in demos.all_demos()]
    assert names.index("deadlock") < names.index("buffer-race") < names.index("isolation")
