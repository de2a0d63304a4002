"""A `vos sh` session keeps its pool of VPs across its commands
(runtime/shell/session.py): the stages of one command after another run in
the same few ready VPs, and nothing one command leaves in its VPs -- a
global, a signal handler, a working directory, an environment variable, an
open file, a held lock -- is seen by the next.  Ctrl-C in the middle of a
pipeline, or a stage killed, costs the pool those VPs: the shell starts new
ones before the next command."""

import ast
import contextlib
import os
import signal
import threading
import time
import types

import pytest

from runtime import Kernel
from runtime.errors import OwnerDied
from runtime.locks import Lock
from runtime.shell import programs
from runtime.shell.session import MACHINE, READY_BUFFERS, Session
from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, RELEASE
from runtime.threads import pid_alive

pytestmark = pytest.mark.timeout(60)

STATE = "clean"        # a global of the program (this module): `mess` changes it


def mess(argv, stdin, stdout, stderr, cwd):
    """A program that changes its process every way it can, and ends holding a lock."""
    global STATE
    STATE = "dirty"
    os.chdir("/")
    signal.signal(signal.SIGUSR1, lambda *a: None)
    os.environ["VOS_LEFTOVER"] = "left behind"
    fd = os.open(os.devnull, os.O_RDONLY)
    ACQUIRE(Lock(int(argv[1])))
    stdout.write(f"{os.getpid()} {fd}\n".encode())
    return 0


def look(argv, stdin, stdout, stderr, cwd):
    """A program that says what its process looks like."""
    null_fds = sorted(int(f) for f in os.listdir("/proc/self/fd") if _is_null(f))
    lock = Lock(int(argv[1]))
    try:
        ACQUIRE(lock)
        lock_was = "free"
    except OwnerDied:
        lock_was = "owner died"
    RELEASE(lock)
    handler = "default" if signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL else "changed"
    seen = [os.getpid(), STATE, os.getcwd(), os.environ.get("VOS_LEFTOVER"), handler, null_fds, lock_was]
    stdout.write(f"{seen!r}\n".encode())
    return 0


def _is_null(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == os.devnull
    except OSError:
        return False


@contextlib.contextmanager
def _shell(tmp_path, monkeypatch, **machine):
    """A session on the shell's own machine (MACHINE, changed by `machine`),
    with `mess` and `look` among its programs (before boot: the pool's VPs
    are forked with them), its output in a file and its input a pipe that
    nobody writes to.  Yields a namespace: k, session, output() (what was
    written since the last call), stages (the (command, VP) of every stage
    that ran: the trace's thread rows, as `vos sh --trace` shows them)."""
    monkeypatch.setitem(programs.PROGRAMS, "mess", mess)
    monkeypatch.setitem(programs.PROGRAMS, "look", look)
    out_path = tmp_path / "out"
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    r, w = os.pipe()                 # before boot: the pool VPs have them, as `vos sh` dups its stdin first
    stages = []

    def trace(tracer, status):
        names = dict(zip(tracer.pipeline.joined, tracer.pipeline.names))
        stages.extend((names[row["tid"]], row["started"]) for row in tracer.final_threads)

    def output():
        text = out_path.read_text()
        os.ftruncate(out, 0)
        os.lseek(out, 0, os.SEEK_SET)
        return text

    try:
        with Kernel(start_method="fork", **dict(MACHINE, **machine)) as k:
            session = Session(k, trace=trace, stdin_fd=r, stdout_fd=out, ready_buffers=READY_BUFFERS)
            session.cwd = str(tmp_path)
            session.between()                                 # as the interactive loop before its prompt
            assert k.pool.settle(30)
            yield types.SimpleNamespace(k=k, session=session, output=output, stages=stages)
    finally:
        for fd in (out, r, w):
            os.close(fd)


@pytest.fixture
def shell(tmp_path, monkeypatch):
    with _shell(tmp_path, monkeypatch) as sh:
        yield sh


@pytest.fixture
def shell_of_one_vp(tmp_path, monkeypatch):
    with _shell(tmp_path, monkeypatch, pool=1) as sh:
        yield sh


def test_commands_in_a_row_run_in_the_same_ready_vps(shell):
    """(Between two commands the shell does its `between` work and the VPs of
    the first have put themselves back, as while a user types: settle.
    Otherwise a stage may find none ready yet on a loaded host, and the pool
    grows by a forked VP: no error either.)"""
    pool = {row["pid"] for row in shell.k.statistics()["pool"]["vps"]}
    assert len(pool) == MACHINE["pool"]
    for _ in range(3):
        for line, output in (("seq 1 1000 | grep 7 | wc -l", "271\n"), ("echo done | cat", "done\n")):
            assert shell.session.run_line(line) == 0
            assert shell.output() == output
            shell.session.between()
            assert shell.k.pool.settle(10)
    assert [vp for _, vp in shell.stages] == ["pool"] * 15
    assert {row["pid"] for row in shell.k.statistics()["pool"]["vps"]} == pool      # no VP started since
    assert [r["tid"] for r in shell.k.thread_info()] == [0]
    assert {b["id"] for b in shell.k.statistics()["buffers"]} == {b.id for b in shell.session.ready}


@pytest.mark.parametrize("line", ["mess {lock}", "mess {lock} | cat", "echo x | mess {lock} > mess.txt"])
def test_what_a_command_leaves_in_its_vp_the_next_does_not_see(shell_of_one_vp, line):
    """One ready VP (pool=1, the shell's machine otherwise).  A pipeline of
    two stages needs a second: its other stage may wait for the first VP to
    come back or grow the pool by a VP forked for it, so `mess` may run in
    either.  Then every VP but the one `mess` ran in is killed (as from
    outside: the pool empties their entries), so that `look` runs where
    `mess` ran."""
    sh = shell_of_one_vp
    lock = ALLOCATE_LOCK("left held")
    assert sh.session.run_line(f"look {lock.id}") == 0
    before = ast.literal_eval(sh.output())                # a VP as the pool made it
    assert before[1:5] == ["clean", os.getcwd(), None, "default"] and before[6] == "free"
    assert sh.k.pool.settle(10)
    assert sh.session.run_line(line.format(lock=lock.id)) == 0
    messed, fd = map(int, (sh.output() or open(os.path.join(sh.session.cwd, "mess.txt")).read()).split())
    assert sh.k.pool.settle(10)
    others = [v["pid"] for v in sh.k.statistics()["pool"]["vps"] if v["pid"] != messed]
    for pid in others:
        os.kill(pid, signal.SIGKILL)
    _when(lambda: not any(map(pid_alive, others)))      # dead (a VP killed as it is handed a thread takes it along)
    sh.stages.clear()
    assert sh.session.run_line(f"look {lock.id}") == 0
    after = ast.literal_eval(sh.output())
    assert after[0] == messed and sh.stages == [(f"look {lock.id}", "pool")]    # handed to the VP of `mess` ...
    assert after[1:5] == before[1:5] and fd not in after[5]                   # ... as the pool made it
    assert after[6] == "owner died"      # `mess` ended holding it: its next holder is told
    ACQUIRE(lock)                        # and no VP holds it now
    RELEASE(lock)
    assert not {v["pid"] for v in sh.k.statistics()["pool"]["vps"]} & set(others)


def _when(condition, timeout=20):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.002)


def _stage_rows(k):
    return [r for r in k.thread_info() if r["tid"] != 0]


def _run_while(session, line, action):
    """Run `line` in the shell while `action` runs in a helper thread; `$?`."""
    helper = threading.Thread(target=action)
    helper.start()
    try:
        return session.run_line(line)
    finally:
        helper.join()


def _refilled_without(shell, pids):
    """Before the next prompt: the pool is full again, with none of `pids`."""
    shell.session.between()
    assert shell.k.pool.settle(30)
    vps = shell.k.statistics()["pool"]["vps"]
    assert sum(1 for v in vps if v["state"] == "idle") == MACHINE["pool"]        # refilled
    assert not set(pids) & {v["pid"] for v in vps}                               # by new VPs


def test_ctrl_c_in_the_middle_of_a_pipeline_and_the_next_command(shell):
    """`cat | wc -l` waits for input that never comes; Ctrl-C (SIGINT to the
    shell's main thread) ends both stages, with their VPs; the pool is full
    again for the next command, which runs in pool VPs."""
    k, session = shell.k, shell.session
    pids = []

    def press_ctrl_c():
        _when(lambda: len(_stage_rows(k)) == 2 and any(row["state"] == "WAITING" for row in _stage_rows(k)))
        pids.extend(row["pid"] for row in _stage_rows(k))
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    pool_before = {row["pid"] for row in k.statistics()["pool"]["vps"]}
    assert _run_while(session, "cat | wc -l", press_ctrl_c) == 130
    assert len(pids) == 2 and set(pids) <= pool_before
    assert [row["tid"] for row in k.thread_info()] == [0]
    assert {b["id"] for b in k.statistics()["buffers"]} == {b.id for b in session.ready}   # its own: freed
    assert shell.output() == ""          # `wc` was ended with `cat`: it never saw an end of stream, never printed
    _refilled_without(shell, pids)
    shell.stages.clear()
    assert session.run_line("echo after | cat") == 0
    assert shell.output() == "after\n" and [vp for _, vp in shell.stages] == ["pool", "pool"]


def test_a_stage_killed_from_outside(shell):
    """SIGKILL to the VP of `cat` (it waits for input): the shell buries it,
    `wc` sees the end of its stream, and the next command has a full pool."""
    k, session = shell.k, shell.session
    killed = []

    def kill_cat():
        _when(lambda: any(row["name"] == "run_stage" for row in _stage_rows(k)) and len(_stage_rows(k)) == 2)
        cat = min(_stage_rows(k), key=lambda row: row["tid"])
        killed.append(cat["pid"])
        os.kill(cat["pid"], signal.SIGKILL)

    assert _run_while(session, "cat | wc -l", kill_cat) == 0
    assert shell.output() == "0\n"
    _refilled_without(shell, killed)
    assert session.run_line("seq 1 3 | wc -l") == 0
    assert shell.output() == "3\n"


def test_a_pipeline_takes_the_ready_buffers_and_the_next_command_frees_them(shell):
    """The shell allocates READY_BUFFERS fresh buffers between commands; a
    pipeline takes them (allocating only what it needs beyond them), keeps
    them until its status and trace are in, and `between` frees them and
    makes fresh ones ready."""
    k, session = shell.k, shell.session

    def buffer_rows():
        return {b["id"]: b for b in k.statistics()["buffers"]}

    ready = {b.id for b in session.ready}
    assert len(ready) == READY_BUFFERS and set(buffer_rows()) == ready
    assert session.run_line("seq 1 1000 | grep 7 | cat | wc -l") == 0 and shell.output() == "271\n"
    used = buffer_rows()
    assert ready < set(used) and len(used) == 3                   # the ready two, and one more
    assert all(row["sent"] > 0 for row in used.values()) and session.ready == []
    session.between()
    now = buffer_rows()
    assert len(now) == READY_BUFFERS and not set(now) & set(used)   # freed; fresh ones ready
    assert all(row["sent"] == 0 for row in now.values())
