"""Lab 3, the bounded buffer with locks (有界缓冲区与锁).

Read handout.md first.  The book's SEND and RECEIVE on a ring of N slots in
shared memory.  They are right for ONE sender and ONE receiver; the harness
runs two senders at once, and then messages get lost.  Make them right for
many senders and many receivers.  Check it with
`vos lab check buffer_locks buffer.py`.
"""

from runtime.textbook import *  # noqa: F401,F403 - the lecture's calls: LOAD, STORE, YIELD, ALLOCATE_LOCK, ...

IN = 4096               # the head (头): how many messages were ever sent
OUT = 4104              # the tail (尾): how many messages were ever received
SLOTS = 4096 + 64       # N message words; message i lives in slot i % N
N = 1                   # the harness fills a ring of this size: keep it


def setup():
    """Thread 0 runs this once, before the threads start.  Allocate what
    the threads share and return it: every send() and receive() gets it."""
    return None


def send(shared, msg):
    """SEND: 插入数据，满则等待 (put msg in; wait while the ring is full)."""
    while LOAD(IN) - LOAD(OUT) == N:        # 头 - 尾 = N: full, wait
        YIELD()
    i = LOAD(IN)
    STORE(SLOTS + 8 * (i % N), msg)
    STORE(IN, i + 1)


def receive(shared):
    """RECEIVE: 读取数据，空则等待 (take a message out; wait while empty)."""
    while LOAD(IN) == LOAD(OUT):            # 头 = 尾: empty, wait
        YIELD()
    o = LOAD(OUT)
    msg = LOAD(SLOTS + 8 * (o % N))
    STORE(OUT, o + 1)
    return msg
