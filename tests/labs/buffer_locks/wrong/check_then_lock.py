"""Wrong: it waits for space before taking the lock; two senders both see the one free slot."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE, YIELD

IN, OUT, SLOTS, N = 4096, 4104, 4096 + 64, 1


def setup():
    return ALLOCATE_LOCK("buffer")


def send(lock, msg):
    while LOAD(IN) - LOAD(OUT) == N:    # wait without the lock: nobody is kept out
        YIELD()
    ACQUIRE(lock)
    i = LOAD(IN)
    STORE(SLOTS + 8 * (i % N), msg)
    STORE(IN, i + 1)
    RELEASE(lock)


def receive(lock):
    while LOAD(IN) == LOAD(OUT):
        YIELD()
    ACQUIRE(lock)
    o = LOAD(OUT)
    msg = LOAD(SLOTS + 8 * (o % N))
    STORE(OUT, o + 1)
    RELEASE(lock)
    return msg
