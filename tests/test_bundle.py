"""Bundles (聚合, link bundling): one virtual link from k bounded buffers.

What each test asks:
  * SEND/RECEIVE work on a bundle as on a buffer, bytes and objects;
  * k senders and k receivers: every message exactly once, each sender's
    messages in order at every receiver;
  * a member deallocated mid-stream (DEALLOCATE_BOUNDED_BUFFER on it): no
    message lost, none twice, order kept (the senders fail over and send
    their unclaimed copies again);
  * a receiver killed holding views: the views come back, the claimed one
    is dropped as a duplicate;
  * senders and receivers killed (SIGKILL / DESTROY_THREAD) at observed
    progress points, many times: nothing torn, nothing twice, order kept,
    holes at most one per killed receiver (the crash test of the ring,
    tests/test_buffer_crash.py, run against a bundle);
  * misuse: bad arguments, a full table, a deallocated bundle.

Receivers report what they got through a bounded buffer or a log segment of
the test's own, never through the bundle under test.
"""

import os
import random
import signal
import struct
import time
import zlib
from array import array

import pytest

from runtime import Kernel, atomics
from runtime.arena import Arena
from runtime.bundle import ALLOCATE_BUNDLE, DEALLOCATE_BUNDLE, Bundle
from runtime.errors import BufferDeallocated, EndOfStream, OutOfResources, ThreadFailed, WouldBlock
from runtime.textbook import (ALLOCATE_BOUNDED_BUFFER, ALLOCATE_THREAD, DEALLOCATE_BOUNDED_BUFFER, DESTROY_THREAD,
                              RECEIVE, SEND)

pytestmark = pytest.mark.timeout(60)

_head = struct.Struct("<IIq")
_PATTERN = bytes(range(256)) * 8


def message(sender, seq, size):
    first = (sender * 31 + seq * 7) & 0xFF
    body = _PATTERN[first:first + size]
    return _head.pack(sender, seq, zlib.crc32(body)) + body


def check(m):
    sender, seq, crc = _head.unpack_from(m)
    body = m[_head.size:]
    first = (sender * 31 + seq * 7) & 0xFF
    if body != _PATTERN[first:first + len(body)] or zlib.crc32(body) != crc:
        raise AssertionError(f"torn message: sender {sender} seq {seq}, {len(m)} bytes")
    return sender, seq


# --- the textbook interface -----------------------------------------------------------------------

def test_send_and_receive_work_on_a_bundle_as_on_a_buffer():
    with Kernel() as k:
        b = ALLOCATE_BUNDLE(3, 8)
        assert isinstance(b, Bundle) and len(b.members()) == 3
        SEND(b, b"raw bytes")
        SEND(b, {"an": ["object"]})
        SEND(b, bytearray(b"ba"))
        assert RECEIVE(b) == b"raw bytes"
        assert RECEIVE(b) == {"an": ["object"]}
        assert RECEIVE(b) == b"ba"
        with pytest.raises(WouldBlock):
            b.receive_nowait()
        with pytest.raises(TimeoutError):
            b.receive(timeout=0.01)
        b.close()
        with pytest.raises(EndOfStream):
            b.receive()
        row = b.statistics()
        assert row["k"] == 3 and row["senders"] == 1 and row["delivered"] == [3] and row["duplicates"] == 0
        k._check_invariants()


def report_sender(b, sid, m, size):
    for q in range(m):
        b.send(message(sid, q, size))
    b.flush(timeout=30)
    return m


def report_receiver(b, report):
    """Receive to the end of the stream; send what came (sid << 32 | seq) to `report`."""
    got = array("q")
    last = {}
    while True:
        try:
            msg = b.receive()
        except EndOfStream:
            break
        sid, seq = check(msg)
        if seq <= last.get(sid, -1):
            raise AssertionError(f"sender {sid}: seq {seq} after {last[sid]}")
        last[sid] = seq
        got.append(sid << 32 | seq)
    for i in range(0, len(got), 4096):
        report.send(got[i:i + 4096].tobytes())
    report.send(b"")
    return len(got)


def collect(report, receivers):
    got, done = [], 0
    while done < receivers:
        chunk = report.receive(timeout=30)
        if not chunk:
            done += 1
        else:
            got.extend(array("q", chunk))
    return got


def run_stream(k, b, senders, receivers, m, size=40, during=None):
    report = ALLOCATE_BOUNDED_BUFFER(64)
    rx = [ALLOCATE_THREAD(report_receiver, k.address_space, b, report) for _ in range(receivers)]
    tx = [ALLOCATE_THREAD(report_sender, k.address_space, b, sid, m, size) for sid in range(senders)]
    if during is not None:
        during()
    for t in tx:
        assert k.join(t, timeout=30) == m
    b.close()
    got = collect(report, receivers)
    for t in rx:
        k.join(t, timeout=30)
    return got


def test_k_senders_and_k_receivers_get_every_message_once_in_each_senders_order():
    with Kernel() as k:
        b = ALLOCATE_BUNDLE(4, 16)
        got = run_stream(k, b, 4, 4, 3000)
        assert sorted(got) == sorted(sid << 32 | q for sid in range(4) for q in range(3000))
        row = b.statistics()
        assert row["delivered"] == [3000] * 4 and row["duplicates"] == 0 and row["failovers"] == 0
        k._check_invariants()


def test_more_senders_than_members_and_one_receiver_that_steals():
    with Kernel() as k:
        b = ALLOCATE_BUNDLE(2, 8)
        got = run_stream(k, b, 5, 1, 800)
        assert sorted(got) == sorted(sid << 32 | q for sid in range(5) for q in range(800))


def test_a_member_deallocated_mid_stream_loses_nothing():
    """DEALLOCATE_BOUNDED_BUFFER on a member while senders use it: they move
    to another member and send again what was not delivered; the claims
    drop what was delivered after all."""
    with Kernel() as k:
        b = ALLOCATE_BUNDLE(3, 32)
        m = 4000
        victim = b.members()[1]

        def deallocate_one_member():
            deadline = time.monotonic() + 20
            while b.statistics()["delivered"][1:2] < [m // 4]:     # sender 1 (home: member 1) is under way
                assert time.monotonic() < deadline, "sender 1 made no progress"
                time.sleep(0.001)
            DEALLOCATE_BOUNDED_BUFFER(victim)

        got = run_stream(k, b, 3, 3, m, during=deallocate_one_member)
        want = sorted(sid << 32 | q for sid in range(3) for q in range(m))
        assert len(got) == len(want), f"{len(got) - len(want):+} messages"
        assert sorted(got) == want
        row = b.statistics()
        assert row["members"][1][1] is True and row["failovers"] >= 1, row
        k._check_invariants()


def send_ten_then_flush(b, sent, go):
    for q in range(10):
        b.send(b"m%d" % q)
    sent.send(b"sent")
    go.receive()
    b.flush(timeout=20)
    return "flushed"


def test_copies_are_sent_again_and_the_claims_drop_the_ones_delivered_after_all():
    """Thread 0 holds the views of m0..m9 (it has handed out m0) when their
    member is deallocated; the sender sends m1..m9 again on the other
    member; thread 0 still hands out m1..m9 from its views, so the nine
    copies are duplicates: dropped, and counted."""
    with Kernel() as k:
        b = ALLOCATE_BUNDLE(2, 16)
        sent, go = ALLOCATE_BOUNDED_BUFFER(1), ALLOCATE_BOUNDED_BUFFER(1)
        t = ALLOCATE_THREAD(send_ten_then_flush, k.address_space, b, sent, go)
        assert sent.receive(timeout=10) == b"sent"
        assert RECEIVE(b) == b"m0"                      # home member 0; ten views in hand, m0 claimed
        DEALLOCATE_BOUNDED_BUFFER(b.members()[0])
        go.send(b"go")
        deadline = time.monotonic() + 10
        while b.statistics()["failovers"] == 0:         # the sender noticed, and sent m1..m9 again
            assert time.monotonic() < deadline
            time.sleep(0.001)
        assert [RECEIVE(b) for _ in range(9)] == [b"m%d" % q for q in range(1, 10)]
        assert k.join(t, timeout=10) == "flushed"
        b.close()
        with pytest.raises(EndOfStream):
            RECEIVE(b)
        row = b.statistics()
        assert row["failovers"] == 1 and row["resent"] == 9 and row["duplicates"] == 9, row
        assert row["members"] == [(b.members()[0].id, True), (b.members()[1].id, False)]


def test_every_member_deallocated_is_buffer_deallocated_and_wakes_receivers():
    with Kernel() as k:
        b = ALLOCATE_BUNDLE(2, 4)
        t = ALLOCATE_THREAD(_receive_one, k.address_space, b)
        deadline = time.monotonic() + 10
        while not any(r["tid"] == t and r["state"] == "WAITING" for r in k.thread_info()):
            assert time.monotonic() < deadline
            time.sleep(0.001)
        DEALLOCATE_BUNDLE(b)
        assert k.join(t, timeout=10) == "BufferDeallocated"
        with pytest.raises(BufferDeallocated):
            SEND(b, b"x")
        with pytest.raises(BufferDeallocated):
            b.statistics()
        b2 = ALLOCATE_BUNDLE(2, 4)
        for member in b2.members():
            DEALLOCATE_BOUNDED_BUFFER(member)
        with pytest.raises(BufferDeallocated, match="every member"):
            SEND(b2, b"x")
        with pytest.raises(BufferDeallocated):
            RECEIVE(b2)


def _receive_one(b):
    try:
        return RECEIVE(b)
    except BufferDeallocated:
        return "BufferDeallocated"


def hold_views(b, ready):
    got = b.receive()                   # a batch of views is taken; one is handed out (claimed)
    ready.send(got)
    while True:
        pass


def test_a_receiver_killed_holding_views_gives_them_back():
    with Kernel() as k:
        b = ALLOCATE_BUNDLE(1, 16)
        for q in range(5):
            SEND(b, b"m%d" % q)
        ready = ALLOCATE_BOUNDED_BUFFER(1)
        t = ALLOCATE_THREAD(hold_views, k.address_space, b, ready)
        assert ready.receive(timeout=10) == b"m0"
        DESTROY_THREAD(t)
        with pytest.raises(ThreadFailed):
            k.join(t, timeout=10)
        assert [RECEIVE(b) for _ in range(4)] == [b"m1", b"m2", b"m3", b"m4"]
        assert b.statistics()["duplicates"] == 1          # m0 came back, claimed already: dropped


def test_misuse_is_refused_by_name():
    with Kernel(max_bundles=1) as k:
        for bad in (0, 17, 2.0, True):
            with pytest.raises(ValueError, match="ALLOCATE_BUNDLE"):
                ALLOCATE_BUNDLE(bad, 4)
        with pytest.raises(ValueError, match="n >= 1"):
            ALLOCATE_BUNDLE(2, 0)
        b = ALLOCATE_BUNDLE(2, 4)
        with pytest.raises(OutOfResources, match="max_bundles"):
            ALLOCATE_BUNDLE(2, 4)
        with pytest.raises(TypeError):
            DEALLOCATE_BUNDLE(b.members()[0])
        DEALLOCATE_BUNDLE(b)
        DEALLOCATE_BUNDLE(b)                          # twice: left alone
        ALLOCATE_BUNDLE(2, 4)                         # the slot is free again
        k._check_invariants()


# --- kills at observed progress points (the ring's crash test, on a bundle) ----------------------

SENDER_REGION = 64 + (1 << 15)
RX_PROGRESS = 64


class Log:
    """The test's own record, in a segment of its own:
        0                   stop flag (thread 0)
        8                   duplicates seen
        64 + 8 r            progress of receiver r (its single writer)
        senders_at + SENDER_REGION * s:  +0 SENDs that returned; +64 bitmap of seqs received
    """

    def __init__(self, arena, receivers):
        self.arena = arena
        self.senders_at = -(-(RX_PROGRESS + 8 * receivers) // 64) * 64

    def word(self, off):
        return struct.unpack_from("q", self.arena.buf, off)[0]

    def put(self, off, value):
        struct.pack_into("q", self.arena.buf, off, value)

    def sender_off(self, sid):
        return self.senders_at + SENDER_REGION * sid

    def mark_received(self, sid, seq):
        off = self.sender_off(sid) + 64 + 8 * (seq >> 6)
        return bool(atomics.fetch_or(self.arena.addr + off, 1 << (seq & 63)) & (1 << (seq & 63)))

    def received(self, sid):
        base = self.sender_off(sid) + 64
        bits = int.from_bytes(self.arena.buf[base:base + SENDER_REGION - 64], "little")
        return {q for q in range(bits.bit_length()) if bits >> q & 1}


def busy(rng):
    for _ in range(rng.randrange(200) if rng.random() < 0.3 else 0):
        pass


def crash_sender(b, log, sid, seed):
    rng = random.Random(seed)
    seq = 0
    while not log.word(0):
        b.send(message(sid, seq, rng.randrange(200)))
        seq += 1
        log.put(log.sender_off(sid), seq)
        busy(rng)
    return seq


def crash_receiver(b, log, index, seed):
    rng = random.Random(seed)
    n, last = 0, {}
    while True:
        try:
            m = RECEIVE(b)
        except EndOfStream:
            return n
        sid, seq = check(m)
        if seq <= last.get(sid, -1):
            raise AssertionError(f"sender {sid}: seq {seq} after {last[sid]}")
        last[sid] = seq
        if log.mark_received(sid, seq):
            atomics.fetch_add(log.arena.addr + 8, 1)
        n += 1
        log.put(RX_PROGRESS + 8 * index, n)
        busy(rng)


def run_kills(kills, seed):
    rng = random.Random(seed)
    with Kernel(seed=seed, bundle_senders=4 + kills) as k:
        receivers, senders = 3 + kills, 3 + kills
        size = -(-(RX_PROGRESS + 8 * receivers) // 64) * 64 + SENDER_REGION * senders
        arena = Arena.create(f"{k.arena.name}_testlog", size)
        try:
            _kills(k, Log(arena, receivers), rng, kills)
        finally:
            arena.close()
            arena.unlink()


def _kills(k, log, rng, kills):
    b = ALLOCATE_BUNDLE(3, 8, capacity=4096)
    senders, receivers, sender_ids = {}, {}, []
    count = {"s": 0, "r": 0}

    def start_sender():
        sid = count["s"]
        count["s"] += 1
        tid = ALLOCATE_THREAD(crash_sender, k.address_space, b, log, sid, rng.randrange(1 << 30))
        senders[tid] = log.sender_off(sid)
        sender_ids.append(sid)

    def start_receiver():
        index = count["r"]
        count["r"] += 1
        tid = ALLOCATE_THREAD(crash_receiver, k.address_space, b, log, index, rng.randrange(1 << 30))
        receivers[tid] = RX_PROGRESS + 8 * index

    for _ in range(3):
        start_sender()
        start_receiver()
    killed_receivers = 0
    for _ in range(kills):
        victim = rng.choice(sorted(senders) + sorted(receivers))
        where = senders.get(victim, receivers.get(victim))
        target = log.word(where) + rng.randrange(1, 40)
        deadline = time.monotonic() + 20
        while log.word(where) < target:                       # observed progress, not a sleep
            assert time.monotonic() < deadline, (
                f"thread {victim} made no progress: something is blocked\n{_dump(k, b)}")
            time.sleep(0.0005)
        if rng.random() < 0.5:
            DESTROY_THREAD(victim)
        else:
            pid = next(r["pid"] for r in k.thread_info() if r["tid"] == victim)
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(ThreadFailed) as failed:
            k.join(victim, timeout=20)
        assert failed.value.reason == "destroyed", failed.value.traceback
        if victim in senders:
            del senders[victim]
            start_sender()
        else:
            del receivers[victim]
            killed_receivers += 1
            start_receiver()
    log.put(0, 1)
    for tid in senders:
        k.join(tid, timeout=20)
    b.close()
    for tid in receivers:
        k.join(tid, timeout=20)                               # ThreadFailed here: torn, or out of order
    k._check_invariants()
    assert log.word(8) == 0, f"{log.word(8)} messages were received twice"
    holes = 0
    for sid in sender_ids:
        sent, got = log.word(log.sender_off(sid)), log.received(sid)
        assert not got or max(got) <= sent, f"sender {sid}: received seq {max(got)}, sent only {sent + 1}"
        holes += len(set(range(sent)) - got)
    assert holes <= killed_receivers, f"{holes} messages lost, {killed_receivers} receivers killed"


def _dump(k, b):
    rows = [f"  {r['tid']:>5} {r['state']:8} {r['waits_for']:20} {r['name']}" for r in k.thread_info()]
    members = [m.statistics() for m in b.members()]
    return "\n".join(rows + [f"  {b.statistics()}"] + [
        f"  member {m['id']}: fill {m['fill']} sent {m['sent']} received {m['received']} "
        f"send holder {m['send_holder']} receive holder {m['receive_holder']}" for m in members])


@pytest.mark.timeout(120)
def test_random_kills_never_tear_lose_reorder_or_duplicate():
    run_kills(12, seed=4321)


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_kills_long(seed):
    run_kills(150, seed=seed)


def test_a_controlled_kernels_restart_forgets_every_bundle():
    with Kernel(schedule="rr", seed=1) as k:
        b = ALLOCATE_BUNDLE(2, 4)
        SEND(b, b"before")
        k.restart("rr")
        assert k.bundles.statistics() == []
        with pytest.raises(BufferDeallocated):
            SEND(b, b"stale")
        b2 = ALLOCATE_BUNDLE(2, 4)
        SEND(b2, b"after")
        assert RECEIVE(b2) == b"after" and b2.statistics()["delivered"] == [1]
