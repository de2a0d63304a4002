"""A shell session: built-ins, `$?`, and running command lines.

One kernel serves the whole session; every pipeline's stages are its threads.
The built-ins (`cd`, `exit`, `help`) run in the shell itself, thread 0, as in
sh: a `cd` inside a pipeline would change only a child's directory, so there
it does nothing.  Ctrl-C while a pipeline runs destroys its stages (not the
shell) and sets `$?` to 130.

Warm VPs.  The session's kernel (MACHINE) keeps a pool of ready VPs
(runtime/pool.py): a stage is handed to an idle VP rather than a process
forked for it, and the VP comes back clean when the stage ends, so one
command leaves nothing behind for the next -- not a global, a signal
handler, a working directory, an open file or a held lock.  A stage that
dies (destroyed by Ctrl-C, killed from outside) takes its VP with it: after
every command the shell starts VPs until the pool is full again, so the
next command finds them ready.  Ctrl-C while the stages are being handed
over waits until they all are (SIGINT blocked for that moment), then ends
them all: no VP is left half-claimed."""

import os
import signal
import sys

from .parser import ShellSyntaxError, expand, parse
from .pipeline import Pipeline
from .programs import PROGRAMS
from .trace import Tracer

# The kernel of a session (`vos sh`, and `vos bench pipe`): four ready VPs,
# for a pipeline of two or three stages while the last command's VPs put
# themselves back (a longer pipeline grows the pool); and a small machine,
# since pipelines use no virtual memory and no lock tables: it boots in a
# fraction of the default machine's time (less shared memory to reserve).
MACHINE = dict(pool=4, frames=16, max_threads=64, max_address_spaces=4, address_space_pages=256,
               max_blocks=64, swap_pages=64, max_locks=64, max_eventcounts=64, max_buffers=64)

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
    """State of one shell: the kernel, the working directory, `$?`."""

    def __init__(self, kernel, trace=None, stdin_fd=0, stdout_fd=1, stderr_fd=2):
        self.kernel = kernel
        self.cwd = os.getcwd()
        self.status = 0
        self.trace = trace            # a callable(tracer) that shows a trace, or None
        self.fds = (stdin_fd, stdout_fd, stderr_fd)

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
        try:
            return self._run(commands)
        finally:
            self.kernel.pool.warm()          # replace the VPs of stages that died (Ctrl-C, killed)

    def _run(self, commands):
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})   # (see the module doc)
        pipeline = None
        try:
            try:
                pipeline = Pipeline(self.kernel, commands, self.cwd, *self.fds, trace=self.trace is not None)
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
                return status
            return pipeline.wait()
        except KeyboardInterrupt:
            if pipeline is not None:
                pipeline.abort()
            self._err("\n")
            return 130

    def _err(self, text):
        os.write(self.fds[2], text.encode())


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
