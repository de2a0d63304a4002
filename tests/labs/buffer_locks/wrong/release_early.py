"""Wrong: it releases the lock before advancing IN, so the next sender takes the same slot."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE, YIELD

IN, OUT, SLOTS, N = 4096, 4104, 4096 + 64, 1


def setup():
    return ALLOCATE_LOCK("buffer")


def send(lock, msg):
    ACQUIRE(lock)
    while LOAD(IN) - LOAD(OUT) == N:
        RELEASE(lock)
        YIELD()
        ACQUIRE(lock)
    i = LOAD(IN)
    STORE(SLOTS + 8 * (i % N), msg)
    RELEASE(lock)                       # the message is in: done with the ring
    STORE(IN, i + 1)


def receive(lock):
    ACQUIRE(lock)
    while LOAD(IN) == LOAD(OUT):
        RELEASE(lock)
        YIELD()
        ACQUIRE(lock)
    o = LOAD(OUT)
    msg = LOAD(SLOTS + 8 * (o % N))
    RELEASE(lock)
    STORE(OUT, o + 1)
    return msg
