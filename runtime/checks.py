"""Checks at the door: a bad argument becomes an error that names the call,
the argument and what to do, never a TypeError from deep inside an operator.

    LOAD needs an int virtual address, not bytes b'hello'
    ACQUIRE needs a lock from ALLOCATE_LOCK, not Eventcount <Eventcount 1 ...>

The kind of error, everywhere in the runtime:

    TypeError    the argument has the wrong type.  A bool is the wrong type
                 where an id, a count or a handle is expected (True is not
                 thread 1); an address or a word is any int, bool included,
                 as everywhere in Python.
    ValueError   the right type, a wrong value (a negative count, a page past
                 the end, a NaN timeout).  OverflowError for a word that does
                 not fit in 64 bits (STORE).
    KernelError  well formed, but it names nothing or is refused
                 (NoSuchThread, NoSuchObject, BufferDeallocated, ...).

Where the checks run.  Cold calls (MAP, the ALLOCATE_* calls, join, ...)
call these helpers first thing.  The hot calls (LOAD, STORE, RSM, ACQUIRE,
RELEASE, ADVANCE, READ, AWAIT, TICKET, SEND, RECEIVE) never do: their fast
path is arranged to *fail* for a bad argument -- the page number of a
non-int address cannot be computed, a handle of another kind has no key to a
prepared pointer -- and the slow path, which runs on any failure, calls these
to name the problem.  A correct program pays nothing for them.

Every helper runs in any process and touches no shared memory.
docs/REFERENCE.md lists, call by call, every error these produce.
"""

import math
import pickle

from .errors import NotPicklable

_REPR_MAX = 60


def describe(value):
    """'bytes b'hello'': the type and a short repr, for "..., not <this>"."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__} object>"
    if len(text) > _REPR_MAX:
        text = text[:_REPR_MAX - 3] + "..."
    return f"{type(value).__name__} {text}"


def refused(call, what, value, hint=""):
    """The TypeError for a value of the wrong type (returned, for `raise`)."""
    return TypeError(f"{call} needs {what}, not {describe(value)}{hint}")


def target_hint(obj, method, alias):
    """For SEND / RECEIVE refusing a runtime object that has the method but
    not the alias: the hint for whoever wrote that class."""
    if type(obj).__module__.startswith("runtime.") and hasattr(obj, method):
        return f" ({type(obj).__name__} has {method} but no `{alias} = {method}`: add it to take part)"
    return ""


def integer(call, what, value, lo=None, hi=None, hint="", bool_ok=False):
    """value, if it is an int (not a bool, unless bool_ok) with lo <= value <= hi.
    TypeError for another type, ValueError out of range.  `what` reads after
    "needs": "an int byte count >= 1"."""
    if not isinstance(value, int) or (isinstance(value, bool) and not bool_ok):
        raise refused(call, what, value, hint)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{call} needs {what}, not {value}{hint}")
    return value


def optional_integer(call, what, value, lo=None, hi=None, hint=""):
    """None, or integer(...)."""
    if value is None:
        return None
    return integer(call, what, value, lo, hi, hint)


def address(call, vaddr):
    """A virtual address: any int (a bool is 0 or 1).  Which addresses are
    mapped is the pager's business: it raises the faults."""
    if not isinstance(vaddr, int):
        raise refused(call, "an int virtual address", vaddr,
                      " (page * k.page_size + offset, or k.address(page, offset))") from None
    return vaddr


def timeout(call, value):
    """None (wait as long as it takes) or a number of seconds >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise refused(call, "a timeout in seconds (a number >= 0, or None to wait as long as it takes)",
                      value)
    if not value >= 0:  # also NaN
        raise ValueError(f"{call} needs a timeout in seconds >= 0 (or None to wait as long as it takes), "
                         f"not {value}")
    return value


def name(call, value, limit):
    """An optional name for statistics: None or a str (cut to `limit` UTF-8 bytes)."""
    if value is not None and not isinstance(value, str):
        raise refused(call, f"a name (a str, up to {limit} bytes shown) or None", value)
    return value


def boolean(call, what, value):
    if not isinstance(value, bool):
        raise refused(call, what, value)
    return value


def number(call, what, value, positive=True):
    """A finite real number (int or float, not bool), > 0 if positive."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise refused(call, what, value)
    if not math.isfinite(value) or (positive and not value > 0):
        raise ValueError(f"{call} needs {what}, not {value}")
    return value


def picklable(call, what, value, hint=""):
    """Pickle value; NotPicklable (a KernelError and a TypeError) if it cannot
    be pickled.  Returns the pickle."""
    try:
        return pickle.dumps(value, 5)
    except Exception as e:
        raise NotPicklable(f"{call} needs {what} that pickles, not {describe(value)} ({type(e).__name__}: "
                           f"{e}){hint}") from None


# --- the bounded buffers' Pythonic calls (bounded_buffer.py) -----------------------

def messages(call, items, seconds):
    """send_many's arguments: the messages as a list, and the timeout."""
    timeout(call, seconds)
    if type(items) is list:
        return items
    try:
        return list(items)
    except TypeError:
        raise refused(call, "an iterable of messages (a list of bytes, ...)", items) from None


def send_into(call, size, fill, seconds):
    integer(call, "an int size >= 1 (bytes to make room for)", size, lo=1)
    if not callable(fill):
        raise refused(call, "a fill function: fill(view) writes into the view and returns how many bytes "
                      "it wrote", fill)
    timeout(call, seconds)


def receive_many(call, max_messages, seconds):
    optional_integer(call, "max_messages as an int >= 1 (or None: all there are)", max_messages, lo=1)
    timeout(call, seconds)


# --- the values of Kernel's part settings (config.PART_SETTINGS has the names) ------

def _count(lo, hi=None):
    what = f"an int >= {lo}" if hi is None else f"an int from {lo} to {hi}"
    return lambda name, v: integer("Kernel", f"{name} as {what}", v, lo, hi)


def _flag(name, v):
    boolean("Kernel", f"{name} as True or False", v)


def _policy(name, v):
    if not isinstance(v, str):
        raise refused("Kernel", f'{name} as one of "clock", "fifo", "lru", "random"', v)
    if v not in ("clock", "fifo", "lru", "random"):
        raise ValueError(f'Kernel needs {name} as one of "clock", "fifo", "lru", "random", not {v!r}')


_SETTINGS = {
    "policy": _policy,
    "swap_pages": lambda name, v: optional_integer("Kernel", f"{name} as an int >= 0, or None", v, 0),
    "resident_limit": _count(0, (1 << 63) - 1),
    "page_limit": _count(0, (1 << 63) - 1),
    "max_address_spaces": _count(1, 64),
    "address_space_pages": _count(1, 1 << 20),
    "max_blocks": _count(1),
    "max_locks": _count(1, (1 << 24) - 2),
    "max_eventcounts": _count(1),
    "sync_slice": lambda name, v: number("Kernel", f"{name} as a number of seconds > 0", v),
    "sync_spin": _flag,
    "max_buffers": _count(1),
    "buffer_bias": _flag,
    "buffer_malloc_tuning": _flag,
    "pool": _count(0, 64),
    "races": _flag,
}


def part_settings(settings):
    """Kernel(**part_settings)'s values, checked before anything is built:
    TypeError / ValueError naming Kernel and the setting.  (The names were
    checked against config.PART_SETTINGS; a setting without a check here is
    checked by its part at boot.)"""
    for name, value in settings.items():
        check = _SETTINGS.get(name)
        if check is not None:
            check(name, value)
