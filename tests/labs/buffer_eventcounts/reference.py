"""The reference: S&K 5.6's SEND / RECEIVE, a sequencer for each side and
eventcounts in and out; no lock."""

from runtime.textbook import ADVANCE, ALLOCATE_EVENTCOUNT, ALLOCATE_SEQUENCER, AWAIT, LOAD, STORE, TICKET

SLOTS, N = 4096 + 64, 1


def setup():
    return (ALLOCATE_EVENTCOUNT("in"), ALLOCATE_EVENTCOUNT("out"),
            ALLOCATE_SEQUENCER("senders"), ALLOCATE_SEQUENCER("receivers"))


def send(p, msg):
    p_in, p_out, senders, _ = p
    t = TICKET(senders)
    AWAIT(p_in, t - 1)                  # my turn: the t senders before me are done
    AWAIT(p_out, t - N)                 # a free slot: message t - N was received
    STORE(SLOTS + 8 * (t % N), msg)
    ADVANCE(p_in)


def receive(p):
    p_in, p_out, _, receivers = p
    t = TICKET(receivers)
    AWAIT(p_out, t - 1)                 # my turn: the t receivers before me are done
    AWAIT(p_in, t)                      # message t is there
    msg = LOAD(SLOTS + 8 * (t % N))
    ADVANCE(p_out)
    return msg
