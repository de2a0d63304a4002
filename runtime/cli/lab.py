"""`vos lab`: exercises that grade themselves.

    vos lab                       the labs, with what you did in each
    vos lab start NAME [DIR]      write the handout and the starter (DIR: ./NAME)
    vos lab check NAME [FILE]     grade your file: the verdict, with the failing
                                  schedule, the race report and a replay token
                                  (exit 1), or what was explored (exit 0);
                                  --json [PATH] writes an autograder's results
    vos lab hint NAME             the next nudge
    vos lab new NAME [DIR]        an instructor's new lab, a sound skeleton
    vos lab sound NAME            is the lab's grader sound? (reference passes,
                                  starter and wrong fixes fail, tokens replay)

A pass is a bounded certificate -- every schedule with at most 2 preemptions,
a fixed sample beyond -- never a proof; the same file always gets the same
verdict."""

import json
import os
import shutil
import sys

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text


def add_parser(sub):
    p = sub.add_parser("lab", help="exercises that grade themselves (start, check, hint)", description=__doc__,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    acts = p.add_subparsers(dest="action", metavar="ACTION")
    acts.add_parser("list", help="the labs, with what you did in each (also plain `vos lab`)")
    s = acts.add_parser("start", help="write a lab's handout and starter")
    s.add_argument("name")
    s.add_argument("dir", nargs="?", help="where (default ./NAME)")
    c = acts.add_parser("check", help="grade your file")
    c.add_argument("name")
    c.add_argument("file", nargs="?", help="your file (default: where `start` put it)")
    c.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="write an autograder's results file (default: to standard output)")
    h = acts.add_parser("hint", help="the next nudge")
    h.add_argument("name")
    h.add_argument("--all", action="store_true", help="every hint at once")
    n = acts.add_parser("new", help="a new lab for instructors (a sound skeleton)")
    n.add_argument("name")
    n.add_argument("dir", nargs="?", default=".", help="parent folder (default .)")
    d = acts.add_parser("sound", help="check a lab's grader before handing it out")
    d.add_argument("name", help="a lab's name or folder")
    d.add_argument("--update-corpus", action="store_true",
                   help="write the failing schedules to the lab's corpus.txt")
    return p


def run(args, console):
    from ..lab.spec import LabError
    action = args.action or "list"
    try:
        return {"list": _list, "start": _start, "check": _check, "hint": _hint, "new": _new,
                "sound": _sound}[action](args, console)
    except LabError as e:
        console.print(f"[red]{e}[/]")
        return 2


# --- vos lab ---------------------------------------------------------------------------------

def _list(args, console):
    from ..lab import all_labs, status
    records = status.load()
    t = Table(title="labs (vos lab start NAME)", title_justify="left")
    t.add_column("#", justify="right")
    t.add_column("lab", no_wrap=True)
    t.add_column("what it drills", overflow="fold")
    t.add_column("status", overflow="fold")
    for lab in all_labs():
        state = status.describe(records.get(lab.name))
        style = {"passed": "green", "not started": "dim"}.get(state, "yellow" if "fail" in state else "")
        t.add_row(str(lab.order), lab.name, f"{lab.TITLE} {getattr(lab.module, 'TITLE_ZH', '')}\n"
                  f"[dim]{getattr(lab.module, 'IDEA', '')}[/]", Text(state, style=style))
    console.print(t)
    return 0


# --- vos lab start -------------------------------------------------------------------------

def _start(args, console):
    from ..lab import find, status
    lab = find(args.name)
    where = os.path.abspath(args.dir or lab.name)
    os.makedirs(where, exist_ok=True)
    target = os.path.join(where, lab.STUDENT_FILE)
    for src in (lab.handout, lab.starter):
        dst = os.path.join(where, os.path.basename(src))
        if os.path.exists(dst):
            console.print(f"[yellow]{dst} is there already: left as it is[/]")
        else:
            shutil.copyfile(src, dst)
    status.update(lab.name, dir=where, file=target)
    rel = os.path.relpath(target)
    console.print(Text.assemble(("lab ", ""), (lab.name, "bold"), f": {lab.TITLE} "
                                f"{getattr(lab.module, 'TITLE_ZH', '')}"))
    console.print(f"  read    {os.path.relpath(os.path.join(where, 'handout.md'))}\n"
                  f"  edit    {rel}\n"
                  f"  check   vos lab check {lab.name} {rel}\n"
                  f"  stuck?  vos lab hint {lab.name}", highlight=False)
    return 0


# --- vos lab check -------------------------------------------------------------------------

def _student_file(lab, given):
    from ..lab import status
    if given:
        return given
    record = status.load().get(lab.name, {})
    for f in (record.get("file"), os.path.join(lab.name, lab.STUDENT_FILE), lab.STUDENT_FILE):
        if f and os.path.isfile(f):
            return f
    return os.path.join(lab.name, lab.STUDENT_FILE)


def _check(args, console):
    from ..lab import find, grade, status
    from ..lab.grade import STAGES
    lab = find(args.name)
    path = _student_file(lab, args.file)
    to_stdout = args.json == "-"
    out = console
    if to_stdout:                                   # the JSON alone on stdout; the rest to stderr
        from rich.console import Console
        out = Console(stderr=True, highlight=False)
    names = [name for name, _ in STAGES[:-1]]
    with Progress(TextColumn("{task.description}"), BarColumn(bar_width=24), TimeElapsedColumn(),
                  console=out, transient=True) as bar:
        task = bar.add_task(f"grading {os.path.basename(path)}", total=len(names))

        def progress(stage, done, limit):
            i = names.index(stage) if stage in names else 0
            bar.update(task, completed=i + min(1.0, done / max(1, limit)),
                       description=f"{stage}: {done:,} run{'s' if done != 1 else ''}")
        v = grade(lab, path, progress=progress)
    if os.path.isfile(path):
        status.update(lab.name, file=os.path.abspath(path), verdict=v.status, score=v.score, sha256=v.sha256)
    _show(out, lab, v)
    if args.json:
        text = json.dumps(v.to_json(), indent=1, ensure_ascii=False)
        if to_stdout:
            sys.stdout.write(text + "\n")
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text + "\n")
            out.print(f"[dim]results written to {args.json}[/]")
    return 0 if v.ok else 1


def _show(console, lab, v):
    from ..views.traces import failure_view, print_replay_line, race_view
    t = Table(title=f"lab {lab.name}: {os.path.basename(v.file)}", title_justify="left")
    t.add_column("test")
    t.add_column("", justify="right")
    t.add_column("result", overflow="fold")
    for test in v.tests:
        style = {"passed": "green", "failed": "bold red"}.get(test.status, "dim")
        t.add_row(test.name, f"{test.score}/{test.max_score}",
                  Text("\n".join(test.output.split("\n")[:3])[:300] or test.status, style=style))
    console.print(t)
    if v.error:
        console.print(Text(v.error, style="bold red"))
        return
    if v.failure is not None:
        console.print(failure_view(v.failure, token_hint=False))
        if v.races:
            console.print(race_view(v.races))
        console.print(Text("replay it (the same trace, the same failure, every time):", style="bold"))
        print_replay_line(console, v.failure.token)
        console.print(Text(f"score {v.score}/{v.max_score}.  Stuck? vos lab hint {lab.name}", style="dim"))
        return
    if not v.complete:
        console.print(Text("the grading was stopped before it finished: no verdict", style="yellow"))
        return
    console.print(Text.assemble(("pass ", "bold green"), f"{v.score}/{v.max_score}: {v.certificate} "
                                f"({v.runs:,} runs, {v.seconds:.1f} s)"))
    console.print(Text("A bounded certificate, not a proof: schedules beyond what was explored may still fail.",
                       style="dim"))


# --- vos lab hint -----------------------------------------------------------------------------

def _hint(args, console):
    from ..lab import find, status
    lab = find(args.name)
    hints = lab.hints
    if not hints:
        console.print(f"lab {lab.name} has no hints: read {lab.handout}")
        return 0
    seen = status.load().get(lab.name, {}).get("hints", 0)
    upto = min(seen + 1, len(hints))
    for i in range(len(hints)) if args.all else [upto - 1]:
        console.print(Text.assemble((f"hint {i + 1} of {len(hints)}: ", "bold"), hints[i]))
    if not args.all:
        status.update(lab.name, hints=upto)
        if upto == len(hints):
            console.print(Text("that was the last hint (vos lab hint --all shows them all)", style="dim"))
    return 0


# --- vos lab new ------------------------------------------------------------------------------

SKELETON = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lab", "skeleton")


def _new(args, console):
    name = args.name
    if not name.isidentifier():
        console.print(f"[red]a lab's name is a Python identifier (letters, digits, _), not {name!r}[/]")
        return 2
    folder = os.path.abspath(os.path.join(args.dir, name))
    if os.path.exists(folder):
        console.print(f"[red]{folder} exists already: choose another name or folder[/]")
        return 2
    shutil.copytree(SKELETON, folder, ignore=shutil.ignore_patterns("__pycache__"))
    for root, _dirs, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, encoding="utf-8") as fh:
                text = fh.read()
            with open(p, "w", encoding="utf-8") as fh:
                fh.write(text.replace("__NAME__", name).replace("__FOLDER__", os.path.relpath(folder)))
    rel = os.path.relpath(folder)
    console.print(f"a new lab in {rel}: a small sound lab to change into yours\n"
                  f"  edit     {rel}/lab.py (the harness and the settings), handout.md, the starter\n"
                  f"  add      wrong fixes in {rel}/wrong/ (at least five)\n"
                  f"  check    vos lab sound {rel} --update-corpus\n"
                  f"  list it  export VOS_LABS={os.path.dirname(folder)}", highlight=False)
    return 0


# --- vos lab sound ----------------------------------------------------------------------------

def _sound(args, console):
    from ..lab import find
    from ..lab.sound import REPLAYS, check, write_corpus
    lab = find(args.name)
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("checking", total=None)
        report = check(lab, progress=lambda f: bar.update(task, description=f"grading {f}"))
    t = Table(title=f"is lab {lab.name}'s grader sound?", title_justify="left")
    for col, just in (("file", "left"), ("role", "left"), ("verdict", "left"), ("s", "right"),
                      ("replays", "right"), ("", "left")):
        t.add_column(col, justify=just, overflow="fold")
    for r in report.rows:
        v = r.verdict
        kind = "" if v is None else ("pass" if v.ok else (v.failure.kind if v.failure else "error"))
        t.add_row(r.name, r.role, kind, f"{r.seconds:.1f}", f"{r.replays}/{REPLAYS}" if r.replays else "",
                  Text("no" if r.problem else "ok", style="red" if r.problem else "green"))
    console.print(t)
    for r in report.rows:
        if r.problem:
            console.print(Text(f"{r.name}: {r.problem}", style="red"))
    if args.update_corpus:
        write_corpus(lab, report.corpus())
        console.print(f"[dim]{len(report.corpus())} failing schedules written to {lab.corpus_file}[/]")
    console.print(Text("sound: hand it out" if report.ok else "not sound: see the rows above",
                       style="bold green" if report.ok else "bold red"))
    return 0 if report.ok else 1
