"""Measuring helpers shared by every benchmark: medians, ratios, one table shape."""

import dataclasses
import statistics
import time


def median_time(fn, runs=5, warmup=1):
    """Median wall time of fn() over `runs` calls (after `warmup` calls)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def median(values):
    return statistics.median(values)


@dataclasses.dataclass
class Row:
    """One comparison: what vos did, what the peer did, and the goal.

    `higher_is_better` says how to read the numbers: throughputs (True) or
    times (False).  ratio = vos / peer for throughputs, peer / vos for times,
    so a ratio above 1 always means vos is ahead."""
    case: str
    unit: str
    vos: float
    peer_name: str
    peer: float
    higher_is_better: bool = True
    goal: float | None = None       # the goal for `ratio` (None: no goal)
    note: str = ""

    @property
    def ratio(self):
        if not self.vos or not self.peer:
            return float("nan")
        return self.vos / self.peer if self.higher_is_better else self.peer / self.vos

    @property
    def verdict(self):
        if self.goal is None:
            return ""
        return "met" if self.ratio >= self.goal else "MISSED"


def fmt(value):
    if value == 0:
        return "0"
    a = abs(value)
    if a >= 1e9:
        return f"{value / 1e9:.2f} G"
    if a >= 1e6:
        return f"{value / 1e6:.2f} M"
    if a >= 1e3:
        return f"{value / 1e3:.1f} k"
    if a >= 1:
        return f"{value:.2f}"
    if a >= 1e-3:
        return f"{value * 1e3:.2f} m"
    return f"{value * 1e6:.2f} µ"


def table(console, title, rows, runs):
    """Print rows as one rich table (the only output format of `vos bench`).
    Narrower than 120 columns (a terminal of 80 or 100), five columns: the
    note goes under the case and the peer's name over its figure, so that
    nothing is cut."""
    from rich.table import Table
    from rich.text import Text
    narrow = console.width < 120
    t = Table(title=f"{title}  (median of {runs} runs; ratio > 1 means vos is ahead)", expand=False,
              title_justify="left", show_lines=narrow)
    if narrow:
        columns = [("case", "left"), ("vos", "right"), ("peer", "right"), ("ratio", "right"), ("goal", "right")]
    else:
        columns = [("case", "left"), ("vos", "right"), ("peer", "left"), ("peer value", "right"),
                   ("ratio", "right"), ("goal", "right"), ("", "left"), ("note", "left")]
    for col, just in columns:
        t.add_column(col, justify=just, no_wrap=col in ("vos", "peer value", "ratio", "goal"), overflow="fold")
    for r in rows:
        goal = "" if r.goal is None else f"≥{r.goal:.2f}x"
        verdict = {"met": "[green]met[/]", "MISSED": "[red]missed[/]", "": ""}[r.verdict]
        vos, peer, ratio = f"{fmt(r.vos)}{r.unit}", f"{fmt(r.peer)}{r.unit}", f"{r.ratio:.2f}x"
        if narrow:
            case = Text(r.case)
            if r.note:
                case.append("\n" + r.note, style="dim")
            t.add_row(case, vos, Text(f"{r.peer_name}\n{peer}"), ratio, f"{goal}\n{verdict}" if goal else "")
        else:
            t.add_row(r.case, vos, r.peer_name, peer, ratio, goal, verdict, r.note)
    console.print(t)
    return rows
