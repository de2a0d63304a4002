"""`vos demo [NAME]`: list the demos, or run one."""

import demos


def add_parser(sub):
    p = sub.add_parser("demo", help="list the demos, or run one", description=__doc__)
    p.add_argument("name", nargs="?", help="the demo to run (omit to list them)")
    p.add_argument("--quick", action="store_true", help="a shorter run")
    p.add_argument("--seed", type=int, default=None,
                   help=f"the seed of a race demo's controlled act: the same seed prints the same act "
                        f"(default {demos.SEED})")
    return p


def run(args, console):
    if not args.name:
        from rich.table import Table
        t = Table(title="vos demos (in lecture order; `vos tour` runs them all)")
        t.add_column("demo", no_wrap=True)
        t.add_column("what it shows", overflow="fold")
        t.add_column("slide", overflow="fold")        # Chinese has no spaces to wrap at: fold
        for name, mod in demos.all_demos():
            t.add_row(name, mod.TITLE, getattr(mod, "SLIDE", ""))
        console.print(t)
        return 0
    try:
        mod = demos.get(args.name)
    except KeyError:
        names = ", ".join(n for n, _ in demos.all_demos())
        console.print(f"[red]no demo named {args.name!r}[/]; the demos are: {names}")
        return 2
    heading(console, f"vos demo {args.name}", mod)
    demos.run(mod, console, quick=args.quick, seed=getattr(args, "seed", None))
    return 0


def heading(console, label, mod):
    """A demo's heading: a rule with `label`, then its title and slide, which
    wrap (a rule would cut them at 80 columns)."""
    console.rule(f"[bold cyan]{label}[/]")
    console.print(f"[bold]{mod.TITLE}[/]")
    if getattr(mod, "SLIDE", ""):
        console.print(f"[dim]slide: {mod.SLIDE}[/]")
    console.print()
