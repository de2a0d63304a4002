"""Lab 3, the bounded buffer with locks (有界缓冲区与锁): SEND / RECEIVE
for many senders and many receivers, from LOAD / STORE and one lock.

The student's buffer.py defines setup() (thread 0, once: allocate what the
threads share), send(shared, msg) and receive(shared) on the book's ring
in the block mapped at page 1:

    4096  IN        messages sent so far     (the head, 头)
    4104  OUT       messages received so far (the tail, 尾)
    4160  SLOTS     N message words; message i lives in slot i mod N

Two sender threads (one sends 11, the other 21) and thread 0, which
receives both, run at once on a ring of N = 1 slot: "full" and "empty"
both happen, and the two senders meet at the head.  Afterwards the
messages received, as a multiset, must be the ones sent: nothing lost,
nothing doubled, no empty slot read; and no two accesses to the ring may
race.  The counters must say so too: IN = OUT = the number of messages (a
buffer kept anywhere else is not this ring).

Why so small.  Every turn of a waiting loop (RELEASE, YIELD, ACQUIRE, two
LOADs) is five more places to switch, and the search at 2 preemptions
grows with them: with thread 0 as the receiver the reference's is 513
runs; with a receiver thread of its own, 4,422; with two receiver threads,
7,243 at 1 preemption alone and more than 40,000 at 2.
"""

from collections import Counter

from runtime.textbook import ALLOCATE_BLOCK, ALLOCATE_THREAD, LOAD, MAP

TITLE = "bounded buffer with locks"
TITLE_ZH = "有界缓冲区与锁"
IDEA = "SEND / RECEIVE for many senders: one lock, released while waiting"
ORDER = 3
STUDENT_FILE = "buffer.py"
REQUIRED = ("setup", "send", "receive")
KERNEL = dict(max_steps=200)      # the reference's longest run: 64 steps

IN, OUT, SLOTS, N = 4096, 4104, 4096 + 64, 1
SENDERS = ((11,), (21,))            # the messages of each sender thread
RECEIVED = 2                        # thread 0 receives them all

HINTS = (
    "in = LOAD(IN); STORE(SLOTS + 8 * (in % N), msg); STORE(IN, in + 1) is three steps. With two "
    "senders, what happens if the second runs between the first one's LOAD and its STOREs? Read the "
    "trace `vos lab check` prints, one column per thread.",
    "One lock, allocated in setup() and shared by every sender and every receiver, makes the whole "
    "SEND (test for space, write the slot, advance IN) and the whole RECEIVE indivisible. But a "
    "sender that waits for space while holding the lock stops the receiver that would make space.",
    "Inside ACQUIRE ... RELEASE, wait in a loop that gives the lock back: while the ring is full, "
    "RELEASE, YIELD, ACQUIRE, and test again (while, not if: someone else may have taken the space).",
)


def _sender(send, shared, messages):
    for m in messages:
        send(shared, m)


def program(student, k):
    assert getattr(student, "N", N) == N, f"keep N = {N} in {STUDENT_FILE}: the harness fills a ring of {N}"
    MAP(k.address_space, ALLOCATE_BLOCK(4096, name="ring"), 1, "rw")
    shared = student.setup()
    senders = [ALLOCATE_THREAD(_sender, k.address_space, student.send, shared, ms) for ms in SENDERS]
    got = [student.receive(shared) for _ in range(RECEIVED)]     # thread 0 is the receiver
    for t in senders:
        k.join(t)
    sent = [m for ms in SENDERS for m in ms]
    check(got, sent)
    head, tail = LOAD(IN), LOAD(OUT)
    assert head == tail == len(sent), (f"the ring says in = {head}, out = {tail} after {len(sent)} messages: "
                                       f"every SEND must advance IN (头) and every RECEIVE OUT (尾), the "
                                       f"words at {IN} and {OUT}")


def check(got, sent):
    """The received multiset is the sent one, or an AssertionError that says what went wrong."""
    received, expected = Counter(got), Counter(sent)
    if received == expected:
        return
    problems = []
    lost = sorted((expected - received).elements())
    extra = sorted((received - expected).elements())
    if lost:
        problems.append(f"{', '.join(map(str, lost))} lost")
    doubled = [m for m in extra if m in expected]
    if doubled:
        problems.append(f"{', '.join(map(str, doubled))} received twice")
    if 0 in extra:
        problems.append("0 read from a slot no message was written to yet")
    others = [m for m in extra if m not in expected and m != 0]
    if others:
        problems.append(f"{', '.join(map(str, others))} never sent")
    raise AssertionError(f"received {sorted(got)}, sent {sorted(sent)}: {'; '.join(problems)}")
