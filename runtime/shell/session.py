"""A shell session: built-ins, `$?`, and running command lines.

One kernel serves the whole session; every pipeline's stages are its threads.
The built-ins (`cd`, `exit`, `help`) run in the shell itself, thread 0, as in
sh: a `cd` inside a pipeline would change only a child's directory, so there
it does nothing.  Ctrl-C while a pipeline runs destroys its stages, all at
once (not the shell), and sets `$?` to 130.

Warm VPs.  An interactive session's kernel (MACHINE) keeps a pool of ready
VPs (runtime/pool.py): a stage is handed to an idle VP rather than a process
forked for it, and the VP comes back clean when the stage ends, so one
command leaves nothing behind for the next -- not a global, a signal
handler, a working directory, an open file or a held lock.  A stage that
dies (destroyed by Ctrl-C, killed from outside) takes its VP with it.
Ctrl-C while the stages are being handed over waits until they all are
(SIGINT blocked for that moment), then ends them all: no VP is left
half-claimed.

Between commands.  What a command leaves to clean and what the next one
needs is done by `Session.between`: free the buffers of the pipelines that
ended, allocate READY_BUFFERS fresh ones (a pipeline takes them, and
allocates only what it needs beyond them), start VPs until the pool is
full again.  The interactive loop calls it before each prompt, while the
user types; each pipeline calls it first too, so a session driven without
the loop (a test, a benchmark) is the same session, only slower.

One line.  `vos sh -c LINE` boots a kernel for the line alone (one_shot,
ONE_SHOT: no pool, no ready buffers), runs it and shuts the kernel down."""

import os
import signal
import sys

from ..kernel import Kernel
from .parser import ShellSyntaxError, expand, parse
from ..textbook import ALLOCATE_BOUNDED_BUFFER
from .pipeline import BUFFER_CAPACITY, BUFFER_SLOTS, Pipeline
from .programs import PROGRAMS
from .trace import Tracer

# The kernel of a session (`vos sh`, and `vos bench pipe`): four ready VPs,
# for a pipeline of two or three stages while the last command's VPs put
# themselves back (a longer pipeline grows the pool); and a small machine,
# since pipelines use no virtual memory and no lock tables: it boots in a
# fraction of the default machine's time (less shared memory to reserve).
MACHINE = dict(pool=4, frames=16, max_threads=64, max_address_spaces=4, address_space_pages=256,
               max_blocks=64, swap_pages=0, max_locks=64, max_eventcounts=64, max_buffers=64)

# Bounded buffers a session keeps allocated ahead, for a pipeline of up to
# three stages: allocating one (a 1 MiB ring reserved in shared memory) costs
# about as much as handing a stage to a ready VP, and is done between commands.
READY_BUFFERS = 2

# The kernel of one command line (`vos sh -c`): the same machine with no
# pool, since VPs kept ready for a next command nobody will type are only
# processes to start and to kill; each stage gets a VP forked for it.
ONE_SHOT = dict(MACHINE, pool=0)

HELP = """vos sh: a small shell whose pipeline stages are virtual processors joined by bounded buffers.

  syntax     cmd args | cmd ... ; next line    < in   > out   >> append   'single' "double $?"
  built-ins  cd [DIR]   exit [N]   help
  programs   {programs}
             (run in the stages' VPs; any other command runs as the real program, bridged in)
  options    vos sh --trace -c "ls -la | grep cse"   shows each stage's thread, state changes
             and the SEND/RECEIVE traffic of each buffer as a timeline
"""


class ShellExit(Exception):
    def __init__(self, status):
        super().__init__(status)
        self.status = status


class Session:
    """State of one shell: the kernel, the working directory, `$?`, and what
    is kept ready for the next command (see `between`)."""

    def __init__(self, kernel, trace=None, stdin_fd=0, stdout_fd=1, stderr_fd=2, ready_buffers=0):
        self.kernel = kernel
        self.cwd = os.getcwd()
        self.status = 0
        self.trace = trace            # a callable(tracer) that shows a trace, or None
        self.fds = (stdin_fd, stdout_fd, stderr_fd)
        self.ready_buffers = ready_buffers
        self.ready = []               # bounded buffers allocated ahead, never used: the next pipeline's
        self.done = []                # pipelines that ended: their buffers are freed by `between`

    def between(self):
        """The work between two commands, done before each pipeline, and by
        the interactive loop before it shows the prompt (while the user
        types; the pipeline then finds it done): free the buffers of the
        pipelines that ended, allocate `ready_buffers` fresh ones, and
        start VPs until the pool is full again (stages that died took
        theirs: Ctrl-C, killed).  Thread 0."""
        while self.done:
            self.done.pop().free_buffers()
        while len(self.ready) < self.ready_buffers:
            self.ready.append(ALLOCATE_BOUNDED_BUFFER(BUFFER_SLOTS, capacity=BUFFER_CAPACITY))
        self.kernel.pool.warm()

    def run_line(self, line):
        """Run a command line; returns `$?`.  Raises ShellExit for `exit`."""
        try:
            pipelines = parse(line)
        except ShellSyntaxError as e:
            self._err(f"vos sh: {e}\n")
            self.status = 2
            return self.status
        for p in pipelines:
            self.status = self.run_pipeline(expand(p.commands, self.status))
        return self.status

    def run_pipeline(self, commands):
        if len(commands) == 1 and commands[0].argv[0] in BUILTINS:
            return BUILTINS[commands[0].argv[0]](self, commands[0].argv)
        self.between()
        return self._run(commands)

    def _run(self, commands):
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})   # (see the module doc)
        pipeline = None
        try:
            try:
                pipeline = Pipeline(self.kernel, commands, self.cwd, *self.fds, trace=self.trace is not None,
                                    ready=self.ready)
            except OSError as e:
                self._err(f"vos sh: {e}\n")
                return 1
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)      # a Ctrl-C pressed meanwhile: now
            if self.trace is not None:
                tracer = Tracer(self.kernel, pipeline)
                tracer.run()
                status = pipeline.wait()
                self.trace(tracer, status)
            else:
                status = pipeline.wait()
            self.done.append(pipeline)
            return status
        except KeyboardInterrupt:
            if pipeline is not None:
                pipeline.abort()
            self._err("\n")
            return 130

    def _err(self, text):
        os.write(self.fds[2], text.encode())


def one_shot(line, stdin_fd=0, stdout_fd=1, stderr_fd=2, cwd=None, trace=None, processors=None):
    """`vos sh -c LINE`: boot a kernel (ONE_SHOT) for this one line, run it,
    shut the kernel down; returns `$?` (an `exit N` included)."""
    with Kernel(processors=processors, start_method="fork", **ONE_SHOT) as k:
        session = Session(k, trace=trace, stdin_fd=stdin_fd, stdout_fd=stdout_fd, stderr_fd=stderr_fd)
        if cwd is not None:
            session.cwd = cwd
        try:
            return session.run_line(line)
        except ShellExit as e:
            return e.status


def _cd(session, argv):
    target = argv[1] if len(argv) > 1 else os.environ.get("HOME", "/")
    path = os.path.normpath(os.path.join(session.cwd, os.path.expanduser(target)))
    if not os.path.isdir(path):
        session._err(f"vos sh: cd: {target}: No such file or directory\n")
        return 1
    session.cwd = path
    return 0


def _exit(session, argv):
    try:
        code = int(argv[1]) if len(argv) > 1 else session.status
    except ValueError:
        session._err(f"vos sh: exit: {argv[1]}: numeric argument required\n")
        code = 2
    raise ShellExit(code & 0xFF)


def _help(session, argv):
    os.write(session.fds[1], HELP.format(programs=" ".join(sorted(PROGRAMS))).encode())
    return 0


BUILTINS = {"cd": _cd, "exit": _exit, "help": _help}


def repl(session, prompt="vos$ "):
    """The interactive loop, with line editing and history where readline exists."""
    try:
        import readline  # noqa: F401 - gives input() editing and history
    except ImportError:
        pass
    session.between()
    while True:
        try:
            line = input(prompt)
        except EOFError:
            sys.stdout.write("\n")
            return session.status
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            continue
        try:
            session.run_line(line)
        except ShellExit as e:
            return e.status
        session.between()
