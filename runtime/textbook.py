"""The textbook layer: Saltzer & Kaashoek's names, verbatim.

Lecture pseudocode runs nearly as written:

    tid = ALLOCATE_THREAD(worker, k.address_space, buf)
    ACQUIRE(lock); x = LOAD(a); STORE(a, x + 1); RELEASE(lock)

Every call works in the boot program (thread 0) and in every virtual
processor; each goes through the calling process's context to the same code
as the Pythonic layer.  AWAIT follows S&K: it returns once the eventcount
*exceeds* the value (Reed & Kanodia's original waits for >=).

docs/REFERENCE.md documents every call here: its arguments, what it returns
and blocks on, and every error it raises.  A bad argument raises at once,
naming the call (runtime/checks.py).
"""

from . import checks as _checks
from .context import current as _current
from .vp import ThreadExit as _ThreadExit
from .memory import (CREATE_ADDRESS_SPACE, DELETE_ADDRESS_SPACE, ALLOCATE_BLOCK, FREE_BLOCK, MAP, UNMAP,  # noqa: E501
                     LOAD, STORE, LOAD_BYTES, STORE_BYTES, RSM)
from .locks import ALLOCATE_LOCK, ACQUIRE, RELEASE
from .eventcounts import ALLOCATE_EVENTCOUNT, ADVANCE, READ, AWAIT, ALLOCATE_SEQUENCER, TICKET
from .bounded_buffer import ALLOCATE_BOUNDED_BUFFER, SEND, RECEIVE, DEALLOCATE_BOUNDED_BUFFER


def ALLOCATE_THREAD(procedure, as_id, *args):
    """Start procedure(*args) as a new thread in address space as_id; returns its tid."""
    return _current().kernel.thread_manager.allocate(procedure, as_id, args)


def EXIT_THREAD(status=0):
    """End the calling thread with this exit status (anything that pickles:
    `join` returns it).  Does not return.  In thread 0 it leaves the
    `with Kernel` block.  NotPicklable for a status that does not pickle."""
    _current()
    _checks.picklable("EXIT_THREAD", "an exit status", status)
    raise _ThreadExit(status)


def DESTROY_THREAD(tid):
    """End thread tid from outside; its locks are marked owner-died.
    NoSuchThread; KernelError for thread 0."""
    manager = _current().kernel.thread_manager
    manager.destroy(_checks.integer("DESTROY_THREAD", "a thread id (an int from ALLOCATE_THREAD)", tid))


def YIELD():
    """Give the processor to the next runnable thread, if any."""
    _current().kernel.thread_manager.yield_()


__all__ = ["ALLOCATE_THREAD", "EXIT_THREAD", "DESTROY_THREAD", "YIELD"]
__all__ += ["CREATE_ADDRESS_SPACE", "DELETE_ADDRESS_SPACE", "ALLOCATE_BLOCK", "FREE_BLOCK", "MAP", "UNMAP",
            "LOAD", "STORE", "LOAD_BYTES", "STORE_BYTES", "RSM"]
__all__ += ["ALLOCATE_LOCK", "ACQUIRE", "RELEASE"]
__all__ += ["ALLOCATE_EVENTCOUNT", "ADVANCE", "READ", "AWAIT", "ALLOCATE_SEQUENCER", "TICKET"]
__all__ += ["ALLOCATE_BOUNDED_BUFFER", "SEND", "RECEIVE", "DEALLOCATE_BOUNDED_BUFFER"]
