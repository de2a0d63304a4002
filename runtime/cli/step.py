"""`vos step FILE[:FUNCTION]`: you are the scheduler.

The program runs in a controlled kernel, one step at a time, and you pick
which thread runs next: each thread's next operation is shown (and whether
it can run or what it waits for).  Type a thread's number to run it,
`u` to undo the last step, `r` to let the rest run without preemptions,
`q` to quit.  Undo replays the run from the start with one choice fewer:
every run of the same choices is the same run.  (The Deadlock Empire, on
real processes.)"""

from rich.table import Table
from rich.text import Text

from .program import ProgramError, load
from ..views.traces import print_replay_line, trace_table


def add_parser(sub):
    p = sub.add_parser("step", help="run a program one step at a time: you choose who runs", description=__doc__)
    p.add_argument("program", metavar="FILE[:FUNCTION]")
    return p


def run(args, console):
    from ..explore import Machine
    from ..sched import Schedule
    from ..sched.gate import Paused
    try:
        program, options, _name = load(args.program)
    except ProgramError as e:
        console.print(f"[red]{e}[/]")
        return 2
    choices = []
    with Machine(program, options) as machine:
        while True:
            try:
                r = machine.run(Schedule("pause", choices=tuple(choices)), full=True)
                state = None
            except Paused as p:
                r, state = None, p.state
            steps = machine.kernel.trace()
            console.print(trace_table(steps, title=f"step {len(steps)}", limit=12))
            if state is None:
                if r.error is not None:
                    console.print(Text(f"{type(r.error).__name__}: {r.error}", style="bold red"))
                else:
                    console.print(Text("the program ended", style="green"))
                print_replay_line(console, r.token)
                answer = _ask(console, "u: undo, q: quit")
                if answer in ("q", None):
                    return 1 if r.error is not None else 0
                if answer == "u" and choices:
                    choices.pop()
                continue
            console.print(_state_table(state))
            runnable = [row["tid"] for row in state if row["can_run"]]
            answer = _ask(console, f"who runs next? {', '.join(map(str, runnable))}   u: undo  r: run on  q: quit")
            if answer in ("q", None):
                return 0
            if answer == "u":
                if choices:
                    choices.pop()
            elif answer == "r":
                r = machine.run(Schedule("prefix", choices=tuple(choices)), full=True)
                console.print(trace_table(r.trace, title="run on without preemptions", limit=20))
                if r.error is not None:
                    console.print(Text(f"{type(r.error).__name__}: {r.error}", style="bold red"))
                print_replay_line(console, r.token)
                return 1 if r.error is not None else 0
            elif answer.isdigit() and int(answer) in runnable:
                choices.append(int(answer))
            else:
                console.print(f"[yellow]{answer!r}: type the number of a thread that can run[/]")


def _state_table(state):
    t = Table(title="next", title_justify="left")
    t.add_column("thread", justify="right")
    t.add_column("next operation")
    t.add_column("can run?")
    for row in state:
        name = f" {row['name']}" if row["name"] else ""
        t.add_row(f"{row['tid']}{name}", f"{row['next']}  {row['site'].rsplit('/', 1)[-1]}",
                  Text("yes", style="green") if row["can_run"] else Text(f"no: {row['why'] or 'waits'}",
                                                                          style="red"))
    return t


def _ask(console, prompt):
    try:
        return console.input(f"[bold]{prompt}[/] > ").strip().lower()
    except EOFError:
        return None
