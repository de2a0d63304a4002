"""The board of a controlled run: the baton, the pending operations, the trace.

Everything the threads of a controlled kernel must agree on lives here, in
the section "sched" of the main arena, so that whichever thread holds the
baton can decide who runs next without asking anyone (no central scheduler,
no round trip): the strategy's state, each thread's pending operation, and
the trace of the steps so far.

Only the baton holder writes the header and the trace; a thread writes its
own record (its pending operation) while it holds the baton too, except its
`turn` word, which the thread that hands the baton over sets.  So there is
no lock: the baton is the lock, and handing it over (a seq-cst store and a
futex wake) publishes everything written before.

Header (HEADER bytes, words):

    word field          writer
      0  strategy       boot: RR, RANDOM, PCT, PREFIX, REPLAY, PAUSE, GUIDE
      1  seed           boot
      2  max_steps      boot
      3  depth          boot: PCT's d
      4  horizon        boot: PCT's k, the steps its change points are drawn from
      5  prefix_len     boot: choices given (PREFIX, REPLAY, PAUSE, GUIDE)
      6  sleep_at       boot: the step at which `sleep_add` joins the sleep set (-1: none)
      7  sleep_add      boot: slot mask (PREFIX: the siblings explored before)
      8  steps          holder: steps decided so far (the index of the next one)
      9  runner         holder: slot of the thread that runs
     10  abort          holder: why the run stops (ABORT_*), 0 while it goes on
     11  vclock         holder: virtual time, ns
     12  preemptions    holder
     13  sleep          holder: the sleep set of the current state (slot mask)
     14  created        holder: threads created so far
     15  sites_used     fetch_add by anyone: bytes of the sites area in use
     16  writes         holder: steps that changed shared state (the spin rule)
     17  enabled        holder: slots that could run at the current step (mask)
     18  cur_sleep      holder: the sleep set the current step was chosen under
     19  cur_flags      holder: PREEMPTED when the current step is a preemption
     20  abort_slot     holder: the thread an ABORT concerns (-1: none)
     21  run            boot, then +1 by each reset: the run a trace record belongs to
     22  default        holder: the tid the non-preemptive rule would have run at the current step
     24..31 changes     boot: PCT's change points (step numbers)

Thread records (RECORD bytes each, one per thread slot, words):

      0  turn           futex word: 1 = holds the baton; set by the one handing over, cleared by self
      1  op             self: its pending op code (ops.py); 0 = not waiting at a gate
      2  target         self: the pending op's target
      3  arg            self: its argument (AWAIT's value, SEND's size, a sleep in ns, ...)
      4  arg2           self: more (a buffer's table slot, a virtual address)
      5  deadline       self: virtual time its timeout ends (0: none)
      6  flags          self and holder: TIMED_OUT, DEADLOCK, SPINNING, STARTED
      7  priority       creator: PCT priority
      8  reads          self: where its next read goes in the four below
      9  -
     10  site           self: site of the pending op
     11  tid            creator: the tid in this slot during the run
  12-15  read targets   self: the last four things it read (the spin rule) ...
  16-19  read steps     self: ... and the step at which it read each

Trace (TRACE_RECORD bytes per step, max_steps of them, words):

      0  tid            1  op | flags << 8
      2  target         3  aux: vaddr, AWAIT value, SEND size, ...
      4  value          5  site (offset in the sites area + 1; 0: none)
      6  enabled mask   7  sleep mask       8  block id (memory steps)    9  run
     10  default        the tid running on without a preemption would have chosen

Write stamps (STAMPS words): the last step that wrote a target, hashed
(holder; a collision makes a word look written, never the reverse).

Prefix (8 bytes per step): the tid to run at step i (PREFIX, REPLAY, PAUSE, GUIDE).
Sites (SITES bytes): records "u16 length, UTF-8 'file:line'"; a site's id is
its offset + 1.  Appended by fetch_add; kept for the kernel's life.
"""

import struct
from array import array

from .. import atomics
from . import ops

RR, RANDOM, PCT, PREFIX, REPLAY, PAUSE, GUIDE = 1, 2, 3, 4, 5, 6, 7
STRATEGY_NAMES = {RR: "rr", RANDOM: "random", PCT: "pct", PREFIX: "prefix", REPLAY: "replay", PAUSE: "pause",
                  GUIDE: "guide"}
ABORT_HANG, ABORT_STEPLIMIT, ABORT_PRUNED, ABORT_PAUSED, ABORT_MISMATCH, ABORT_DIED, ABORT_RECYCLE = 1, 2, 3, 4, 5, 6, 7

(H_STRATEGY, H_SEED, H_MAX_STEPS, H_DEPTH, H_HORIZON, H_PREFIX_LEN, H_SLEEP_AT, H_SLEEP_ADD, H_STEPS,
 H_RUNNER, H_ABORT, H_VCLOCK, H_PREEMPTIONS, H_SLEEP, H_CREATED, H_SITES, H_WRITES, H_ENABLED, H_CUR_SLEEP,
 H_CUR_FLAGS, H_ABORT_SLOT, H_RUN, H_DEFAULT) = range(23)
H_CHANGES, MAX_CHANGES = 24, 8
HEADER = 8 * 32

R_TURN, R_OP, R_TARGET, R_ARG, R_ARG2, R_DEADLINE, R_FLAGS, R_PRIORITY, R_READS, _R9, R_SITE, R_TID = \
    range(12)
R_READ_TARGETS, R_READ_STEPS, READS = 12, 16, 4
RECORD = 8 * 20
STAMPS = 512
TIMED_OUT, DEADLOCK, SPINNING, STARTED = 1, 2, 4, 8

TRACE_WORDS = 11
TRACE_RECORD = 8 * TRACE_WORDS
PREEMPTED, NOBODY, TIMEOUT, FAILED, ONGOING, YIELDED = 1, 2, 4, 8, 16, 32
# step flags: a preemption; a wake-up that woke nobody; a wait that timed out; the op raised; the thread
# that ran the step before could have run on; it YIELDed or spins (then the next thread in slot order
# runs: any other choice is a preemption too)
SITES = 1 << 16
MAX_CONTROLLED_THREADS = 64                       # enabled and sleep sets are one 64-bit mask

_u16 = struct.Struct("<H")


def section_size(config):
    """Bytes of the sched section for this kernel's Config (0 when not controlled)."""
    if config.get("schedule") is None:
        return 0
    steps = config.get("max_steps")
    return HEADER + RECORD * config.max_threads + 8 * STAMPS + (TRACE_RECORD + 8) * steps + SITES


class Board:
    """This process's view of the sched section.  Methods run in any process;
    the writer rules are in the module doc."""

    def __init__(self, arena, offset, config):
        self.buf = arena.buf
        self.addr = arena.addr + offset
        self.n = config.max_threads
        self.max_steps = config.get("max_steps")
        self.base = offset
        self.threads_off = offset + HEADER
        self.stamps_off = self.threads_off + RECORD * self.n
        self.trace_off = self.stamps_off + 8 * STAMPS
        self.prefix_off = self.trace_off + TRACE_RECORD * self.max_steps
        self.sites_off = self.prefix_off + 8 * self.max_steps
        size = section_size(config)
        self.q = arena.buf[offset:offset + size].cast("q")     # one word store per item: never torn
        self.hq = 0
        self.tq = (self.threads_off - offset) // 8
        self.trq = (self.trace_off - offset) // 8
        self.sq = (self.stamps_off - offset) // 8
        self.pq = (self.prefix_off - offset) // 8

    def release(self):
        self.q.release()

    # --- header -----------------------------------------------------------------------

    def get(self, field):
        return self.q[field]

    def put(self, field, value):
        self.q[field] = value

    # --- thread records ------------------------------------------------------------------

    def rec(self, slot, field):
        return self.q[self.tq + slot * (RECORD // 8) + field]

    def set_rec(self, slot, field, value):
        self.q[self.tq + slot * (RECORD // 8) + field] = value

    def turn_addr(self, slot):
        return self.addr + HEADER + slot * RECORD + 8 * R_TURN

    def clear_record(self, slot):
        i = self.tq + slot * (RECORD // 8)
        for f in range(RECORD // 8):
            if f != R_TURN:
                self.q[i + f] = 0

    # --- write stamps (the spin rule) ----------------------------------------------------

    def stamp(self, target, step):
        self.q[self.sq + _hash(target)] = step

    def written_at(self, target):
        return self.q[self.sq + _hash(target)]

    def spinning(self, s, page_size=4096):
        """Is the thread of slot s about to re-read something that nobody
        wrote since it last read it?  (A word's page counts: STORE_BYTES.)"""
        if self.rec(s, R_OP) not in (ops.LOAD, ops.READ):
            return False
        target = self.rec(s, R_TARGET)
        for i in range(READS):
            if self.rec(s, R_READ_TARGETS + i) == target:
                read_at = self.rec(s, R_READ_STEPS + i)
                if self.written_at(target) >= read_at:
                    return False
                if target >> ops.KIND_SHIFT == ops.WORD:
                    v = target & ops.VALUE
                    page = ops.page_target(v >> 32, (v & 0xFFFFFFFF) & ~(page_size - 1))
                    if self.written_at(page) >= read_at:
                        return False
                return True
        return False

    # --- trace and prefix ---------------------------------------------------------------

    def write_step(self, step, words):
        i = self.trq + step * TRACE_WORDS
        self.q[i:i + TRACE_WORDS] = array("q", words)

    def step_words(self, step):
        i = self.trq + step * TRACE_WORDS
        return self.q[i:i + TRACE_WORDS].tolist()

    def prefix(self, step):
        return self.q[self.pq + step]

    def set_prefix(self, choices):
        if len(choices) > self.max_steps:
            raise ValueError(f"a schedule of {len(choices)} steps is longer than max_steps={self.max_steps}")
        self.q[self.pq:self.pq + len(choices)] = array("q", choices)
        self.q[H_PREFIX_LEN] = len(choices)

    # --- sites ------------------------------------------------------------------------

    def add_site(self, text):
        """Append a site; returns its id (offset + 1), or 0 when the area is full."""
        raw = text.encode("utf-8", "replace")[:400]
        need = 2 + len(raw)
        at = atomics.fetch_add(self.addr + 8 * H_SITES, need)
        if at + need > SITES:
            return 0
        o = self.sites_off + at
        _u16.pack_into(self.buf, o, len(raw))
        self.buf[o + 2:o + 2 + len(raw)] = raw
        return at + 1

    def site(self, sid):
        if not sid:
            return ""
        o = self.sites_off + sid - 1
        n = _u16.unpack_from(self.buf, o)[0]
        return bytes(self.buf[o + 2:o + 2 + n]).decode("utf-8", "replace")

    # --- reset between runs (explore reuses a kernel) -------------------------------------

    def reset(self):
        """Forget the run: header's run fields, records, trace (not the sites)."""
        for f in range(H_STEPS, H_ABORT_SLOT + 1):
            if f != H_SITES:
                self.q[f] = 0
        self.q[H_ABORT_SLOT] = -1
        self.q[H_RUN] += 1
        for slot in range(self.n):
            i = self.tq + slot * (RECORD // 8)
            self.q[i:i + RECORD // 8] = array("q", bytes(RECORD))
        self.q[self.sq:self.sq + STAMPS] = array("q", bytes(8 * STAMPS))


def _hash(target):
    return (target * 0x9E3779B97F4A7C15) >> 40 & (STAMPS - 1)
