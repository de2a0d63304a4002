"""Lab 4, the bounded buffer with eventcounts (有界缓冲区与事件计数).

Read handout.md first.  SEND and RECEIVE on a ring of N slots, where the
numbers of messages sent (in) and received (out) are eventcounts: AWAIT
waits without a lock and without spinning.  As written they are right for
ONE sender and ONE receiver; the harness runs two of each at once, and
then messages get lost.  Make them right for many, still without a lock.
Check it with `vos lab check buffer_eventcounts buffer.py`.
"""

from runtime.textbook import *  # noqa: F401,F403 - the lecture's calls: AWAIT, ADVANCE, READ, TICKET, ...

SLOTS = 4096 + 64       # N message words; message i lives in slot i % N
N = 1                   # the harness fills a ring of this size: keep it


def setup():
    """Thread 0 runs this once, before the threads start.  Allocate what
    the threads share and return it: every send() and receive() gets it."""
    return ALLOCATE_EVENTCOUNT("in"), ALLOCATE_EVENTCOUNT("out")


def send(shared, msg):
    """SEND: 插入数据，满则等待 (put msg in; wait while the ring is full)."""
    p_in, p_out = shared
    i = READ(p_in)                      # my message's number
    AWAIT(p_out, i - N)                 # until out > i - N: a slot is free
    STORE(SLOTS + 8 * (i % N), msg)
    ADVANCE(p_in)                       # in + 1: the message is there


def receive(shared):
    """RECEIVE: 读取数据，空则等待 (take a message out; wait while empty)."""
    p_in, p_out = shared
    o = READ(p_out)                     # the number of the message to take
    AWAIT(p_in, o)                      # until in > o: message o is there
    msg = LOAD(SLOTS + 8 * (o % N))
    ADVANCE(p_out)                      # out + 1: its slot is free again
    return msg
