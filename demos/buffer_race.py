"""有界缓冲区 (the bounded buffer): the book's one-sender code with two senders, then a lock, then eventcounts.

Slide: "3) 线程间通信：有界缓冲区" -- 一段固定大小的内存，首尾两个指针; the
sender writes the data and moves the head pointer on (头-尾=N: wait); the
receiver reads the data and moves the tail pointer on (头=尾: wait).
SEND: 插入数据，满则等待; RECEIVE: 读取数据，空则等待.

The demo builds Saltzer & Kaashoek's buffer in the student's own memory: one
page MAPped into the address space, with the words p.in (the head: messages
ever sent), p.out (the tail: messages ever received) and N = 16 slots, every
access a LOAD or a STORE, exactly as the book writes it for ONE sender:

    SEND(p, msg):                           RECEIVE(p):
        while p.in - p.out = N: wait            while p.in = p.out: wait
        p.message[p.in mod N] <- msg            msg <- p.message[p.out mod N]
        p.in <- p.in + 1                        p.out <- p.out + 1
                                                return msg

Step 1 runs it with TWO senders (A sends A#1..A#M, B sends B#1..B#M; a
message is a number that names its sender) and one receiver, three threads
on two processors; "wait" is YIELD.  Between one sender's test and its
increment the other sender runs, and three things go wrong, for real,
between OS processes:

  (a) both read the same p.in and write the same slot: one message
      overwrites the other, and their two increments count one message (or
      skip a position: the book reads p.in twice);
  (b) both pass the full test when one slot is left: p.in - p.out goes past
      N, the test "= N" stops nobody, and the senders write over messages
      the receiver has not read yet -- most of the losses come from here;
  (c) a slower sender stores a stale p.in + 1 and moves p.in backwards: the
      receiver reads old slots again.

The demo counts what arrived, what arrived again and what never arrived, and
names a few lost messages.  (The book's receiver would wait for ever for a
message whose increment was lost; here the senders announce with
ADVANCE(done) that they have finished, and the receiver stops when they have
and the buffer looks empty, or p.in has fallen behind p.out.)

Step 2 is the book's fix: ACQUIRE(p.lock) ... RELEASE(p.lock) around the
sender's code (releasing the lock while it waits for space, so the others
can go on).  One receiver is the only writer of p.out, so here it needs no
lock; the book's version for several receivers locks RECEIVE too.

Step 3 is the book's version without a lock: p.in and p.out are eventcounts
and the senders take a TICKET from a sequencer to queue up:

    SEND(p, msg):                           RECEIVE(p):
        t <- TICKET(p.sender)                   AWAIT(p.in, READ(p.out))
        AWAIT(p.in, t - 1)                      msg <- p.message[READ(p.out) mod N]
        AWAIT(p.out, READ(p.in) - N)            ADVANCE(p.out)
        p.message[READ(p.in) mod N] <- msg      return msg
        ADVANCE(p.in)

AWAIT(ec, v) returns once READ(ec) > v (S&K's convention, docs/REFERENCE.md): so
AWAIT(p.in, t - 1) waits for the t senders before this one, AWAIT(p.out,
p.in - N) for a free slot, AWAIT(p.in, p.out) for a message.  A thread that
waits sleeps (no busy wait); nobody holds a lock.  (`in` is a Python
keyword, so the eventcounts are spelled p_in and p_out in the code.)

Step 4 moves the same messages through vos's own SEND/RECEIVE
(ALLOCATE_BOUNDED_BUFFER): the same two counters in a ring in shared memory,
with real locks for the senders' side and the receivers' side
(runtime/buffer_ring.py).

Step 5 is 受控运行, a controlled run (demos/_controlled.py): the book's SEND
again, two senders sending one message each, one thread at a time, the
choices random walks from a seed (`vos demo buffer-race --seed 3`).  The
schedule that loses a message is shrunk and shown with its lines and replay
token; the race report (数据竞争报告) names the two STOREs into one slot;
the locked SEND, searched exhaustively, has no race and no failure.

What to notice: the book's one-sender code is not wrong -- it was written
for one sender.  A second sender breaks it; the lock and the ticket queue
make each message arrive exactly once.
"""

import collections
import time
from array import array

from rich.markup import escape
from rich.table import Table

from demos._controlled import SEED, act
from runtime import Kernel
from runtime.textbook import (ACQUIRE, ADVANCE, ALLOCATE_BLOCK, ALLOCATE_BOUNDED_BUFFER, ALLOCATE_EVENTCOUNT,
                              ALLOCATE_LOCK, ALLOCATE_SEQUENCER, ALLOCATE_THREAD, AWAIT, LOAD, LOAD_BYTES, MAP,
                              READ, RECEIVE, RELEASE, SEND, STORE, STORE_BYTES, TICKET, YIELD)

TITLE = "two senders on the book's one-sender bounded buffer lose messages; a lock or eventcounts fix it"
SLIDE = "3) 线程间通信：有界缓冲区 — SEND：插入数据，满则等待; RECEIVE：读取数据，空则等待"
ORDER = 30

PROCESSORS, SENDERS = 2, 2
N = 16                              # slots, as in the slide's picture

# The buffer page (p = BUFFER_PAGE * page_size).  Written by the senders and the receiver with
# LOAD/STORE only; nothing else guards it but what each step adds.
#   off  size  field
#     0     8  p.in        the head: written by the senders
#     8     8  p.out       the tail: written only by the receiver
#    64  8*N   p.message   slot i mod N holds message number i
BUFFER_PAGE, LOG_PAGE = 1, 16
IN, OUT, MESSAGE = 0, 8, 64

# A message names its sender: A#k is the number k, B#k the number B_BASE + k (k = 1..M).
B_BASE = 1_000_000


def name(msg):
    if msg == 0:
        return "an empty slot"
    return f"A#{msg}" if msg < B_BASE else f"B#{msg - B_BASE}"


def laps(positions):
    k = positions // N
    return f"{k:,} lap" + ("" if k == 1 else "s")


def slot(p, i):
    """The address of p.message[i mod N]."""
    return p + MESSAGE + 8 * (i % N)


def start(ready):
    """All three threads begin together."""
    ADVANCE(ready)
    AWAIT(ready, SENDERS)


# --- the book's code, for one sender ------------------------------------------------------
# send_* return the position (the p.in) whose slot they wrote: the demo's bookkeeping, no part
# of the algorithm.

def send(p, msg):
    """The book's SEND for one sender: no lock."""
    while LOAD(p + IN) - LOAD(p + OUT) == N:    # while p.in - p.out = N do wait (full)
        YIELD()
    i = LOAD(p + IN)
    STORE(slot(p, i), msg)                      # p.message[p.in modulo N] <- msg
    STORE(p + IN, LOAD(p + IN) + 1)             # p.in <- p.in + 1
    return i


def receive(p, done):
    """The book's RECEIVE for one receiver.  The demo's addition: None once the
    senders have finished (`done` advanced by each) and the buffer is empty,
    where the book's receiver would wait for ever."""
    while LOAD(p + IN) == LOAD(p + OUT):        # while p.in = p.out do wait (empty)
        if READ(done) == SENDERS and LOAD(p + IN) == LOAD(p + OUT):
            return None
        YIELD()
    msg = LOAD(slot(p, LOAD(p + OUT)))          # msg <- p.message[p.out modulo N]
    STORE(p + OUT, LOAD(p + OUT) + 1)           # p.out <- p.out + 1
    return msg


# --- step 2: the book's fix for several senders --------------------------------------------

def send_locked(p, msg, lock):
    """SEND with ACQUIRE/RELEASE: one sender at a time between the test and the increment."""
    ACQUIRE(lock)
    while LOAD(p + IN) - LOAD(p + OUT) == N:    # full: let the others in while we wait
        RELEASE(lock)
        YIELD()
        ACQUIRE(lock)
    i = LOAD(p + IN)
    STORE(slot(p, i), msg)
    STORE(p + IN, LOAD(p + IN) + 1)
    RELEASE(lock)
    return i


# --- step 3: eventcounts and a sequencer ----------------------------------------------------

def send_ec(p, msg, p_in, p_out, p_sender):
    """SEND with eventcounts: take a ticket, wait for the senders before, wait for space."""
    t = TICKET(p_sender)
    AWAIT(p_in, t - 1)                          # the t senders before me are done
    AWAIT(p_out, READ(p_in) - N)                # p.out > p.in - N: a slot is free
    i = READ(p_in)
    STORE(slot(p, i), msg)                      # p.message[READ(p.in) mod N] <- msg
    ADVANCE(p_in)
    return i


def receive_ec(p, p_in, p_out):
    AWAIT(p_in, READ(p_out))                    # p.in > p.out: a message is there
    msg = LOAD(slot(p, READ(p_out)))
    ADVANCE(p_out)
    return msg


SENDS = {"none": send, "lock": send_locked, "eventcount": send_ec}


# --- the threads -----------------------------------------------------------------------------
# Each writes its record (positions used, messages received) into its own region of the log
# block with one STORE_BYTES at the end; the boot program reads the records afterwards.

def sender(kind, p, first, m, log, ready, done, *sync):
    """Send messages first .. first + m - 1; record the position each went to."""
    start(ready)
    put = SENDS[kind]
    positions = array("q")
    for msg in range(first, first + m):
        positions.append(put(p, msg, *sync))
    STORE_BYTES(log, positions.tobytes())
    ADVANCE(done)                               # "I have finished"
    return m


def receiver(kind, p, total, log, cap, ready, done, *sync):
    """Receive until the senders are done and the buffer is empty (steps 1, 2)
    or exactly `total` messages (step 3).  Returns (RECEIVEs, p.in < p.out at the end)."""
    start(ready)
    got = array("q")
    count = 0
    if kind == "eventcount":
        for _ in range(total):
            got.append(receive_ec(p, *sync))
        count = total
    else:
        while True:
            if READ(done) == SENDERS and LOAD(p + IN) < LOAD(p + OUT):
                break        # the senders are done and p.in fell behind p.out: nothing real is left
            msg = receive(p, done)
            if msg is None:
                break
            count += 1
            if len(got) < cap:
                got.append(msg)
    STORE_BYTES(log, got.tobytes())
    return count, LOAD(p + IN) < LOAD(p + OUT)


def vos_sender(buf, first, m, ready):
    start(ready)
    for msg in range(first, first + m):
        SEND(buf, msg)
    return m


def vos_receiver(buf, total, log, ready):
    start(ready)
    got = array("q", (RECEIVE(buf) for _ in range(total)))
    STORE_BYTES(log, got.tobytes())
    return total, False


# --- step 5: the same race, under the controlled scheduler --------------------------------------

def send_one(kind, p, msg, *sync):
    """Step 5's sender: one SEND of the kind given."""
    SENDS[kind](p, msg, *sync)


def two_sends(k, kind, *sync):
    """Step 5's program, thread 0 of a controlled kernel: A#1 and B#1 sent
    by two senders, no receiver; then in must be 2 and the first two slots
    must hold both messages."""
    MAP(k.address_space, ALLOCATE_BLOCK(k.config.page_size), BUFFER_PAGE, "rw")
    p = BUFFER_PAGE * k.config.page_size
    tids = [ALLOCATE_THREAD(send_one, k.address_space, kind, p, msg, *sync) for msg in (1, B_BASE + 1)]
    for t in tids:
        k.join(t)
    p_in, held = LOAD(p + IN), sorted(LOAD(slot(p, i)) for i in range(2))
    assert p_in == 2 and held == [1, B_BASE + 1], \
        f"in = {p_in}, the slots hold {', '.join(name(m) for m in held)}: a message was lost"


def racy(k):
    """Step 5, the racy version: the book's one-sender SEND."""
    two_sends(k, "none")


def fixed(k):
    """Step 5, the fixed version: SEND under ACQUIRE/RELEASE."""
    two_sends(k, "lock", ALLOCATE_LOCK("p.lock"))


# --- one run -----------------------------------------------------------------------------------

def run(kind, m):
    """Boot a machine, send m messages from each of two senders to one receiver.
    Returns a dict of what happened (see tally)."""
    cap = 3 * SENDERS * m                      # the receiver records at most this many messages
    log_bytes = 8 * (SENDERS * m + cap)
    with Kernel(processors=PROCESSORS, frames=log_bytes // 4096 + 64) as k:
        ps = k.config.page_size
        MAP(k.address_space, ALLOCATE_BLOCK(ps), BUFFER_PAGE, "rw")
        MAP(k.address_space, ALLOCATE_BLOCK(log_bytes), LOG_PAGE, "rw")
        p, log = BUFFER_PAGE * ps, LOG_PAGE * ps
        logs = [log, log + 8 * m]
        rlog = log + 8 * SENDERS * m
        ready, done = ALLOCATE_EVENTCOUNT("ready"), ALLOCATE_EVENTCOUNT("done")
        firsts = [1, B_BASE + 1]
        sync, note = (), ""
        t0 = time.perf_counter()
        if kind == "vos":
            buf = ALLOCATE_BOUNDED_BUFFER(N)
            r = ALLOCATE_THREAD(vos_receiver, k.address_space, buf, SENDERS * m, rlog, ready)
            senders = [ALLOCATE_THREAD(vos_sender, k.address_space, buf, f, m, ready) for f in firsts]
        else:
            if kind == "lock":
                sync = (ALLOCATE_LOCK("p.lock"),)
            elif kind == "eventcount":
                sync = (ALLOCATE_EVENTCOUNT("p.in"), ALLOCATE_EVENTCOUNT("p.out"), ALLOCATE_SEQUENCER("p.sender"))
            r = ALLOCATE_THREAD(receiver, k.address_space, kind, p, SENDERS * m, rlog, cap, ready, done,
                                *(sync[:2] if kind == "eventcount" else ()))
            senders = [ALLOCATE_THREAD(sender, k.address_space, kind, p, f, m, lg, ready, done, *sync)
                       for f, lg in zip(firsts, logs)]
        for t in senders:
            k.join(t, timeout=120)
        count, behind = k.join(r, timeout=120)
        seconds = time.perf_counter() - t0
        got = array("q", LOAD_BYTES(rlog, 8 * min(count, cap)))
        if kind == "vos":
            positions, p_in, p_out = [], SENDERS * m, SENDERS * m
            st = buf.statistics()
            note = f"{st['send_waits']:,} SENDs and {st['receive_waits']:,} RECEIVEs had to wait"
        else:
            positions = [array("q", LOAD_BYTES(lg, 8 * m)) for lg in logs]
            if kind == "eventcount":
                p_in, p_out = READ(sync[0]), READ(sync[1])
                slept = sync[0].statistics().sleeps + sync[1].statistics().sleeps
                note = f"{slept:,} AWAITs slept"
            else:
                p_in, p_out = LOAD(p + IN), LOAD(p + OUT)
            if kind == "lock":
                st = sync[0].statistics()
                note = f"{st.contention:,} of {st.acquisitions:,} ACQUIREs found it held and waited"
    return tally(m, firsts, got, count, positions, p_in, p_out, behind, seconds, note)


def tally(m, firsts, got, count, positions, p_in, p_out, behind, seconds, note):
    """Count what arrived once, again, or never, and explain a few lost messages.
    got[k] is what the receiver found at position k (it alone moves p.out, one by one)."""
    seen = collections.Counter(got)
    sent = {msg for f in firsts for msg in range(f, f + m)}
    distinct = sum(1 for msg in seen if msg in sent)
    empty = seen.get(0, 0)
    lost = sorted(sent - seen.keys())
    at = {}                       # message -> the position (the p.in) whose slot its sender wrote
    for f, pos in zip(firsts, positions):
        at.update(zip(range(f, f + m), pos))
    same = set(positions[0]) & set(positions[1]) if positions else set()
    lapped = sum(1 for k, msg in enumerate(got) if at.get(msg, k) > k)
    backwards = sum(1 for pos in positions for a, b in zip(pos, pos[1:]) if b <= a)
    return dict(m=m, sent=len(sent), received=count, distinct=distinct, empty=empty,
                duplicates=count - distinct - empty, lost=len(lost), p_in=p_in, p_out=p_out,
                behind=behind, same=len(same), lapped=lapped, backwards=backwards, seconds=seconds,
                note=note, examples=explain(lost, at, got, seen, p_in))


def explain(lost, at, got, seen, p_in, each=2):
    """A few lost messages by name: first `each` where both senders read the
    same in (best: the receiver then found the other one in the slot), then
    `each` of the other kinds."""
    written = collections.defaultdict(list)     # position -> the messages written to its slot
    for msg, i in at.items():
        written[i].append(msg)
    found_rival, rival, other = [], [], []
    for msg in lost:
        if len(found_rival) >= each and len(other) >= each:
            break
        i = at[msg]
        where = f"slot {i % N}"
        rivals = [r for r in written[i] if (r < B_BASE) != (msg < B_BASE)]
        if i < len(got) and got[i] in rivals:
            found_rival.append(f"{name(msg)} lost: overwritten by {name(got[i])} in {where} (both senders read "
                               f"in = {i:,})")
        elif rivals:
            fate = "arrived" if rivals[0] in seen else "was lost too"
            rival.append(f"{name(msg)} lost: {name(rivals[0])} went to the same {where} (both senders read "
                         f"in = {i:,}); {name(rivals[0])} {fate}")
        elif i >= len(got):
            other.append(f"{name(msg)} lost: written to {where} for position {i:,}, which the receiver never "
                         f"reached (in ended at {p_in:,})")
        elif at.get(got[i], i) > i:
            j = at[got[i]]
            other.append(f"{name(msg)} lost: overwritten in {where} by {name(got[i])}, meant for position {j:,} "
                         f"({laps(j - i)} later), before the receiver read position {i:,}")
        else:
            other.append(f"{name(msg)} lost: the receiver read {where} for position {i:,} before it was written "
                         f"and got {name(got[i])}; {name(msg)} was overwritten before it came round again")
    same = (found_rival + rival)[:each]
    return same + other[:2 * each - len(same)]


# --- the demo -----------------------------------------------------------------------------------

def outcome(r):
    """'Received ... of ..., ... again, ... lost' and the verdict."""
    text = f"Received {r['received']:,} of {r['sent']:,}, {r['duplicates']:,} again, {r['lost']:,} lost"
    if r["lost"] or r["duplicates"] or r["received"] != r["sent"]:
        return f"[red]{text}: this fix did not hold[/]"
    return f"[green]{text}[/]: each message exactly once"


def code(text):
    """Pseudocode for the console (rich would take `[in mod N]` for markup)."""
    return f"[bold]{escape(text)}[/]"


def main(console, quick=False, seed=SEED):
    m = 10_000 if quick else 50_000
    rows = []

    console.print(f"[bold]Step 1.[/] The book's bounded buffer (有界缓冲区), the lecture's communication "
                  f"between threads (线程间通信), written for [bold]one[/] sender: N = {N} slots and the "
                  "words in and out in one shared page, every access a LOAD or a STORE.  SEND waits while it is "
                  "full (满则等待), RECEIVE while it is empty (空则等待):")
    console.print("    SEND:    " + code("while in - out = N: wait;  message[in mod N] ← msg;  in ← in + 1"))
    console.print("    RECEIVE: " + code("while in = out: wait;  msg ← message[out mod N];  out ← out + 1"))
    console.print(f"  Now [bold]two[/] senders use it (A sends A#1..A#{m:,}, B sends B#1..B#{m:,}) and one "
                  f"receiver: three threads on {PROCESSORS} processors, no lock.")
    r = run("none", m)
    for longer in (4 * m, 16 * m):
        if r["lost"]:
            break
        console.print(f"  (nothing lost this time: the senders hardly overlapped; again with {longer:,} each)")
        r = run("none", longer)
    rows.append(("1. no lock", r))
    console.print(f"  The receiver took {r['received']:,} messages for {r['sent']:,} sent: {r['distinct']:,} "
                  f"different ones, {r['duplicates']:,} [red]received again[/], and [red]{r['lost']:,} lost[/] "
                  "(never received)." + (f" {r['empty']:,} times it read a slot nobody had written yet."
                                         if r["empty"] else ""))
    if r["same"]:
        lost_in = (f"in ended at {r['p_in']:,}, not {r['sent']:,}" if r["p_in"] != r["sent"]
                   else f"in still ended at {r['p_in']:,}: some positions were used twice, others skipped")
        console.print(f"  (a) {r['same']:,} times both senders read the same [bold]in[/] and wrote the same slot: "
                      "one message overwrote the other. Their two in ← in + 1 then counted one message, or "
                      f"skipped a position: {lost_in}.")
    if r["lapped"]:
        console.print(f"  (b) {r['lapped']:,} times the receiver found in a slot a message meant for a later lap: "
                      "the senders had run more than N ahead. (Both pass the test in - out = N when one place "
                      "is left, in - out goes past N, and the test '= N' stops nobody until the receiver catches "
                      "up.) The senders wrote over messages not yet read.")
    if r["backwards"]:
        console.print(f"  (c) {r['backwards']:,} times a sender found in lower than after its own last message: "
                      "the other one, slower, had stored a stale in + 1 and moved in backwards; the receiver "
                      "then read old slots again.")
    console.print("  Some of the lost messages:")
    for line in r["examples"]:
        console.print(f"    [red]{escape(line)}[/]")
    if r["behind"]:
        console.print(f"  When the senders finished, in ({r['p_in']:,}) was [red]behind out[/] ({r['p_out']:,}): "
                      "the buffer 'held' a negative number of messages. The book's receiver would have read on "
                      "for ever; the demo's receiver stopped because the senders had said they were done.")
    else:
        console.print("  The receiver stopped when the senders had said they were done (ADVANCE(done)) and the "
                      "buffer looked empty; the book's receiver would have waited for ever for the lost ones.")
    console.print()

    console.print("[bold]Step 2.[/] The book's fix: [bold]ACQUIRE(p.lock)[/] before the test, [bold]RELEASE("
                  "p.lock)[/] after in ← in + 1 (released and re-acquired while the buffer is full). The "
                  "receiver is the only one writing out, so it needs no lock here.")
    r = run("lock", m)
    rows.append(("2. ACQUIRE/RELEASE", r))
    console.print(f"  {outcome(r)}. The lock's statistics: {r['note']}.\n")

    console.print("[bold]Step 3.[/] No lock: [bold]in[/] and [bold]out[/] are eventcounts, and the senders queue "
                  "with a ticket from a sequencer:")
    console.print("    SEND:    " + code("t ← TICKET(p.sender);  AWAIT(p.in, t - 1);  AWAIT(p.out, READ(p.in) - N);"))
    console.print("             " + code("message[READ(p.in) mod N] ← msg;  ADVANCE(p.in)"))
    console.print("    RECEIVE: " + code("AWAIT(p.in, READ(p.out));  msg ← message[READ(p.out) mod N];  "
                                         "ADVANCE(p.out)"))
    r = run("eventcount", m)
    rows.append(("3. eventcounts", r))
    console.print(f"  {outcome(r)}. AWAIT returns "
                  "once the count exceeds the value (S&K), so sender t waits for the t senders before it. No "
                  f"lock and no busy wait: a thread that must wait sleeps in AWAIT ({r['note']}), its processor "
                  "given to the others.\n")

    console.print("[bold]Step 4.[/] vos's own [bold]SEND/RECEIVE[/] (ALLOCATE_BOUNDED_BUFFER(N)): the same two "
                  "counters in a ring in shared memory, with real locks for each side (runtime/buffer_ring.py).")
    r = run("vos", m)
    rows.append(("4. vos SEND/RECEIVE", r))
    console.print(f"  {outcome(r)}; {r['note']}. The runtime's own buffer does what step 2 does, for "
                  "variable-size messages, any number of senders and receivers, and threads that die.\n")

    table = Table(title=f"two senders, one receiver, a buffer of N = {N} slots", title_justify="left")
    for col in ("run", "sent", "received", "again", "lost", "seconds"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for label, r in rows:
        bad = "red" if r["lost"] else "green"
        table.add_row(label, f"{r['sent']:,}", f"{r['received']:,}", f"[{bad}]{r['duplicates']:,}[/]",
                      f"[{bad}]{r['lost']:,}[/]", f"{r['seconds']:.2f}")
    console.print(table)
    console.print("  Notice: the book's code is right for the one sender it was written for; a second sender "
                  "breaks it between the test and the increment. How much is lost changes from run to run (a "
                  "race on shared data, 数据的竞争使用); with the lock or the ticket queue each message arrives "
                  "exactly once.")

    console.print(f"\n[bold]Step 5.[/] 受控运行 (a controlled run): the book's SEND, two senders, one message "
                  f"each, one at a time; random walks from seed {seed} (--seed) until one is lost:")
    act(console, racy, fixed, "SEND under ACQUIRE/RELEASE", seed)
