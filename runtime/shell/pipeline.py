"""Running a pipeline: each stage a virtual processor, joined by bounded buffers.

The lecture's question, "what happens when we use a pipe? `ls -la | grep cse`",
answered by doing it:

    thread 0 (the shell)                  stage VPs
    ------------------------------------  -----------------------------------
    b = ALLOCATE_BOUNDED_BUFFER(...)
    ALLOCATE_THREAD(stage, ls,   w=b.writer)   ls writes   -> SEND(b, chunk)
    ALLOCATE_THREAD(stage, grep, r=b.reader)   grep reads  <- RECEIVE(b)
    join(ls); join(grep)                       the status of the last stage

Streams.  A stage's standard input and output are *ends* of a stream (see
bounded_buffer.py): the shell opens them and gives each to its stage thread,
so they close when that thread ends however it ends.  A writer that finishes
closes its end: the reader drains the buffer and then sees end of stream.  A
reader that stops early (`head`) closes its end: the writer's next SEND raises
ReaderClosed, a BrokenPipeError, which ends the stage with status 141, as
SIGPIPE ends a real one.  So `yes | head -n 1` ends at once.

The first stage reads the shell's standard input (or a `<` file) and the last
writes the shell's standard output (or a `>`/`>>` file) through file
descriptors, as a real shell's stages inherit them.

Programs.  A built-in program (runtime/shell/programs) runs in the stage's VP
as a Python function.  Any other command runs as the real external program,
bridged: the stage VP starts it with OS pipes and pumps its output into the
stage's bounded buffer; a middle stage needs a second VP, the *feeder*, that
pumps the bounded buffer into the program's input at the same time.

Requires the fork start method (the default on Linux): stages inherit the
shell's file descriptors.  A pool VP (a session's kernel keeps some ready,
runtime/pool.py) inherited them when it was forked, before the session
began; each stage checks that its descriptors are still the shell's own
(the same file) and refuses to run otherwise.  The feeder's descriptor is
a pipe made after every pool VP: it travels as an Inherited fd, which
refuses to be pickled, so the feeder is always a VP forked for it.
"""

import dataclasses
import errno
import os
import shutil
import subprocess
import sys
import time

from ..context import current
from ..errors import KernelError, StreamClosed, ThreadFailed
from ..textbook import ALLOCATE_BOUNDED_BUFFER, ALLOCATE_THREAD
from .programs import PROGRAMS

BUFFER_SLOTS = 16            # messages per buffer between two stages
BUFFER_CAPACITY = 1 << 20    # bytes per buffer (16 chunks of 64 KiB)
CHUNK = 1 << 16
SIGPIPE_STATUS = 128 + 13


class Inherited:
    """A file descriptor of this process, for a VP forked from it.  Its
    number means nothing in another process, so it cannot be pickled: a
    thread given one gets a process forked for it, never a pool VP."""

    def __init__(self, fd):
        self.fd = fd

    def __reduce__(self):
        raise TypeError(f"file descriptor {self.fd} is this process's own: only a VP forked from it has it")


def fd_identity(fds):
    """((fd, device, inode), ...): which file each descriptor is, to check
    that a stage's process has the same ones."""
    out = []
    for fd in fds:
        if fd is not None:
            st = os.fstat(fd)
            out.append((fd, st.st_dev, st.st_ino))
    return tuple(out)


class FdReader:
    """A Reader over a file descriptor (the shell's stdin, or a `<` file,
    which it owns and closes)."""

    def __init__(self, fd, owned=False):
        self.fd = fd
        self.owned = owned

    def read(self, n=-1):
        if n is None or n < 0:
            parts = []
            while chunk := os.read(self.fd, 1 << 20):
                parts.append(chunk)
            return b"".join(parts)
        return os.read(self.fd, n)

    def readinto(self, view):
        return os.readv(self.fd, [view])

    def close(self):
        if self.owned:
            self.owned = False
            os.close(self.fd)


class FdWriter:
    """A Writer over a file descriptor.  BrokenPipeError when nobody reads."""

    def __init__(self, fd, owned=False):
        self.fd = fd
        self.owned = owned

    def write(self, data):
        view = memoryview(data).cast("B")
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        return len(data)

    def flush(self):
        pass

    close = FdReader.close


@dataclasses.dataclass
class Stage:
    """What a stage VP needs: picklable values only (handles, fds, paths)."""
    argv: list
    cwd: str
    stdin_fd: int | None = None       # read this fd ...
    stdin_path: str | None = None     # ... or this file ...
    reader: object = None             # ... or this reader end
    stdout_fd: int | None = None
    stdout_path: str | None = None
    append: bool = False
    writer: object = None
    stderr_fd: int = 2
    trace: bool = False               # log every SEND/RECEIVE with its time and fill level
    fds: tuple = ()                   # fd_identity() of the shell's descriptors it uses


TRACE_KEEP = 60  # events kept from the start and from the end of each stage (the status area is small)


class Traced:
    """Wraps a stage's buffer end and logs each read (RECEIVE) and write (SEND):
    (start ns, end ns, "SEND"/"RECEIVE", bytes, fill after, sleeps).  The fill
    is read from the ring's counters after the call; `sleeps` is how many
    times the call slept (buffer full or empty): the growth of its side's
    wait counter during the call, exact since a pipeline's buffer has one
    sending and one receiving stage.  CLOCK_MONOTONIC is one clock for every
    process, so the stages' logs merge into one timeline."""

    def __init__(self, end, verb, log):
        self.end, self.verb, self.log = end, verb, log
        self.waits = "send_waits" if verb == "SEND" else "receive_waits"

    def _counters(self):
        b = self.end.buffer
        try:
            return current().kernel.buffers.ring(b.slot, b.id).counters()
        except KernelError:
            return None

    def _record(self, t0, verb, size, before):
        t1 = time.monotonic_ns()
        after = self._counters()
        fill = after["fill"] if after else None
        sleeps = after[self.waits] - before[self.waits] if after and before else 0
        self.log.append((t0, t1, verb, size, fill, sleeps))

    def read(self, n=-1):
        before, t0 = self._counters(), time.monotonic_ns()
        data = self.end.read(n)
        self._record(t0, "RECEIVE" if data else "end of stream", len(data), before)
        return data

    def read_view(self):
        before, t0 = self._counters(), time.monotonic_ns()
        data = self.end.read_view()
        self._record(t0, "RECEIVE" if data else "end of stream", len(data), before)
        return data

    def write(self, data):
        before, t0 = self._counters(), time.monotonic_ns()
        try:
            n = self.end.write(data)
        except Exception as e:           # ReaderClosed: nobody reads any more (a broken pipe)
            self._record(t0, f"SEND refused ({type(e).__name__})", len(data), before)
            raise
        self._record(t0, "SEND", len(data), before)
        return n

    def send_into(self, size, fill):
        before, t0 = self._counters(), time.monotonic_ns()
        n = self.end.send_into(size, fill)
        if n:
            self._record(t0, "SEND", n, before)
        return n

    def flush(self):
        pass

    def close(self):
        self.end.close()


def _open_in(stage):
    if stage.reader is not None:
        return stage.reader
    if stage.stdin_path is not None:
        return FdReader(os.open(os.path.join(stage.cwd, stage.stdin_path), os.O_RDONLY), owned=True)
    return FdReader(stage.stdin_fd)


def _open_out(stage):
    if stage.writer is not None:
        return stage.writer
    if stage.stdout_path is not None:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if stage.append else os.O_TRUNC)
        return FdWriter(os.open(os.path.join(stage.cwd, stage.stdout_path), flags, 0o666), owned=True)
    return FdWriter(stage.stdout_fd)


def run_stage(stage):
    """The body of a stage VP: run one program between its two streams and
    return its exit status.  Closes both streams however it ends."""
    if stage.trace:
        log = []
        status = run_stage(dataclasses.replace(stage, trace=False, reader=_wrap(stage.reader, "RECEIVE", log),
                                               writer=_wrap(stage.writer, "SEND", log)))
        if len(log) > 2 * TRACE_KEEP:
            log = log[:TRACE_KEEP] + log[-TRACE_KEEP:]
        return ("traced", status, log)
    err = FdWriter(stage.stderr_fd)
    name = stage.argv[0]
    src = dst = None
    try:
        mine = fd_identity(fd for fd, _, _ in stage.fds)
    except OSError:
        mine = None
    if mine != stage.fds:
        os.write(2, f"vos sh: {name}: the shell's file descriptors {[fd for fd, _, _ in stage.fds]} are not "
                    f"open in this VP (pid {os.getpid()}); open them before the session's kernel boots\n".encode())
        return 126
    try:
        try:
            src, dst = _open_in(stage), _open_out(stage)
        except OSError as e:
            err.write(f"vos sh: {e.filename and os.path.relpath(e.filename, stage.cwd)}: {e.strerror}\n".encode())
            return 1
        program = PROGRAMS.get(name)
        if program is not None:
            return program(stage.argv, src, dst, err, stage.cwd)
        return _run_external(stage, src, dst, err)
    except BrokenPipeError:
        return SIGPIPE_STATUS  # the reader went away: what SIGPIPE does to a real stage
    finally:
        for end in (src, dst):
            if end is not None:
                end.close()


def _wrap(end, verb, log):
    return None if end is None else Traced(end, verb, log)


def _run_external(stage, src, dst, err):
    """Run a real program, bridged into the pipeline (see the module doc)."""
    path = shutil.which(stage.argv[0], path=os.environ.get("PATH"))
    if path is None:
        err.write(f"vos sh: {stage.argv[0]}: command not found\n".encode())
        return 127
    src = src.end if isinstance(src, Traced) else src  # the feeder VP does the receiving
    stdin = src.fd if isinstance(src, FdReader) else subprocess.PIPE
    stdout = dst.fd if isinstance(dst, FdWriter) else subprocess.PIPE
    proc = subprocess.Popen([path, *stage.argv[1:]], stdin=stdin, stdout=stdout, stderr=stage.stderr_fd,
                            cwd=stage.cwd)
    feeder = None
    if stdin is subprocess.PIPE:
        k = current().kernel
        feeder = ALLOCATE_THREAD(_feed, k.address_space, src, Inherited(proc.stdin.fileno()))
        proc.stdin.close()  # the feeder holds its own copy (fork)
    if stdout is subprocess.PIPE:
        fd = proc.stdout.fileno()
        try:
            while data := os.read(fd, CHUNK):
                dst.write(data)
        except BrokenPipeError:
            pass  # our reader left: closing our end of the OS pipe gives the program its SIGPIPE
        finally:
            proc.stdout.close()
    status = proc.wait()
    if feeder is not None:
        try:
            current().kernel.join(feeder, timeout=30)
        except (ThreadFailed, TimeoutError, KernelError):
            pass
    return 128 - status if status < 0 else status


def _feed(reader, inherited):
    """Feeder VP: pump a bounded buffer into an external program's stdin."""
    fd = inherited.fd
    try:
        while data := reader.read(CHUNK):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
    except BrokenPipeError:
        pass  # the program stopped reading
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
    finally:
        reader.close()
        os.close(fd)
    return 0


class Pipeline:
    """One running pipeline: its buffers and stage threads (thread 0 only)."""

    def __init__(self, kernel, commands, cwd, stdin_fd=0, stdout_fd=1, stderr_fd=2, trace=False, ready=None):
        """Allocate the buffers (taken from `ready`, a list of fresh buffers
        allocated ahead, while it has some) and start every stage."""
        self.kernel = kernel
        self.buffers = []
        self.tids = []
        self.names = []
        self.logs = {}        # tid -> SEND/RECEIVE log, when traced
        self.joined = []      # the stage tids, once wait() joined them
        self.statuses = {}    # tid -> exit status, once wait() joined it (the shell's $? is the last)
        self.started_ns = time.monotonic_ns()
        n = len(commands)
        for _ in range(n - 1):
            self.buffers.append(ready.pop() if ready else ALLOCATE_BOUNDED_BUFFER(BUFFER_SLOTS, capacity=BUFFER_CAPACITY))
        stages = []
        fds = {fd: fd_identity([fd]) for fd in (stdin_fd, stdout_fd, stderr_fd)}
        for i, cmd in enumerate(commands):
            s = Stage(list(cmd.argv), cwd, stderr_fd=stderr_fd, trace=trace)
            if cmd.stdin is not None:
                s.stdin_path = cmd.stdin
            elif i == 0:
                s.stdin_fd = stdin_fd
            else:
                s.reader = self.buffers[i - 1].reader()
            if cmd.stdout is not None:
                s.stdout_path, s.append = cmd.stdout, cmd.append
            elif i == n - 1:
                s.stdout_fd = stdout_fd
            else:
                s.writer = self.buffers[i].writer()
            s.fds = sum((fds[fd] for fd in (s.stdin_fd, s.stdout_fd, s.stderr_fd) if fd is not None), ())
            stages.append(s)
        try:
            for s in stages:
                tid = ALLOCATE_THREAD(run_stage, kernel.address_space, s)
                for end in (s.reader, s.writer):
                    if end is not None:
                        try:
                            end.give(tid)  # closes with the stage, even if it never touches it
                        except StreamClosed:
                            pass  # the stage was quicker: it has used and closed it already
                self.tids.append(tid)
                self.names.append(" ".join(s.argv))
        except BaseException:
            self.abort()
            raise

    def wait(self):
        """Join every stage; the exit status of the last one.  The buffers
        stay (their statistics, for a trace) until free_buffers()."""
        status = 0
        for i, tid in enumerate(self.tids):
            try:
                status = self.kernel.join(tid)
                if isinstance(status, tuple):
                    _, status, self.logs[tid] = status
            except ThreadFailed as e:
                sys.stderr.write(f"vos sh: {self.names[i]}: {e.exc_type}: {e.message}\n")
                status = 1
            self.statuses[tid] = status
        self.joined = self.tids
        self.tids = []
        return status

    def abort(self):
        """Ctrl-C: destroy every stage still running, all at once (as SIGINT
        reaches a real pipeline's whole process group: no stage outlives
        another's death to print), the last stage first (the one that
        writes to the terminal), free the buffers."""
        manager = self.kernel.thread_manager
        try:
            manager.destroy_all(self.tids[::-1])
        except KernelError:                  # a tid joined already: one by one
            for tid in self.tids:
                try:
                    manager.destroy(tid)
                except KernelError:
                    pass
        for tid in self.tids:
            try:
                self.kernel.join(tid)
            except (KernelError, TimeoutError):
                pass
        self.tids = []
        self.free_buffers()

    def free_buffers(self):
        for b in self.buffers:
            try:
                b.deallocate()
            except KernelError:
                pass
        self.buffers = []
