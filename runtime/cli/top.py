"""`vos top [ARENA]`: watch a running kernel, live: its threads (state, what
each waits for, CPU time, switches), bounded buffers (fill, traffic, who is
blocked), locks, eventcounts and sequencers, virtual memory per address
space, and the escape check (runtime/audit.py): a process that maps the
kernel's memory without being one of its threads, or a thread that mapped
the arena again by name, is named under the tables.

Which kernel.  With one kernel running, that one; with several, the list to
pick from (`--list` prints it and leaves).  A demo or the tour boots a new
kernel for every step, in the same process: when the kernel it shows ends,
`vos top` follows that process's next kernel, and the title says which
kernel of which process it shows.  When that process has ended too, it
follows the only other kernel, or waits for a new one (Ctrl-C leaves).
`vos top ARENA` shows that kernel only and leaves when it ends.

Reads the kernel's tables straight from shared memory without taking any
lock, so it works even when the kernel's threads are wedged (deadlocked,
spinning, or stopped in a debugger)."""

import os
import time

import psutil
from rich.live import Live
from rich.text import Text

from .. import arena, audit
from ..errors import KernelError
from ..kernel import Kernel
from ..views.tables import kernel_view, kernels_table


def add_parser(sub):
    p = sub.add_parser("top", help="watch a running kernel: threads, buffers, locks, eventcounts, memory",
                       description=__doc__)
    p.add_argument("arena", nargs="?", help="the kernel's arena name (default: the only running kernel, "
                                            "and the next one of its process when it ends)")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between refreshes")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.add_argument("--list", action="store_true", help="list the running kernels and exit")
    return p


def _attach(name):
    """A view of the live kernel `name`, or None (gone, dead, or still booting)."""
    try:
        k = Kernel.attach_by_name(name)
    except (OSError, ValueError, KernelError):
        return None
    if k.alive():
        return k
    k.detach()
    return None


def _command(pid):
    """What process pid runs, shortly: "vos demo multiplex", "lab.py"."""
    try:
        argv = psutil.Process(pid).cmdline()
    except psutil.Error:
        return "?"
    if "-c" in argv[:2]:
        argv = argv[:argv.index("-c") + 1]   # python -c CODE: not the code
    elif len(argv) > 1 and os.path.basename(argv[0]).startswith("python") and argv[1] != "-m":
        argv = argv[1:]                      # the interpreter: say what it runs
    if not argv:
        return "?"
    return " ".join(" ".join([os.path.basename(argv[0]), *argv[1:]]).split())


def _running():
    """[(arena name, kernel pid)] of the live kernels, oldest process first."""
    out = []
    for name in sorted({arena.parse_name(n)[1] for n in arena.list_segments()}):
        k = _attach(name)
        if k is not None:
            out.append((name, arena.parse_name(name)[0], len(k.thread_info())))
            k.detach()
    return out


def _listing(kernels):
    return kernels_table([(i, name, pid, _command(pid), n) for i, (name, pid, n) in enumerate(kernels, 1)])


def _pick(kernels, console):
    """Several kernels: the list, and the user's choice if there is a user."""
    console.print(_listing(kernels))
    if not (console.is_terminal and console.is_interactive):
        console.print("name one: `vos top ARENA`")
        return None
    try:
        answer = console.input(f"which one? (1-{len(kernels)}, Enter for 1) ").strip() or "1"
    except EOFError:                         # the terminal's input ended (Ctrl-D): no choice
        console.print()
        return None
    if answer.isdigit() and 1 <= int(answer) <= len(kernels):
        return kernels[int(answer) - 1][0]
    console.print(f"[red]no kernel number {answer!r}[/]")
    return None


def _snapshot(k):
    """The kernel's statistics, and the escape check's findings (runtime/audit.py):
    processes that map its memory without being its threads, threads that
    mapped its arena again by name.  (This monitor maps the arena too; the
    check leaves out the process that runs it.)"""
    stats = k.statistics()
    stats["escapes"] = audit.audit(k)
    return stats


def run(args, console):
    if args.arena:
        name = args.arena
        if _attach_or_none(name) is None:
            console.print(f"[red]no running vos kernel named {name!r}[/]")
            kernels = _running()
            if kernels:
                console.print(_listing(kernels))
            return 2
    else:
        kernels = _running()
        if args.list or (args.once and not kernels):
            console.print(_listing(kernels) if kernels else "no vos kernel is running")
            return 0
        name = kernels[0][0] if len(kernels) == 1 else None
        if len(kernels) > 1:
            name = _pick(kernels, console)
            if name is None:
                return 0
    if args.once:
        k = _attach(name)
        if k is None:
            console.print(f"kernel {name} has ended")
            return 0
        try:
            console.print(kernel_view(_snapshot(k), _title(k, arena.parse_name(name)[0], 1)))
        finally:
            k.detach()
        return 0
    try:
        return _follow(console, args, name, named=bool(args.arena))
    except KeyboardInterrupt:
        return 0


def _attach_or_none(name):
    k = _attach(name)
    if k is not None:
        k.detach()
    return k


def _title(k, pid, count):
    nth = "" if count == 1 else f", its kernel {count} seen here"
    return f"kernel {k.arena.name} (process {pid}: {_command(pid)}{nth})"


def _follow(console, args, name, named):
    """Show kernel `name` (None: the first to start) live until it ends, then
    the next one (_wait_next).  Prints a line at each switch."""
    shown, pid, count = set(), 0, 0
    with Live(console=console, refresh_per_second=max(1, int(1 / args.interval)), transient=False) as live:
        while True:
            k = _attach(name) if name else None
            if k is not None:
                shown.add(name)
                new_pid = arena.parse_name(name)[0]
                count = count + 1 if new_pid == pid else 1
                pid = new_pid
                title = _title(k, pid, count)
                console.print(f"following {title}")
                try:
                    while k.alive():
                        live.update(kernel_view(_snapshot(k), title))
                        time.sleep(args.interval)
                finally:
                    k.detach()
                console.print(f"kernel {name} has ended")
            name = _wait_next(console, live, args.interval, pid, shown, named)
            if name is None:
                return 0


def _wait_next(console, live, interval, pid, shown, named):
    """The next kernel to show: the next one of process pid while that
    process lives; after it (or before any), unless the user named the
    kernel, the only other kernel running or else the next one to start.
    None: the named kernel's process has ended."""
    while pid and psutil.pid_exists(pid):
        live.update(Text(f"waiting for the next kernel of process {pid} ({_command(pid)}); Ctrl-C leaves"))
        mine = [n for n, p, _ in _running() if p == pid and n not in shown]
        if mine:
            return mine[-1]
        time.sleep(interval)
    if named:
        console.print(f"process {pid} has ended")
        return None
    before = {n for n, _, _ in _running()} - shown
    if len(before) == 1:
        return before.pop()
    live.update(Text(("waiting for a vos kernel to start" if not before else
                      f"{len(before)} other kernels run (`vos top --list`); waiting for a new one")
                     + "; Ctrl-C leaves"))
    while True:
        new = [n for n, _, _ in _running() if n not in before and n not in shown]
        if new:
            return new[0]
        time.sleep(interval)
