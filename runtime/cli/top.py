"""`vos top [ARENA]`: watch a running kernel, live: its threads (state, what
each waits for, CPU time, switches), bounded buffers (fill, traffic, who is
blocked), locks, eventcounts and sequencers, virtual memory per address
space, and the escape check (runtime/audit.py): a process that maps the
kernel's memory without being one of its threads, or a thread that mapped
the arena again by name, is named under the tables.

Reads the kernel's tables straight from shared memory without taking any
lock, so it works even when the kernel's threads are wedged (deadlocked,
spinning, or stopped in a debugger)."""

import time

from rich.live import Live

from .. import arena, audit
from ..kernel import Kernel
from .render import kernel_view, kernels_table


def add_parser(sub):
    p = sub.add_parser("top", help="watch a running kernel: threads, buffers, locks, eventcounts, memory", description=__doc__)
    p.add_argument("arena", nargs="?", help="the kernel's arena name (default: the only running kernel)")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between refreshes")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    return p


def _running_kernels():
    mains = sorted({arena.parse_name(n)[1] for n in arena.list_segments()})
    out = []
    for name in mains:
        try:
            k = Kernel.attach_by_name(name)
        except (FileNotFoundError, ValueError, OSError):
            continue
        if k.alive():
            out.append((name, k))
        else:
            k.detach()
    return out


def _snapshot(k):
    """The kernel's statistics, and the escape check's findings (runtime/audit.py):
    processes that map its memory without being its threads, threads that
    mapped its arena again by name.  (This monitor maps the arena too; the
    check leaves out the process that runs it.)"""
    stats = k.statistics()
    stats["escapes"] = audit.audit(k)
    return stats


def run(args, console):
    kernels = _running_kernels()
    if args.arena:
        chosen = [k for n, k in kernels if n == args.arena]
    else:
        chosen = [k for _, k in kernels]
    if len(chosen) != 1:
        if not kernels:
            console.print("no vos kernel is running")
        else:
            console.print(kernels_table([(n, k.threads.get64(k.threads.slot_off(0, 16)), len(k.thread_info()))
                                         for n, k in kernels]))
            console.print("name one: `vos top ARENA`")
        for _, k in kernels:
            k.detach()
        return 0 if not args.arena else 2
    k = chosen[0]
    title = f"kernel {k.arena.name}"
    try:
        if args.once:
            console.print(kernel_view(_snapshot(k), title))
            return 0
        with Live(console=console, refresh_per_second=max(1, int(1 / args.interval))) as live:
            while k.alive():
                live.update(kernel_view(_snapshot(k), title))
                time.sleep(args.interval)
        console.print("the kernel has ended")
        return 0
    finally:
        for _, other in kernels:
            other.detach()
