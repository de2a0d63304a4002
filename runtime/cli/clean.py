"""`vos clean`: remove the segments, swap files and VPs of dead kernels.

A live kernel is never touched, nor any process that is not a VP of a dead
kernel (a `vos top` watching it survives; see runtime/cleanup.py).  Use it
after a kernel was killed with SIGKILL."""

from ..arena import list_segments, parse_name
from ..cleanup import clean, find_dead


def add_parser(sub):
    p = sub.add_parser("clean", help="remove what dead kernels left behind", description=__doc__)
    p.add_argument("--dry-run", action="store_true", help="only show what would be removed")
    return p


def run(args, console):
    dead = find_dead()
    if not dead:
        live = sorted({parse_name(n)[1] for n in list_segments()})
        if not live:
            console.print("nothing to clean: no vos kernel has left anything on this host")
        else:
            n = len(live)
            console.print(f"nothing to clean: {n} vos kernel{'s are' if n > 1 else ' is'} running here "
                          "and vos clean never touches a live kernel")
        return 0
    from rich.table import Table
    t = Table(title="would remove" if args.dry_run else "removed")
    for col in ("kernel arena", "dead pid", "segments", "swap files", "VPs killed"):
        t.add_column(col)
    for main, info in sorted(dead.items()):
        t.add_row(main, str(info["pid"]), str(len(info["segments"])), str(len(info["swap"])),
                  ", ".join(map(str, info["vps"])) or "-")
    if not args.dry_run:
        clean(dead)
    console.print(t)
    return 0
