"""Links: the physical line and the virtual link over it (通信的接口保持).

The lecture's communication interface is send(data, destination) and
receive(source); the virtual link keeps it over a medium that loses,
duplicates, reorders, delays and corrupts, and several virtual circuits
share one physical line (虚电路, row 4 of the lecture's table: 复用 of a
physical line).  One concept per file:

    physical.py   the faulty line: a bounded buffer and a seeded fault injector
    packets.py    packets (分组): header, sequence number, checksum
    virtual.py    the virtual link and its circuits: acknowledgements,
                  retransmission after a timeout, reordering, demultiplexing

    from runtime.link import Faults, PhysicalLink, VirtualLink
"""

from .packets import Packet
from .physical import FAULT_KINDS, Faults, PhysicalLink
from .virtual import Circuit, VirtualLink

__all__ = ["Faults", "PhysicalLink", "VirtualLink", "Circuit", "Packet", "FAULT_KINDS"]
