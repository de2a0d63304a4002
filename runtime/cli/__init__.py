"""The `vos` command line (also `python -m runtime`).

One module per subcommand, each with `add_parser(subparsers)` and
`run(args, console) -> int`.  The rich Console is made here and passed down:
one object owns the terminal.
"""

import argparse
import importlib
import sys

SUBCOMMANDS = ["tour", "demo", "bench", "sh", "top", "clean", "chaos", "explore", "replay", "step", "lab"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="vos", description="vos: a concept OS you can watch race. Virtual processors, virtual memory "
                                "and bounded buffers on real processes and real shared memory.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                continue  # that subcommand is not built yet
            raise
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    from rich.console import Console
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    console = Console(highlight=False)
    try:
        return args._run(args, console) or 0
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
