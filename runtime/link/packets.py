"""Packets (分组) of the virtual link: the header, the checksum, the parsing.

A message is split into packets of at most `mtu` payload bytes; each packet
carries its circuit, its sequence number and a CRC-32 of the whole packet.
A packet whose checksum does not match was corrupted on the line (差错) and
is dropped as if it had been lost: the sender sends it again when no
acknowledgement comes (差错控制 by retransmission).

Byte layout (little-endian, HEADER = 32 bytes, then `length` payload bytes):

    off size field
      0   2  circuit   the virtual circuit (虚电路) it belongs to
      2   1  kind      DATA 1, ACK 2
      3   1  flags     LAST 1: the last packet of a message; FIN 2: end of the
                       stream (no payload); PICKLED 4: the message was pickled
      4   4  length    payload bytes
      8   8  seq       DATA: the packet's sequence number (序列号), 0, 1, 2, ...
                       ACK: the next sequence number the receiver expects
                       (every packet before it has arrived: a cumulative ack)
     16   8  sack      ACK: bit i set = packet seq + 1 + i has arrived too
                       (a selective ack: the sender need not send it again)
     24   4  crc       CRC-32 of the header (with this field zero) and payload
     28   4  zero
"""

import struct
import zlib

DATA, ACK = 1, 2
LAST, FIN, PICKLED = 1, 2, 4
_head = struct.Struct("<HBBIqqII")
HEADER = _head.size
MAX_CIRCUITS = 1 << 16
SACK_BITS = 64


class Packet:
    """A parsed packet that passed its checksum."""
    __slots__ = ("circuit", "kind", "flags", "seq", "sack", "payload")

    def __init__(self, circuit, kind, flags, seq, sack, payload):
        self.circuit = circuit
        self.kind = kind
        self.flags = flags
        self.seq = seq
        self.sack = sack
        self.payload = payload

    def __repr__(self):
        kind = {DATA: "DATA", ACK: "ACK"}.get(self.kind, self.kind)
        return f"<Packet c{self.circuit} {kind} seq={self.seq} flags={self.flags} {len(self.payload)} B>"


def make(circuit, kind, flags, seq, sack=0, payload=b""):
    """The bytes of one packet, checksum included."""
    head = _head.pack(circuit, kind, flags, len(payload), seq, sack, 0, 0)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return _head.pack(circuit, kind, flags, len(payload), seq, sack, crc, 0) + payload


def parse(data):
    """The Packet in `data`, or None when it is corrupt (bad checksum, or a
    length that does not match)."""
    if len(data) < HEADER:
        return None
    circuit, kind, flags, length, seq, sack, crc, zero = _head.unpack_from(data)
    if length != len(data) - HEADER or zero:
        return None
    head = _head.pack(circuit, kind, flags, length, seq, sack, 0, 0)
    payload = data[HEADER:]
    if zlib.crc32(payload, zlib.crc32(head)) != crc or kind not in (DATA, ACK):
        return None
    return Packet(circuit, kind, flags, seq, sack, payload)


__all__ = ["DATA", "ACK", "LAST", "FIN", "PICKLED", "HEADER", "Packet", "make", "parse"]
