"""通信的接口保持 (the virtual link keeps its interface): a line that breaks a stream, a link that does not.

Slide: "② 通信的接口保持 -- send(数据, 目的地址), receive(源地址) -> 数据;
设计间接层 ... 将输入数据分成多个分组，分别发出去; 关键：不要引入新的问题：
数据差错，及时送达，分组次序" (差错控制, 时延处理, 序列号), and row 4 of the
table: 复用 物理线路 -> 虚电路.

Step 1 sends numbered messages straight over a physical line (物理线路,
runtime/link/physical.py): a bounded buffer with a fault injector that loses,
duplicates, reorders, delays and corrupts packets (every fault at once, each
with the same small probability, seeded).  The receiver counts what came:
messages missing, twice, out of order, with a bad checksum.

Step 2 sends the same messages over a virtual link (虚拟链路,
runtime/link/virtual.py) on the same kind of line: the messages are cut into
packets (分组) with sequence numbers (序列号) and a CRC-32 (差错控制); the
receiver acknowledges what it has, keeps early packets until the gap before
them is filled, drops duplicates and corrupt packets; the sender resends what
was not acknowledged within its timeout (时延处理).  SEND/RECEIVE are the
same calls as in step 1.  The stream arrives whole, in order, once.

Step 3 multiplexes three virtual circuits (虚电路) over one pair of lines:
three senders, three receivers, one line each way; every packet names its
circuit, and a receiver that takes another circuit's packet off the line
passes it on.

What to notice: the counts of what the line did (step 1 and 2 alike) and
what the link did about each; and that the program in step 2 is the
program of step 1 with another handle.
"""

import struct
import time
import zlib

from rich.table import Table

from runtime import Kernel
from runtime.errors import EndOfStream
from runtime.link import FAULT_KINDS, Faults, PhysicalLink, VirtualLink
from runtime.textbook import ALLOCATE_THREAD, RECEIVE, SEND

TITLE = "a faulty line breaks a message stream; the virtual link over it delivers it intact (分组, 序列号, 差错控制)"
SLIDE = "② 通信的接口保持: 分组, 差错控制, 时延处理, 序列号 — 复用 物理线路 → 虚电路"
ORDER = 12

P = 0.05                      # each fault's probability per packet
SEED = 2024
_msg = struct.Struct("<II")   # number, CRC-32 of the body: the demo's own check, not the link's
_BODY = bytes(range(200))


def message(i):
    body = _BODY[i % 50:]
    return _msg.pack(i, zlib.crc32(body)) + body


def examine(m):
    """(number, intact?) of a message as it arrived."""
    if len(m) < _msg.size:
        return None, False
    i, crc = _msg.unpack_from(m)
    return i, zlib.crc32(m[_msg.size:]) == crc and m == message(i)


def raw_sender(line, count):
    for i in range(count):
        line.send(message(i))
    line.flush()
    return line.counts()


def link_sender(circuit, count):
    for i in range(count):
        SEND(circuit, message(i))
    circuit.close()
    return circuit.statistics()


def link_receiver(circuit):
    got = []
    while True:
        try:
            got.append(examine(RECEIVE(circuit)))
        except EndOfStream:
            return got, circuit.statistics()


def tally(arrived, count):
    """What a receiver saw: messages missing, twice, out of order, corrupted."""
    seen, dup, late, bad, last = set(), 0, 0, 0, -1
    for i, ok in arrived:
        if not ok:
            bad += 1
            continue
        if i in seen:
            dup += 1
            continue
        if i < last:
            late += 1
        seen.add(i)
        last = max(last, i)
    return dict(arrived=len(arrived), missing=count - len(seen), twice=dup, out_of_order=late, corrupted=bad)


def picture(arrived, width=60):
    """The first arrivals as the receiver saw them: numbers, ✗ for a corrupt one."""
    parts, n = [], 0
    for i, ok in arrived:
        s = f"{i}" if ok else "✗"
        if n + len(s) + 1 > width:
            break
        parts.append(s)
        n += len(s) + 1
    return " ".join(parts)


def main(console, quick=False):
    count = 300 if quick else 3000
    faults = Faults.every(P, delay_time=0.005)
    console.print(f"[bold]Step 1.[/] A physical line (物理线路): a bounded buffer whose sender loses, duplicates, "
                  f"reorders, delays and corrupts each packet with probability {P:.0%} (seeded). "
                  f"{count:,} numbered messages, SEND straight onto it.")
    with Kernel() as k:
        line = PhysicalLink.allocate(64, faults, SEED)
        t = ALLOCATE_THREAD(raw_sender, k.address_space, line, count)
        arrived = []
        while True:
            try:
                arrived.append(examine(line.receive(timeout=0.2)))
            except TimeoutError:
                if not any(r["tid"] == t and r["state"] not in ("EXITED", "FAULTED") for r in k.thread_info()):
                    break
        did = k.join(t, timeout=30)
    raw = tally(arrived, count)
    console.print(f"  The receiver's first arrivals: {picture(arrived)} ...")
    console.print(f"  The line did: {_faults(did)}.")
    console.print(f"  The receiver got {raw['arrived']:,} messages for {count:,} sent: [red]{raw['missing']:,} missing, "
                  f"{raw['twice']:,} twice, {raw['out_of_order']:,} out of order, {raw['corrupted']:,} corrupted[/]. "
                  "The stream is broken.")
    console.print()

    console.print("[bold]Step 2.[/] The same messages, the same SEND and RECEIVE, over a virtual link (虚拟链路) on "
                  "the same kind of line: packets (分组) with sequence numbers (序列号) and a CRC-32 (差错控制), "
                  "acknowledgements back on a second line, resending after a timeout (时延处理).")
    with Kernel() as k:
        link = VirtualLink.allocate(1, faults, seed=SEED, mtu=128)
        c = link.circuit(0)
        t0 = time.perf_counter()
        t = ALLOCATE_THREAD(link_sender, k.address_space, c, count)
        arrived, rx = link_receiver(c)
        seconds = time.perf_counter() - t0
        tx = k.join(t, timeout=60)
    virt = tally(arrived, count)
    whole = virt["arrived"] == count and not any(virt[x] for x in ("missing", "twice", "out_of_order", "corrupted"))
    console.print(f"  The receiver's first arrivals: {picture(arrived)} ...")
    console.print(f"  The data line did: {_faults(tx, 'line_')}; the acknowledgement line: {_faults(rx, 'ackline_')}.")
    console.print(f"  The link did: {tx.get('tx_packets', 0):,} packets sent, {tx.get('tx_retransmitted', 0):,} sent "
                  f"again after a timeout; the receiver dropped {rx.get('rx_corrupted_dropped', 0):,} corrupt packets "
                  f"and {rx.get('rx_duplicates_dropped', 0):,} duplicates, held {rx.get('rx_early', 0):,} that came "
                  f"before their turn, and sent {rx.get('rx_acks_sent', 0):,} acknowledgements "
                  f"(RTO at the end: {tx.get('rto_ms', 0)} ms).")
    verdict = "[green]every message once, intact, in order[/]" if whole else "[red]NOT intact[/]"
    console.print(f"  The receiver got {virt['arrived']:,} messages for {count:,} sent in {seconds:.2f} s: {verdict}.")
    console.print()

    circuits = 3
    per = count // 3
    console.print(f"[bold]Step 3.[/] Three virtual circuits (虚电路) on one pair of lines (复用 物理线路): three "
                  f"senders of {per:,} messages each, three receivers; every packet names its circuit.")
    with Kernel() as k:
        link = VirtualLink.allocate(circuits, faults, seed=SEED + 1, mtu=128)
        senders = [ALLOCATE_THREAD(link_sender, k.address_space, link.circuit(i), per) for i in range(circuits)]
        receivers = [ALLOCATE_THREAD(link_receiver, k.address_space, link.circuit(i)) for i in range(circuits)]
        results = [k.join(t, timeout=60) for t in receivers]
        for t in senders:
            k.join(t, timeout=60)
    table = Table(title=f"{circuits} circuits over one line, every fault at {P:.0%}", title_justify="left")
    for col in ("circuit", "received", "missing", "twice", "out of order", "corrupted", "passed on"):
        table.add_column(col, justify="right")
    for i, (got, st) in enumerate(results):
        t_ = tally(got, per)
        table.add_row(str(i), f"{t_['arrived']:,}", str(t_["missing"]), str(t_["twice"]), str(t_["out_of_order"]),
                      str(t_["corrupted"]), f"{st.get('rx_passed_on', 0):,}")
    console.print(table)
    console.print("  'passed on': packets of other circuits this receiver took off the line and put in their "
                  "circuit's inbox.")
    console.print("  Notice: the line still loses, duplicates, reorders, delays and corrupts; the virtual link "
                  "turns each of those into something it knows how to repair (a corrupt packet is dropped, so it "
                  "becomes a loss; a loss is resent; a duplicate is dropped by its sequence number; an early "
                  "packet waits for its turn) and SEND/RECEIVE stay what they were.")


def _faults(counts, prefix=""):
    return ", ".join(f"{counts.get(prefix + k, 0):,} {k}" for k in FAULT_KINDS) + \
        f" (of {counts.get(prefix + 'sent', 0):,} packets)"
