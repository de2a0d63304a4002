"""Lab 7, the shared block (共享块): two address spaces that share one block.

Virtual memory isolates by indirection (虚拟内存：以间接实现隔离): every
thread resolves its addresses in its own address space (地址空间), so two
threads in different spaces share nothing -- except a block MAPped into
both.  The student's mailbox.py defines

    setup()                    thread 0, once: create the writer's and the
                               reader's address spaces, allocate the mailbox
                               block, MAP it at page 1 of both ("rw" for the
                               writer, "r" for the reader), allocate what the
                               handshake needs; return (writer's space,
                               reader's space, shared)
    writer(shared, messages)   runs in the writer's space: puts the messages
                               one after another into the mailbox
    reader(shared, count)      runs in the reader's space: returns the count
                               messages, in order

The harness checks the isolation first, with a probe thread in the reader's
space (a LOAD, then a STORE of the same word back: SegmentationFault, then
ProtectionFault, tell how page 1 is mapped there), then runs the writer and
the reader at the same time and compares what was received with what was
sent.  The race detector (on in every run) fails a handshake through plain
words: only an eventcount (or a lock) orders the writer's STORE before the
reader's LOAD.
"""

from runtime.errors import ProtectionFault, SegmentationFault, ThreadFailed
from runtime.textbook import ADVANCE, ALLOCATE_EVENTCOUNT, ALLOCATE_THREAD, AWAIT, LOAD, READ, STORE

TITLE = "shared block"
TITLE_ZH = "共享块"
IDEA = "isolation by indirection: two address spaces share one block, read-only for the reader"
ORDER = 7
STUDENT_FILE = "mailbox.py"
REQUIRED = ("setup", "writer", "reader")
KERNEL = dict(max_steps=200)       # the longest run of the reference: 43 steps

MAILBOX = 4096          # page 1 of both address spaces: the mailbox block
MESSAGES = [101, 202, 303]

FAULTS = {"ProtectionFault": ProtectionFault, "SegmentationFault": SegmentationFault}
ADVICE = {              # what a thread's fault means here, after the kernel's own message
    ("reader", "ProtectionFault"): ". The reader may only read the mailbox: it can tell the writer \"taken\" "
                                   "through an eventcount, which lives in the kernel, outside the block",
    ("writer", "ProtectionFault"): ". The writer's mapping of the mailbox must be \"rw\"",
    ("reader", "SegmentationFault"): ". A thread sees only the pages MAPped into its own address space "
                                     "(the mailbox: page 1 of the reader's)",
    ("writer", "SegmentationFault"): ". A thread sees only the pages MAPped into its own address space "
                                     "(the mailbox: page 1 of the writer's)",
}

HINTS = (
    "Two threads in one address space share all of its memory. CREATE_ADDRESS_SPACE gives each "
    "thread a memory of its own; MAP decides which block each one sees at page 1, and with what "
    "permission (权限).",
    "The reader's mapping is \"r\": it cannot write a flag in the mailbox. An eventcount lives in "
    "the kernel, not in the block: the writer can ADVANCE one when a message is there, the reader "
    "another when it has taken it.",
    "AWAIT(ec, v) returns once READ(ec) > v (not >=). Count the messages from 0: before it writes "
    "message i, how many must the reader have taken? Before it reads message i, how many must have "
    "been written? And ADVANCE only after the STORE it announces.",
)


def _role(procedure, ended, any_ended, *args):
    """A thread of the lab: the student's writer or reader, then two ADVANCEs
    that tell thread 0 it has ended (returned or failed)."""
    try:
        return procedure(*args)
    finally:
        ADVANCE(ended)
        ADVANCE(any_ended)


def _probe(vaddr):
    """Runs in the address space being checked: how is vaddr mapped here?"""
    try:
        word = LOAD(vaddr)
    except SegmentationFault:
        return "unmapped"
    try:
        STORE(vaddr, word)              # the same value back: harmless if it is allowed
    except ProtectionFault:
        return "read-only"
    return "writable"


def _isolation(k, writer_space, reader_space):
    """The reader's mapping, checked through the interface before anything
    runs.  (The writer's shows when the writer runs: its first STORE faults.)"""
    assert writer_space != reader_space, (
        f"the writer and the reader both run in address space {writer_space}: they share all of its memory, "
        f"and a bug in one can wreck the other's. Give each its own (CREATE_ADDRESS_SPACE) and share "
        f"only the mailbox block")
    where = k.join(ALLOCATE_THREAD(_probe, reader_space, MAILBOX))
    assert where != "unmapped", (
        f"nothing is mapped at page 1 of the reader's address space ({reader_space}): its LOAD({MAILBOX}) "
        f"raised SegmentationFault. MAP the mailbox block there")
    assert where == "read-only", (
        f"a thread in the reader's address space could STORE into the mailbox at {MAILBOX}: map it \"r\" "
        f"there (权限 permission), so that the reader cannot change what the writer wrote")


def program(student, k):
    got = student.setup()
    ok = isinstance(got, tuple) and len(got) == 3 and all(isinstance(s, int) for s in got[:2])
    assert ok, (f"setup() returned {got!r}: it must return (the writer's address space, the reader's "
                f"address space, what the threads need)")
    writer_space, reader_space, shared = got
    _isolation(k, writer_space, reader_space)
    ended = {name: ALLOCATE_EVENTCOUNT(f"{name} ended") for name in ("any", "reader", "writer")}
    tids = {"reader": ALLOCATE_THREAD(_role, reader_space, student.reader, ended["reader"], ended["any"],
                                      shared, len(MESSAGES)),
            "writer": ALLOCATE_THREAD(_role, writer_space, student.writer, ended["writer"], ended["any"],
                                      shared, list(MESSAGES))}
    AWAIT(ended["any"], 0)                  # one of them has ended: join it first -- if it failed, the other
    first = "reader" if READ(ended["reader"]) > 0 else "writer"        # may wait for it for ever
    results = {}
    for name in (first, "writer" if first == "reader" else "reader"):
        try:
            results[name] = k.join(tids[name])
        except ThreadFailed as e:
            error = FAULTS.get(e.exc_type, AssertionError)           # the kind the grader shows
            raise error(f"the {name} (thread {tids[name]}) failed with {e.exc_type or e.reason}: {e.message}"
                        + ADVICE.get((name, e.exc_type), "")) from None
    received = results["reader"]
    if received != MESSAGES and isinstance(received, list) and received and not any(received):
        raise AssertionError(f"the reader received {received}, the writer sent {MESSAGES}: the reader never "
                             f"saw a message. Does its page 1 show the same block as the writer's?")
    assert received == MESSAGES, (f"the reader received {received!r}, the writer sent {MESSAGES}: a message "
                                  f"was lost, doubled, or read before it was written")
