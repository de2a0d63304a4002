"""Wrong: the receiver waits for in > t - 1, one message too few: it reads slot t before message t is in it."""

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
    STORE(SLOTS + 8 * (t % N), msg)
    ADVANCE(p_in)


def receive(p):
    p_in, p_out, _, receivers = p
    t = TICKET(receivers)
    AWAIT(p_out, t - 1)
    AWAIT(p_in, t - 1)                  # like the senders' turn
    msg = LOAD(SLOTS + 8 * (t % N))
    ADVANCE(p_out)
    return msg
