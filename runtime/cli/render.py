"""Render functions: turn a statistics snapshot into something to look at.

Pure functions from plain data (lists of dicts from `Kernel.thread_info()` and
`Kernel.statistics()`) to rich renderables.  The runtime core never imports
rich; the CLI and the demos call these."""

from rich.table import Table
from rich.text import Text

from ..shell.pipeline import SIGPIPE_STATUS

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


def trace_tables(tracer, status):
    """The renderables of `vos sh --trace`: timeline, stages, buffers."""
    timeline = Table(title="the pipeline as a timeline (SEND/RECEIVE logged by each stage at completion; thread states sampled)", title_justify="left")
    timeline.add_column("ms", justify="right")
    timeline.add_column("who")
    timeline.add_column("what")
    events = tracer.timeline()
    shown = events if len(events) <= 80 else events[:40] + [(None, "...", f"{len(events) - 80} more events")] + events[-40:]
    for ms, who, what in shown:
        timeline.add_row("" if ms is None else f"{ms:.2f}", who, what)
    stages = Table(title=f"stages (exit status of the pipeline: {status})", title_justify="left")
    for col in ("tid", "pid", "command", "state", "exit status", "cpu ms", "vol", "invol"):
        stages.add_column(col)
    names = dict(zip(tracer.pipeline.joined, tracer.pipeline.names))
    statuses = tracer.pipeline.statuses
    for r in tracer.final_threads:
        exit_status = statuses.get(r["tid"], "")
        if exit_status == SIGPIPE_STATUS:
            exit_status = "141 (broken pipe)"
        stages.add_row(str(r["tid"]), str(r["pid"]), names.get(r["tid"], r["name"]), state_text(r["state"]),
                       str(exit_status), f"{r['run_ms']:.1f}", str(r["voluntary"]), str(r["involuntary"]))
    buffers = Table(title="bounded buffers between the stages", title_justify="left")
    for col in ("buffer", "between", "messages", "bytes", "peak fill", "sender waits", "receiver waits"):
        buffers.add_column(col)
    names = tracer.pipeline.names
    for i, row in tracer.final_buffers:
        buffers.add_row(f"{i + 1}", f"{names[i]} | {names[i + 1]}", str(row["sent"]), str(row["bytes_sent"]),
                        f"{row['peak_fill']}/{row['n']}", str(row["send_waits"]), str(row["receive_waits"]))
    return [timeline, stages, buffers]
