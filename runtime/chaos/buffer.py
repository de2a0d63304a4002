"""Chaos trial "buffer": a VP killed while others send and receive.

Three senders and two receivers share one bounded buffer (1 to 8 slots,
1024 bytes).  Each message carries its sender, its sequence number and a
CRC of a body of 20 to 320 bytes.  After a random amount of the victim's own
progress (observed in the ledger, never timed), the victim's process is
SIGKILLed.  The senders then stop, the buffer is closed, the receivers drain
it.  The ledger says what each sender SENT (SEND returned) and which
(sender, seq) each receiver got; the contract:

  * no torn message (the CRC and the body's pattern check out);
  * nothing received twice;
  * each receiver sees each sender's messages in order;
  * every message a surviving sender sent is received, except that a killed
    receiver may take one message with it (the one it was copying out);
  * a killed sender's messages received form a prefix of what it sent, plus
    at most the one it was publishing when it died.

The kernel's settings vary with the seed: processors None, 1 or 2, and the
biased or the eager side locks.

Ledger (words): 0 stop flag; 1 torn; 2 duplicates; 3 order breaks;
8 + s: SENDs returned by sender s; 16 + r: messages received by receiver r;
64 + s * BITMAP: bitmap of the seqs of sender s received.
"""

import random
import struct
import time
import zlib

from ..errors import EndOfStream, ThreadFailed
from ..kernel import Kernel
from ..textbook import ALLOCATE_BOUNDED_BUFFER, ALLOCATE_THREAD, RECEIVE, SEND
from . import Outcome, kill
from .ledger import Ledger

STOP, TORN, DUPS, ORDER = 0, 1, 2, 3
SENT, RECEIVED, MAPS, BITMAP = 8, 16, 64, 1024      # a bitmap of 65536 seqs per sender
SENDERS, RECEIVERS = 3, 2
_head = struct.Struct("<IIi")
_PATTERN = bytes(range(256)) * 3


def message(sid, seq, size):
    first = (sid * 31 + seq * 7) & 0xFF
    body = _PATTERN[first:first + size]
    return _head.pack(sid, seq, zlib.crc32(body) - (1 << 31)) + body


def check(m):
    """(sid, seq) of a message, or None when it is torn."""
    if len(m) < _head.size:
        return None
    sid, seq, crc = _head.unpack_from(m)
    body = bytes(m[_head.size:])
    first = (sid * 31 + seq * 7) & 0xFF
    if sid >= SENDERS or zlib.crc32(body) - (1 << 31) != crc or body != _PATTERN[first:first + len(body)]:
        return None
    return sid, seq


def sender(buf, ledger, sid, seed):
    rng = random.Random(seed)
    seq = 0
    while not ledger.get(STOP) and seq < BITMAP * 64:
        SEND(buf, message(sid, seq, rng.randrange(20, 321)))
        seq += 1
        ledger.put(SENT + sid, seq)
    return seq


def receiver(buf, ledger, rid, seed):
    last = [-1] * SENDERS
    n = 0
    while True:
        try:
            m = RECEIVE(buf)
        except EndOfStream:
            return n
        got = check(m)
        if got is None:
            ledger.add(TORN)
        else:
            sid, seq = got
            if seq <= last[sid]:
                ledger.add(ORDER)
            last[sid] = seq
            if ledger.set_bit(MAPS + sid * BITMAP, seq):
                ledger.add(DUPS)
        n += 1
        ledger.put(RECEIVED + rid, n)


_ANY = object()


def trial(seed, slots=None, processors=_ANY, bias=None, victim=None):
    """One trial; the settings come from the seed unless given (victim: an
    index into senders + receivers)."""
    rng = random.Random(seed)
    slots = rng.randrange(1, 9) if slots is None else slots
    processors = rng.choice([None, None, 1, 2]) if processors is _ANY else processors
    bias = rng.random() < 0.7 if bias is None else bias
    setting = f"n={slots} processors={processors} {'biased' if bias else 'eager'}"
    out = Outcome("buffer", seed, setting)
    with Kernel(processors=processors, buffer_bias=bias, seed=seed) as k, \
            Ledger(k, MAPS + SENDERS * BITMAP) as ledger:
        buf = ALLOCATE_BOUNDED_BUFFER(slots, capacity=1024)
        senders = [ALLOCATE_THREAD(sender, k.address_space, buf, ledger, s, rng.randrange(1 << 30))
                   for s in range(SENDERS)]
        receivers = [ALLOCATE_THREAD(receiver, k.address_space, buf, ledger, r, rng.randrange(1 << 30))
                     for r in range(RECEIVERS)]
        threads = senders + receivers
        v = rng.randrange(len(threads)) if victim is None else victim
        victim = threads[v]
        progress = SENT + v if v < SENDERS else RECEIVED + v - SENDERS
        target = ledger.get(progress) + rng.randrange(1, 80)
        deadline = time.monotonic() + 30
        while ledger.get(progress) < target:             # observed progress, not a sleep
            if time.monotonic() > deadline:
                out.hang, out.detail = True, f"thread {victim} made no progress before the kill"
                return out
            time.sleep(0.0002)
        if not kill(k, victim):
            out.detail += "the victim ended before the kill; "
        try:
            k.join(victim, timeout=30)
        except ThreadFailed:
            pass
        ledger.put(STOP, 1)
        sent = {}
        try:
            for s, tid in enumerate(senders):
                if tid != victim:
                    sent[s] = k.join(tid, timeout=30)
            buf.close()                                  # end of stream: the receivers drain
            for tid in receivers:
                if tid != victim:
                    k.join(tid, timeout=30)
        except (TimeoutError, ThreadFailed) as e:
            out.hang, out.detail = True, f"{type(e).__name__}: {e}"
            return out
        out.torn = ledger.get(TORN)
        out.duplicated = ledger.get(DUPS)
        if ledger.get(ORDER):
            out.detail += f"{ledger.get(ORDER)} messages out of their sender's order; "
        lost = []
        for s in range(SENDERS):
            got = ledger.bits(MAPS + s * BITMAP, BITMAP)
            n = sent.get(s, ledger.get(SENT + s))
            holes = sorted(set(range(n)) - got)
            beyond = sorted(q for q in got if q > n)     # a dead sender may publish one more than it logged
            if s not in sent and beyond:
                out.detail += f"sender {s} (killed): seqs {beyond[:5]} beyond {n}; "
            lost += [(s, q) for q in holes]
        allowed = 1 if v >= SENDERS else 0               # a dead receiver takes one message with it
        if len(lost) > allowed:
            out.lost = len(lost) - allowed
            out.detail += f"lost {lost[:12]}{' ...' if len(lost) > 12 else ''} (victim: {_role(v)}); "
        if ledger.get(ORDER):
            out.torn += ledger.get(ORDER)
        if out.duplicated:
            out.detail += f"{out.duplicated} received twice; "
    return out


def _role(v):
    return f"sender {v}" if v < SENDERS else f"receiver {v - SENDERS}"
