"""`vos demo pipe`: the lecture's `ls -la | grep cse`, run through the vos shell.

Each test runs the demo (quick, under a second) and reads its text: the
question is what a student sees."""

import io
import re

import pytest
from rich.console import Console

import demos
from demos import pipe


def run_demo(quick=True):
    out = io.StringIO()
    pipe.main(Console(file=out, width=200), quick=quick)
    return out.getvalue()


def section(text, start, end=None):
    """The text from the line starting with `start` to the one starting with `end`."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next((i for i, line in enumerate(lines) if end and i > first and line.startswith(end)), len(lines))
    return lines[first:last]


def transcript(lines, command):
    """The output lines printed under the prompt line `~ % command`."""
    i = next(i for i, line in enumerate(lines) if line.strip() == f"~ % {command}")
    out = []
    for line in lines[i + 1:]:
        if not line.startswith("    ") or line.strip().startswith("~ %"):
            break
        out.append(line.strip())
    return out


@pytest.mark.timeout(60)
def test_grep_lets_through_the_cse_lines_and_only_those():
    step1 = section(run_demo(), "Step 1.", "Step 2.")
    total = len(pipe.CSE_FILES) + len(pipe.OTHER_FILES) + 3  # "total", "." and ".." too
    assert transcript(step1, "ls -la | wc -l") == [str(total)]
    lines = transcript(step1, "ls -la | grep cse")
    assert lines and all("cse" in line for line in lines)
    assert all(re.match(r"-[rwx-]{9} ", line) for line in lines), lines   # ls -la's long format
    assert sorted(line.split()[-1] for line in lines) == sorted(pipe.CSE_FILES)


@pytest.mark.timeout(60)
def test_the_trace_shows_the_threads_and_their_send_and_receive():
    step2 = "\n".join(section(run_demo(), "Step 2.", "Step 3."))
    assert re.search(r"thread \d+ \(ls -la\) +│ SEND \d+ B, then \d+ messages? in the buffer", step2)
    assert re.search(r"thread \d+ \(grep cse\) +│ RECEIVE \d+ B, then \d+ messages? in the buffer", step2)
    assert re.search(r"\(grep cse\) +│ RECEIVE: end of stream", step2)
    assert re.search(r"\(ls -la\) +│ EXITED", step2) and re.search(r"\(grep cse\) +│ EXITED", step2)
    assert "bounded buffers between the stages" in step2


@pytest.mark.timeout(60)
def test_head_ending_closes_the_pipe_and_ends_yes_with_sigpipes_status():
    step3 = "\n".join(section(run_demo(), "Step 3.", "  So what happens"))
    assert transcript(step3.splitlines(), "yes | head -n 3") == ["y", "y", "y"]
    assert re.search(r"│ +1 │ +\d+ │ yes +│ +141 │ its SEND found the reader gone: ReaderClosed", step3)
    assert re.search(r"│ +2 │ +\d+ │ head -n 3 +│ +0 │ finished by itself", step3)
    assert "16/16" in step3                       # yes filled every slot: the sender had to wait
    assert "ended with status 141 = 128 + 13" in step3


@pytest.mark.timeout(60)
def test_the_long_form_shows_the_closed_pipe_travelling_upstream():
    text = "\n".join(section(run_demo(quick=False), "three stages"))
    for stage, command, status in ((1, "yes", 141), (2, "grep y", 141), (3, "head -n 3", 0)):
        assert re.search(rf"│ +{stage} │ +\d+ │ {command} +│ +{status} │", text), (command, text)


@pytest.mark.timeout(30)
def test_pipe_is_the_last_demo_of_the_basic_design():
    """The pipe closes 5.3's 线程间通信; after it the tour has only the lecture's
    虚拟机 section (虚拟机跳跃、拒绝服务与逃逸: dos, escape)."""
    names = [name for name, _ in demos.all_demos()]
    assert names[names.index("pipe") + 1:] == ["dos", "escape"]
    assert demos.get("pipe").ORDER == 50 and pipe.SLIDE.startswith("管道")
