"""Crash safety: senders and receivers killed at random points, many times.

Every sender and receiver keeps a log in a shared-memory segment of its own
(independent of the buffer under test): a sender the number of SENDs that
returned, a receiver each (sender, seq) it received, written right after
RECEIVE returned.  So a killed sender may have published one message more
than its log says, and a killed receiver may have consumed one message that
its log does not show -- and nothing else may differ.  After the kills:

  * no message was received twice;
  * no message is torn (each receiver checks the content and fails loudly);
  * each receiver saw each sender's messages in order;
  * a sender's messages that were received form a prefix of what it sent,
    and the holes in all prefixes together are at most one per killed
    receiver (the message it held when it died);
  * nobody stayed blocked: every survivor drains to the end of the stream.

Kill points are random in time: the test waits for the victim's own log to
advance by a random number of operations (observed state), then kills it
with DESTROY_THREAD or a SIGKILL of its process.
"""

import os
import random
import signal
import struct
import time
import zlib

import pytest

from runtime import Kernel, atomics
from runtime.arena import Arena
from runtime.errors import EndOfStream, ThreadFailed
from runtime.textbook import ALLOCATE_BOUNDED_BUFFER, ALLOCATE_THREAD, DESTROY_THREAD, RECEIVE

SENDER_REGION = 64 + (1 << 17)   # a sender's count, then a bitmap of the seqs received (1M bits)
RX_PROGRESS = 64                  # receivers' progress words start here (header: stop flag, duplicates)
_w = struct.Struct("q")
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


def busy(rng):
    """A little random work, so that kills land anywhere, not only in waits."""
    for _ in range(rng.randrange(200) if rng.random() < 0.3 else 0):
        pass


class Log:
    """The test's own record, in a segment of its own (plain and atomic words):

        0                  stop flag (thread 0)
        8                  duplicates seen (fetch_or found the bit set)
        64 + 8 r           progress of receiver r (its own single writer)
        senders_at + SENDER_REGION * s
              + 0          SENDs that returned for sender s (its single writer)
              + 64 ...     bitmap: bit q set (fetch_or) when seq q was received
    """

    def __init__(self, arena, receivers):
        self.arena = arena
        self.senders_at = -(-(RX_PROGRESS + 8 * receivers) // 64) * 64

    def word(self, off):
        return _w.unpack_from(self.arena.buf, off)[0]

    def put(self, off, value):
        _w.pack_into(self.arena.buf, off, value)

    def sender_off(self, sid):
        return self.senders_at + SENDER_REGION * sid

    def mark_received(self, sid, seq):
        """Set the bit of (sid, seq); True if it was set already."""
        off = self.sender_off(sid) + 64 + 8 * (seq >> 6)
        return bool(atomics.fetch_or(self.arena.addr + off, 1 << (seq & 63)) & (1 << (seq & 63)))

    def received(self, sid):
        base = self.sender_off(sid) + 64
        bits = int.from_bytes(self.arena.buf[base:base + SENDER_REGION - 64], "little")
        return {q for q in range(bits.bit_length()) if bits >> q & 1}


def crash_sender(buf, log, sid, seed):
    rng = random.Random(seed)
    seq = 0
    while not log.word(0):                            # the stop flag
        buf.send(message(sid, seq, rng.randrange(400)))
        seq += 1
        log.put(log.sender_off(sid), seq)             # SENDs that returned
        busy(rng)
    return seq


def crash_receiver(buf, log, index, seed):
    rng = random.Random(seed)
    n = 0
    last = {}
    while True:
        try:
            m = RECEIVE(buf)
        except EndOfStream:
            return n
        sid, seq = check(m)
        if seq <= last.get(sid, -1):
            raise AssertionError(f"sender {sid}: seq {seq} after {last[sid]}")
        last[sid] = seq
        if log.mark_received(sid, seq):
            atomics.fetch_add(log.arena.addr + 8, 1)   # a duplicate
        n += 1
        log.put(RX_PROGRESS + 8 * index, n)
        busy(rng)


def run_kills(kills, seed, bias=True):
    rng = random.Random(seed)
    with Kernel(buffer_bias=bias, seed=seed) as k:
        receivers = 2 + kills
        size = -(-(RX_PROGRESS + 8 * receivers) // 64) * 64 + SENDER_REGION * (3 + kills)
        arena = Arena.create(f"{k.arena.name}_testlog", size)
        try:
            _run(k, Log(arena, receivers), rng, kills)
        finally:
            arena.close()
            arena.unlink()


def _run(k, log, rng, kills):
    b = ALLOCATE_BOUNDED_BUFFER(8, capacity=2048)
    senders, receivers = {}, {}         # tid -> progress word offset
    sender_ids = []
    counters = {"sender": 0, "receiver": 0}

    def start_sender():
        sid = counters["sender"]
        counters["sender"] += 1
        tid = ALLOCATE_THREAD(crash_sender, k.address_space, b, log, sid, rng.randrange(1 << 30))
        senders[tid] = log.sender_off(sid)
        sender_ids.append(sid)

    def start_receiver():
        index = counters["receiver"]
        counters["receiver"] += 1
        tid = ALLOCATE_THREAD(crash_receiver, k.address_space, b, log, index, rng.randrange(1 << 30))
        receivers[tid] = RX_PROGRESS + 8 * index

    for _ in range(3):
        start_sender()
    for _ in range(2):
        start_receiver()

    killed_receivers = 0
    for _ in range(kills):
        victim = rng.choice(sorted(senders) + sorted(receivers))
        where = senders.get(victim, receivers.get(victim))
        target = log.word(where) + rng.randrange(1, 40)
        deadline = time.monotonic() + 20
        while log.word(where) < target:                # observed progress, not a sleep
            assert time.monotonic() < deadline, "a thread made no progress: something is blocked"
            time.sleep(0.0005)
        if rng.random() < 0.5:
            DESTROY_THREAD(victim)
        else:
            pid = next(r["pid"] for r in k.thread_info() if r["tid"] == victim)
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(ThreadFailed) as failed:
            k.join(victim, timeout=20)
        assert failed.value.reason == "destroyed", failed.value.traceback  # not a torn message
        if victim in senders:
            del senders[victim]
            start_sender()
        else:
            del receivers[victim]
            killed_receivers += 1
            start_receiver()

    log.put(0, 1)                                       # stop the senders
    for tid in senders:
        k.join(tid, timeout=20)
    b.close()                                           # end of stream: the receivers drain, then stop
    for tid in receivers:
        k.join(tid, timeout=20)
    k._check_invariants()

    # --- what the log says ---------------------------------------------------------
    assert log.word(8) == 0, f"{log.word(8)} messages were received twice"
    holes = total = 0
    for sid in sender_ids:
        sent = log.word(log.sender_off(sid))
        got = log.received(sid)
        total += len(got)
        assert not got or max(got) <= sent, f"sender {sid}: received seq {max(got)}, sent only {sent + 1}"
        holes += len(set(range(sent)) - got)
    assert holes <= killed_receivers, f"{holes} messages lost, {killed_receivers} receivers killed"
    stats = b.statistics()
    assert stats["fill"] == 0 and stats["sent"] >= total


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bias,kills", [(True, 30), (False, 12)], ids=["biased", "eager"])
def test_random_kills_never_tear_lose_or_duplicate(bias, kills):
    run_kills(kills, seed=1234 + kills, bias=bias)


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_kills_long(seed):
    run_kills(300, seed=seed)


# --- targeted cases ------------------------------------------------------------------

def keep_the_send_side(buf, ready, go):
    buf.send(b"mine")             # the send lock stays with this thread (biased) ...
    ready.send(b"ready")
    go.receive()                  # ... while it waits somewhere else entirely
    return "woke"


def test_an_idle_holder_is_asked_and_a_dead_one_is_passed_over():
    """A thread that keeps a side lock while doing something else does not
    block others; nor does one killed while keeping it."""
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(4)
        ready, go = ALLOCATE_BOUNDED_BUFFER(1), ALLOCATE_BOUNDED_BUFFER(1)
        t = ALLOCATE_THREAD(keep_the_send_side, k.address_space, b, ready, go)
        assert ready.receive() == b"ready"
        b.send(b"from thread 0", timeout=5)              # takes the side over
        t2 = ALLOCATE_THREAD(keep_the_send_side, k.address_space, b, ready, go)
        assert ready.receive() == b"ready"
        DESTROY_THREAD(t2)
        b.send(b"after a death", timeout=5)
        go.send(b"go")
        assert k.join(t, timeout=5) == "woke"
        assert [b.receive() for _ in range(4)] == [b"mine", b"from thread 0", b"mine", b"after a death"]
        k._check_invariants()


def hold_a_view(buf, ready):
    v = buf.receive_view()
    ready.send(bytes(v))
    while True:
        pass


def test_a_receiver_killed_holding_a_view_gives_the_message_back():
    """A view is consumed only when its holder moves on: killed before, the
    message goes to the next receiver (the dead one may have looked at it)."""
    with Kernel() as k:
        b = ALLOCATE_BOUNDED_BUFFER(4)
        ready = ALLOCATE_BOUNDED_BUFFER(1)
        b.send_many([b"viewed", b"next"])
        t = ALLOCATE_THREAD(hold_a_view, k.address_space, b, ready)
        assert ready.receive() == b"viewed"
        DESTROY_THREAD(t)
        assert b.receive(timeout=5) == b"viewed"
        assert b.receive(timeout=5) == b"next"
        assert b.statistics()["receive_takeovers"] == 1
