"""Wrong: the lock guards only the slot, not IN: two senders still read the same IN."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE, YIELD

IN, OUT, SLOTS, N = 4096, 4104, 4096 + 64, 1


def setup():
    return ALLOCATE_LOCK("slots")


def send(lock, msg):
    while LOAD(IN) - LOAD(OUT) == N:
        YIELD()
    i = LOAD(IN)
    ACQUIRE(lock)
    STORE(SLOTS + 8 * (i % N), msg)
    RELEASE(lock)
    STORE(IN, i + 1)


def receive(lock):
    while LOAD(IN) == LOAD(OUT):
        YIELD()
    o = LOAD(OUT)
    ACQUIRE(lock)
    msg = LOAD(SLOTS + 8 * (o % N))
    RELEASE(lock)
    STORE(OUT, o + 1)
    return msg
