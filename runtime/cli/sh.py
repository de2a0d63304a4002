"""`vos sh`: a shell whose pipeline stages are virtual processors.

    vos sh                          interactive (prompt, history; Ctrl-C ends the pipeline)
    vos sh -c "ls -la | grep cse"   run one command line, exit with its status
    vos sh --trace -c "..."         also show each stage's thread, its state changes and the
                                    SEND/RECEIVE traffic of the buffers, as a timeline
"""

import os
import sys

from ..kernel import Kernel
from ..shell.session import MACHINE, READY_BUFFERS, Session, one_shot, repl


def add_parser(sub):
    p = sub.add_parser("sh", help="a shell whose pipeline stages are virtual processors", description=__doc__)
    p.add_argument("-c", dest="command", help="run this command line and exit with its status")
    p.add_argument("--trace", action="store_true", help="show each pipeline as a timeline of threads and buffers")
    p.add_argument("--processors", type=int, default=None, help="limit the virtual processors (default: none)")
    return p


def run(args, console=None):
    """The shell; `console` is made here when there is something to draw
    (cli/__init__.py gives none: `vos sh -c` starts without importing rich)."""
    def terminal():
        nonlocal console
        if console is None:
            from rich.console import Console
            console = Console(highlight=False)
        return console

    def show(tracer, status):
        from ..views.tables import trace_tables    # rich: only when there is a trace to draw
        for renderable in trace_tables(tracer, status):
            terminal().print(renderable)

    stdin_fd = os.dup(0)  # a multiprocessing child replaces its fd 0 with /dev/null: give stages a copy
    trace = show if args.trace else None
    try:
        if args.command is not None:
            return one_shot(args.command, stdin_fd, trace=trace, processors=args.processors)
        with Kernel(processors=args.processors, start_method="fork", **MACHINE) as k:
            session = Session(k, trace=trace, stdin_fd=stdin_fd, ready_buffers=READY_BUFFERS)
            terminal().print("vos sh: every stage of a pipeline is a virtual processor; `help` for help, "
                             "Ctrl-D to leave")
            return repl(session)
    finally:
        os.close(stdin_fd)
        sys.stdout.flush()
