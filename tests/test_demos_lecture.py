"""The demos of the lecture's other ideas, run in their quick form: each must
show what its slide says, measured in the run (aggregation, the virtual link,
a thread's first frames, denial of service, escape)."""

import io
import re

import pytest
from rich.console import Console

import demos

pytestmark = pytest.mark.timeout(120)


def run(name):
    out = io.StringIO()
    demos.get(name).main(Console(file=out, width=200, force_terminal=False), quick=True)
    return out.getvalue()


def test_aggregation_keeps_the_interface_and_survives_a_member_deallocated():
    text = run("aggregation")
    assert "NOT exactly once" not in text and "messages lost or duplicated" not in text
    flat = " ".join(text.split())
    assert flat.count("every message exactly once, in each sender's order") == 3, text
    assert re.search(r"Member \[2\] gone; [1-9]\d* sender\(s\) moved", flat), text
    for label in ("1->1 one buffer", "4->4 one buffer", "4->4 bundle of 4", "4->4 bundle of 4, 1 gone"):
        assert re.search(re.escape(label) + r"\s+│[^\n]*│\s+yes\s+│", text), label


def test_link_shows_the_raw_line_broken_and_the_virtual_link_intact():
    text = run("link")
    broken = re.search(r"([\d,]+) missing, ([\d,]+) twice, ([\d,]+) out of order, ([\d,]+) corrupted", text)
    assert broken and all(int(n.replace(",", "")) > 0 for n in broken.groups()), text
    assert "every message once, intact, in order" in text
    rows = re.findall(r"│\s+(\d)\s+│\s+([\d,]+)\s+│\s+(\d+)\s+│\s+(\d+)\s+│\s+(\d+)\s+│\s+(\d+)\s+│", text)
    assert len(rows) == 3 and all(r[2:] == ("0", "0", "0", "0") for r in rows), rows


def test_frames_runs_the_recipe_and_switches_by_sp():
    text = run("frames")
    assert "PRINT, in order: thread 0: 2, thread 1: 3, thread 0: 1, thread 1: 2, thread 1: 1." in text
    assert re.search(r"sp▸ 0x[0-9a-f]+\s+→ count\s+frame 3", text)
    assert "YIELD: load sp" in text and "returned into exit" in text


def test_frames_fits_80_columns():
    out = io.StringIO()
    demos.get("frames").main(Console(file=out, width=80, force_terminal=False), quick=True)
    assert max(len(line) for line in out.getvalue().splitlines()) <= 80


def test_dos_the_hog_takes_the_polite_threads_frames_unless_it_has_a_quota():
    text = run("dos")
    rows = dict((label, evicted) for label, evicted in
                re.findall(r"│\s+(none|\d+ frames)\s+│[^\n]*│\s+([\d,]+)\s+│", text))
    assert int(rows["none"].replace(",", "")) > 0, text
    assert rows["16 frames"] == "0", text


def test_escape_reads_past_the_pager_and_names_who_it_can():
    text = run("escape")
    assert "SegmentationFault" in text
    assert re.search(r"2a\. a thread maps the arena by name\s+│\s+read", text)
    assert re.search(r"2b\. another process, same user\s+│\s+read", text)
    assert re.search(r"3c\. the check\s+│\s+named 2 of 2", text)
    assert re.search(r"4\. read through its own mapping\s+│\s+read\s+│\s+not named", text)


def test_the_tour_takes_them_in_the_lectures_order():
    names = [n for n, _ in demos.all_demos()]
    assert names.index("multiplex") < names.index("aggregation") < names.index("link") < names.index("frames") \
        < names.index("counter")
    assert names.index("pipe") < names.index("dos") < names.index("escape")
