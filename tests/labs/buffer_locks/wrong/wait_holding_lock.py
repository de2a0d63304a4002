"""Wrong: it waits while holding the lock, so nobody can ever make space (or a message)."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE, YIELD

IN, OUT, SLOTS, N = 4096, 4104, 4096 + 64, 1


def setup():
    return ALLOCATE_LOCK("buffer")


def send(lock, msg):
    ACQUIRE(lock)
    while LOAD(IN) - LOAD(OUT) == N:
        YIELD()
    i = LOAD(IN)
    STORE(SLOTS + 8 * (i % N), msg)
    STORE(IN, i + 1)
    RELEASE(lock)


def receive(lock):
    ACQUIRE(lock)
    while LOAD(IN) == LOAD(OUT):
        YIELD()
    o = LOAD(OUT)
    msg = LOAD(SLOTS + 8 * (o % N))
    STORE(OUT, o + 1)
    RELEASE(lock)
    return msg
