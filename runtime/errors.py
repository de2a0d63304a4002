"""Every error the runtime raises on purpose.

One family, rooted at `KernelError`, so that a student can catch "anything the
kernel refused" in one clause.  Where an error is also a well-known Python error
(a bad argument, a memory shortage, a timeout) it subclasses that too, so that
ordinary Python code handles it the ordinary way.

The names follow the textbook; docs/REFERENCE.md says, call by call, which
ones each call raises and why.  The split mirrors trio's: errors that say
*you* did something wrong (NotOwner, DeadlockError), errors that say *the
other side* broke (OwnerDied, BufferDeallocated), and errors that say *the
machine* ran out (OutOfResources, OutOfMemory).  A bad argument is a plain
TypeError or ValueError naming the call (runtime/checks.py).
"""


class KernelError(Exception):
    """Base class of every error the runtime raises on purpose."""


# --- resources ---------------------------------------------------------------

class OutOfResources(KernelError):
    """A fixed kernel table (threads, locks, buffers, address spaces) is full,
    or the host cannot give the kernel the shared memory it asked for."""


class AtomicsUnavailable(OutOfResources):
    """The host gives vos no atomic instructions on shared memory: it refused
    the instruction page and has no libatomic (atomics.py).  Raised at boot."""


class OutOfMemory(KernelError, MemoryError):
    """Neither physical frames nor swap (nor the address space's quota) can hold it."""


class KernelDied(KernelError):
    """The kernel that owns this virtual processor is gone (killed or shut down)."""


class NotPicklable(KernelError, TypeError):
    """A value that must cross to another process does not pickle: a thread's
    procedure or arguments (spawn), a message to SEND, an exit status."""


# --- threads -----------------------------------------------------------------

class NoSuchThread(KernelError, LookupError):
    """No live or unjoined thread has this id."""


class ThreadFailed(KernelError):
    """`join` of a thread that did not exit by itself.

    Attributes: `tid`, `reason` ("exception", "fault" or "destroyed"),
    `exc_type` (name of the exception class), `message`, `traceback` (text).
    """

    def __init__(self, tid, reason, exc_type="", message="", traceback=""):
        self.tid = tid
        self.reason = reason
        self.exc_type = exc_type
        self.message = message
        self.traceback = traceback
        what = f"{exc_type}: {message}" if exc_type else reason
        super().__init__(f"thread {tid} ended by {reason}: {what}")

    def __reduce__(self):
        return (type(self), (self.tid, self.reason, self.exc_type, self.message, self.traceback))


# --- address spaces and memory ----------------------------------------------

class NoSuchAddressSpace(KernelError, LookupError):
    """No address space has this id."""


class AddressSpaceBusy(KernelError):
    """The address space still has a live thread running in it."""


class NoSuchBlock(KernelError, LookupError):
    """No allocated block has this id."""


class BlockInUse(KernelError):
    """The block is still mapped into some address space."""


class AlreadyMapped(KernelError):
    """The virtual page is already mapped in this address space."""


class NotMapped(KernelError):
    """The virtual page is not mapped in this address space."""


class MemoryFault(KernelError):
    """A memory access the pager refused.  Carries `tid`, `address`, `page`."""

    def __init__(self, message, tid=None, address=None, page=None):
        self.tid = tid
        self.address = address
        self.page = page
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.args[0], self.tid, self.address, self.page))


class SegmentationFault(MemoryFault):
    """LOAD or STORE of a virtual address that no page maps."""


class ProtectionFault(MemoryFault):
    """STORE (or RSM) to a page mapped read-only."""


class AlignmentError(MemoryFault, ValueError):
    """A word access at an address that is not a multiple of 8."""


# --- coordination ------------------------------------------------------------

class DeadlockError(KernelError):
    """ACQUIRE would never return: the caller holds the lock already, or the
    wait would close a cycle in the wait-for graph (named in the message)."""


class NotOwner(KernelError):
    """RELEASE of a lock by a thread that does not hold it."""


class OwnerDied(KernelError):
    """The previous holder of the lock died holding it.  The caller now holds
    the lock; the data it guards may be half-updated."""


class WouldBlock(KernelError):
    """A `_nowait` call that would have had to wait."""


class NoSuchObject(KernelError, LookupError):
    """A lock, eventcount or sequencer handle that names nothing in the
    running kernel (made up, or left over from an earlier kernel)."""


# --- controlled runs (sched/) -------------------------------------------------

class Hang(KernelError):
    """A controlled run in which no thread can run and some have not ended;
    raised in thread 0, naming every thread and what it waits for."""


class StepLimit(KernelError):
    """A controlled run took more than max_steps steps (a livelock, or a
    longer program than the limit allows); raised in thread 0."""


class DataRace(KernelError):
    """explore(..., races=True): the run had a data race (even if its
    invariant held).  `.races` lists them (runtime.races.Race)."""

    def __init__(self, message, races=()):
        super().__init__(message)
        self.races = list(races)

    def __reduce__(self):
        return (type(self), (self.args[0], self.races))


class ReplayMismatch(KernelError):
    """A replay token does not fit the program any more: its code changed,
    or it made a different choice possible."""


# --- bounded buffers ---------------------------------------------------------

class BufferDeallocated(KernelError):
    """The bounded buffer was deallocated (before or while this call waited)."""


class MessageTooLarge(KernelError, ValueError):
    """The message can never fit in the buffer's capacity."""


class EndOfStream(KernelError, EOFError):
    """Every writer closed the stream and it is drained."""


class ReaderClosed(KernelError, BrokenPipeError):
    """The other side broke it: every reading end of the stream is closed, so
    nobody will receive what is sent (a pipe's EPIPE; code that treats
    BrokenPipeError like SIGPIPE stops the writer)."""


class StreamClosed(KernelError, ValueError):
    """You closed it: sending on a stream that was closed for writing (this
    end, or every writer end), or using an end after its close()."""
