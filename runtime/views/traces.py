"""A controlled run's trace, to look at: one column per thread.

    step  thread 0          thread 1            thread 2
       3                    LOAD 0x1000 -> 0
                            lab.py:8
       4                                        LOAD 0x1000 -> 0  ▸
                                                lab.py:8

Each step sits in its thread's column, with the program's file and line
under it; ▸ marks a preemption (the thread before could have gone on).
Below the table, the source lines the steps came from.  Pure functions from
sched.trace.Step lists to rich renderables; fits 80 columns for up to four
threads (more threads, narrower cells).
"""

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text


def compact(step):
    """'LOAD 0x1000 -> 0', 'ACQUIRE lock 1 'x'', 'STORE 0x1000 = 5' ..."""
    target = step.target
    if "(" in target and target.startswith("0x"):
        target = target.split(" ", 1)[0]            # the address; the block is in the legend
    op = step.op
    if op == "STORE":
        return f"STORE {target} = {step.value}"
    if op in ("LOAD", "RSM", "READ", "TICKET"):
        return f"{op} {target} -> {step.value}"
    if op in ("start", "exit", "YIELD"):
        return op
    if op == "AWAIT":
        return step.what
    return f"{op} {target}".strip()


def trace_table(steps, title="the run", limit=None, threads=None, inline=False):
    """The steps as a table, one column per thread (the last `limit` steps).
    threads: the tids whose columns are shown (default all); the others'
    steps are left out and the caption counts them.  inline: one line per
    step, its file:line in a last column, no outer border (a short trace in
    a narrow place: a demo's controlled act)."""
    tids = sorted({s.tid for s in steps} if threads is None else set(threads))
    kept = [s for s in steps if s.tid in tids]
    shown = kept if limit is None or len(kept) <= limit else kept[-limit:]
    t = Table(title=title, title_justify="left", show_lines=False, pad_edge=False)
    if inline:
        t.box, t.show_edge = box.SIMPLE_HEAD, False
    t.add_column("step", justify="right", no_wrap=True)
    for tid in tids:
        t.add_column(f"thread {tid}", overflow="fold")
    if inline:
        t.add_column("line", overflow="fold", style="dim")
    for s in shown:
        cell = Text(compact(s), style="bold red" if s.failed else "")
        if s.preempted:
            cell.append("  ▸", style="yellow")
        if s.timed_out:
            cell.append(" (timed out)", style="red")
        if s.site and not inline:
            cell.append("\n" + s.site, style="dim")
        row = [str(s.index)] + [cell if tid == s.tid else "" for tid in tids]
        t.add_row(*row, *([s.site] if inline else []))
    notes = []
    if limit is not None and len(kept) > limit:
        notes.append(f"(the last {limit} of {len(kept)} steps)")
    notes.append("▸ a preemption")
    left_out = sorted({s.tid for s in steps} - set(tids))
    if left_out:
        names = ", ".join(f"thread {tid}" for tid in left_out)
        notes.append(f"({len(steps) - len(kept)} steps of {names} not shown)")
    t.caption = "  ".join(notes)
    return t


def source_lines(steps, most=12):
    """The program's lines the steps came from, once each, in order of first use."""
    seen = []
    for s in steps:
        if s.site and s.site not in seen:
            seen.append(s.site)
    lines = [f"  {site:<18} {steps[[x.site for x in steps].index(site)].line}" for site in seen[:most]]
    return Text("\n".join(lines), style="dim") if lines else Text("")


def failure_view(failure, token_hint=True, threads=None, inline=False, limit=None):
    """A failure: what broke, the shrunk trace, the lines, and how to replay
    it (print `replay_line(failure.token)` after it, unwrapped).  threads,
    inline, limit: as trace_table's (inline leaves out the source lines
    below: each step's line is beside it)."""
    parts = [Text(failure.error, style="bold red")]
    if failure.trace:
        parts += [Text(f"found by {failure.strategy} (run {failure.run}); shrunk to {failure.preemptions} "
                       f"preemption{'s' if failure.preemptions != 1 else ''}, {len(failure.trace)} steps"),
                  trace_table(failure.trace, title=None if inline else "the failing schedule", threads=threads,
                              inline=inline, limit=limit)]
        if not inline:
            parts.append(source_lines(failure.trace))
    else:
        parts.append(Text("It failed before any thread took a step (in the setup): no schedule to show.",
                          style="yellow"))
    if token_hint:
        parts.append(Text("replay it (the same trace, the same error, every time):", style="bold"))
    return Group(*parts)


def race_view(races, most=3):
    """Data races (runtime.races.Race), one panel each: the word, then both
    accesses -- thread, read or write, the program's line, the locks held."""
    from rich.panel import Panel
    panels = []
    for r in races[:most]:
        body = Text()
        for a in (r.first, r.second):
            held = ", ".join(a.locks) if a.locks else "no lock"
            body.append(f"thread {a.tid} {a.kind}s", style="bold")
            body.append(f" at {a.short_site}  [{held}]\n")
            if a.line:
                body.append(f"    {a.line}\n", style="dim")
        common = r.common_locks
        body.append(f"locks in common: {', '.join(common)}" if common else
                    "no lock, eventcount, message or join orders these two accesses", style="yellow")
        panels.append(Panel(body, title=f"data race on {r.second.where}", title_align="left", border_style="red"))
    if len(races) > most:
        panels.append(Text(f"... and {len(races) - most} more data race{'s' if len(races) - most > 1 else ''}"))
    return Group(*panels)


def print_replay_line(console, token):
    """The replay command on one line, never wrapped (a token must copy whole)."""
    console.print(f"vos replay {token}", soft_wrap=True, highlight=False)


__all__ = ["compact", "trace_table", "source_lines", "failure_view", "race_view", "print_replay_line"]
