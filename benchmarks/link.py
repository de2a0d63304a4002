"""`vos bench link`: the virtual link's goodput against the raw line it runs on.

The same stream of 1 KiB messages (one packet each), one sender VP and one
receiver VP, at 0%, 1% and 10% packet loss (loss only: the line keeps order
and never corrupts here, so that the raw line's figure is what a sender
could hope for):

  * vos: a VirtualLink (runtime/link/virtual.py) over two such lines, data
    one way and acknowledgements back: goodput = bytes of messages delivered
    (all of them, whole, in order) per second;
  * peer: the raw PhysicalLink alone: bytes of the messages that arrived per
    second (at 1% and 10% loss that many were lost: the stream is broken,
    the note says how much).

The clock starts when both workers have reached the start line and stops
at the last message received.  Medians of `runs`; ratio = link / raw line.
"""

import statistics
import time

from runtime import Kernel
from runtime.errors import EndOfStream
from runtime.link import Faults, PhysicalLink, VirtualLink
from runtime.textbook import ALLOCATE_BOUNDED_BUFFER, ALLOCATE_THREAD

from .harness import Row, table

TITLE = "the virtual link's goodput against the raw faulty line, at 0%, 1% and 10% loss"

SIZE = 1024
COUNT, QUICK_COUNT = 20_000, 3_000
LOSSES = (0.0, 0.01, 0.10)
END = b"END"
_now = time.perf_counter


def _raw_sender(go, line, count, payload):
    go.receive()
    for _ in range(count):
        line.send(payload)
    for _ in range(40):                  # the end marker, many times: some are lost too
        line.send(END)
    return line.counts()


def _raw_receiver(go, line):
    go.receive()
    count = nbytes = 0
    last = _now()
    while True:
        m = line.receive()
        if m == END:
            return last, count, nbytes
        count += 1
        nbytes += len(m)
        last = _now()


def _link_sender(go, circuit, count, payload):
    go.receive()
    for _ in range(count):
        circuit.send(payload)
    circuit.close()
    return circuit.statistics()


def _link_receiver(go, circuit):
    go.receive()
    count = nbytes = 0
    last = _now()
    while True:
        try:
            m = circuit.receive()
        except EndOfStream:
            return last, count, nbytes
        count += 1
        nbytes += len(m)
        last = _now()


def _run(k, loss, count, virtual, seed):
    faults = Faults(loss=loss)
    payload = bytes(i & 0xFF for i in range(SIZE))
    go = ALLOCATE_BOUNDED_BUFFER(2)
    if virtual:
        link = VirtualLink.allocate(1, faults, seed=seed, mtu=SIZE)
        c = link.circuit(0)
        rx = ALLOCATE_THREAD(_link_receiver, k.address_space, go, c)
        tx = ALLOCATE_THREAD(_link_sender, k.address_space, go, c, count, payload)
    else:
        link = PhysicalLink.allocate(2 * 32 + 16, faults, seed, capacity=(2 * 32 + 16) * (SIZE + 64))
        rx = ALLOCATE_THREAD(_raw_receiver, k.address_space, go, link)
        tx = ALLOCATE_THREAD(_raw_sender, k.address_space, go, link, count, payload)
    _wait_waiting(k, (rx, tx), f"receive {go.id}")
    t0 = _now()
    go.send_many([b"", b""])
    last, got, nbytes = k.join(rx, timeout=600)
    sender = k.join(tx, timeout=600)
    link.deallocate()
    go.deallocate()
    return nbytes / (last - t0), got, sender


def _wait_waiting(k, tids, what):
    deadline = time.monotonic() + 60
    while True:
        rows = [r for r in k.thread_info() if r["tid"] in tids]
        if len(rows) == len(tids) and all(r["state"] == "WAITING" and r["waits_for"] == what for r in rows):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark workers did not reach the start line")
        time.sleep(0.001)


def main(console, quick=False, runs=5):
    if quick:
        runs = min(runs, 3)
    count = QUICK_COUNT if quick else COUNT
    rows = []
    with Kernel() as k:
        for loss in LOSSES:
            vos, raw, arrived, resent = [], [], [], []
            for r in range(runs):
                rate, got, tx = _run(k, loss, count, True, seed=r)
                if got != count:
                    raise AssertionError(f"the virtual link delivered {got} of {count} messages at {loss:.0%} loss")
                vos.append(rate)
                resent.append(tx.get("tx_retransmitted", 0) + tx.get("tx_fast_retransmitted", 0))
                rate, got, _ = _run(k, loss, count, False, seed=r)
                raw.append(rate)
                arrived.append(got)
            note = (f"raw line: {count - statistics.median(arrived):,.0f} of {count:,} messages lost; "
                    f"link: all delivered, {statistics.median(resent):,.0f} packets resent (after a timeout "
                    "or a gap in the selective acks)")
            rows.append(Row(f"{SIZE} B messages, {loss:.0%} loss", "B/s", statistics.median(vos),
                            "raw line (PhysicalLink)", statistics.median(raw), note=note))
    return table(console, "vos bench link", rows, runs)
