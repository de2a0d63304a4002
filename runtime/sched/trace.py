"""A controlled run as data: its steps, and the token that replays it.

`Kernel.trace()` reads the board's trace into Steps.  A Step holds no time
and no process id, so the traces of two runs of the same program, schedule
and seed compare equal, and so do their `str()`.

A token, "vos1:" + base64url(zlib(json)), replays a run:

    c   the tid chosen at each step, run-length encoded: [[tid, count], ...]
    f   {file name: hash} of the program's files the run went through; a
        replay refuses, with ReplayMismatch, a file whose content changed
    o   the Kernel options that shape the run (page_size, max_threads, ...)
    p   "FILE:FUNCTION" of the program when known (`vos replay TOKEN`)
"""

import base64
import dataclasses
import hashlib
import json
import linecache
import os
import zlib

from ..errors import ReplayMismatch
from . import ops
from .board import FAILED, H_RUN, H_STEPS, NOBODY, ONGOING, PREEMPTED, TIMEOUT, YIELDED
from .describe import describe_op

PREFIX = "vos1:"


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a controlled run."""
    index: int
    tid: int
    op: str                  # "LOAD", "ACQUIRE", ...
    target: str              # "0x1008 (block 3 + 8)", "lock 1 'accounts'", ...
    value: int               # read, written or returned (0 when the op has none)
    preempted: bool          # the thread that ran before could have gone on
    site: str                # "lab.py:14": the program's line
    line: str                # that line's source text
    what: str                # the operation as written: "STORE(0x1008 (block 3 + 8), 5)"
    nobody_woken: bool = False
    timed_out: bool = False
    failed: bool = False
    enabled: tuple = ()      # tids that could have run instead (the explorer's)
    sleep: tuple = ()        # tids in the sleep set

    def __str__(self):
        mark = "  (preemption)" if self.preempted else ""
        value = f" -> {self.value}" if self.op in ("LOAD", "RSM", "READ", "TICKET") else ""
        tail = " (timed out)" if self.timed_out else " (raised)" if self.failed else ""
        return f"step {self.index:>3}  thread {self.tid}  {self.what}{value}{tail}  {self.site}{mark}"


def read_trace(kernel):
    """The Steps of the current (or last) run of a controlled kernel."""
    b = kernel.sched
    run = b.get(H_RUN)
    steps = []
    slot_tid = {}
    for i in range(b.get(H_STEPS)):
        w = b.step_words(i)
        if w[9] != run:
            break                               # decided, never executed (the run stopped there)
        tid, op, flags = w[0], w[1] & 0xFF, w[1] >> 8
        slot_tid[tid % kernel.config.max_threads] = tid
        site = b.site(w[5])
        steps.append((i, tid, op, flags, w[2], w[3], w[4], site, w[6], w[7], w[8]))
    out = []
    for i, tid, op, flags, target, aux, value, site, enabled, sleep, block in steps:
        path, _, line = site.rpartition(":")
        text = linecache.getline(path, int(line)).strip() if line.isdigit() else ""
        arg = value if op == ops.STORE else aux
        out.append(Step(i, tid, ops.NAMES.get(op, str(op)), _target(kernel, op, target, aux, block), value,
                        bool(flags & PREEMPTED), f"{os.path.basename(path)}:{line}" if site else "", text,
                        describe_op(kernel, op, target, arg, aux, block), bool(flags & NOBODY),
                        bool(flags & TIMEOUT), bool(flags & FAILED), _tids(enabled, slot_tid),
                        _tids(sleep, slot_tid)))
    return out


def read_raw(kernel):
    """The explorer's view of the run: (tid, enabled tids, sleep tids,
    preempted, costly, default) per recorded step -- costly: choosing another
    than `default` there is a preemption; cheap (no words)."""
    b = kernel.sched
    run = b.get(H_RUN)
    n = kernel.config.max_threads
    out = []
    slot_tid = {}
    for i in range(b.get(H_STEPS)):
        w = b.step_words(i)
        if w[9] != run:
            break
        slot_tid[w[0] % n] = w[0]
        out.append((w[0], w[6], w[7], bool((w[1] >> 8) & PREEMPTED), bool((w[1] >> 8) & (ONGOING | YIELDED)),
                    w[10]))
    return [(tid, _tids(en, slot_tid), _tids(sl, slot_tid), pre, costly, default)
            for tid, en, sl, pre, costly, default in out]


def _target(kernel, op, target, aux, block):
    from .describe import describe_target
    return describe_target(kernel, op, target, aux, block)


def _tids(mask, slot_tid):
    out = []
    while mask:
        low = mask & -mask                    # the lowest set bit
        s = low.bit_length() - 1
        out.append(slot_tid.get(s, s))
        mask ^= low
    return tuple(out)


def choices(kernel):
    """The tid that ran each recorded step of the run."""
    return [s.tid for s in read_trace(kernel)]


# --- tokens ------------------------------------------------------------------------------

def file_hash(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha1(f.read()).hexdigest()[:12]
    except OSError:
        return ""


def make_token(chosen, files=(), options=None, program=None):
    """A token for a run that chose `chosen` (tids, one per step)."""
    rle = []
    for tid in chosen:
        if rle and rle[-1][0] == tid:
            rle[-1][1] += 1
        else:
            rle.append([tid, 1])
    doc = {"c": rle, "f": {os.path.basename(p): file_hash(p) for p in sorted(set(files)) if p}}
    if options:
        doc["o"] = options
    if program:
        doc["p"] = program
    raw = zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 9)
    return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def kernel_token(kernel):
    """The token of a controlled kernel's current run: the tids chosen, the
    files its steps went through, the options that shape the machine (those
    not at their default) and the program when known."""
    from ..config import PART_SETTINGS
    from . import DEFAULT_MAX_STEPS
    b = kernel.sched
    chosen = [step.tid for step in read_trace(kernel)]
    files = set()
    for i in range(len(chosen)):
        site = b.site(b.step_words(i)[5])
        if site:
            files.add(site.rpartition(":")[0])
    c = kernel.config
    defaults = {"page_size": 4096, "frames": 256, "max_threads": 64, "max_steps": DEFAULT_MAX_STEPS}
    options = {k: v for k, v in (("page_size", c.page_size), ("frames", c.frames),
                                 ("max_threads", c.max_threads), ("max_steps", c.get("max_steps")))
               if v != defaults[k]}
    options.update((k, v) for k, v in c.extra                 # the machine's shape, for `vos replay`
                   if k not in ("schedule", "max_steps", "pool") and v != PART_SETTINGS[k][0])
    return make_token(chosen, files, options, getattr(kernel, "program", None))


def read_token(token):
    """(choices, files, options, program) of a token; ValueError if it is not one."""
    if not isinstance(token, str) or not token.startswith(PREFIX):
        raise ValueError(f"a replay token starts with {PREFIX!r}, not {str(token)[:20]!r}")
    body = token[len(PREFIX):].strip()
    try:
        doc = json.loads(zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
        chosen = [tid for tid, n in doc["c"] for _ in range(n)]
    except (ValueError, KeyError, TypeError, zlib.error) as e:
        raise ValueError(f"this replay token is damaged (cut short when copied?): {e}") from None
    return chosen, doc.get("f", {}), doc.get("o", {}), doc.get("p")


class FileCheck:
    """A replay's refusal of a changed program: called with each file the run
    reaches (its first site there), in every thread's process."""

    def __init__(self, expected):
        self.expected = dict(expected)
        self.seen = set()

    def __call__(self, path):
        name = os.path.basename(path)
        if name in self.seen or name not in self.expected:
            return
        self.seen.add(name)
        now = file_hash(path)
        if now != self.expected[name]:
            raise ReplayMismatch(f"{name} changed since the token was made (its content hash was "
                                 f"{self.expected[name]}, it is {now}): a token replays the program it was "
                                 "made from; explore again to get a token for this one")
