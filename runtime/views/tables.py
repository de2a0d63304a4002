"""Render functions: turn a statistics snapshot into something to look at.

Pure functions from plain data (lists of dicts from `Kernel.thread_info()` and
`Kernel.statistics()`) to rich renderables.  The runtime core never imports
rich; the CLI and the demos call these."""

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..shell.pipeline import SIGPIPE_STATUS

STATE_STYLE = {"RUNNING": "bold green", "RUNNABLE": "yellow", "WAITING": "cyan",
               "EXITED": "dim", "FAULTED": "bold red", "DYING": "red"}


def state_text(state):
    return Text(state, style=STATE_STYLE.get(state, ""))


def size_text(n):
    """A byte count a student reads at a glance: 5 B, 64 KiB, 1.5 MiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value >= 10 or value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


def threads_table(rows, title="threads", processors=None, show_boot=False, pool=None):
    """One row per thread: state, what it waits for, CPU time and switches;
    with a pool (its statistics), which VP runs each thread: "pool" (a
    ready VP it was handed to) or "fork" (a process started for it).

    RUNNING means "holds a processor", as the demos say.  Thread 0, the boot
    program, is the console and runs outside a processors= limit: under a
    limit its row says "console" instead of RUNNING, so the RUNNING rows are
    the busy processors."""
    limited = bool(processors and processors.get("count"))
    busy = ""
    if limited:
        busy = f"   processors busy {processors['busy']}/{processors['count']}, {processors['waiting']} waiting"
    t = Table(title=f"{title}{busy}", title_justify="left", caption_justify="left")
    faults = any(r["faults"] for r in rows)        # a column only where a page fault happened
    pooled = bool(pool and pool["capacity"])
    for col, just in [("tid", "right"), ("name", "left"), ("state", "left"), ("waits for", "left"),
                      ("cpu ms", "right"), ("switches\nvol/invol", "right"), ("faults", "right"), ("pid", "right"),
                      ("VP", "left")]:
        if (col != "faults" or faults) and (col != "VP" or pooled):
            t.add_column(col, justify=just, no_wrap=col == "state", overflow="fold")
    t.caption = "switches: voluntary (YIELD, blocking) / involuntary (clock)"
    if pooled:
        idle = sum(1 for v in pool["vps"] if v["state"] == "idle")
        t.caption += (f"\nVP: pool (handed to a ready VP) or fork (a process started for it); "
                      f"pool: {idle} of {len(pool['vps'])} VPs idle, {pool['keep']} kept ready")
    if show_boot and limited:
        t.caption += "\nthread 0 (boot) is the console, outside the processor limit"
    for r in rows:
        if r["tid"] == 0 and not show_boot:
            continue
        state = r["state"]
        if r["tid"] == 0 and limited and state == "RUNNING":
            state = "console"
        if r.get("reason") and r["reason"] != "exit":
            state = f"{state} ({r['reason']})"
        cells = [str(r["tid"]), r["name"][:16], state_text(state), r["waits_for"], f"{r['run_ms']:.0f}",
                 f"{r['voluntary']}/{r['involuntary']}"] + ([str(r["faults"])] if faults else []) + [str(r["pid"])]
        if pooled:
            cells.append("" if r["tid"] == 0 else r["started"])
        t.add_row(*cells)
    return t


def buffers_table(rows):
    """One row per bounded buffer: fill now and at its peak, traffic, who waits."""
    t = Table(title="bounded buffers", title_justify="left", caption_justify="left",
              caption="fill: messages (of n) and bytes in it now; blocked: threads waiting now; "
                      "slept: times a sender / receiver went to sleep")
    for col in ("buffer", "fill", "peak", "sent", "blocked\nsend/recv", "slept\nsend/recv", "state"):
        t.add_column(col, justify="left" if col in ("buffer", "state") else "right")
    for r in rows:
        state = "deallocated" if r["deallocated"] else ("end of stream" if r["end_of_stream"] else
                                                         "readers gone" if r["readers_gone"] else "open")
        t.add_row(str(r["id"]), f"{r['fill']}/{r['n']}\n{size_text(r['fill_bytes'])}", f"{r['peak_fill']}/{r['n']}",
                  f"{r['sent']:,}\n{size_text(r['bytes_sent'])}", f"{r['blocked_senders']}/{r['blocked_receivers']}",
                  f"{r['send_waits']}/{r['receive_waits']}", state)
    return t


def locks_table(rows):
    """One row per lock: holder, waiters, acquisitions, contention, owner deaths."""
    t = Table(title="locks", title_justify="left")
    for col in ("lock", "holder", "waiting", "acquisitions", "found it held", "owner died"):
        t.add_column(col, justify="left" if col in ("lock", "waiting") else "right")
    for r in rows:
        holder = "free" if r["holder"] is None else f"thread {r['holder']}"
        t.add_row(f"{r['id']} {r['name']!r}", holder, ", ".join(f"thread {w}" for w in r["waiters"]),
                  str(r["acquisitions"]), str(r["contention"]), str(r["owner_died"]))
    return t


def eventcounts_table(stats):
    """Eventcounts (count, who awaits which value) and sequencers (next ticket)."""
    t = Table(title="eventcounts and sequencers", title_justify="left")
    for col in ("name", "count / next ticket", "waiting (AWAIT value)", "sleeps", "wake-ups"):
        t.add_column(col, justify="left" if col in ("name", "waiting (AWAIT value)") else "right")
    for r in stats["eventcounts"]:
        t.add_row(f"eventcount {r['id']} {r['name']!r}", str(r["count"]),
                  ", ".join(f"thread {tid} > {v}" for tid, v in r["waiters"]), str(r["sleeps"]), str(r["wakes"]))
    for r in stats["sequencers"]:
        t.add_row(f"sequencer {r['id']} {r['name']!r}", str(r["next_ticket"]), "", "", "")
    return t


def memory_table(vm):
    """Per address space: pages resident and in swap, the faults of each kind."""
    t = Table(title=f"virtual memory: {vm['frames'] - vm['free_frames']}/{vm['frames']} frames in use, "
                    f"policy {vm['policy']}, swap reads {vm['swap_reads']} / writes {vm['swap_writes']}",
              title_justify="left", caption_justify="left",
              caption="faults: zero = demand-zero, swap-in, prot. = protection, segv = segmentation")
    for col in ("address\nspace", "pages\nmapped", "resident", "in swap", "faults\nzero/swap-in",
                "faults\nprot./segv", "evicted"):
        t.add_column(col, justify="right")
    for r in vm["address_spaces"]:
        t.add_row(str(r["id"]), str(r["mapped"]), str(r["resident"]), str(r["swapped"]),
                  f"{r['demand_zero_faults']}/{r['swap_in_faults']}",
                  f"{r['protection_faults']}/{r['segmentation_faults']}", str(r["evictions"]))
    return t


def kernel_view(stats, title):
    """What `vos top` shows of a kernel.statistics() snapshot: the threads,
    then each part that has something in it."""
    names = {f"lock {r['id']}": f"lock {r['id']} {r['name']!r}" for r in stats["locks"]["locks"]}
    names.update({f"eventcount {r['id']}": f"eventcount {r['id']} {r['name']!r}"
                  for r in stats["eventcounts"]["eventcounts"]})
    threads = [dict(r, waits_for=_named(r["waits_for"], names)) for r in stats["threads"]]
    parts = [threads_table(threads, title, stats["processors"], show_boot=True, pool=stats.get("pool"))]
    if stats["buffers"]:
        parts.append(buffers_table(stats["buffers"]))
    if stats["locks"]["locks"]:
        parts.append(locks_table(stats["locks"]["locks"]))
    if stats["eventcounts"]["eventcounts"] or stats["eventcounts"]["sequencers"]:
        parts.append(eventcounts_table(stats["eventcounts"]))
    if stats["vm"]["address_spaces"]:
        parts.append(memory_table(stats["vm"]))
    if stats.get("escapes"):
        parts.append(Text("escape check (/proc/<pid>/maps): " + "; ".join(map(str, stats["escapes"])),
                          style="yellow"))
    return Group(*parts)


def _named(waits_for, names):
    """'lock 3' -> "lock 3 'accounts'"; 'eventcount 1 > 5' -> "eventcount 1 'items' > 5"."""
    for key, name in names.items():
        if waits_for == key or waits_for.startswith(key + " "):
            return name + waits_for[len(key):]
    return waits_for


def kernels_table(kernels):
    """The running kernels `vos top` lists: [(number, arena, pid, command, threads)]."""
    t = Table(title="running vos kernels", title_justify="left")
    for col in ("#", "arena", "kernel pid", "process", "threads"):
        t.add_column(col, justify="right" if col in ("#", "kernel pid", "threads") else "left", overflow="fold")
    for number, name, pid, command, nthreads in kernels:
        t.add_row(str(number), name, str(pid), command, str(nthreads))
    return t


def trace_tables(tracer, status):
    """The renderables of `vos sh --trace`: timeline, stages, buffers."""
    timeline = Table(title="the pipeline as a timeline: each SEND and RECEIVE as its stage logged it; "
                           "thread states when the shell's sampling first saw them", title_justify="left")
    timeline.add_column("ms", justify="right")
    timeline.add_column("who")
    timeline.add_column("what")
    events = tracer.timeline()
    shown = events if len(events) <= 80 else events[:40] + [(None, "...", f"{len(events) - 80} more events")] + events[-40:]
    for ms, who, what in shown:
        timeline.add_row("" if ms is None else f"{ms:.2f}", who, what)
    stages = Table(title=f"stages (exit status of the pipeline: {status})", title_justify="left")
    for col in ("tid", "pid", "VP", "command", "state", "exit status", "cpu ms", "vol", "invol"):
        stages.add_column(col, overflow="fold")
    names = dict(zip(tracer.pipeline.joined, tracer.pipeline.names))
    statuses = tracer.pipeline.statuses
    for r in tracer.final_threads:
        exit_status = statuses.get(r["tid"], "")
        if exit_status == SIGPIPE_STATUS:
            exit_status = "141 (broken pipe)"
        stages.add_row(str(r["tid"]), str(r["pid"]), r["started"], names.get(r["tid"], r["name"]), state_text(r["state"]),
                       str(exit_status), f"{r['run_ms']:.1f}", str(r["voluntary"]), str(r["involuntary"]))
    buffers = Table(title="bounded buffers between the stages", title_justify="left")
    for col in ("buffer", "between", "messages", "bytes", "peak fill", "sender waits", "receiver waits"):
        buffers.add_column(col, overflow="fold")
    names = tracer.pipeline.names
    for i, row in tracer.final_buffers:
        buffers.add_row(f"{i + 1}", f"{names[i]} | {names[i + 1]}", str(row["sent"]), str(row["bytes_sent"]),
                        f"{row['peak_fill']}/{row['n']}", str(row["send_waits"]), str(row["receive_waits"]))
    return [timeline, stages, buffers]
