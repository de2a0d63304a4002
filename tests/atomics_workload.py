"""A small multi-VP workload over every kind of atomic, run as its own process
(test_atomics runs it with libatomic hidden):

    python tests/atomics_workload.py

Boots a kernel on two processors; three VPs each, N times: ACQUIRE a lock,
add one to a counter in shared memory with LOAD and STORE, RELEASE; take a
TICKET; SEND (its id, i) into a bounded buffer that thread 0 drains.  Then
each RSMs one word they all share (exactly one may read 0) and ADVANCEs an
eventcount that thread 0 AWAITs.  Prints one JSON line with the atomics
implementation, whether libatomic is mapped into this process, and each
result next to what it must be."""

import json

from runtime import Kernel, atomics
from runtime.textbook import (ACQUIRE, ADVANCE, ALLOCATE_BLOCK, ALLOCATE_BOUNDED_BUFFER, ALLOCATE_EVENTCOUNT,
                              ALLOCATE_LOCK, ALLOCATE_SEQUENCER, ALLOCATE_THREAD, AWAIT, LOAD, MAP, RECEIVE,
                              RELEASE, RSM, SEND, STORE, TICKET)

THREADS, N, PAGE = 3, 300, 1


def worker(me, base, lock, seq, buf, ready, done):
    ADVANCE(ready)
    AWAIT(ready, THREADS - 1)          # start together, so that they contend
    tickets = []
    for i in range(N):
        ACQUIRE(lock)
        STORE(base, LOAD(base) + 1)
        RELEASE(lock)
        tickets.append(TICKET(seq))
        SEND(buf, (me, i))
    won = RSM(base + 8) == 0
    ADVANCE(done)
    return tickets, won


def main():
    with Kernel(processors=2) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(k.config.page_size), PAGE, "rw")
        base = PAGE * k.config.page_size
        lock, seq, buf = ALLOCATE_LOCK("workload"), ALLOCATE_SEQUENCER(), ALLOCATE_BOUNDED_BUFFER(16)
        ready, done = ALLOCATE_EVENTCOUNT(), ALLOCATE_EVENTCOUNT()
        tids = [ALLOCATE_THREAD(worker, k.address_space, me, base, lock, seq, buf, ready, done)
                for me in range(THREADS)]
        received = [tuple(RECEIVE(buf)) for _ in range(THREADS * N)]
        AWAIT(done, THREADS - 1)
        results = [k.join(t, timeout=60) for t in tids]
        tickets = sorted(t for ts, _ in results for t in ts)
        with open("/proc/self/maps") as maps:
            mapped = "libatomic" in maps.read()
        print(json.dumps({
            "implementation": atomics.IMPLEMENTATION,
            "libatomic_mapped": mapped,
            "counter": [LOAD(base), THREADS * N],
            "tickets_each_once": tickets == list(range(THREADS * N)),
            "messages_each_once": sorted(received) == [(me, i) for me in range(THREADS) for i in range(N)],
            "messages_in_order_per_sender": all([i for m, i in received if m == me] == list(range(N))
                                                for me in range(THREADS)),
            "rsm_winners": [sum(won for _, won in results), 1],
        }))


if __name__ == "__main__":
    main()
