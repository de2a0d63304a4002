"""The physical line's faults, packets, and the virtual link over them.

Questions:
  * does each fault of the line happen as configured, repeatably for a seed?
  * does the checksum catch every single-bit error of a packet?
  * does the virtual link deliver a stream intact with every fault at once
    (and for any seed: the seeded property loop), bytes and objects, large
    messages in several packets?
  * do several circuits share one line without mixing their streams?
  * is misuse refused by name?
"""

import hashlib
import random
import time

import pytest

from runtime import Kernel
from runtime.errors import EndOfStream, StreamClosed
from runtime.link import Faults, PhysicalLink, VirtualLink
from runtime.link import packets
from runtime.textbook import ALLOCATE_THREAD, RECEIVE, SEND

pytestmark = pytest.mark.timeout(60)


# --- the physical line -----------------------------------------------------------------------

def _through(faults, count=200, seed=3, n=1024):
    """Send packets 0..count-1 down a line from thread 0 and take off what arrives."""
    line = PhysicalLink.allocate(n, faults, seed)
    for i in range(count):
        line.send(b"%06d" % i)
    line.flush()
    got = []
    while True:
        try:
            got.append(line.receive_nowait())
        except Exception:
            break
    counts = line.counts()
    line.deallocate()
    return got, counts


def test_a_line_without_faults_is_a_bounded_buffer():
    with Kernel():
        got, counts = _through(Faults())
        assert got == [b"%06d" % i for i in range(200)] and counts["sent"] == 200


def test_each_fault_happens_as_configured():
    with Kernel():
        got, c = _through(Faults(loss=1.0))
        assert got == [] and c["lost"] == 200
        got, c = _through(Faults(duplicate=1.0))
        assert got == [b"%06d" % (i // 2) for i in range(400)] and c["duplicated"] == 200
        got, c = _through(Faults(corrupt=1.0))
        assert len(got) == 200 and c["corrupted"] == 200
        for i, g in enumerate(got):
            diff = int.from_bytes(g, "big") ^ int.from_bytes(b"%06d" % i, "big")
            assert bin(diff).count("1") == 1, (i, g)                # exactly one bit flipped
        got, c = _through(Faults(reorder=0.3))
        assert sorted(got) == [b"%06d" % i for i in range(200)] and got != sorted(got) and c["reordered"] > 20
        got, c = _through(Faults(loss=0.2))
        assert 100 < len(got) < 190 and len(got) + c["lost"] == 200 and got == sorted(got)


def test_a_delayed_packet_comes_after_its_delay():
    with Kernel():
        line = PhysicalLink.allocate(16, Faults(delay=1.0, delay_time=0.05), 1)
        line.send(b"late")
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            line.receive(timeout=0.01)
        while time.monotonic() - t0 < 0.05:
            line.pump()                                   # too early: it stays held
        line.pump()
        assert line.receive(timeout=1) == b"late" and line.counts()["delayed"] == 1


def test_the_faults_are_the_same_for_the_same_seed():
    with Kernel():
        a = _through(Faults.every(0.2), seed=11)
        b = _through(Faults.every(0.2), seed=11)
        c = _through(Faults.every(0.2), seed=12)
    assert a == b and a != c


# --- packets ------------------------------------------------------------------------------------

def test_packets_round_trip_and_every_single_bit_error_is_caught():
    raw = packets.make(7, packets.DATA, packets.LAST, 123456789, 0, b"hello, line")
    p = packets.parse(raw)
    assert (p.circuit, p.kind, p.flags, p.seq, p.payload) == (7, packets.DATA, packets.LAST, 123456789, b"hello, line")
    for bit in range(len(raw) * 8):
        bad = bytearray(raw)
        bad[bit >> 3] ^= 1 << (bit & 7)
        assert packets.parse(bytes(bad)) is None, f"bit {bit} flipped and not caught"
    assert packets.parse(raw[:-1]) is None and packets.parse(b"") is None


# --- the virtual link ----------------------------------------------------------------------------

def send_all(circuit, messages):
    for m in messages:
        SEND(circuit, m)
    closed = circuit.close()
    return closed, circuit.statistics()


def receive_all(circuit, timeout=30):
    got = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            got.append(circuit.receive(timeout=max(0.01, deadline - time.monotonic())))
        except EndOfStream:
            return got


def stream(k, link, messages, circuit=0):
    """A sender VP sends `messages` on one circuit; thread 0 receives them."""
    c = link.circuit(circuit)
    tid = ALLOCATE_THREAD(send_all, k.address_space, c, messages)
    got = receive_all(c)
    closed, tx = k.join(tid, timeout=30)
    return got, tx, c.statistics()


def _messages(rng, count, largest):
    out = []
    for _ in range(count):
        r = rng.random()
        if r < 0.1:
            out.append({"object": rng.randrange(1000), "list": [1, 2, 3]})
        elif r < 0.15:
            out.append(b"")
        else:
            out.append(rng.randbytes(rng.randrange(largest)))
    return out


def test_every_fault_at_once_the_stream_arrives_intact():
    with Kernel() as k:
        link = VirtualLink.allocate(1, Faults.every(0.1), seed=5, mtu=256)
        msgs = _messages(random.Random(5), 120, 2000)
        got, tx, rx = stream(k, link, msgs)
        assert got == msgs
        for fault in ("lost", "corrupted", "duplicated", "reordered", "delayed"):
            assert tx[f"line_{fault}"] > 0, fault              # the line really did all of it ...
        assert tx["tx_retransmitted"] > 0 and rx["rx_corrupted_dropped"] > 0 and rx["rx_duplicates_dropped"] > 0
        assert rx["rx_early"] > 0                              # ... and the link put it right
        link.deallocate()


def _property(seeds, mtus, windows, most):
    """For each seed: random faults (each kind off, or on with a random
    probability up to 0.25), a random packet size and window, random
    messages; the stream must arrive as sent."""
    with Kernel() as k:
        for seed in seeds:
            rng = random.Random(seed)
            faults = Faults(*(rng.choice((0, rng.random() * 0.25)) for _ in range(5)),
                            delay_time=rng.choice((0.001, 0.005, 0.02)))
            link = VirtualLink.allocate(1, faults, seed=seed, mtu=rng.choice(mtus), window=rng.choice(windows))
            msgs = _messages(rng, rng.randrange(1, most), 3000)
            got, _tx, _rx = stream(k, link, msgs)
            assert got == msgs, f"seed {seed} ({faults}): the received stream differs from the sent one"
            link.deallocate()


def test_the_received_stream_equals_the_sent_one_for_any_seed():
    _property(range(12), mtus=(256, 512, 1500), windows=(4, 32), most=25)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_received_stream_equals_the_sent_one_for_many_seeds():
    """Also stop-and-wait (window 1) and tiny packets: slow under loss."""
    _property(range(12, 400), mtus=(64, 256, 512, 1500), windows=(1, 4, 32), most=40)


def receive_digest(circuit):
    """receive_all, answered as a digest (a thread's exit status must be small)."""
    return hashlib.sha256(repr(receive_all(circuit)).encode()).hexdigest()


def test_several_circuits_share_one_line_and_keep_their_streams():
    with Kernel() as k:
        link = VirtualLink.allocate(3, Faults.every(0.1), seed=9, mtu=512)
        streams = [_messages(random.Random(c), 60, 1500) for c in range(3)]
        senders = [ALLOCATE_THREAD(send_all, k.address_space, link.circuit(c), streams[c]) for c in range(3)]
        receivers = [ALLOCATE_THREAD(receive_digest, k.address_space, link.circuit(c)) for c in (1, 2)]
        got0 = receive_all(link.circuit(0))
        assert got0 == streams[0]
        assert [k.join(t, timeout=30) for t in receivers] == \
            [hashlib.sha256(repr(s).encode()).hexdigest() for s in streams[1:]]
        for t in senders:
            k.join(t, timeout=30)
        link.deallocate()


def test_misuse_is_refused_by_name():
    with Kernel():
        with pytest.raises(ValueError, match="circuits"):
            VirtualLink.allocate(0)
        with pytest.raises(ValueError, match="window"):
            VirtualLink.allocate(1, window=0)
        with pytest.raises(TypeError, match="Faults"):
            VirtualLink.allocate(1, faults=0.1)
        with pytest.raises(ValueError, match="loss"):
            Faults(loss=1.5)
        link = VirtualLink.allocate(2)
        with pytest.raises(ValueError, match="circuits 0 to 1"):
            link.circuit(2)
        c = link.circuit(0)
        with pytest.raises(TimeoutError):
            c.receive(timeout=0.01)
        link.deallocate()
    with Kernel() as k:
        link = VirtualLink.allocate(1)
        c = link.circuit(0)
        t = ALLOCATE_THREAD(receive_all, k.address_space, c)
        SEND(c, b"one")
        assert c.close() is True
        with pytest.raises(StreamClosed):
            SEND(c, b"two")
        assert k.join(t, timeout=10) == [b"one"]
        with pytest.raises(TypeError):
            PhysicalLink(b"not a buffer")
        assert RECEIVE is not None
