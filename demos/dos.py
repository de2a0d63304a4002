"""拒绝服务 (denial of service): one thread takes every frame; then the same under a quota.

Slide: "虚拟机跳跃、拒绝服务与逃逸" -- isolation by virtual memory keeps a
thread's data apart, but not its appetite: physical memory is shared, and a
thread that touches more pages than there are frames takes them from
everybody (the pager evicts whoever's pages the policy picks).

Step 1 starts a polite thread: its own address space, a working set of a few
pages that it reads round after round, counting rounds.  Its speed alone is
measured over a fixed window.

Step 2 starts a hog in another address space, touching far more pages than
there are frames, again and again, with no quota.  Once it holds most
frames, the polite thread's speed is measured again: its pages were taken,
every round faults them back from swap.

Step 3 does it all again with the hog's address space under a quota
(CREATE_ADDRESS_SPACE(resident_limit=...), runtime/memory/address_spaces.py):
at its limit the hog's faults evict its own pages (it pages against itself),
and the polite thread keeps its frames and its speed.

Every figure is measured in this run: rounds per second of the polite
thread over the same window, frames held, evictions of its pages.
"""

import time

from rich.table import Table

from runtime import Kernel
from runtime.textbook import ALLOCATE_BLOCK, ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, LOAD, MAP, STORE

TITLE = "denial of service: one thread takes every frame and the others slow down; under a quota they do not"
SLIDE = "虚拟机跳跃、拒绝服务与逃逸 — 拒绝服务: 一个线程占满物理内存; 配额 (resident_limit)"
ORDER = 60

FRAMES = 48
WORKING_SET = 8                 # the polite thread's pages
HOG_PAGES = 160                 # the hog's pages: more than three times the frames
QUOTA = 16                      # the hog's resident_limit in step 3
FLAGS = 900                     # a shared page: [0] polite's rounds, [1] stop, [2] polite ready, [3] hog rounds


def polite(ps):
    """Read the working set round after round; publish the round count."""
    for p in range(WORKING_SET):
        STORE(p * ps, p + 1)
    STORE(FLAGS * ps + 16, 1)
    rounds = 0
    while LOAD(FLAGS * ps + 8) == 0:
        for p in range(WORKING_SET):
            LOAD(p * ps)
        rounds += 1
        STORE(FLAGS * ps, rounds)
    return rounds


def hog(ps):
    """Touch every one of HOG_PAGES pages, again and again, until told to stop."""
    rounds = 0
    while LOAD(FLAGS * ps + 8) == 0:
        for p in range(HOG_PAGES):
            STORE(p * ps, rounds)
        rounds += 1
        STORE(FLAGS * ps + 24, rounds)
    return rounds


def rate(ps, seconds):
    """The polite thread's rounds per second over `seconds` (measured, not slept in order)."""
    r0, t0 = LOAD(FLAGS * ps), time.perf_counter()
    time.sleep(seconds)                       # the measuring window
    return (LOAD(FLAGS * ps) - r0) / (time.perf_counter() - t0)


def row(k, as_id):
    return next(r for r in k.vm.statistics()["address_spaces"] if r["id"] == as_id)


def run(quota, window):
    """One experiment: polite alone, then with the hog.  Returns what was measured."""
    with Kernel(frames=FRAMES) as k:
        ps = k.config.page_size
        flags = ALLOCATE_BLOCK(ps)
        MAP(k.address_space, flags, FLAGS, "rw")
        good = CREATE_ADDRESS_SPACE()
        MAP(good, flags, FLAGS, "rw")
        MAP(good, ALLOCATE_BLOCK(WORKING_SET * ps), 0, "rw")
        bad = CREATE_ADDRESS_SPACE(resident_limit=quota) if quota else CREATE_ADDRESS_SPACE()
        MAP(bad, flags, FLAGS, "rw")
        MAP(bad, ALLOCATE_BLOCK(HOG_PAGES * ps), 0, "rw")
        p = ALLOCATE_THREAD(polite, good, ps)
        deadline = time.monotonic() + 30
        while LOAD(FLAGS * ps + 16) == 0 or LOAD(FLAGS * ps) < 100:     # observed: its pages are in, it runs
            if time.monotonic() > deadline:
                raise TimeoutError("the polite thread did not start")
            time.sleep(0.001)
        alone = rate(ps, window)
        before = row(k, good)
        h = ALLOCATE_THREAD(hog, bad, ps)
        while LOAD(FLAGS * ps + 24) < 1:                                 # observed: the hog went round once
            if time.monotonic() > deadline + 30:
                raise TimeoutError("the hog did not get round")
            time.sleep(0.001)
        owners = k.vm.statistics()["frame_owner"]
        crowded = rate(ps, window)
        after = row(k, good)
        STORE(FLAGS * ps + 8, 1)
        k.join(p, timeout=60)
        hog_rounds = k.join(h, timeout=60)
        return dict(alone=alone, crowded=crowded, hog_frames=owners.count(bad), polite_frames=owners.count(good),
                    evicted=after["evictions"] - before["evictions"],
                    faults=after["swap_in_faults"] - before["swap_in_faults"], hog_rounds=hog_rounds,
                    hog_evictions=row(k, bad)["evictions"])


def main(console, quick=False):
    window = 0.4 if quick else 2.0
    console.print(f"[bold]Step 1.[/] {FRAMES} physical frames (物理内存). A polite thread reads its {WORKING_SET} "
                  f"pages round after round in its own address space (虚拟内存); its speed alone over {window:g} s:")
    free = run(None, window)
    console.print(f"  {free['alone']:,.0f} rounds/s.")
    console.print(f"[bold]Step 2.[/] Denial of service (拒绝服务): a hog in another address space touches "
                  f"{HOG_PAGES} pages, again and again, [bold]no quota[/]. Once it has been round, the polite "
                  "thread's speed over the same window:")
    console.print(f"  The hog holds {free['hog_frames']} of {FRAMES} frames, the polite thread "
                  f"{free['polite_frames']}. The polite thread's pages were evicted {free['evicted']:,} times and "
                  f"faulted back from swap {free['faults']:,} times: [red]{free['crowded']:,.0f} rounds/s "
                  f"({free['crowded'] / free['alone']:.0%} of its speed alone)[/].")
    console.print(f"[bold]Step 3.[/] The same, the hog's address space under a quota (配额): "
                  f"[bold]CREATE_ADDRESS_SPACE(resident_limit={QUOTA})[/]: at its limit it evicts its own pages.")
    fair = run(QUOTA, window)
    console.print(f"  Alone: {fair['alone']:,.0f} rounds/s. With the hog: the hog holds {fair['hog_frames']} frames "
                  f"(it evicted its own pages {fair['hog_evictions']:,} times), the polite thread "
                  f"{fair['polite_frames']}; its pages evicted {fair['evicted']:,} times: "
                  f"[green]{fair['crowded']:,.0f} rounds/s ({fair['crowded'] / fair['alone']:.0%} of its speed "
                  "alone)[/].")
    table = Table(title=f"the polite thread's rounds per second, {FRAMES} frames, measured over {window:g} s",
                  title_justify="left")
    for col in ("hog's quota", "alone", "with the hog", "kept", "hog's frames", "polite evicted"):
        table.add_column(col, justify="right")
    for label, r in (("none", free), (f"{QUOTA} frames", fair)):
        table.add_row(label, f"{r['alone']:,.0f}", f"{r['crowded']:,.0f}", f"{r['crowded'] / r['alone']:.0%}",
                      f"{r['hog_frames']}/{FRAMES}", f"{r['evicted']:,}")
    console.print(table)
    console.print("  Notice: isolation kept the hog out of the polite thread's data, not out of its frames; a "
                  "quota on what one address space may hold is what keeps the others' speed. (Both threads "
                  "also share the processors: what a quota cannot give back is CPU time.)")
