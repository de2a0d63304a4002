"""管道: what happens when we use a pipe?  `ls -la | grep cse`, run for real.

Slide: "管道 - 思考：当我们使用管道的时候，发生了什么？ ~ % ls -la | grep cse",
right after the bounded buffer between threads (线程间通信：有界缓冲区):
SEND inserts a message and waits while the buffer is full (满则等待);
RECEIVE takes one and waits while it is empty (空则等待).

The answer is those two slides together.  The shell (thread 0) allocates one
bounded buffer for the `|` and one thread per command; `ls` runs in one
virtual processor and SENDs its listing into the buffer, `grep` runs in
another and RECEIVEs from it.  Neither knows the other exists: each sees a
stream, and the buffer does all the coordination.

Step 1 makes a small course directory (a few files with "cse" in their
names among a few hundred others, in a temporary directory removed at the
end) and runs `ls -la | wc -l` and `ls -la | grep cse` through the vos shell,
the same Session that `vos sh -c` uses.

Step 2 runs `ls -la | grep cse` again with the trace of `vos sh --trace`:
each stage's thread and its sampled states, and every SEND and RECEIVE with
the fill level of the buffer after it.  grep reaches its RECEIVE while ls is
still reading the directory: the buffer is empty, so grep waits.  When ls
exits its end of the stream closes, and grep's next RECEIVE says "end of
stream": that is how grep knows the listing is over.  (The few hundred
other files are there for this: with five files ls sends its one message
before grep's process has even started, and nobody waits.)

Step 3 turns the roles round: `yes` never stops producing and `head -n 3`
needs one message.  On one processor yes fills all 16 slots, and its next
SEND waits.  head takes one message, prints three lines and exits, closing
its end; yes's next SEND finds nobody left to read (ReaderClosed, a
BrokenPipeError) and yes ends with status 141, what SIGPIPE (128 + 13) gives
a real Unix process.  Without that, `yes | head` would never end.

What to notice: the shell never copies a byte itself; the buffer's fill
level tells who waits for whom; the exit statuses tell who ended by itself
and who was ended by the closed pipe.
"""

import os
import tempfile

from rich.table import Table
from rich.text import Text

from runtime import Kernel
from runtime.views.tables import trace_tables
from runtime.shell.pipeline import SIGPIPE_STATUS
from runtime.shell.session import Session

TITLE = "ls -la | grep cse: two threads and a bounded buffer, SEND waits when full, RECEIVE when empty"
SLIDE = "管道 - 思考：当我们使用管道的时候，发生了什么？ ~ % ls -la | grep cse"
ORDER = 50

CSE_FILES = ("cse101-syllabus.txt", "cse202-pipes.md", "lab3-cse.py", "notes-cse-midterm.txt")
OTHER_FILES = ("README", "ee150-circuits.txt", "Makefile") + tuple(f"reading-{i:03d}.txt" for i in range(1, 251))
TRIES = 3   # a run whose timing hid the wait is run again, at most this often


class _Shell:
    """A vos shell session in a directory, with the stages' output caught in
    files (so that the demo can print it through its console)."""

    def __init__(self, kernel, cwd):
        self.kernel = kernel
        self.cwd = cwd

    def run(self, line, trace=False):
        """Run one command line; a dict with its output, `$?` and, traced, the
        Tracer (what `vos sh --trace` renders) and every stage's exit status
        (the shell's `$?` is the last one's; bash calls them PIPESTATUS)."""
        shown = {}
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                session = Session(self.kernel, trace=(lambda tracer, status: shown.update(tracer=tracer))
                                  if trace else None, stdin_fd=null, stdout_fd=out.fileno(),
                                  stderr_fd=err.fileno())
                session.cwd = self.cwd
                status = session.run_line(line)
                out.seek(0)
                err.seek(0)
                tracer = shown.get("tracer")
                return dict(line=line, status=status, out=out.read().decode(errors="replace"),
                            err=err.read().decode(errors="replace"), tracer=tracer,
                            statuses=dict(tracer.pipeline.statuses) if tracer else {})
        finally:
            os.close(null)


def _transcript(console, run):
    """Print a run like a terminal would: the prompt, then the output."""
    console.print(Text(f"    ~ % {run['line']}", style="bold"))
    for line in run["out"].splitlines():
        console.print(Text(f"    {line}"), overflow="ignore", crop=False)
    for line in run["err"].splitlines():
        console.print(Text(f"    {line}", style="red"))


def _stages(run):
    """[(tid, command)] of the traced pipeline, in stage order."""
    p = run["tracer"].pipeline
    return list(zip(p.joined, p.names))


def _log(run, tid):
    """The stage's own SEND/RECEIVE log: [(start ns, end ns, verb, bytes, fill, sleeps)]."""
    return run["tracer"].pipeline.logs.get(tid, [])


def _states(run, tid):
    """The states the shell sampled for one stage, in order."""
    return [what for _, who, what in run["tracer"].events if who.startswith(f"thread {tid} (")]


def _buffer(run):
    """The statistics row of the pipeline's (only) bounded buffer."""
    return run["tracer"].final_buffers[0][1]


def _show_trace(console, run):
    for renderable in trace_tables(run["tracer"], run["status"]):
        console.print(renderable)


def _status_table(run, title):
    table = Table(title=title, title_justify="left")
    for col in ("stage", "thread", "command", "exit status", "why it ended"):
        table.add_column(col, justify="right" if col in ("stage", "thread", "exit status") else "left")
    names = run["line"].split("|")
    for i, (tid, status) in enumerate(run["statuses"].items()):  # joined in stage order
        if status == SIGPIPE_STATUS:
            why = "[red]its SEND found the reader gone: ReaderClosed (BrokenPipeError), like SIGPIPE[/]"
        elif status == 0:
            why = "[green]finished by itself[/]"
        else:
            why = f"exited with status {status}"
        table.add_row(str(i + 1), str(tid), names[i].strip() if i < len(names) else "?", str(status), why)
    return table


def _make_directory(d):
    for name in CSE_FILES + OTHER_FILES:
        with open(os.path.join(d, name), "w") as f:
            f.write(f"{name}: course material\n")


def _ms(ns):
    return ns / 1e6


def main(console, quick=False):
    with tempfile.TemporaryDirectory(prefix="vos-pipe-") as d:
        _make_directory(d)
        with Kernel(start_method="fork") as k:
            shell = _Shell(k, d)
            _step1(console, shell)
            _step2(console, shell)
        with Kernel(processors=1, quantum=0.05, start_method="fork") as k:
            shell = _Shell(k, d)
            _step3(console, shell, quick)
    console.print("  So what happens when we use a pipe?  The shell calls ALLOCATE_BOUNDED_BUFFER for the `|` "
                  "and ALLOCATE_THREAD for each command; the threads are real processes that share nothing but "
                  "the buffer.  SEND waits while it is full (满则等待), RECEIVE while it is empty (空则等待), "
                  "and closing an end tells the other side: end of stream downstream, a broken pipe upstream.")


def _step1(console, shell):
    console.print(f"[bold]Step 1.[/] A course directory: {len(CSE_FILES)} files with [bold]cse[/] in their "
                  f"names among {len(OTHER_FILES)} others.  Two command lines through the vos shell "
                  "(a Session on a Kernel, what `vos sh -c` runs):\n")
    count = shell.run("ls -la | wc -l")
    _transcript(console, count)
    grep = shell.run("ls -la | grep cse")
    _transcript(console, grep)
    console.print()
    console.print(f"  grep let through {len(grep['out'].splitlines())} of the {count['out'].strip()} lines: "
                  "the ones with [bold]cse[/].  `ls` and `grep` ran as two threads, each a virtual processor "
                  "(a real OS process); the `|` is a bounded buffer the shell made with "
                  "ALLOCATE_BOUNDED_BUFFER before starting them.  ls SENDs its output into it, grep "
                  "RECEIVEs from it.\n")


def _step2(console, shell):
    console.print("[bold]Step 2.[/] The same pipeline with the trace on (what `vos sh --trace -c "
                  "\"ls -la | grep cse\"` prints): the threads, their states as the shell samples them, and "
                  "every SEND and RECEIVE with the buffer's fill level after it.\n")
    for attempt in range(1, TRIES + 1):
        run = shell.run("ls -la | grep cse", trace=True)
        (ls_tid, _), (grep_tid, _) = _stages(run)
        waited = _buffer(run)["receive_waits"] > 0 or any("on receive" in s for s in _states(run, grep_tid))
        if waited or attempt == TRIES:
            break
        console.print("  (this time ls had sent before grep asked: nothing to wait for; again)")
    _transcript(console, run)
    _show_trace(console, run)
    sends = [e for e in _log(run, ls_tid) if e[2] == "SEND"]
    receives = [e for e in _log(run, grep_tid) if e[2] == "RECEIVE"]
    ends = [e for e in _log(run, grep_tid) if e[2] == "end of stream"]
    console.print(f"  Notice: ls SENT its whole listing, {sum(e[3] for e in sends):,} bytes, as "
                  f"{_buffer(run)['sent']} message(s) (the shell's programs write in chunks of up to 64 KiB); "
                  f"grep RECEIVEd {len(receives)}.")
    if receives and waited:
        first = receives[0]
        seen = [s for s in _states(run, grep_tid) if "on receive" in s]
        console.print(f"  grep's first RECEIVE took {_ms(first[1] - first[0]):.1f} ms: it asked while ls still "
                      "had a few hundred files to look at, the buffer was [bold]empty[/], and grep waited "
                      "(空则等待)"
                      + (f"; the shell saw it as [cyan]{seen[-1]}[/]" if seen else "")
                      + f".  The buffer table counts {_buffer(run)['receive_waits']} time(s) the receiver "
                      "went to sleep (a short wait is spent spinning and not counted).")
    else:
        console.print("  This time ls was quicker than grep's start: its message was in the buffer before grep "
                      "asked, so grep did not wait.  Run the demo again: who gets there first is up to the "
                      "scheduler.")
    if sends and sends[0][1] - sends[0][0] >= 1_000_000 and not sends[0][5]:
        console.print(f"  (ls's SEND took {_ms(sends[0][1] - sends[0][0]):.1f} ms without sleeping: a stage's "
                      "first SEND or RECEIVE also maps the buffer's shared memory into its process, and the "
                      "trace counts that time in.)")
    if ends:
        console.print("  When ls exited, its end of the buffer closed; grep drained what was left, and its next "
                      "RECEIVE returned [bold]end of stream[/] (the last RECEIVE in the timeline): that is how "
                      "grep knows the listing is over, and it exited too.\n")


def _step3(console, shell, quick):
    console.print("[bold]Step 3.[/] The other way round: a producer that never stops, [bold]yes[/], into a "
                  "consumer that needs one message, [bold]head -n 3[/].  One processor this time "
                  "(`vos sh --processors 1 --trace`), so the timeline reads as a story.\n")
    for attempt in range(1, TRIES + 1):
        run = shell.run("yes | head -n 3", trace=True)
        buf = _buffer(run)
        if buf["send_waits"] > 0 or attempt == TRIES:
            break
        console.print("  (this time head got in before the buffer filled up: yes never waited; again)")
    (yes_tid, _), (head_tid, _) = _stages(run)
    _transcript(console, run)
    _show_trace(console, run)
    console.print(_status_table(run, "every stage's exit status (the shell's `$?` is only the last one)"))
    log = _log(run, yes_tid)
    seen = [s for s in _states(run, yes_tid) if "on send" in s]
    first_full = next((i for i, e in enumerate(log) if e[4] == buf["n"]), None)
    if first_full is not None:
        console.print(f"  Notice: yes SENT {first_full + 1} messages of 64 KiB in a row; then the buffer was "
                      f"[bold]full[/] ({buf['peak_fill']}/{buf['n']} at its peak), and its next SEND waited "
                      "(满则等待)" + (f": the shell saw it as [cyan]{seen[-1]}[/]" if seen else "")
                      + f".  The buffer table counts {buf['send_waits']} time(s) the sender went to sleep; "
                      "its sleep gave the one processor to head.")
    received = [e for e in _log(run, head_tid) if e[2] == "RECEIVE"]
    console.print(f"  head RECEIVEd {len(received)} message(s) ({sum(e[3] for e in received) // 2:,} lines of "
                  "\"y\"), printed 3 of them and exited, closing its end of the buffer.  The buffer took "
                  f"{buf['sent']} messages in all; {buf['sent'] - buf['received']} were never read.")
    yes_status = run["statuses"].get(yes_tid)
    if yes_status == SIGPIPE_STATUS:
        console.print("  yes's next SEND found the reader gone (the timeline's [bold]SEND refused[/]): "
                      f"ReaderClosed, a BrokenPipeError, and yes [red]ended with status {yes_status}[/] = 128 + 13, "
                      "what SIGPIPE gives a real process. head ending closed the pipe upstream, and that is the "
                      "only thing that stops yes.")
    else:
        console.print(f"  yes ended with status {yes_status}.")
    console.print()
    if not quick:
        run = shell.run("yes | grep y | head -n 3", trace=True)       # traced for every stage's status
        _transcript(console, run)
        console.print(_status_table(run, "three stages: the closed pipe travels upstream"))
        console.print("  head leaves; grep's next SEND is refused (141), and grep's exit closes its input, so "
                      "yes's next SEND is refused too (141): the pipeline ends from the back, stage by stage.\n")
