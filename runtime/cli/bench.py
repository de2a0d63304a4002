"""`vos bench [NAME]`: measure vos against its peers, in the same run."""

import importlib
import pkgutil

import benchmarks


def _all():
    return sorted(i.name for i in pkgutil.iter_modules(benchmarks.__path__)
                  if not i.name.startswith("_") and i.name != "harness")


def add_parser(sub):
    p = sub.add_parser("bench", help="run a benchmark (omit NAME to list them)", description=__doc__)
    p.add_argument("name", nargs="?", help="the benchmark; 'all' runs every one")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    p.add_argument("--runs", type=int, default=5, help="repetitions; the median is reported (default 5)")
    return p


def run(args, console):
    names = _all()
    if not console.is_terminal:                  # a file or a pipe: keep the table's rows on one line
        console.width = max(console.width, 160)
    if not args.name:
        for n in names:
            console.print(f"  [bold]{n:8}[/] {importlib.import_module(f'benchmarks.{n}').TITLE}")
        return 0
    chosen = names if args.name == "all" else [args.name]
    for n in chosen:
        if n not in names:
            console.print(f"[red]no benchmark named {n!r}[/]; there are: {', '.join(names)}")
            return 2
        importlib.import_module(f"benchmarks.{n}").main(console, quick=args.quick, runs=max(1, args.runs))
    return 0
