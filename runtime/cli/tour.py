"""`vos tour`: every demo, in the order of the lecture.

In a terminal (standard input and output both a tty) the tour waits for
Enter between demos, so that each can be read before the next scrolls it
away; piped or redirected, it runs straight through.  --pause / --no-pause
decide it either way."""

import sys

import demos

from .demo import heading


def add_parser(sub):
    p = sub.add_parser("tour", help="run every demo in lecture order (the guided tour)", description=__doc__)
    p.add_argument("--quick", action="store_true", help="shorter runs")
    p.add_argument("--seed", type=int, default=None,
                   help=f"the seed of the race demos' controlled acts (default {demos.SEED})")
    p.add_argument("--pause", action="store_true", default=None,
                   help="wait for Enter between demos (the default in a terminal)")
    p.add_argument("--no-pause", dest="pause", action="store_false", help="run straight through")
    return p


def interactive(console):
    """Is there someone at a terminal to press Enter?"""
    return console.is_terminal and sys.stdin is not None and sys.stdin.isatty()


def run(args, console):
    items = demos.all_demos()
    pause = interactive(console) if args.pause is None else args.pause
    console.rule("[bold]vos: 虚拟化 (virtualization), run for real")
    console.print("The guided tour runs each demo of the lecture in order: 复用 (multiplexing) of "
                  "processors, the races on shared data and their fixes, bounded buffers, virtual memory, "
                  "and the pipe `ls -la | grep cse`.")
    console.print("It waits for Enter between demos (--no-pause runs straight through).\n" if pause else
                  "It runs straight through (--pause waits for Enter between demos).\n")
    for i, (name, mod) in enumerate(items, 1):
        heading(console, f"{i}/{len(items)}  vos demo {name}", mod)
        demos.run(mod, console, quick=args.quick, seed=getattr(args, "seed", None))
        if pause and i < len(items):
            try:
                console.input(f"[dim]Enter: demo {i + 1}/{len(items)}, {items[i][0]} (Ctrl-C leaves)[/] ")
            except EOFError:
                pause = False           # standard input ended: run the rest straight through
    console.rule("[bold]end of the tour")
    console.print("Run one again with `vos demo NAME`; watch threads live with `vos top`; "
                  "measure with `vos bench`.")
    return 0
