"""`vos replay TOKEN [FILE[:FUNCTION]]`: run a program again under the schedule a token recorded.

The same trace, the same error: every thread makes the same choices at the
same steps.  A token made by `vos explore` names its program; give
FILE[:FUNCTION] otherwise.  A token refuses a program whose file changed."""

from rich.text import Text

from .program import ProgramError, load
from ..views.traces import source_lines, trace_table


def add_parser(sub):
    p = sub.add_parser("replay", help="run a program again under a recorded schedule", description=__doc__)
    p.add_argument("token", help='the token ("vos1:...") that vos explore or Kernel.token printed')
    p.add_argument("program", nargs="?", metavar="FILE[:FUNCTION]")
    return p


def run(args, console):
    from ..kernel import Kernel
    from ..sched.trace import read_token
    try:
        _choices, _files, options, named = read_token(args.token)
    except ValueError as e:
        console.print(f"[red]{e}[/]")
        return 2
    spec = args.program or named
    if not spec:
        console.print("[red]this token names no program: give FILE[:FUNCTION] after it[/]")
        return 2
    try:
        program, file_options, _name = load(spec)
    except ProgramError as e:
        console.print(f"[red]{e}[/]")
        return 2
    k = Kernel(schedule=args.token, **{**file_options, **options})
    error = None
    try:
        with k:
            program(k)
    except Exception as e:  # noqa: BLE001 - the program's failure is what a replay shows
        error = e
    console.print(trace_table(k.trace(), title="the replayed schedule"))
    console.print(source_lines(k.trace()))
    if error is not None:
        console.print(Text(f"{type(error).__name__}: {error}", style="bold red"))
        return 1
    console.print(Text("the program passed under this schedule", style="green"))
    return 0
