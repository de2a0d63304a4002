"""Wrong: it takes a ticket but still uses READ(in) as its slot: two senders READ the same in."""

from runtime.textbook import ADVANCE, ALLOCATE_EVENTCOUNT, ALLOCATE_SEQUENCER, AWAIT, LOAD, READ, STORE, TICKET

SLOTS, N = 4096 + 64, 1


def setup():
    return (ALLOCATE_EVENTCOUNT("in"), ALLOCATE_EVENTCOUNT("out"),
            ALLOCATE_SEQUENCER("senders"), ALLOCATE_SEQUENCER("receivers"))


def send(p, msg):
    p_in, p_out, senders, _ = p
    TICKET(senders)                     # take a number, as the lecture says
    i = READ(p_in)
    AWAIT(p_out, i - N)
    STORE(SLOTS + 8 * (i % N), msg)
    ADVANCE(p_in)


def receive(p):
    p_in, p_out, _, receivers = p
    TICKET(receivers)
    o = READ(p_out)
    AWAIT(p_in, o)
    msg = LOAD(SLOTS + 8 * (o % N))
    ADVANCE(p_out)
    return msg
