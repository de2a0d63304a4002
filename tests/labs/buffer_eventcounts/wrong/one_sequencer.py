"""Wrong: one sequencer for senders and receivers: the numbers of the two sides mix, and someone waits for ever."""

from runtime.textbook import ADVANCE, ALLOCATE_EVENTCOUNT, ALLOCATE_SEQUENCER, AWAIT, LOAD, STORE, TICKET

SLOTS, N = 4096 + 64, 1


def setup():
    return ALLOCATE_EVENTCOUNT("in"), ALLOCATE_EVENTCOUNT("out"), ALLOCATE_SEQUENCER("tickets")


def send(p, msg):
    p_in, p_out, tickets = p
    t = TICKET(tickets)
    AWAIT(p_in, t - 1)
    AWAIT(p_out, t - N)
    STORE(SLOTS + 8 * (t % N), msg)
    ADVANCE(p_in)


def receive(p):
    p_in, p_out, tickets = p
    t = TICKET(tickets)
    AWAIT(p_out, t - 1)
    AWAIT(p_in, t)
    msg = LOAD(SLOTS + 8 * (t % N))
    ADVANCE(p_out)
    return msg
