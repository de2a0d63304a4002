"""The bytes of a bounded buffer's ring: its side arena, drawn.

A ring (buffer_ring.py) lives in a side arena of its own, one per buffer,
named `<kernel arena>_b<id>`, created by the allocating process, unlinked by
DEALLOCATE or at kernel shutdown.  Messages are variable-size: N entries
(start, meta) index a byte ring of `capacity` bytes followed by an overflow
area of as much again, so that a message is always contiguous.

Side arena layout (`<kernel arena>_b<id>`; created by the allocating process,
unlinked by DEALLOCATE or at kernel shutdown).  Native 64-bit words:

    off    size  field        guard / writer
      0       8  magic        b"VOSRING1"; allocator, before the buffer is published
      8       8  id           allocator (kernel-wide buffer id, never reused)
     16       8  n            allocator: message slots
     24       8  capacity     allocator: data bytes
     32       8  flags        fetch_or by anyone: DEALLOCATED | WRITERS_GONE | READERS_GONE
   --- send side (one cache line) ---
     64       8  send_lock    side lock word (side_lock.py: holder, flags, gen)
     72       8  in           messages published; written only by the send-lock holder
     80       8  send_sleep   1 while the send-lock holder sleeps for space; written by it
     88       8  send_peak    largest fill (messages) a sender measured just after a
                          publish (Ring._peak) or while it waited; send-lock holder
     96       8  send_peak_b  largest fill (bytes) a sender observed; send-lock holder
    104       8  send_waits   times a sender slept for space; send-lock holder
    112       8  send_died    takeovers from a dead holder; send-lock holder
   --- receive side (one cache line) ---
    128       8  recv_lock    side lock word (side_lock.py), biased
    136       8  out          messages consumed; written only by the receive-lock holder
    144       8  recv_sleep   1 while the receive-lock holder sleeps for a message
    152       8  recv_peak    largest fill (messages) a receiver observed; receive-lock holder
    160       8  recv_waits   times a receiver slept; receive-lock holder
    168       8  recv_died    takeovers from a dead holder; receive-lock holder
   --- wake-up words, each on its own line (fetch_add by any waker) ---
    192       8  tx_seq       senders sleep on it (futex)
    256       8  rx_seq       receivers sleep on it (futex)
    320    16*n  entries      entry k mod n = (start, meta); send-lock holder, before `in`
     D  2*capacity  bytes     message k at D + start_k mod capacity, contiguous

An entry's meta is length | kind << 56: RAW bytes, or PICKLED (any other
object).  `in`, `out` and the byte counters in entries only grow.
"""

import pickle
import struct

from . import checks

MAGIC = b"VOSRING1"
R_MAGIC, R_ID, R_N, R_CAP, R_FLAGS = 0, 8, 16, 24, 32
R_SLOCK, R_IN, R_SSLEEP, R_SPEAK, R_SPEAKB, R_SWAITS, R_SDIED = 64, 72, 80, 88, 96, 104, 112
R_RLOCK, R_OUT, R_RSLEEP, R_RPEAK, R_RWAITS, R_RDIED = 128, 136, 144, 152, 160, 168
R_TXSEQ, R_RXSEQ = 192, 256
R_ENTRIES = 320
ENTRY = 16

DEALLOCATED, WRITERS_GONE, READERS_GONE = 1, 2, 4
SEND_STOP = DEALLOCATED | READERS_GONE | WRITERS_GONE

RAW, PICKLED = 0, 1
KIND_SHIFT = 56
LENGTH = (1 << KIND_SHIFT) - 1

entry = struct.Struct("qq")     # native: one aligned load/store per word
word = struct.Struct("q")
_dumps, _loads = pickle.dumps, pickle.loads


def data_offset(n):
    return -(-(R_ENTRIES + ENTRY * n) // 64) * 64


def arena_size(n, capacity):
    """Bytes of the side arena for a buffer of n messages and capacity bytes."""
    return data_offset(n) + 2 * capacity


def format_header(buf, ident, n, capacity):
    """Write the constant header of a new ring (allocator, before publication)."""
    buf[R_MAGIC:R_MAGIC + 8] = MAGIC
    word.pack_into(buf, R_ID, ident)
    word.pack_into(buf, R_N, n)
    word.pack_into(buf, R_CAP, capacity)


def encode(message):
    """(data, kind): bytes-like travels raw, anything else is pickled."""
    t = type(message)
    if t is bytes:
        return message, RAW
    if t is bytearray:
        return message, RAW
    if t is memoryview:
        if message.contiguous:
            return (message if message.format == "B" and message.ndim == 1 else message.cast("B")), RAW
        return message.tobytes(), RAW
    try:
        return _dumps(message, 5), PICKLED
    except Exception:
        checks.picklable("SEND", "a message (bytes-like, or a value)", message)  # names the error
        raise


def unpickled(messages, metas):
    """messages with each pickled one (by its entry's meta) unpickled, in place."""
    for idx, meta in enumerate(metas[:len(messages)]):
        if meta >> KIND_SHIFT:
            messages[idx] = _loads(messages[idx])
    return messages
