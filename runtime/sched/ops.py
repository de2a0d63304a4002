"""What a step does: the operations at yield points, and which pairs conflict.

A controlled run (sched/__init__.py) is a sequence of steps; each step is one
thread executing one operation of the textbook interface.  An operation is
an op code and a *target*: the shared object it touches, as one int

    kind << 56 | value

    kind     value
    WORD     block slot << 32 | byte offset of the 8-byte word   (LOAD, STORE, RSM)
    PAGE     block slot << 32 | byte offset of the page          (LOAD_BYTES, STORE_BYTES)
    LOCK     lock id
    EC       eventcount id
    SEQ      sequencer id
    BUF      bounded buffer id
    THREAD   tid                                                 (join, destroy, exit)
    NONE     0                                                   (start, YIELD, sleep)
    ALLOC    which table: one of the ALLOC_* ops                 (ids are handed out in order)

so that two threads that reach the same word through different virtual
addresses (a block mapped in two address spaces) name the same target.

Conflicts.  Two steps of different threads are *dependent* when swapping
them can change what happens: they touch the same target and at least one
of them changes it.  Everything else commutes, and the explorer's sleep sets
(explore.py) never try both orders of independent steps.
"""

START, EXIT, YIELD, SLEEP, SPAWN, JOIN, DESTROY = 1, 2, 3, 4, 5, 6, 7
LOAD, STORE, RSM, LOAD_BYTES, STORE_BYTES = 10, 11, 12, 13, 14
ALLOC_LOCK, ACQUIRE, RELEASE, ACQUIRE_NOWAIT = 20, 21, 22, 23
ALLOC_EC, ADVANCE, READ, AWAIT, ALLOC_SEQ, TICKET = 30, 31, 32, 33, 34, 35
ALLOC_BUF, SEND, RECEIVE, DEALLOC_BUF, CLOSE, SEND_NOWAIT, RECEIVE_NOWAIT = 40, 41, 42, 43, 44, 45, 46

NAMES = {START: "start", EXIT: "exit", YIELD: "YIELD", SLEEP: "sleep", SPAWN: "ALLOCATE_THREAD", JOIN: "join",
         DESTROY: "DESTROY_THREAD", LOAD: "LOAD", STORE: "STORE", RSM: "RSM", LOAD_BYTES: "LOAD_BYTES",
         STORE_BYTES: "STORE_BYTES", ALLOC_LOCK: "ALLOCATE_LOCK", ACQUIRE: "ACQUIRE", RELEASE: "RELEASE",
         ALLOC_EC: "ALLOCATE_EVENTCOUNT", ADVANCE: "ADVANCE", READ: "READ", AWAIT: "AWAIT",
         ALLOC_SEQ: "ALLOCATE_SEQUENCER", TICKET: "TICKET", ALLOC_BUF: "ALLOCATE_BOUNDED_BUFFER",
         SEND: "SEND", RECEIVE: "RECEIVE", DEALLOC_BUF: "DEALLOCATE_BOUNDED_BUFFER", CLOSE: "close",
         ACQUIRE_NOWAIT: "acquire_nowait", SEND_NOWAIT: "send_nowait", RECEIVE_NOWAIT: "receive_nowait"}
CODES = {name: code for code, name in NAMES.items()}

# ops that may have to wait (a thread whose pending op is one of these and cannot proceed is blocked)
BLOCKING = frozenset({JOIN, ACQUIRE, AWAIT, SEND, RECEIVE})
# ops after which a thread that waits on the same target may proceed (a "wake-up"), for the
# hang report's "lost wake-up?" note: the one that found nobody waiting is remembered
WAKES = frozenset({RELEASE, ADVANCE, SEND, SEND_NOWAIT})
WRITES = frozenset({STORE, RSM, STORE_BYTES})
READS = frozenset({LOAD, LOAD_BYTES})

NONE, WORD, PAGE, LOCK, EC, SEQ, BUF, THREAD, ALLOC = range(9)
KIND_SHIFT = 56
VALUE = (1 << KIND_SHIFT) - 1


def target(kind, value):
    return kind << KIND_SHIFT | value


def kind_of(t):
    return t >> KIND_SHIFT


def word_target(block_slot, offset):
    return WORD << KIND_SHIFT | block_slot << 32 | offset & ~7


def page_target(block_slot, page_offset):
    return PAGE << KIND_SHIFT | block_slot << 32 | page_offset


def _mem_overlap(a, b, page_size):
    """Do two memory targets (WORD or PAGE) overlap?"""
    ka, kb = a >> KIND_SHIFT, b >> KIND_SHIFT
    va, vb = a & VALUE, b & VALUE
    if va >> 32 != vb >> 32:
        return False                      # different blocks
    oa, ob = va & 0xFFFFFFFF, vb & 0xFFFFFFFF
    if ka == PAGE:
        oa -= oa % page_size
        ob -= ob % page_size
    elif kb == PAGE:
        oa -= oa % page_size
        ob -= ob % page_size
    return oa == ob


def dependent(op_a, t_a, op_b, t_b, page_size=4096):
    """Can the order of these two steps (of different threads) matter?"""
    if op_a in (START, YIELD, SLEEP) or op_b in (START, YIELD, SLEEP):
        return False
    if op_a in (EXIT, DESTROY) or op_b in (EXIT, DESTROY):
        return True                       # an end frees locks, closes ends, wakes joiners: assume it matters
    ka, kb = t_a >> KIND_SHIFT, t_b >> KIND_SHIFT
    if ka in (WORD, PAGE) and kb in (WORD, PAGE):
        if op_a in READS and op_b in READS:
            return False
        return _mem_overlap(t_a, t_b, page_size)
    if t_a != t_b:
        return False
    if ka == EC:                          # READ and AWAIT commute with each other, not with ADVANCE
        return op_a == ADVANCE or op_b == ADVANCE
    return True


__all__ = ["NAMES", "CODES", "BLOCKING", "WAKES", "WRITES", "READS", "target", "kind_of", "word_target",
           "page_target", "dependent"]
