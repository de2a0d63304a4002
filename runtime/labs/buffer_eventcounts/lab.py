"""Lab 4, the bounded buffer with eventcounts (有界缓冲区与事件计数): SEND /
RECEIVE for many senders and many receivers, with no lock at all.

The student's buffer.py defines setup() (thread 0, once: allocate the
eventcounts and sequencers), send(shared, msg) and receive(shared) on a
ring of N message words in the block mapped at page 1 (message i lives in
slot i mod N, at SLOTS + 8 * (i % N)).  The counts of messages sent and
received are eventcounts (in, out), not memory words.

Two senders (11 and 21) and two receivers (thread 0 and one thread, one
message each) run at once on a ring of N = 1 slot: both "full" and "empty"
happen, two senders meet at the head and two receivers at the tail.
Afterwards the messages received, as a multiset, must be the ones sent:
nothing lost, nothing doubled, no empty slot read; and no two accesses to
the ring may race (an eventcount orders what one thread did before its
ADVANCE before what another does after its AWAIT).  The eventcounts must
say so too: READ(in) = READ(out) = the number of messages; and no thread
may ACQUIRE a lock (the trace is searched for one).

Thread 0 is one of the receivers to keep the search small: the
reference's search at 2 preemptions is 490 runs this way, 1,365 with
two receiver threads.  AWAIT blocks, so nobody spins and two receivers can
wait at once (lab 3 cannot afford that).
"""

from runtime.labs.buffer_locks.lab import check
from runtime.textbook import ALLOCATE_BLOCK, ALLOCATE_THREAD, MAP, READ

TITLE = "bounded buffer with eventcounts"
TITLE_ZH = "有界缓冲区与事件计数"
IDEA = "SEND / RECEIVE for many senders without a lock: TICKET, AWAIT, ADVANCE"
ORDER = 4
STUDENT_FILE = "buffer.py"
REQUIRED = ("setup", "send", "receive")
KERNEL = dict(max_steps=150)      # the reference's longest run: 38 steps

SLOTS, N = 4096 + 64, 1
SENDERS = ((11,), (21,))            # the messages of each sender thread
RECEIVERS = (1, 1)                  # how many messages each receiver takes: thread 0, then a thread

HINTS = (
    "i = READ(in) names the slot a sender will write, but two senders can READ the same value "
    "before either ADVANCEs. Which messages end up in which slot? Read the trace `vos lab check` prints.",
    "A sequencer (序列器) hands out each number exactly once: TICKET gives every sender a message "
    "number of its own. Then the senders must still advance `in` in ticket order -- and the "
    "receivers need the same for `out`, with a sequencer of their own.",
    "AWAIT(ec, v) returns once READ(ec) > v. For the sender with ticket t: how many senders must "
    "have ADVANCEd in before its turn comes? Which message must have been received before slot "
    "t % N is free? Write each as 'count > value'. The receiver with ticket t is the mirror image.",
)


def _sender(send, shared, messages):
    for m in messages:
        send(shared, m)


def _receiver(receive, shared, count):
    return [receive(shared) for _ in range(count)]


def program(student, k):
    assert getattr(student, "N", N) == N, f"keep N = {N} in {STUDENT_FILE}: the harness fills a ring of {N}"
    MAP(k.address_space, ALLOCATE_BLOCK(4096, name="ring"), 1, "rw")
    shared = student.setup()
    mine, *others = RECEIVERS
    threads = [ALLOCATE_THREAD(_sender, k.address_space, student.send, shared, ms) for ms in SENDERS]
    receivers = [ALLOCATE_THREAD(_receiver, k.address_space, student.receive, shared, n) for n in others]
    got = _receiver(student.receive, shared, mine)              # thread 0 is a receiver too
    for t in threads:
        k.join(t)
    got += [m for t in receivers for m in k.join(t)]
    sent = [m for ms in SENDERS for m in ms]
    check(got, sent)
    assert isinstance(shared, (tuple, list)) and len(shared) >= 2, \
        f"setup() must return (in, out, ...): the eventcounts in and out first, not {shared!r}"
    head, tail = READ(shared[0]), READ(shared[1])
    assert head == tail == len(sent), (f"READ(in) = {head}, READ(out) = {tail} after {len(sent)} messages: "
                                       f"every SEND must ADVANCE in (头) and every RECEIVE out (尾)")
    locked = list(dict.fromkeys(s.site for s in k.trace() if s.op == "ACQUIRE"))
    assert not locked, (f"ACQUIRE at {', '.join(locked)}: this lab is the buffer without a lock -- "
                        f"TICKET and AWAIT order the threads instead")
