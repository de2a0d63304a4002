"""Render functions: turn a statistics snapshot into something to look at.

Pure functions from plain data (lists of dicts from `Kernel.thread_info()` and
`Kernel.statistics()`) to rich renderables.  The runtime core never imports
rich; the CLI and the demos call these."""

from rich.table import Table
from rich.text import Text

STATE_STYLE = {"RUNNING": "bold green", "RUNNABLE": "yellow", "WAITING": "cyan",
               "EXITED": "dim", "FAULTED": "bold red", "DYING": "red"}


def state_text(state):
    return Text(state, style=STATE_STYLE.get(state, ""))


def threads_table(rows, title="threads", processors=None, show_boot=False):
    """One row per thread: state, what it waits for, CPU time and switches."""
    busy = ""
    if processors and processors.get("count"):
        busy = f"   processors busy {processors['busy']}/{processors['count']}, {processors['waiting']} waiting"
    t = Table(title=f"{title}{busy}", title_justify="left")
    for col, just in [("tid", "right"), ("name", "left"), ("state", "left"), ("waits for", "left"),
                      ("cpu ms", "right"), ("vol", "right"), ("invol", "right"), ("faults", "right"),
                      ("pid", "right")]:
        t.add_column(col, justify=just, no_wrap=col in ("state", "name"))
    t.caption = "vol / invol: voluntary (YIELD, blocking) and involuntary (clock interrupt) switches"
    for r in rows:
        if r["tid"] == 0 and not show_boot:
            continue
        state = r["state"]
        if r.get("reason") and r["reason"] != "exit":
            state = f"{state} ({r['reason']})"
        t.add_row(str(r["tid"]), r["name"][:16], state_text(state), r["waits_for"], f"{r['run_ms']:.0f}",
                  str(r["voluntary"]), str(r["involuntary"]), str(r["faults"]), str(r["pid"]))
    return t


def kernels_table(kernels):
    """The list `vos top` shows when several kernels run."""
    t = Table(title="running vos kernels")
    for col in ("arena", "kernel pid", "threads"):
        t.add_column(col)
    for name, pid, nthreads in kernels:
        t.add_row(name, str(pid), str(nthreads))
    return t
