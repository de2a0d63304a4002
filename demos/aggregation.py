"""聚合 (aggregation): four senders and four receivers on one bounded buffer, then on a bundle of four.

Slide: "聚合：多个物理资源，1个虚拟资源" and the table's row 5, 链路捆绑 (link
bundling: several physical lines, one virtual link); row 6, 磁盘阵列, is the
same idea for disks.

Step 1 runs four senders and four receivers (eight threads, eight VPs) on
one bounded buffer of 256 slots: one send lock, one receive lock, so at
most one sender and one receiver are inside it at any moment; the others
queue for the side locks.

Step 2 runs the same threads on a bundle of four buffers of 64 slots each
(the same 256 slots in all): runtime/bundle.py.  Each sender keeps to its
home member, each receiver takes from its home member and steals from the
others when its home is empty.  The interface is the same SEND/RECEIVE.

Both steps measure, in the same run: messages per second, CPU time per
message, and the lock contention -- how often a thread went to sleep on a
side lock (its voluntary switches minus its sleeps for space or for a
message, both counted by the runtime) and, beside it, what a message costs
when one sender and one receiver have the buffer to themselves: the
difference is what the queueing for the locks costs (most of it in hand-
overs and yields, which are not sleeps).

Step 3 checks that the interface was kept (接口保持): every receiver saw
each sender's messages in order (序列号), and every message arrived exactly
once.

Step 4 deallocates one member of the bundle while the stream runs
(DEALLOCATE_BOUNDED_BUFFER on it, as a failing line would go): the senders
whose home it was move to another member and send again the copies not yet
delivered; the receivers' claims drop the ones that were delivered after
all.  Nothing is lost, nothing arrives twice.

What to notice: the interface is kept (steps 3 and 4), and the table says
which run was faster on this machine and why: one buffer's lock queueing
against the bundle's own work per message (a header, a claim, a copy kept).
A bundle pays only when the locks of one buffer are what holds the threads
back; on a machine with few cores they may not be.
"""

import os
import struct
import time

from rich.table import Table

from runtime import Kernel
from runtime.bundle import ALLOCATE_BUNDLE
from runtime.errors import EndOfStream
from runtime.textbook import ALLOCATE_BOUNDED_BUFFER, ALLOCATE_THREAD, DEALLOCATE_BOUNDED_BUFFER, RECEIVE, SEND

TITLE = "4 senders and 4 receivers on one bounded buffer, then on a bundle of 4 (链路捆绑): throughput, contention"
SLIDE = "聚合：多个物理资源，1个虚拟资源 — 链路捆绑, 磁盘阵列"
ORDER = 11

SENDERS = RECEIVERS = 4
MEMBERS = 4
SLOTS = 4096                         # one buffer of 4096, or four members of 1024
SIZE = 64
_msg = struct.Struct("<Iq")          # sender, sequence number; the rest is filler
_FILL = bytes(SIZE - _msg.size)


def sender(go, link, sid, m):
    go.receive()
    for q in range(m):
        SEND(link, _msg.pack(sid, q) + _FILL)
    if hasattr(link, "flush"):
        link.flush(timeout=60)        # a bundle: every copy delivered before this thread ends
    return m


def receiver(go, link):
    """Receive to the end of the stream.  Returns {sender: (count, sum of q,
    sum of q*q)}; raises if a sender's messages came out of order."""
    go.receive()
    seen, last = {}, {}
    while True:
        try:
            m = RECEIVE(link)
        except EndOfStream:
            return seen
        sid, q = _msg.unpack_from(m)
        if q <= last.get(sid, -1):
            raise AssertionError(f"sender {sid}: message {q} after {last[sid]}")
        last[sid] = q
        c, s1, s2 = seen.get(sid, (0, 0, 0))
        seen[sid] = (c + 1, s1 + q, s2 + q * q)


def run(kind, m, deallocate=False, senders=SENDERS, receivers=RECEIVERS):
    """One stream: senders x m messages.  Returns a dict of what was measured."""
    with Kernel() as k:
        go = ALLOCATE_BOUNDED_BUFFER(senders + receivers)
        if kind == "buffer":
            link, buffers = ALLOCATE_BOUNDED_BUFFER(SLOTS), None
            buffers = [link]
        else:
            link = ALLOCATE_BUNDLE(MEMBERS, SLOTS // MEMBERS)
            buffers = list(link.members())
        rx = [ALLOCATE_THREAD(receiver, k.address_space, go, link) for _ in range(receivers)]
        tx = [ALLOCATE_THREAD(sender, k.address_space, go, link, sid, m) for sid in range(senders)]
        workers = rx + tx
        _wait(k, workers, lambda r: r["state"] == "WAITING" and r["waits_for"] == f"receive {go.id}")
        t0 = time.perf_counter()
        go.send_many([b""] * len(workers))
        if deallocate:
            victim = buffers[2]
            while victim.statistics()["received"] < m // 4:          # the stream is well under way
                time.sleep(0.001)
            DEALLOCATE_BOUNDED_BUFFER(victim)
        _wait(k, tx, lambda r: r["state"] == "EXITED")
        link.close()
        _wait(k, rx, lambda r: r["state"] in ("EXITED", "FAULTED"))
        seconds = time.perf_counter() - t0
        info = {r["tid"]: r for r in k.thread_info() if r["tid"] in workers}
        stats = []
        for b in buffers:
            try:
                stats.append(b.statistics())
            except Exception:                                         # the deallocated member
                pass
        bundle = link.statistics() if kind == "bundle" else None
        for t in tx:
            k.join(t, timeout=30)
        seen = [k.join(t, timeout=30) for t in rx]
    sleeps = sum(info[t]["voluntary"] for t in workers)
    waits = sum(s["send_waits"] + s["receive_waits"] for s in stats)
    total = senders * m
    return dict(kind=kind, m=m, pairs=senders, seconds=seconds, rate=total / seconds,
                cpu_us=sum(info[t]["run_ms"] for t in workers) * 1e3 / total,
                lock_sleeps=max(0, sleeps - waits), waits=waits,
                per_member=[s["received"] for s in stats], bundle=bundle,
                exact=_exact(seen, m, senders), per_receiver=[sum(c for c, _, _ in s.values()) for s in seen])


def _wait(k, tids, ready, timeout=60):
    """Observed state, not a sleep: until every thread of `tids` satisfies `ready`."""
    deadline = time.monotonic() + timeout
    want = set(tids)
    while True:
        rows = [r for r in k.thread_info() if r["tid"] in want]
        if len(rows) == len(want) and all(ready(r) for r in rows):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"threads {sorted(want)} did not get there: {rows}")
        time.sleep(0.001)


def _exact(seen, m, senders):
    """Did every sender's messages 0..m-1 arrive exactly once (count, sum and sum of squares)?"""
    want = (m, m * (m - 1) // 2, (m - 1) * m * (2 * m - 1) // 6)
    for sid in range(senders):
        got = [sum(s.get(sid, (0, 0, 0))[i] for s in seen) for i in range(3)]
        if tuple(got) != want:
            return False
    return True


def main(console, quick=False):
    m = 5_000 if quick else 40_000
    console.print(f"[bold]Step 1.[/] One bounded buffer of {SLOTS} slots; {SENDERS} senders each SEND {m:,} "
                  f"messages of {SIZE} B, {RECEIVERS} receivers RECEIVE them: eight threads, eight VPs. One send "
                  "lock and one receive lock: at most one sender and one receiver inside at a time.")
    one = run("buffer", m)
    _report(console, one)
    alone = run("buffer", SENDERS * m, senders=1, receivers=1)
    more = one["cpu_us"] - alone["cpu_us"]
    console.print(f"  For comparison, the same {SENDERS * m:,} messages from [bold]one[/] sender to [bold]one[/] "
                  f"receiver on the same buffer: {alone['rate']:,.0f} messages/s, {alone['cpu_us']:.2f} µs of CPU "
                  f"per message. With four of each, a message cost {abs(more):.2f} µs "
                  f"{'more' if more > 0 else 'less'}: the queueing for the two side locks (a thread that finds a "
                  "lock taken yields, then sleeps; the holder hands it over) against the sleeps a lone pair takes "
                  "when one of them runs ahead.")
    console.print()

    console.print(f"[bold]Step 2.[/] A bundle (链路捆绑) of {MEMBERS} buffers of {SLOTS // MEMBERS} slots "
                  "(the same slots in all), behind the same SEND/RECEIVE: each sender keeps to its home member, "
                  "each receiver takes from its home and steals from the others when its home is empty.")
    bun = run("bundle", m)
    _report(console, bun)
    row = bun["bundle"]
    console.print(f"  Each member carried its share: {', '.join(f'{n:,}' for n in bun['per_member'])} messages; "
                  f"each message carried a header (sender, sequence number) and was claimed by its receiver "
                  f"({row['duplicates']} duplicates dropped).")
    console.print()

    console.print("[bold]Step 3.[/] The interface kept (接口保持): every receiver checked that each sender's "
                  "sequence numbers (序列号) only grew, and the totals count every message once.")
    for r in (one, bun):
        verdict = "[green]every message exactly once, in each sender's order[/]" if r["exact"] else \
            "[red]NOT exactly once[/]"
        console.print(f"  {_name(r)}: {verdict}; the receivers took "
                      f"{', '.join(f'{n:,}' for n in r['per_receiver'])}.")
    console.print()

    console.print("[bold]Step 4.[/] A member of the bundle is deallocated while the stream runs "
                  "(DEALLOCATE_BOUNDED_BUFFER on it, as a line that fails). Its messages go with it.")
    dead = run("bundle", m, deallocate=True)
    row = dead["bundle"]
    gone = [i for i, (_, g) in enumerate(row["members"]) if g]
    verdict = "[green]every message exactly once, in each sender's order[/]" if dead["exact"] else \
        "[red]messages lost or duplicated[/]"
    console.print(f"  Member {gone} gone; {row['failovers']} sender(s) moved to another member and sent again "
                  f"{row['resent']} copies not yet delivered; {row['duplicates']} of those had been delivered "
                  f"after all and were dropped by their sequence numbers. Result: {verdict}.")
    console.print()

    table = Table(title=f"{SENDERS * m:,} messages of {SIZE} B, this machine",
                  title_justify="left")
    for col in ("run", "msg/s", "CPU µs/msg", "lock sleeps", "sleeps for space/msg", "exact"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in (alone, one, bun, dead):
        table.add_row(_name(r) + (", 1 gone" if r is dead else ""), f"{r['rate']:,.0f}",
                      f"{r['cpu_us']:.2f}", f"{r['lock_sleeps']:,}", f"{r['waits']:,}",
                      "yes" if r["exact"] else "[red]no[/]")
    console.print(table)
    ratio = bun["rate"] / one["rate"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    console.print(f"  Measured here: with four senders and four receivers the bundle moved {ratio:.2f}x the "
                  f"messages per second of one buffer; CPU per message {bun['cpu_us']:.2f} µs against "
                  f"{one['cpu_us']:.2f}; sleeps on a side lock {bun['lock_sleeps']:,} against "
                  f"{one['lock_sleeps']:,}.")
    if ratio > 1:
        console.print("  Notice: the bundle removed the queueing for one buffer's locks: four senders and four "
                      "receivers went in side by side, each pair in its own member, and that paid for the "
                      "bundle's own work per message (a header, a claim, a copy kept).")
    else:
        console.print(f"  Notice: here one buffer was not held back by its locks. This machine runs {cores} "
                      f"threads at once, and one buffer already lets a sender and a receiver run side by side; "
                      "the bundle's own work per message (a header, a claim, a copy kept) then costs more than "
                      "the queueing it removes. Aggregation can only pay where the one resource is the "
                      "bottleneck, and here it was not.")
    console.print("  The figures move with the load of the machine: rerun it.")


def _name(r):
    who = f"{r['pairs']}->{r['pairs']}"
    return f"{who} one buffer" if r["kind"] == "buffer" else f"{who} bundle of {MEMBERS}"


def _report(console, r):
    console.print(f"  {r['rate']:,.0f} messages/s ({r['seconds']:.2f} s); {r['cpu_us']:.2f} µs of CPU per message; "
                  f"{r['lock_sleeps']:,} times a thread slept on a side lock, {r['waits']:,} times for space or "
                  "for a message.")
