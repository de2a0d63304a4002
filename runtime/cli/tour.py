"""`vos tour`: every demo, in the order of the lecture."""

import demos


def add_parser(sub):
    p = sub.add_parser("tour", help="run every demo in lecture order (the guided tour)", description=__doc__)
    p.add_argument("--quick", action="store_true", help="shorter runs")
    p.add_argument("--pause", action="store_true", help="wait for Enter between demos")
    return p


def run(args, console):
    items = demos.all_demos()
    console.rule("[bold]vos: 虚拟化 (virtualization), run for real")
    console.print("The guided tour runs each demo of the lecture in order: 复用 (multiplexing) of "
                  "processors, the races on shared data and their fixes, bounded buffers, virtual memory, "
                  "and the pipe `ls -la | grep cse`.\n")
    for i, (name, mod) in enumerate(items, 1):
        console.rule(f"[bold cyan]{i}/{len(items)}  vos demo {name}[/]: {mod.TITLE}")
        mod.main(console, quick=args.quick)
        if args.pause and i < len(items):
            console.input("[dim]Enter for the next demo...[/]")
    console.rule("[bold]end of the tour")
    console.print("Run one again with `vos demo NAME`; watch threads live with `vos top`; "
                  "measure with `vos bench`.")
    return 0
