"""Words for a controlled run: operations, waits, hangs, in the lecture's terms.

Pure functions from the board and the kernel's tables to text; any process.
"""

from ..errors import KernelError
from . import ops
from .board import H_ENABLED, H_STEPS, NOBODY, R_ARG, R_ARG2, R_OP, R_SITE, R_TARGET, R_TID


def name_of_thread(kernel, tid):
    try:
        return kernel.threads.snapshot_one(tid)["name"]
    except KernelError:
        return ""


def describe_target(kernel, op, target, aux=0, block=0):
    """'lock 1 'accounts'', '0x1008 (block 3 + 8)', 'bounded buffer 2', 'thread 4' ..."""
    kind, value = target >> ops.KIND_SHIFT, target & ops.VALUE
    try:
        if kind == ops.LOCK:
            return f"lock {value} {kernel.locks.name_of(value)!r}"
        if kind == ops.EC:
            return f"eventcount {value} {kernel.eventcounts.name_of(value)!r}"
        if kind == ops.SEQ:
            return f"sequencer {value} {kernel.eventcounts.name_of(value)!r}"
    except (KernelError, IndexError, ValueError):
        return f"{['', '', '', 'lock', 'eventcount', 'sequencer'][kind]} {value}"
    if kind == ops.BUF:
        return f"bounded buffer {value}"
    if kind == ops.THREAD:
        name = name_of_thread(kernel, value)
        return f"thread {value}" + (f" ({name})" if name else "")
    if kind in (ops.WORD, ops.PAGE):
        offset = value & 0xFFFFFFFF
        where = f"block {block}" if block else f"block slot {value >> 32}"
        names = getattr(kernel.vm, "block_name", None)
        label = names(block) if names and block else ""
        if label:
            where += f" {label!r}"
        return f"{aux:#x} ({where} + {offset})" if op not in (ops.LOAD_BYTES, ops.STORE_BYTES) \
            else f"{aux:#x} ({where}, page at + {offset})"
    return ""


def describe_op(kernel, op, target, arg=0, aux=0, block=0):
    """One operation as the program wrote it: 'AWAIT(eventcount 1 'ready', 3)'."""
    name = ops.NAMES.get(op, f"op {op}")
    what = describe_target(kernel, op, target, aux, block)
    if op == ops.AWAIT:
        return f"{name}({what}, {arg})"
    if op == ops.STORE:
        return f"{name}({what}, {arg})"
    if op == ops.SEND:
        return f"{name}({what}, {arg} B)"
    if op == ops.SLEEP:
        return f"sleep {arg / 1e9:g} s"
    if op in (ops.START, ops.YIELD, ops.EXIT):
        return name
    return f"{name}({what})" if what else name


def _pending(kernel, board, slot):
    op, target, arg, arg2 = (board.rec(slot, f) for f in (R_OP, R_TARGET, R_ARG, R_ARG2))
    block = 0
    if target >> ops.KIND_SHIFT in (ops.WORD, ops.PAGE):
        block = kernel.vm.block_id_of_slot(target >> 32 & 0xFFFFFF)
    return describe_op(kernel, op, target, arg, arg2, block)


def _why_blocked(kernel, board, slot):
    """Why this pending op cannot run now, in words (empty if it can)."""
    op, target = board.rec(slot, R_OP), board.rec(slot, R_TARGET)
    value = target & ops.VALUE
    try:
        if op == ops.ACQUIRE:
            h = kernel.locks.holder_of(value)
            return f"held by thread {h}" if h is not None else ""
        if op == ops.AWAIT:
            return f"the count is {kernel.eventcounts.count_of(value)}"
        if op == ops.JOIN:
            return "it has not ended"
        if op == ops.SEND:
            return "the buffer is full"
        if op == ops.RECEIVE:
            return "the buffer is empty"
    except KernelError:
        pass
    return ""


def describe_pending(kernel, board, slot):
    what = _pending(kernel, board, slot)
    why = _why_blocked(kernel, board, slot)
    return f"{what}: {why}" if why else what


def describe_threads(kernel, board):
    """'thread 1 (worker) at LOAD(...) lab.py:12; thread 2 ...' for every thread at a gate."""
    parts = []
    for slot in range(board.n):
        if board.rec(slot, R_OP):
            tid = board.rec(slot, R_TID)
            name = name_of_thread(kernel, tid)
            site = board.site(board.rec(slot, R_SITE))
            spin = " (spinning)" if board.spinning(slot) else ""
            parts.append(f"thread {tid}{' (' + name + ')' if name else ''} at {_pending(kernel, board, slot)}"
                         f"{spin}{'  ' + _short(site) if site else ''}")
    return "; ".join(parts) or "no thread"


def hang_message(kernel, board):
    """Hang: no thread can run; name each wait, and the lost wake-ups."""
    lines = ["no thread can run (a hang): every thread that has not ended waits for something nobody "
             "will do:"]
    blocked_targets = set()
    for slot in range(board.n):
        if not board.rec(slot, R_OP):
            continue
        tid = board.rec(slot, R_TID)
        name = name_of_thread(kernel, tid)
        site = board.site(board.rec(slot, R_SITE))
        lines.append(f"  thread {tid}{' (' + name + ')' if name else ''} waits in "
                     f"{describe_pending(kernel, board, slot)}{'  at ' + _short(site) if site else ''}")
        blocked_targets.add(board.rec(slot, R_TARGET))
    for target in sorted(blocked_targets):
        hint = lost_wakeup(kernel, board, target)
        if hint:
            lines.append("  " + hint)
    return "\n".join(lines)


def lost_wakeup(kernel, board, target):
    """'lost wake-up? ADVANCE(eventcount 1) at step 7 (lab.py:14) found no one waiting', or ''."""
    for step in range(board.get(H_STEPS) - 1, -1, -1):
        w = board.step_words(step)
        op, flags = w[1] & 0xFF, w[1] >> 8
        if w[2] == target and op in ops.WAKES:
            if flags & NOBODY:
                site = board.site(w[5])
                return (f"lost wake-up? {describe_op(kernel, op, target)} by thread {w[0]} at step {step}"
                        f"{' (' + _short(site) + ')' if site else ''} found no one waiting")
            return ""
    return ""


def snapshot(kernel, board):
    """Every thread at a gate: its next operation and whether it can run (`vos step`)."""
    enabled = board.get(H_ENABLED)
    out = []
    for slot in range(board.n):
        if board.rec(slot, R_OP):
            tid = board.rec(slot, R_TID)
            out.append(dict(tid=tid, name=name_of_thread(kernel, tid), next=_pending(kernel, board, slot),
                            site=board.site(board.rec(slot, R_SITE)), can_run=bool(enabled >> slot & 1),
                            why=_why_blocked(kernel, board, slot)))
    return out


def _short(site):
    """'/home/me/lab.py:14' -> 'lab.py:14'."""
    return site.rsplit("/", 1)[-1]


__all__ = ["describe_op", "describe_target", "describe_pending", "describe_threads", "hang_message",
           "lost_wakeup", "snapshot"]
