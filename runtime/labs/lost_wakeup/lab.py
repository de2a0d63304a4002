"""Lab 5, the lost wake-up (唤醒丢失): check, then sleep -- and the wake-up falls between.

The student's mailbox.py defines setup() (thread 0, once: allocate what the
threads share), put(shared, item) (the producer's side) and get(shared)
(a consumer's side: return one item, sleeping while there is none).  Two
consumers each get one item; one producer puts two.  Every item must be
received exactly once, and nobody may sleep for ever (a lost wake-up: the
run ends with Hang), and no two accesses may race.

Memory: one block "mailbox" mapped by thread 0 at page 1 (addresses 4096 to
8191); how the student's file lays it out is the student's.
"""

from runtime.textbook import ALLOCATE_BLOCK, ALLOCATE_THREAD, MAP

TITLE = "lost wake-up"
TITLE_ZH = "唤醒丢失"
IDEA = "sleep/wake-up by a flag loses wake-ups; READ the eventcount before the test, AWAIT that value"
ORDER = 5
STUDENT_FILE = "mailbox.py"
REQUIRED = ("setup", "put", "get")
KERNEL = dict(max_steps=200)

SENT = (101, 102)               # what the producer puts, in this order
CONSUMERS = 2                   # each gets one item

HINTS = (
    "Run `vos lab check` and read the schedule of the Hang: where was the consumer when put() looked "
    "for a sleeper, and what did the ADVANCE wake? A wake-up for nobody is lost.",
    "AWAIT(wakeup, v) sleeps only while READ(wakeup) is still v, and an ADVANCE is never lost: it is "
    "counted. So which value v must the consumer wait on, and when must it have read it, for a put() "
    "after its test to wake it?",
    "Read the eventcount while you still hold the lock, before you RELEASE it to sleep, and AWAIT that "
    "value. Then put() may ADVANCE every time: an ADVANCE nobody waits for costs nothing. After waking, "
    "test again (`while`): the other consumer may have taken the item.",
)


def _producer(put, shared, items):
    for item in items:
        put(shared, item)


def _consumer(get, shared):
    return get(shared)


def program(student, k):
    MAP(k.address_space, ALLOCATE_BLOCK(4096, name="mailbox"), 1, "rw")
    shared = student.setup()
    consumers = [ALLOCATE_THREAD(_consumer, k.address_space, student.get, shared) for _ in range(CONSUMERS)]
    producer = ALLOCATE_THREAD(_producer, k.address_space, student.put, shared, SENT)
    got = [k.join(t) for t in consumers]        # a consumer asleep for ever: Hang
    k.join(producer)
    if sorted(got) != sorted(SENT):
        missing = [x for x in SENT if x not in got]
        strange = [x for x in got if x not in SENT]
        twice = sorted({x for x in got if got.count(x) > 1})
        why = "; ".join(part for part in (
            missing and f"{', '.join(map(str, missing))} never received",
            twice and f"{', '.join(map(str, twice))} received twice",
            strange and f"get() returned {', '.join(map(str, strange))}, never sent (it took from an empty "
                        f"mailbox)") if part)
        raise AssertionError(f"the consumers received {got}, the producer sent {list(SENT)}: {why}")
