"""`vos sh`: pipelines of VPs, redirections, exit statuses, streams, external commands."""

import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = pytest.mark.timeout(90)
ENV = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}


def vos_sh(line, cwd, stdin=b""):
    return subprocess.run([sys.executable, "-m", "runtime", "sh", "-c", line], cwd=cwd, input=stdin,
                          capture_output=True, timeout=60, env=ENV)


def real_sh(line, cwd, stdin=b""):
    return subprocess.run(["sh", "-c", line], cwd=cwd, input=stdin, capture_output=True, timeout=60, env=ENV)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "cse101.txt").write_text("operating systems\nvirtualization\n")
    (tmp_path / "cse202.md").write_text("bounded buffer\n")
    (tmp_path / "notes.txt").write_text("\n".join(f"line {i} {'cse' if i % 3 == 0 else 'ee'}" for i in range(200)) + "\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.txt").write_text("inside\n")
    return tmp_path


@pytest.mark.parametrize("line", [
    "ls | grep cse",
    "ls -1 | sort -r | head -n 2",
    "cat notes.txt | grep cse | wc -l",
    "seq 1 1000 | grep 7 | wc -l",
    "grep -c ee notes.txt; echo $?",
    "grep nothing notes.txt; echo $?",
    "cat missing.txt; echo $?",
    "false; echo $?",
    "true | false; echo $?",
    "echo 'a | b' \"c $?\"",
    "seq 1 20 | tail -n 3 | tr 0-9 a-j",
    "cut -d ' ' -f 2 < notes.txt | sort -n | uniq -c | head -n 3",
    "cat notes.txt cse101.txt | wc",              # cat reads into the buffer, wc counts views
    "cat < notes.txt | wc -c; cat notes.txt | cat | wc -lc",
])
def test_same_output_and_status_as_the_real_shell(tree, line):
    ours, theirs = vos_sh(line, tree), real_sh(line, tree)
    assert ours.stdout == theirs.stdout
    assert ours.returncode == theirs.returncode


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux's /proc/self/mem (reads fail with EIO)")
def test_a_read_error_of_cat_into_a_pipe_is_reported_like_gnu_cat(tree):
    """cat reads straight into the bounded buffer (readinto): a read error is
    still cat's diagnostic and status 1, not a crash."""
    ours = vos_sh("cat /proc/self/mem | wc -c; cat /proc/self/mem > /dev/null; echo $?", tree)
    assert ours.stdout == b"0\n1\n"
    assert ours.stderr.count(b"cat: /proc/self/mem: Input/output error") == 2


def test_redirections(tree):
    assert vos_sh("grep cse notes.txt > out.txt; echo more >> out.txt; wc -l < out.txt", tree).stdout == b"68\n"
    assert (tree / "out.txt").read_text().endswith("more\n")


def test_head_ends_an_infinite_producer(tree):
    # head leaves; the stage writing to it gets ReaderClosed (SIGPIPE's 141),
    # which closes its own input, and so on up the pipeline.
    out = vos_sh("yes | head -n 3; yes cse | grep cse | head -n 2; echo done", tree)
    assert out.stdout == b"y\ny\ny\ncse\ncse\ndone\n"


def test_head_stops_yes_promptly(tree):
    out = vos_sh("yes | head -n 100000 | wc -l", tree)
    assert out.stdout == b"100000\n" and out.returncode == 0


def test_binary_data_passes_unchanged(tree):
    data = os.urandom(3 << 20) + bytes(range(256)) * 100
    (tree / "blob.bin").write_bytes(data)
    assert vos_sh("cat blob.bin | cat | cat > copy.bin", tree).returncode == 0
    assert (tree / "copy.bin").read_bytes() == data


def test_stdin_of_the_first_stage_is_the_shells(tree):
    assert vos_sh("cat | tr a-z A-Z", tree, stdin=b"hello\n").stdout == b"HELLO\n"


@pytest.mark.skipif(shutil.which("rev") is None or shutil.which("od") is None, reason="rev/od not installed")
def test_external_commands_are_bridged(tree):
    # rev is not built in: first, middle (needs the feeder VP) and last position
    assert vos_sh("echo abc | rev", tree).stdout == b"cba\n"
    assert vos_sh("seq 1 3 | rev | cat", tree).stdout == b"1\n2\n3\n"
    assert vos_sh("printf 'x\\ny\\n' | sort -r | od -c", tree).stdout == real_sh("printf 'x\\ny\\n' | sort -r | od -c", tree).stdout
    assert vos_sh("seq 1 200000 | rev | wc -l", tree).stdout == b"200000\n"


def test_unknown_command(tree):
    out = vos_sh("no-such-command-xyz | cat; echo $?", tree)
    assert b"command not found" in out.stderr and out.stdout == b"0\n"
    assert vos_sh("no-such-command-xyz", tree).returncode == 127


def test_large_input_streams(tree):
    big = tree / "big.txt"
    with open(big, "wb") as f:
        for _ in range(40):
            f.write(b"the quick brown cse fox\n" * 50_000)
    assert vos_sh("cat big.txt | wc -c", tree).stdout.strip() == str(big.stat().st_size).encode()
    assert vos_sh("cat big.txt | grep -c cse", tree).stdout == b"2000000\n"


def test_builtins(tree):
    assert vos_sh("cd sub; ls", tree).stdout == b"inner.txt\n"
    assert vos_sh("cd nowhere", tree).returncode == 1
    assert vos_sh("exit 3", tree).returncode == 3
    assert b"built-ins" in vos_sh("help", tree).stdout


def test_syntax_error(tree):
    out = vos_sh("ls | | wc", tree)
    assert out.returncode == 2 and b"syntax error" in out.stderr


def test_missing_input_file(tree):
    out = vos_sh("wc -l < nothing.txt; echo $?", tree)
    assert b"nothing.txt: No such file or directory" in out.stderr and out.stdout == b"1\n"


def shell_threads(shell_pid):
    """The threads of the shell's kernel, read from its thread table as `vos
    top` reads it ([] while it boots)."""
    from runtime import arena
    from runtime.kernel import Kernel
    for name in {arena.parse_name(n)[1] for n in arena.list_segments() if arena.parse_name(n)[0] == shell_pid}:
        try:
            k = Kernel.attach_by_name(name)
        except (OSError, ValueError):
            continue
        try:
            return k.thread_info()
        finally:
            k.detach()
    return []


def wait_for_stage(shell_pid, name):
    deadline = time.monotonic() + 30
    while not [r for r in shell_threads(shell_pid) if r["tid"] != 0 and r["state"] == "RUNNING"
               and r["name"] == name]:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_ctrl_c_ends_the_pipeline_not_the_shell(tree):
    """The stage's VP (a pooled one) dies with it, and the next pipeline runs.
    (tests/shell/test_session.py looks at the pool itself.)"""
    proc = subprocess.Popen([sys.executable, "-m", "runtime", "sh"], cwd=tree, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    proc.stdin.write(b"yes > /dev/null\n")
    proc.stdin.flush()
    wait_for_stage(proc.pid, "run_stage")                    # the stage runs (not: the pool's VPs exist)
    stage_pid = next(r["pid"] for r in shell_threads(proc.pid) if r["tid"] != 0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(b"echo status $?\nseq 1 3 | wc -l\nexit\n", timeout=30)
    assert b"status 130" in out and b"3\n" in out
    assert proc.returncode == 0
    assert not psutil.pid_exists(stage_pid) or psutil.Process(stage_pid).status() == psutil.STATUS_ZOMBIE


def vos_trace(line, cwd):
    return subprocess.run([sys.executable, "-m", "runtime", "sh", "--trace", "-c", line], cwd=cwd,
                          capture_output=True, timeout=60, env={**ENV, "COLUMNS": "200"})


def test_trace_shows_each_stage_its_states_and_the_buffer_traffic(tree):
    out = vos_trace("ls -la | grep cse", tree)
    text = out.stdout.decode()
    assert out.returncode == 0
    assert "cse101.txt" in text and "notes.txt" not in text
    assert "(ls -la)" in text and "(grep cse)" in text          # the two stage threads
    assert "SEND" in text and "RECEIVE" in text and "in the buffer" in text
    assert "RECEIVE: end of stream" in text                     # ls exited, its end closed
    assert "ls -la | grep cse" in text                          # the buffer between the two stages
    assert text.count("EXITED") >= 2


def test_trace_shows_the_refused_send_and_every_stage_status(tree):
    text = vos_trace("yes | head -n 1", tree).stdout.decode()
    assert "SEND refused (ReaderClosed)" in text
    assert "141 (broken pipe)" in text                          # yes, ended by the closed pipe
    assert "exit status of the pipeline: 0" in text             # head's, the shell's $?


def test_the_trace_never_contradicts_its_own_buffer_table(tree):
    """The newcomer's report: "SEND 348 B, then 1 msgs in the buffer" beside
    "peak fill 0/16", and "RUNNING on receive from buffer 1" (run twice: the
    first came in two runs of three)."""
    import re
    for _ in range(2):
        text = vos_trace("ls -la | grep cse", tree).stdout.decode()
        fills = [int(n) for n in re.findall(r"then (\d+) messages? in the buffer", text)]
        row = re.search(r"│ 1 +│ ls -la \| grep cse │ +\d+ +│ +\d+ +│ +(\d+)/16 +│ +(\d+) +│ +(\d+) +│", text)
        assert fills and row, text
        peak, send_waits, receive_waits = map(int, row.groups())
        assert max(fills) <= peak
        assert "RUNNING on" not in text and "RUNNABLE on" not in text
        slept = [m.groups() for m in re.finditer(r"│ (SEND|RECEIVE)[^│]*slept (once|\d+ times)", text)]
        assert sum(1 if n == "once" else int(n.split()[0]) for v, n in slept if v == "SEND") == send_waits
        assert sum(1 if n == "once" else int(n.split()[0]) for v, n in slept if v == "RECEIVE") == receive_waits


def test_the_readmes_example_lists_the_bundled_course_directory():
    """The README's `vos sh -c "ls -la demos/course | grep cse"`, from the root
    of a clone: the four course files with cse in their names (it used to
    be `ls -la | grep cse`, which printed nothing in a fresh clone)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        assert 'vos sh -c "ls -la demos/course | grep cse"' in f.read()
    out = vos_sh("ls -la demos/course | grep cse", root)
    assert out.returncode == 0, out.stderr
    names = sorted(line.split()[-1] for line in out.stdout.decode().splitlines())
    assert names == ["cse101-syllabus.txt", "cse202-pipes.md", "lab3-cse.txt", "notes-cse-midterm.txt"]
