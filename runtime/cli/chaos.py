"""`vos chaos`: kill threads and kernels at random moments, many times, and
check that nothing is lost, duplicated, torn, hung or left behind."""

import statistics
import time

from ..chaos import GONE_WITHIN, KINDS


def add_parser(sub):
    p = sub.add_parser("chaos", help="fault-injection trials: kills at random moments", description=__doc__)
    p.add_argument("--trials", type=int, default=100, help="trials of each kind (default 100)")
    p.add_argument("--kind", action="append", choices=KINDS,
                   help="only this kind of trial (repeatable; default: all of them)")
    p.add_argument("--seed", type=int, default=0, help="first seed (each trial's choices follow from its seed)")
    return p


def run(args, console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .. import chaos
    kinds = args.kind or list(KINDS)
    total = args.trials * len(kinds)
    results = []
    t0 = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("chaos", total=total)
        for kind in kinds:
            for seed in range(args.seed, args.seed + args.trials):
                bar.update(task, description=f"{kind:6} seed {seed}")
                o = chaos.trial(kind, seed)
                results.append(o)
                if not o.ok:
                    bar.console.print(f"[red]FAIL[/] {kind} seed {seed} ({o.setting}): {o.detail}")
                bar.advance(task)
    console.print(render(results, time.monotonic() - t0))
    return 0 if all(o.ok for o in results) else 1


def render(results, seconds):
    """The summary tables of a list of Outcomes (a rich Group)."""
    from rich.console import Group
    from rich.table import Table
    t = Table(title=f"vos chaos: {len(results)} trials in {seconds:.0f} s")
    for col in ("trial", "runs", "failed", "hangs", "torn", "lost", "dups", "leaked"):
        t.add_column(col, justify="left" if col == "trial" else "right")
    for kind in KINDS:
        rows = [o for o in results if o.kind == kind]
        if rows:
            t.add_row(kind, str(len(rows)), _n(sum(not o.ok for o in rows)), _n(sum(o.hang for o in rows)),
                      _n(sum(o.torn for o in rows)), _n(sum(o.lost for o in rows)),
                      _n(sum(o.duplicated for o in rows)), _n(sum(o.leaked for o in rows)))
    parts = [t]
    kills = [o for o in results if o.gone_s is not None]
    if kills:
        g = Table(title=f"seconds until the VPs of a killed kernel were gone (goal: {GONE_WITHIN:g} s)")
        for col in ("VPs were", "runs", "median", "max", "over goal"):
            g.add_column(col, justify="left" if col == "VPs were" else "right")
        for mode in sorted({o.setting for o in kills}):
            s = [o.gone_s for o in kills if o.setting == mode]
            g.add_row(mode, str(len(s)), f"{statistics.median(s):.2f}", f"{max(s):.2f}",
                      _n(sum(x > GONE_WITHIN for x in s)))
        parts.append(g)
    bad = [o for o in results if not o.ok]
    if bad:
        lines = [f"[red]{o.kind} seed {o.seed}[/] ({o.setting}): {o.detail}" for o in bad[:10]]
        lines.append(f"rerun one: vos chaos --kind {bad[0].kind} --seed {bad[0].seed} --trials 1")
        parts.append("\n".join(lines))
    return Group(*parts)


def _n(x):
    return f"[red]{x}[/]" if x else "0"
