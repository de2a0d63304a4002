"""`vos explore FILE[:FUNCTION]`: run a program under many schedules until one breaks it.

The program is program(k) (or main(k)) in FILE: it runs as thread 0 of a
controlled kernel, starts threads, joins them, and raises when its
invariant breaks.  The explorer tries a bounded exhaustive search (0, 1,
then --preemptions preemptions), then PCT and random walks from a fixed
seed list, until --seconds pass.  A failure is printed as its shrunk trace,
one column per thread, with the token that replays it (exit status 1); a
pass says what was covered (exit status 0)."""

from rich.progress import Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from .program import ProgramError, load
from ..views.traces import failure_view, print_replay_line


def add_parser(sub):
    p = sub.add_parser("explore", help="search the schedules of a program for one that breaks it",
                       description=__doc__)
    p.add_argument("program", metavar="FILE[:FUNCTION]")
    p.add_argument("--seconds", type=float, default=60, help="time budget (default 60)")
    p.add_argument("--runs", type=int, default=None, help="at most this many runs")
    p.add_argument("--preemptions", type=int, default=2, help="bound of the exhaustive search (default 2)")
    p.add_argument("--strategy", default="portfolio", choices=["portfolio", "exhaustive", "pct", "random"])
    p.add_argument("--seed", type=int, default=0, help="where the seed list starts (default 0)")
    p.add_argument("--races", action="store_true", help="also report data races (a race is a failure)")
    return p


def run(args, console):
    from ..explore import explore
    try:
        program, options, _name = load(args.program)
    except ProgramError as e:
        console.print(f"[red]{e}[/]")
        return 2
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("exploring", total=None)

        def progress(res):
            last = list(res.by_strategy)[-1] if res.by_strategy else ""
            bar.update(task, description=f"exploring: {res.runs:,} runs ({last})")
        result = explore(program, strategy=args.strategy, seconds=args.seconds, runs=args.runs,
                         preemptions=args.preemptions, seed=args.seed, races=args.races, options=options,
                         progress=progress)
    if result.failures:
        console.print(failure_view(result.failures[0]))
        print_replay_line(console, result.failures[0].token)
        return 1
    console.print(Text.assemble(("no failure: ", "bold green"), result.summary()))
    console.print(Text("A bounded certificate, not a proof: schedules beyond what was explored may still fail.",
                       style="dim"))
    return 0
