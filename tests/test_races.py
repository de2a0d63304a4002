"""Race reports (races.py), in free running and in controlled runs.

Each program runs twice: on a free kernel (real processes at once; the
threads' race logs, racelog.py) and on a controlled one (one thread at a
time; the trace).  Racy programs are reported with both sites right (this
file's lines, found by their markers); their fixed versions -- a lock, the
RSM spin lock, a ticket lock of eventcounts, a message, fork and join -- are
reported clean; unshared pages never race."""

import os

import pytest

from runtime import Kernel
from runtime.errors import KernelError
from waiting import row, wait_for
from runtime.textbook import (ACQUIRE, ADVANCE, ALLOCATE_BLOCK, ALLOCATE_BOUNDED_BUFFER, ALLOCATE_EVENTCOUNT,
                              ALLOCATE_LOCK, ALLOCATE_SEQUENCER, ALLOCATE_THREAD, AWAIT, CREATE_ADDRESS_SPACE,
                              LOAD, MAP, RECEIVE, RELEASE, RSM, SEND, STORE, TICKET, YIELD)

pytestmark = pytest.mark.timeout(60)

X, FLAG = 4096, 4096 + 64
MODES = ["free", "controlled"]
SOURCE = open(__file__).read().splitlines()


def line_of(marker):
    """'test_races.py:N' of the line that carries `# <marker>`."""
    n = next(i for i, text in enumerate(SOURCE, 1) if text.rstrip().endswith(f"# <{marker}>"))
    return f"test_races.py:{n}"


def kernel(mode, **kw):
    if mode == "controlled":
        return Kernel(races=True, schedule="random", seed=kw.pop("seed", 3), **kw)
    return Kernel(races=True, **kw)


def sites(races):
    return {frozenset({(r.first.kind, r.first.short_site), (r.second.kind, r.second.short_site)}) for r in races}


# --- the programs ---------------------------------------------------------------------------

def add(n, lock):
    for _ in range(n):
        if lock is not None:
            ACQUIRE(lock)
        x = LOAD(X)  # <add-load>
        STORE(X, x + 1)  # <add-store>
        if lock is not None:
            RELEASE(lock)


def flag_add(n):
    for _ in range(n):
        while LOAD(FLAG) == 1:  # <flag-test>
            YIELD()
        STORE(FLAG, 1)  # <flag-set>
        x = LOAD(X)
        STORE(X, x + 1)
        STORE(FLAG, 0)


def rsm_add(n):
    for _ in range(n):
        while RSM(FLAG) == 1:
            YIELD()
        x = LOAD(X)
        STORE(X, x + 1)
        STORE(FLAG, 0)


def ticket_add(n, seq, turn):
    for _ in range(n):
        t = TICKET(seq)
        AWAIT(turn, t - 1)
        x = LOAD(X)
        STORE(X, x + 1)
        ADVANCE(turn)


def producer(buf, via_message):
    STORE(X, 42)  # <produce>
    if via_message:
        SEND(buf, b"ready")
    else:
        STORE(FLAG, 1)


def consumer(buf, via_message):
    if via_message:
        RECEIVE(buf)
    else:
        while LOAD(FLAG) == 0:
            YIELD()
    return LOAD(X)  # <consume>


def writer(value):
    STORE(X, value)  # <own-page>


def run(mode, procedure, args_list, setup=None, **kw):
    """Start one thread per args tuple, join them; (races, x)."""
    with kernel(mode, **kw) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(4096, name="shared"), 1, "rw")
        extra = setup(k) if setup else ()
        tids = [ALLOCATE_THREAD(procedure, k.address_space, *args, *extra) for args in args_list]
        results = [k.join(t) for t in tids]
        x = LOAD(X)
        races = k.races()
    return races, x, results


# --- racy ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_a_lost_update_names_both_sites_the_block_and_no_lock(mode):
    races, _x, _ = run(mode, add, [(30, None), (30, None)])
    assert races, "two unlocked x = x + 1 loops must race"
    assert frozenset({("write", line_of("add-store")), ("read", line_of("add-load"))}) in sites(races)
    r = races[0]
    assert r.first.block_name == r.second.block_name == "shared" and r.second.offset == 0
    assert r.first.locks == r.second.locks == () and "no lock in common" in str(r)
    assert r.first.line.startswith(("x = LOAD(X)", "STORE(X, x + 1)"))
    assert (r.token is not None) == (mode == "controlled")


@pytest.mark.parametrize("mode", MODES)
def test_a_race_is_reported_even_when_the_result_is_right(mode):
    # one increment each, the second thread started once the first is seen EXITED (free: no join,
    # so nothing orders them) or with no preemption at all (rr): x comes out 2, and they still race
    kw = dict(schedule="rr") if mode == "controlled" else {}
    with Kernel(races=True, **kw) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(4096, name="shared"), 1, "rw")
        a = ALLOCATE_THREAD(add, k.address_space, 1, None)
        if mode == "free":
            wait_for(lambda: row(k, a)["state"] == "EXITED")
        b = ALLOCATE_THREAD(add, k.address_space, 1, None)
        k.join(a)
        k.join(b)
        assert LOAD(X) == 2
        assert k.races(), "the result was right, but nothing ordered the two threads' accesses"


@pytest.mark.parametrize("mode", MODES)
def test_a_lock_made_of_a_plain_flag_races_on_the_flag(mode):
    races, _x, _ = run(mode, flag_add, [(10,), (10,)])
    on_flag = [r for r in races if r.second.offset == FLAG - 4096]
    assert on_flag and any(("read", line_of("flag-test")) in pair for pair in sites(on_flag))
    assert any(r.second.offset == 0 for r in races), "and on x, which the flag was meant to guard"


@pytest.mark.parametrize("mode", MODES)
def test_a_plain_flag_hand_off_races_on_the_data(mode):
    def setup(k):
        return (None, False)
    with kernel(mode) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(4096, name="shared"), 1, "rw")
        c = ALLOCATE_THREAD(consumer, k.address_space, None, False)
        p = ALLOCATE_THREAD(producer, k.address_space, None, False)
        assert k.join(c) == 42
        k.join(p)
        races = k.races()
    assert frozenset({("write", line_of("produce")), ("read", line_of("consume"))}) in sites(races)


@pytest.mark.parametrize("mode", MODES)
def test_one_side_holding_a_lock_is_not_enough(mode):
    def locked_once(lock):
        ACQUIRE(lock)
        STORE(X, 1)  # <locked-write>
        RELEASE(lock)

    def unlocked_once():
        STORE(X, 2)  # <unlocked-write>
    with kernel(mode) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(4096, name="shared"), 1, "rw")
        lock = ALLOCATE_LOCK("x")
        a = ALLOCATE_THREAD(locked_once, k.address_space, lock)
        b = ALLOCATE_THREAD(unlocked_once, k.address_space)
        k.join(a)
        k.join(b)
        races = k.races()
    assert len(races) == 1
    accesses = {races[0].first.short_site: races[0].first, races[0].second.short_site: races[0].second}
    assert accesses[line_of("locked-write")].locks == ("x",)
    assert accesses[line_of("unlocked-write")].locks == ()


def store_twice(ec):
    for i in range(2):
        STORE(X, i)  # <twice>
        if i == 0:
            ADVANCE(ec)


def store_after_first(ec):
    AWAIT(ec, 0)                           # until the count is past 0
    STORE(X, 9)  # <after-first>


@pytest.mark.parametrize("mode", MODES)
def test_the_same_site_after_a_sync_event_is_logged_again(mode):
    """A thread's repeat of an access (word, kind, site) is logged once per
    epoch (between its synchronisation events).  Here the second STORE at
    <twice> comes after an ADVANCE: the other thread's store is ordered after
    the first one but not the second, so only the second races with it."""
    with kernel(mode) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(4096, name="shared"), 1, "rw")
        ec = ALLOCATE_EVENTCOUNT("first")
        a = ALLOCATE_THREAD(store_twice, k.address_space, ec)
        b = ALLOCATE_THREAD(store_after_first, k.address_space, ec)
        k.join(a)
        k.join(b)
        races = k.races()
    assert sites(races) == {frozenset({("write", line_of("twice")), ("write", line_of("after-first"))})}


def read_then_write(n):
    for _ in range(n):
        LOAD(X)
    STORE(X, 1)  # <after-many-reads>


def test_a_loop_of_one_access_does_not_fill_the_log():
    """40 000 reads of one word from one line are one record: the write
    after them still finds room in a log of 32 768 (racelog.RECORDS)."""
    races, _x, _ = run("free", read_then_write, [(40_000,), (0,)])
    assert frozenset({("write", line_of("after-many-reads"))}) in sites(races)


# --- fixed: nothing to report ------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fix", ["lock", "rsm", "ticket", "message", "join"])
def test_every_fix_reports_nothing(mode, fix):
    if fix == "lock":
        races, x, _ = run(mode, add, [(20,), (20,)], setup=lambda k: (ALLOCATE_LOCK("x"),))
        assert x == 40
    elif fix == "rsm":
        races, x, _ = run(mode, rsm_add, [(10,), (10,)])
        assert x == 20
    elif fix == "ticket":
        races, x, _ = run(mode, ticket_add, [(10,), (10,)],
                          setup=lambda k: (ALLOCATE_SEQUENCER("s"), ALLOCATE_EVENTCOUNT("turn")))
        assert x == 20
    elif fix == "message":
        with kernel(mode) as k:
            MAP(k.address_space, ALLOCATE_BLOCK(4096, name="shared"), 1, "rw")
            buf = ALLOCATE_BOUNDED_BUFFER(2)
            c = ALLOCATE_THREAD(consumer, k.address_space, buf, True)
            p = ALLOCATE_THREAD(producer, k.address_space, buf, True)
            assert k.join(c) == 42
            k.join(p)
            races = k.races()
    else:                                          # fork and join: parent, child, parent again
        with kernel(mode) as k:
            MAP(k.address_space, ALLOCATE_BLOCK(4096, name="shared"), 1, "rw")
            STORE(X, 1)
            t = ALLOCATE_THREAD(add, k.address_space, 5, None)
            k.join(t)
            t = ALLOCATE_THREAD(add, k.address_space, 5, None)
            k.join(t)
            assert LOAD(X) == 11
            races = k.races()
    assert races == [], "\n".join(str(r) for r in races)


@pytest.mark.parametrize("mode", MODES)
def test_unshared_pages_never_race_but_a_shared_block_does(mode):
    with kernel(mode) as k:
        spaces = [CREATE_ADDRESS_SPACE() for _ in range(2)]
        for s in spaces:                           # the same virtual address, a block of its own each
            MAP(s, ALLOCATE_BLOCK(4096, name=f"own {s}"), 1, "rw")
        tids = [ALLOCATE_THREAD(writer, s, i) for i, s in enumerate(spaces)]
        for t in tids:
            k.join(t)
        assert k.races() == []
    with kernel(mode) as k:
        shared = ALLOCATE_BLOCK(4096, name="both")
        spaces = [CREATE_ADDRESS_SPACE() for _ in range(2)]
        MAP(spaces[0], shared, 1, "rw")
        MAP(spaces[1], shared, 1, "rw")
        tids = [ALLOCATE_THREAD(writer, s, i) for i, s in enumerate(spaces)]
        for t in tids:
            k.join(t)
        races = k.races()
    assert len(races) == 1 and races[0].second.block_name == "both"
    assert sites(races) == {frozenset({("write", line_of("own-page"))})}


def test_races_needs_the_option_and_survives_the_kernel():
    with Kernel() as k:
        with pytest.raises(KernelError, match="races=True"):
            k.races()
    races, _x, _ = run("free", add, [(5, None), (5, None)])
    assert races
    with Kernel(races=True) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(4096), 1, "rw")
        t = [ALLOCATE_THREAD(add, k.address_space, 5, None) for _ in range(2)]
        for tid in t:
            k.join(tid)
    assert k.races() and os.path.basename(k.races()[0].first.site).startswith("test_races.py")
