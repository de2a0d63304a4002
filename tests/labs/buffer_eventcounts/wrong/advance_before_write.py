"""Wrong: ADVANCE(in) before the message is written: a receiver AWAITing in reads the slot first."""

from runtime.textbook import ADVANCE, ALLOCATE_EVENTCOUNT, ALLOCATE_SEQUENCER, AWAIT, LOAD, STORE, TICKET

SLOTS, N = 4096 + 64, 1


def setup():
    return (ALLOCATE_EVENTCOUNT("in"), ALLOCATE_EVENTCOUNT("out"),
            ALLOCATE_SEQUENCER("senders"), ALLOCATE_SEQUENCER("receivers"))


def send(p, msg):
    p_in, p_out, senders, _ = p
    t = TICKET(senders)
    AWAIT(p_in, t - 1)
    AWAIT(p_out, t - N)
    ADVANCE(p_in)                       # my slot is t % N now, whatever happens
    STORE(SLOTS + 8 * (t % N), msg)


def receive(p):
    p_in, p_out, _, receivers = p
    t = TICKET(receivers)
    AWAIT(p_out, t - 1)
    AWAIT(p_in, t)
    msg = LOAD(SLOTS + 8 * (t % N))
    ADVANCE(p_out)
    return msg
