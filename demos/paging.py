"""Paging: more memory than there is, emulated on disk — and what it costs.

Slide: 模拟 (emulation): the disk stands in for memory (硬盘 → 交换空间).
Virtual memory raises capacity (性能-提高容量) at the price of latency
(问题-性能-时延高): a page that is not in a frame must come back from swap.

Step 1.  One thread uses 12 pages on a machine with 8 frames: 3 hot pages
touched between the pages of a long scan.  The real pager runs the same
program under each replacement policy (clock, FIFO, LRU, random); the
program's reference trace, recorded once, is replayed offline under the same
policies and under OPT (evict the page used farthest in the future), the
lower bound nobody can run live because it needs the future.

Step 2.  Belady's anomaly, live: FIFO on the trace 1,2,3,4,1,2,5,1,2,3,4,5
takes 9 faults with 3 frames and 10 with 4.  More memory, more faults.

Step 3.  Thrashing.  Threads in their own address spaces, each looping over a
working set of 5 pages, on 12 frames, all for the same measured time.  While the working sets fit (1 or 2
threads), pages stay resident and the threads run at memory speed; once their
sum exceeds the frames the faults start (3 threads: 15 pages), and soon every
thread keeps evicting the pages the others are about to use: with 4 threads
(20 pages) the faults explode and the throughput collapses.

What to notice: the live LRU and clock columns differ a little from the
simulated ones: a Python-level pager sees a reference only when it loads a
translation (runtime/memory/policies.py says why); FIFO needs no reference
bits and matches the simulation exactly.
"""

import time

from rich.table import Table

from runtime import Kernel
from runtime.memory import recording, simulate
from runtime.textbook import ALLOCATE_BLOCK, ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, LOAD, MAP, STORE

TITLE = "a working set larger than memory: faults per policy (and OPT), Belady's anomaly, thrashing"
SLIDE = "模拟: 硬盘 → 交换空间 — 虚拟内存提高容量, 代价是时延 (缺页, 抖动)"
ORDER = 41

PS = 4096
HOT, SCAN = (0, 1, 2), range(3, 12)
BELADY = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]


def workload(rounds):
    """Hot pages between the pages of a scan; every access a LOAD and a STORE."""
    for r in range(rounds):
        for p in SCAN:
            for page in HOT + (p,):
                a = page * PS + 8 * (r % 8)
                STORE(a, LOAD(a) + 1)


def _faults(k, as_id):
    row = [r for r in k.vm.statistics()["address_spaces"] if r["id"] == as_id][0]
    return row["demand_zero_faults"] + row["swap_in_faults"]


def _live(policy, frames, rounds):
    with Kernel(frames=frames, policy=policy, seed=1) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(12 * PS), 0, "rw")
        workload(rounds)
        return _faults(k, k.address_space)


def _trace(rounds):
    with Kernel(frames=64) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(12 * PS), 0, "rw")
        with recording() as trace:
            workload(rounds)
    return [page for i, page in enumerate(trace) if i % 2 == 0]  # LOAD and STORE of one word: one reference


def _belady(frames):
    with Kernel(frames=frames, policy="fifo") as k:
        MAP(k.address_space, ALLOCATE_BLOCK(6 * PS), 0, "rw")
        for page in BELADY:
            STORE(page * PS, page)
        return _faults(k, k.address_space)


FLAGS = 100  # a page shared by every thread of step 3: ready slots and the "go" word


def loop_over(me, pages, seconds):
    """Loop over `pages` pages for `seconds` after the common "go"; returns word operations done."""
    STORE(FLAGS * PS + 8 * me, 1)          # ready
    while LOAD(FLAGS * PS) == 0:           # wait for "go": all threads start together
        pass
    deadline = time.monotonic() + seconds
    ops = r = 0
    while time.monotonic() < deadline:
        for p in range(pages):
            a = p * PS + 8 * (r % 16)
            STORE(a, LOAD(a) + 1)
        ops += 2 * pages
        r += 1
    return ops


def _thrash(threads, frames, pages, seconds):
    with Kernel(frames=frames + 1) as k:  # + 1: the flags page
        flags = ALLOCATE_BLOCK(PS)
        MAP(k.address_space, flags, FLAGS, "rw")
        STORE(FLAGS * PS, 0)
        spaces = []
        for _ in range(threads):
            space = CREATE_ADDRESS_SPACE()
            MAP(space, ALLOCATE_BLOCK(pages * PS), 0, "rw")
            MAP(space, flags, FLAGS, "rw")
            spaces.append(space)
        tids = [ALLOCATE_THREAD(loop_over, s, i + 1, pages, seconds) for i, s in enumerate(spaces)]
        while not all(LOAD(FLAGS * PS + 8 * (i + 1)) for i in range(threads)):
            pass
        STORE(FLAGS * PS, 1)                # go
        ops = sum(k.join(t, timeout=300) for t in tids)
        faults = sum(_faults(k, s) for s in spaces)
    return ops / seconds, faults


def main(console, quick=False):
    frames, rounds = 8, (4 if quick else 12)
    console.print(f"[bold]Step 1.[/] A working set larger than physical memory: {len(HOT) + len(SCAN)} pages, "
                  f"{frames} frames. Hot pages {list(HOT)} between the pages of a scan over {SCAN.start}..{SCAN.stop - 1}, "
                  f"{rounds} rounds.")
    trace = _trace(rounds)
    table = Table(title=f"page faults, {len(trace)} references, {frames} frames", title_justify="left")
    for col in ("policy", "live pager", "simulated on the recorded trace"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    table.add_row("OPT (needs the future)", "—", str(simulate(trace, frames, "opt")))
    for policy in ("clock", "lru", "fifo", "random"):
        table.add_row(policy, str(_live(policy, frames, rounds)), str(simulate(trace, frames, policy, seed=1)))
    console.print(table)
    console.print("  Every fault is a trip to the swap file (模拟: 硬盘 → 交换空间). Policies that keep the hot pages "
                  "(LRU, clock) fault on the scan only; FIFO also throws the hot pages out now and then.\n")

    console.print("[bold]Step 2.[/] Belady's anomaly, in the live pager: FIFO on 1,2,3,4,1,2,5,1,2,3,4,5.")
    three, four = _belady(3), _belady(4)
    console.print(f"  3 frames: {three} faults;  4 frames: [red]{four}[/] faults — more memory, more faults "
                  "(LRU and OPT cannot do this: they are stack algorithms).\n")

    pages, tframes, seconds = 5, 12, (0.3 if quick else 1.5)
    console.print(f"[bold]Step 3.[/] Thrashing: threads in their own address spaces, each looping over {pages} pages, "
                  f"on {tframes} frames, for {seconds:g} s.")
    table = Table(title="throughput as the working sets grow", title_justify="left")
    for col in ("threads", "pages wanted", "frames", "page faults", "word ops/s"):
        table.add_column(col, justify="right")
    base = None
    for n in (1, 2, 3, 4):
        rate, faults = _thrash(n, tframes, pages, seconds)
        base = base or rate
        colour = "red" if n * pages > tframes else "green"
        table.add_row(str(n), f"[{colour}]{n * pages}[/]", str(tframes), f"[{colour}]{faults:,}[/]",
                      f"[{colour}]{rate:,.0f}[/] ({rate / base:.2f}x)")
    console.print(table)
    console.print("  Notice: while the working sets fit, each page faults once (demand-zero) and then stays; "
                  "past the frames every loop evicts what another thread needs next, and the machine spends its "
                  "time in the pager, not in the program (抖动, thrashing). Quotas (resident_limit) keep one "
                  "such thread from taking the others' frames: it pages against itself.")
