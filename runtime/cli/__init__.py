"""The `vos` command line (also `python -m runtime`).

One module per subcommand, each with `add_parser(subparsers)` and
`run(args, console) -> int`.  The rich Console is made here and passed down:
one object owns the terminal (`vos sh` makes its own, below).

Start-up is part of a command's cost (`vos sh -c "..."` is a shell): a
command line that names its subcommand first imports only that module, and
`vos sh` is given no Console: it makes one when it has something for rich to
draw (a trace, the banner), and `vos sh -c` never imports rich at all; once
its kernel is down it ends at once (`leave`), without the interpreter's
teardown.  `vos bench startup` measures what is left.
"""

import argparse
import importlib
import os
import sys

SUBCOMMANDS = ["tour", "demo", "bench", "sh", "top", "clean", "chaos", "explore", "replay", "step", "lab"]
NO_CONSOLE = {"sh"}      # their run(args, console=None) makes a Console only to draw something
FAST_EXIT = {"sh"}       # from the command line they end with leave(): nothing of theirs outlives run()


def build_parser(only=None):
    """The parser of every subcommand, or of `only` alone."""
    parser = argparse.ArgumentParser(
        prog="vos", description="vos: a concept OS you can watch race. Virtual processors, virtual memory "
                                "and bounded buffers on real processes and real shared memory.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS if only is None else [only]:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                continue  # that subcommand is not built yet
            raise
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run, _subcommand=name)   # (args.command may be a -c value)
    return parser


def main(argv=None):
    """Run the command line `argv` (default: sys.argv[1:]); its exit status.
    From the command line itself (argv None), `vos sh` leaves through
    `leave` once it is done, not through the interpreter's teardown."""
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv and argv[0] in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    console = None
    if args._subcommand not in NO_CONSOLE:
        from rich.console import Console
        console = Console(highlight=False)
    try:
        status = args._run(args, console) or 0
    except KeyboardInterrupt:
        if console is None:
            sys.stderr.write("\ninterrupted\n")
        else:
            console.print("\n[yellow]interrupted[/]")
        status = 130
    if from_command_line and args._subcommand in FAST_EXIT:
        leave(status)
    return status


def leave(status):
    """End the process now with this status, its output flushed.  For a
    command whose kernel is down and whose VPs are all reaped: what is left
    is the interpreter's teardown (freeing some 150 modules and running
    atexit hooks that have nothing to do), about a tenth of `vos sh -c`'s
    time.  Does not return."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):     # a reader that went away, a closed stream
            pass
    os._exit(status & 0xFF)


if __name__ == "__main__":
    sys.exit(main())
