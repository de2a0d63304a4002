"""Wrong: every SEND and RECEIVE allocates a lock of its own, which no other thread ever takes."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE, YIELD

IN, OUT, SLOTS, N = 4096, 4104, 4096 + 64, 1


def setup():
    return None


def send(shared, msg):
    lock = ALLOCATE_LOCK()
    ACQUIRE(lock)
    while LOAD(IN) - LOAD(OUT) == N:
        RELEASE(lock)
        YIELD()
        ACQUIRE(lock)
    i = LOAD(IN)
    STORE(SLOTS + 8 * (i % N), msg)
    STORE(IN, i + 1)
    RELEASE(lock)


def receive(shared):
    lock = ALLOCATE_LOCK()
    ACQUIRE(lock)
    while LOAD(IN) == LOAD(OUT):
        RELEASE(lock)
        YIELD()
        ACQUIRE(lock)
    o = LOAD(OUT)
    msg = LOAD(SLOTS + 8 * (o % N))
    STORE(OUT, o + 1)
    RELEASE(lock)
    return msg
