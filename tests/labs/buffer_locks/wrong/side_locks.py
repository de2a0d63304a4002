"""Wrong: a lock for the senders and one for the receivers (side locks): each side reads the other's counter unlocked."""

from runtime.textbook import ACQUIRE, ALLOCATE_LOCK, LOAD, RELEASE, STORE, YIELD

IN, OUT, SLOTS, N = 4096, 4104, 4096 + 64, 1


def setup():
    return ALLOCATE_LOCK("senders"), ALLOCATE_LOCK("receivers")


def send(locks, msg):
    senders, _ = locks
    ACQUIRE(senders)                    # only senders take it:
    while LOAD(IN) - LOAD(OUT) == N:    # waiting with it
        YIELD()                         # stops no receiver
    i = LOAD(IN)
    STORE(SLOTS + 8 * (i % N), msg)
    STORE(IN, i + 1)
    RELEASE(senders)


def receive(locks):
    _, receivers = locks
    ACQUIRE(receivers)
    while LOAD(IN) == LOAD(OUT):
        YIELD()
    o = LOAD(OUT)
    msg = LOAD(SLOTS + 8 * (o % N))
    STORE(OUT, o + 1)
    RELEASE(receivers)
    return msg
