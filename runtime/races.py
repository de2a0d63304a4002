"""Race reports: both sides of every data race, from the runtime's own view.

"The biggest scare: programmers must handle the competing use of data."  A
lost update shows that a race happened, not where.  vos sees every LOAD and
STORE before it happens (the pager) and owns every lock, eventcount,
sequencer and buffer, so it can name both accesses of a race exactly, with
the program's own lines, and with no annotation.

Happens-before.  Each thread has a vector clock (Lamport, Mattern).  The
runtime's primitives carry clocks from one thread to another:

    RELEASE(L) -> the next ACQUIRE(L)           a lock carries the releaser's clock
    ADVANCE(E) -> AWAIT(E, v) or READ(E)        the count carries every advancer's
    TICKET(S)  -> the next TICKET(S)            (a sequencer is one atomic word)
    SEND(B)    -> the RECEIVE of that message   each message carries its sender's
    close(B)   -> the RECEIVE that ends         end of stream carries the closer's
    ALLOCATE_THREAD -> the new thread's start   the child starts with its parent's
    a thread's exit -> join of it

and RSM is synchronisation, not a race: a word that any RSM touches is an
atomic word, and every access to it (RSM, LOAD, STORE) acquires and releases
its clock -- so the book's spin lock (while RSM(l) ...; STORE(l, 0)) is
race-free, while a lock made of a plain LOAD/STORE flag races on the flag
and on everything it was meant to guard.

Shadow words.  Per 8-byte word: the last write and the reads since, each as
(thread, its clock then, the access), FastTrack's epochs (Flanagan &
Freund, PLDI 2009): a write races with an earlier write or read of another
thread that does not happen before it; a read with an earlier write.  A
report is kept once per pair of sites, with both accesses: thread, read or
write, address, block (and its name, ALLOCATE_BLOCK(n, name=...)) and
offset, file and line with the source, and the locks each thread held.

Where the events come from.  In a controlled run, from the trace: the
detector is exact for the interleaving that ran, and the report carries its
replay token.  In free running, each VP appends its accesses and sync events
to a log of its own in shared memory (racelog.py), stamped from one global
counter, and the kernel merges them when asked (`k.races()`): a VP that dies
loses nothing it logged.
"""

import dataclasses
import linecache
import os
from collections import defaultdict, deque

from .sched import ops


@dataclasses.dataclass(frozen=True)
class Access:
    """One side of a race."""
    tid: int
    kind: str                   # "read" or "write"
    vaddr: int
    block: int
    offset: int
    block_name: str
    site: str                   # "/path/lab.py:14"
    line: str                   # the source text of that line
    locks: tuple                # names of the locks the thread held then

    @property
    def where(self):
        name = f" {self.block_name!r}" if self.block_name else ""
        return f"{self.vaddr:#x} (block {self.block}{name} + {self.offset})"

    @property
    def short_site(self):
        return os.path.basename(self.site)

    def __str__(self):
        held = ", ".join(self.locks) if self.locks else "no lock"
        return f"thread {self.tid} {self.kind}s {self.where} at {self.short_site}  [{held}]  {self.line}"


@dataclasses.dataclass(frozen=True)
class Race:
    """Two accesses to one word by two threads, at least one a write, that
    no lock, eventcount, sequencer, message or start/join orders."""
    first: Access
    second: Access
    token: str = None           # a controlled run's replay token

    @property
    def common_locks(self):
        return tuple(sorted(set(self.first.locks) & set(self.second.locks)))

    def __str__(self):
        common = self.common_locks
        locks = f"common locks: {', '.join(common)}" if common else "no lock in common"
        return (f"data race on {self.second.where}: {self.first.kind} by thread {self.first.tid} at "
                f"{self.first.short_site}, {self.second.kind} by thread {self.second.tid} at "
                f"{self.second.short_site} ({locks})")


@dataclasses.dataclass(frozen=True)
class Event:
    """What the detector reads: one step of a run (a controlled trace) or
    one logged operation (free running), in an order that respects every
    thread's program order and every synchronisation."""
    tid: int
    op: int                     # sched.ops code
    target: int                 # sched.ops target
    aux: int = 0                # vaddr for memory; AWAIT's value; a byte count
    value: int = 0              # the new tid (ALLOCATE_THREAD); messages taken (RECEIVE)
    site: str = ""
    block: int = 0
    failed: bool = False
    length: int = 8             # bytes accessed (LOAD_BYTES / STORE_BYTES)


def _join(into, other):
    for t, c in other.items():
        if into.get(t, 0) < c:
            into[t] = c


def detect(events, block_name=lambda block: "", lock_name=lambda lock: f"lock {lock}", token=None,
           page_size=4096, fifo=True):
    """The races in a sequence of Events, one per pair of sites (in order of
    discovery).  block_name(id), lock_name(id): words for the report.
    fifo: a RECEIVE takes the clocks of the messages it took, in order (a
    controlled trace); else of every SEND before it (a free run's log, which
    does not say whose message it took)."""
    events = list(events)
    atomic = {e.target for e in events if e.op == ops.RSM and not e.failed}
    clocks = {}
    lock_vc, ec_vc, seq_vc, word_vc, end_vc, exit_vc, sent_vc = {}, {}, {}, {}, {}, {}, {}
    queues = defaultdict(deque)
    held = defaultdict(dict)
    writes, reads = {}, defaultdict(dict)
    races, seen = [], set()

    def clock(t):
        c = clocks.get(t)
        if c is None:
            c = clocks[t] = {t: 1}
        return c

    def tick(t, c):
        c[t] = c.get(t, 0) + 1

    def access(e, c, word, kind):
        offset = word & 0xFFFFFFFF
        vaddr = e.aux
        if e.op in (ops.LOAD_BYTES, ops.STORE_BYTES):     # the word's own address
            vaddr = e.aux + offset - ((e.target & 0xFFFFFFFF) + (e.aux & (page_size - 1)))
        return Access(e.tid, kind, vaddr, e.block, offset, block_name(e.block), e.site, _line(e.site),
                      tuple(sorted(held[e.tid].values())))

    def report(earlier, later):
        key = (earlier.site, earlier.kind, later.site, later.kind)
        if key in seen or (later.site, later.kind, earlier.site, earlier.kind) in seen:
            return
        seen.add(key)
        races.append(Race(earlier, later, token))

    for e in events:
        t, op = e.tid, e.op
        c = clock(t)
        if e.failed and op not in (ops.RECEIVE,):
            continue
        v = e.target & ops.VALUE
        if op == ops.SPAWN:
            child = clocks[e.value] = dict(c)
            child[e.value] = child.get(e.value, 0) + 1
            tick(t, c)
        elif op == ops.EXIT:
            exit_vc[t] = dict(c)
        elif op == ops.JOIN:
            _join(c, exit_vc.get(v, {}))
        elif op in (ops.ACQUIRE, ops.ACQUIRE_NOWAIT):
            _join(c, lock_vc.get(v, {}))
            held[t][v] = lock_name(v)
        elif op == ops.RELEASE:
            lock_vc[v] = dict(c)
            tick(t, c)
            held[t].pop(v, None)
        elif op == ops.ADVANCE:
            _join(ec_vc.setdefault(v, {}), c)
            tick(t, c)
        elif op in (ops.AWAIT, ops.READ) and e.target >> ops.KIND_SHIFT == ops.EC:
            _join(c, ec_vc.get(v, {}))
        elif op in (ops.TICKET, ops.READ):
            _join(c, seq_vc.get(v, {}))
            if op == ops.TICKET:
                seq_vc[v] = dict(c)
                tick(t, c)
        elif op in (ops.SEND, ops.SEND_NOWAIT):
            if fifo:
                queues[v].append(dict(c))
            else:
                _join(sent_vc.setdefault(v, {}), c)
            tick(t, c)
        elif op in (ops.RECEIVE, ops.RECEIVE_NOWAIT):
            if not fifo and not e.failed:
                _join(c, sent_vc.get(v, {}))
            for _ in range(max(0, e.value) if fifo and not e.failed else 0):
                if queues[v]:
                    _join(c, queues[v].popleft())
            if e.failed:                              # end of stream (or a dead buffer): the closer's clock
                _join(c, end_vc.get(v, {}))
        elif op in (ops.CLOSE, ops.DEALLOC_BUF):
            _join(end_vc.setdefault(v, {}), c)
            tick(t, c)
        elif op in (ops.LOAD, ops.STORE, ops.RSM, ops.LOAD_BYTES, ops.STORE_BYTES):
            write = op in (ops.STORE, ops.RSM, ops.STORE_BYTES)
            for word in _words(e, page_size):
                if word in atomic or op == ops.RSM:      # synchronisation, not a race
                    _join(c, word_vc.get(word, {}))
                    if write:
                        word_vc[word] = dict(c)
                        tick(t, c)
                    continue
                w = writes.get(word)
                if w is not None and w[0] != t and w[1] > c.get(w[0], 0):
                    report(w[2], access(e, c, word, "write" if write else "read"))
                if write:
                    for u, (uc, acc) in reads[word].items():
                        if u != t and uc > c.get(u, 0):
                            report(acc, access(e, c, word, "write"))
                    writes[word] = (t, c[t], access(e, c, word, "write"))
                    reads[word] = {}
                else:
                    reads[word][t] = (c[t], access(e, c, word, "read"))
    return races


def _words(e, page_size):
    """The word targets an access covers (LOAD_BYTES / STORE_BYTES: every
    word its bytes touch)."""
    if e.op in (ops.LOAD, ops.STORE, ops.RSM):
        return (e.target,)
    slot = e.target >> 32 & 0xFFFFFF
    first = (e.target & 0xFFFFFFFF) + (e.aux & (page_size - 1))
    return tuple(ops.word_target(slot, off) for off in range(first & ~7, first + max(e.length, 1), 8))


def _line(site):
    path, _, line = site.rpartition(":")
    return linecache.getline(path, int(line)).strip() if line.isdigit() else ""


# --- a controlled run's events: its trace ----------------------------------------------------

def trace_events(kernel):
    """The Events of a controlled kernel's current run (from the board)."""
    from .sched.board import FAILED, H_RUN, H_STEPS
    b = kernel.sched
    run = b.get(H_RUN)
    out = []
    for i in range(b.get(H_STEPS)):
        w = b.step_words(i)
        if w[9] != run:
            break
        op, flags = w[1] & 0xFF, w[1] >> 8
        length = w[4] if op in (ops.LOAD_BYTES, ops.STORE_BYTES) else 8
        value = w[4]
        if op in (ops.RECEIVE, ops.RECEIVE_NOWAIT):
            value = w[4] if w[4] else 1
        out.append(Event(w[0], op, w[2], w[3], value, b.site(w[5]), w[8], bool(flags & FAILED), length))
    return out


def of_kernel(kernel):
    """The races of a kernel's run so far: from the board's trace in a
    controlled run (with its replay token), from the threads' race logs
    (racelog.py) in a free one."""
    if kernel.sched is not None:
        from .sched.trace import kernel_token
        events, token = trace_events(kernel), kernel_token(kernel)
    else:
        logs = kernel.racelogs
        events, token = logs.events(), None
        if logs.incomplete():
            import warnings
            warnings.warn(logs.incomplete(), stacklevel=3)
    return detect(events, kernel.vm.block_name, lambda i: kernel.locks.name_of(i) or f"lock {i}", token,
                  kernel.config.page_size, fifo=kernel.sched is not None)


__all__ = ["Access", "Race", "Event", "detect", "trace_events", "of_kernel"]
