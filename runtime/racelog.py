"""The race log: what a freely running kernel's threads did, for races.py.

A controlled run's race report reads its trace.  A free run has no trace:
its threads run at once on real processes.  So with Kernel(races=True) each
thread appends what the detector needs -- its memory accesses and its
synchronisation events -- to a log of its own in shared memory, and
`k.races()` merges the logs and runs the detector over them.  A thread that
dies loses nothing it logged (the log is the kernel's memory, not its own).

Order.  The detector (races.py) needs the events in an order consistent with
happens-before.  Synchronisation events take a *stamp* from one global
counter (fetch_add): before the operation when it releases (RELEASE,
ADVANCE, SEND, close, ALLOCATE_THREAD, a thread's exit), after it when it
acquires (ACQUIRE, AWAIT, READ, TICKET, RECEIVE, join, a thread's start,
RSM).  A release's stamp is then below the stamp of every acquire that saw
it.  Memory accesses take no stamp (an atomic each would double a LOAD's
cost): an access sorts just after its thread's last stamped event, which is
consistent with happens-before, since every edge between threads goes
through stamped events.  The detector then runs on the merge.  Between two
of its events, a thread logs each (word, read or write, site) once: a
repeat sorts to the same place and says nothing new (FastTrack's "same
epoch" rule), so a loop of one line is one record, not a full log.

Limits, on purpose: in free running a RECEIVE is ordered after every SEND
logged before it on that buffer (which sender's message it took is not
logged), and an AWAIT after every ADVANCE logged before it: both can only
hide a race, never invent one.  A log holds RECORDS events; a thread that
fills it stops logging and `k.races()` says so.  At most LOGS threads log.

Section layout (in the kernel's arena, only when races=True and not
controlled):

    off      size   field
      0         8   stamp       fetch_add by any thread: the global order
      8         8   next_log    fetch_add: the next free log
     16         8   sites_used  fetch_add: bytes of the site area in use
     24         8   dropped     threads that found no free log
     64     SITES   sites       records "u16 length, UTF-8 'file:line'"; id = offset + 1
      D  16*LOGS    directory   per log: (tid + 1, events logged); its thread
      L  LOGS*RECORDS*32  logs  per event 4 words, written by its thread
                                before it bumps the count:

    memory   op | site << 16      target (ops.word_target)   block | length << 32   vaddr
    sync     op | failed << 8 | site << 16    target (ops.target)   stamp   value
"""

import struct
import sys

from . import atomics
from .sched import ops
from .races import Event
from .sched.gate import _runtime_code

LOGS = 32
RECORDS = 32768
SITES = 1 << 16
RECORD = 32
_HEADER = 64
_u16 = struct.Struct("<H")
_MEMORY = frozenset({ops.LOAD, ops.STORE, ops.RSM, ops.LOAD_BYTES, ops.STORE_BYTES})


def section_size(config):
    if not config.get("races") or config.get("schedule") is not None:
        return 0
    return _HEADER + SITES + 16 * LOGS + LOGS * RECORDS * RECORD


class RaceLogs:
    """The race-log section of a kernel (any process)."""

    def __init__(self, kernel, offset):
        self.kernel = kernel
        self.buf = kernel.arena.buf
        self.addr = kernel.arena.addr + offset
        self.off = offset
        self.sites_off = offset + _HEADER
        self.dir_off = self.sites_off + SITES
        self.logs_off = self.dir_off + 16 * LOGS
        self.q = self.buf[offset:offset + section_size(kernel.config)].cast("q")
        self._site_ids = {}               # (id(code), instruction) -> (site id, code): this process's cache
        self._by_line = {}                # (file, line) -> site id

    # --- a thread's side --------------------------------------------------------------------

    def open(self, tid):
        """A new log for thread tid (this process's thread), or None when all are taken."""
        i = atomics.fetch_add(self.addr + 8, 1)
        if i >= LOGS:
            atomics.fetch_add(self.addr + 24, 1)
            return None
        d = (self.dir_off - self.off) // 8 + 2 * i
        self.q[d + 1] = 0
        self.q[d] = tid + 1
        return ThreadLog(self, i, tid)

    def stamp(self):
        return atomics.fetch_add(self.addr, 1) + 1

    def site(self, frame):
        """The site id of the program's line that led to `frame`: the first
        frame outside the runtime, from there up.  Cached by code object and
        instruction (f_lineno scans the line table; a code object's hash
        hashes its contents): the value keeps the code alive, so its id
        names it."""
        code = frame.f_code
        hit = self._site_ids.get((id(code), frame.f_lasti))
        if hit is not None and hit[1] is code:
            return hit[0]
        if _runtime_code(code.co_filename):       # the runtime's own frame: the program's is further up
            return self.site(frame.f_back) if frame.f_back is not None else 0
        key = (code.co_filename, frame.f_lineno)
        sid = self._by_line.get(key)
        if sid is None:
            sid = self._by_line[key] = self._add_site(f"{key[0]}:{key[1]}")
        self._site_ids[(id(code), frame.f_lasti)] = (sid, code)
        return sid

    def _add_site(self, text):
        raw = text.encode("utf-8", "replace")[:400]
        need = 2 + len(raw)
        at = atomics.fetch_add(self.addr + 16, need)
        if at + need > SITES:
            return 0
        o = self.sites_off + at
        _u16.pack_into(self.buf, o, len(raw))
        self.buf[o + 2:o + 2 + len(raw)] = raw
        return at + 1

    # --- the kernel's side --------------------------------------------------------------------

    def release(self):
        """Let go of the arena's memory (kernel shutdown)."""
        self.q.release()

    def site_text(self, sid):
        if not sid:
            return ""
        o = self.sites_off + sid - 1
        n = _u16.unpack_from(self.buf, o)[0]
        return bytes(self.buf[o + 2:o + 2 + n]).decode("utf-8", "replace")

    def incomplete(self):
        """What the last events() could not see, in words; None if nothing."""
        if self.truncated or self.dropped:
            return (f"race log: threads {self.truncated} filled their logs ({RECORDS} events) and "
                    f"{self.dropped} found none (at most {LOGS}): their later accesses were not checked")
        return None

    def events(self):
        """Every logged event, merged in an order consistent with happens-before
        (module doc): races.Event objects.  Also `self.truncated`: the tids
        whose log filled up, and `self.dropped`: threads that had no log."""
        q = self.q
        keyed = []
        self.truncated = []
        texts = {}
        for i in range(min(q[1], LOGS)):
            d = (self.dir_off - self.off) // 8 + 2 * i
            tid, n = q[d] - 1, q[d + 1]
            if tid < 0:
                continue
            if n >= RECORDS:
                self.truncated.append(tid)
            base = (self.logs_off - self.off) // 8 + i * RECORDS * 4
            last = 0
            for j in range(min(n, RECORDS)):
                w0, target, w2, w3 = q[base + 4 * j:base + 4 * j + 4]
                op, sid = w0 & 0xFF, w0 >> 16
                site = texts.get(sid)
                if site is None:
                    site = texts[sid] = self.site_text(sid)
                if op in _MEMORY and op != ops.RSM:
                    e = Event(tid, op, target, w3, 0, site, w2 & 0xFFFFFFFF, False, w2 >> 32 or 8)
                    keyed.append(((last, 1, tid, j), e))
                else:
                    last = w2
                    e = Event(tid, op, target, w3 if op == ops.RSM else 0, 0 if op == ops.RSM else w3, site,
                              0, bool(w0 >> 8 & 1), 8)
                    keyed.append(((last, 0, tid, j), e))
        self.dropped = q[3]
        keyed.sort(key=lambda kv: kv[0])
        return [e for _k, e in keyed]


class ThreadLog:
    """One thread's log (the thread's own process writes it)."""

    __slots__ = ("logs", "q", "at", "n", "count_idx", "tid", "by_lasti", "seen")

    def __init__(self, logs, index, tid):
        self.logs = logs
        self.q = logs.q
        self.at = (logs.logs_off - logs.off) // 8 + index * RECORDS * 4
        self.count_idx = (logs.dir_off - logs.off) // 8 + 2 * index + 1
        self.n = 0
        self.tid = tid
        self.by_lasti = {}                # the pager's site cache: f_lasti -> (site, code); the
                                          # instruction alone mostly names the line of a loop
        self.seen = set()                 # the pager's word accesses since the last event (see _put)

    def _put(self, w0, target, w2, w3):
        self.seen.clear()                  # a new epoch: an access seen before it is news again
        n = self.n
        if n >= RECORDS:
            return
        q, i = self.q, self.at + 4 * n
        q[i] = w0
        q[i + 1] = target
        q[i + 2] = w2
        q[i + 3] = w3
        self.n = n + 1
        q[self.count_idx] = n + 1          # publish (after the record: TSO keeps the order)

    def sync(self, op, target, value=0, failed=False, stamp=None):
        """A synchronisation event, stamped now (or with a stamp taken before)."""
        site = self.logs.site(sys._getframe(1))
        self._put(op | (1 << 8 if failed else 0) | site << 16, target,
                  self.logs.stamp() if stamp is None else stamp, value)

    def memory(self, op, target, vaddr, block, length, frame):
        """A memory access (no stamp: it sorts after this thread's last event)."""
        n = self.n
        if n >= RECORDS:
            return
        q, i = self.q, self.at + 4 * n
        q[i] = op | self.logs.site(frame) << 16
        q[i + 1] = target
        q[i + 2] = block | (length if length != 8 else 0) << 32
        q[i + 3] = vaddr
        self.n = n + 1
        q[self.count_idx] = n + 1

    def rsm(self, target, vaddr, frame):
        """RSM: synchronisation (stamped after the exchange) on a memory word."""
        self._put(ops.RSM | self.logs.site(frame) << 16, target, self.logs.stamp(), vaddr)


__all__ = ["RaceLogs", "ThreadLog", "section_size", "LOGS", "RECORDS"]
