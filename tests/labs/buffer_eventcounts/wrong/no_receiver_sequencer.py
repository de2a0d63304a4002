"""Wrong: the senders take tickets, the receivers keep the one-receiver code: two receivers take the same message."""

from runtime.textbook import ADVANCE, ALLOCATE_EVENTCOUNT, ALLOCATE_SEQUENCER, AWAIT, LOAD, READ, STORE, TICKET

SLOTS, N = 4096 + 64, 1


def setup():
    return ALLOCATE_EVENTCOUNT("in"), ALLOCATE_EVENTCOUNT("out"), ALLOCATE_SEQUENCER("senders")


def send(p, msg):
    p_in, p_out, senders = p
    t = TICKET(senders)
    AWAIT(p_in, t - 1)
    AWAIT(p_out, t - N)
    STORE(SLOTS + 8 * (t % N), msg)
    ADVANCE(p_in)


def receive(p):
    p_in, p_out, _ = p
    o = READ(p_out)
    AWAIT(p_in, o)
    msg = LOAD(SLOTS + 8 * (o % N))
    ADVANCE(p_out)
    return msg
