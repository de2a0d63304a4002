"""The kernel's part settings: one table, the one `Kernel()` checks against.

`Kernel(processors, frames, page_size, swap, seed, *, max_threads, quantum,
start_method, **part_settings)`: the named parameters are the machine's
(kernel.py checks them); every other keyword is a setting of one part
(the pager, the lock table, ...), read by that part with
`config.get(name, default)`.  This table lists every such setting, its
default as the part applies it, and what it means, so that:

  * `Kernel()` refuses a name that is not here (a typo such as `polcy="lru"`
    would otherwise be ignored without a word), and a value of the wrong
    type or range, before anything is built;
  * `Config.get` refuses to read a name that is not here, so a setting added
    to a part has to be added here too;
  * tests/test_reference.py checks that docs/REFERENCE.md documents every
    setting here and every parameter of `Kernel.__init__`, default included.

A constant table, the same in every process (nothing here is in shared memory).
"""

import dataclasses

from . import checks


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    default: object     # what the part uses when the setting is not given
    shown: str          # the default as docs/REFERENCE.md writes it
    part: str           # the PARTS name of the part that reads it
    meaning: str
    check: object       # check(value): raises TypeError / ValueError naming Kernel and the setting


def _int(lo, hi=None):
    what = f"an int >= {lo}" if hi is None else f"an int from {lo} to {hi}"
    return lambda name, v: checks.integer("Kernel", f"{name} as {what}", v, lo, hi)


def _bool(name, v):
    checks.boolean("Kernel", f"{name} as True or False", v)


def _seconds(name, v):
    checks.number("Kernel", f"{name} as a number of seconds > 0", v)


def _policy(name, v):
    if not isinstance(v, str):
        raise checks.refused("Kernel", f'{name} as one of "clock", "fifo", "lru", "random"', v)
    if v not in ("clock", "fifo", "lru", "random"):
        raise ValueError(f'Kernel needs {name} as one of "clock", "fifo", "lru", "random", not {v!r}')


PART_OPTIONS = {o.name: o for o in [
    # the pager (part "vm", runtime/memory/vm.py and tables.py)
    Option("policy", "clock", '"clock"', "vm", "page replacement policy: clock, fifo, lru or random", _policy),
    Option("swap_pages", None, "max(16384, 4 * frames)", "vm",
           "pages the swap file can hold (0: no swap)", _int(0)),
    Option("resident_limit", 0, "0", "vm",
           "default for CREATE_ADDRESS_SPACE: frames one address space may hold (0: no limit)", _int(0, (1 << 63) - 1)),
    Option("page_limit", 0, "0", "vm",
           "default for CREATE_ADDRESS_SPACE: pages one address space may allocate (0: no limit)",
           _int(0, (1 << 63) - 1)),
    Option("max_address_spaces", 64, "64", "vm", "address spaces that can exist at once (at most 64)", _int(1, 64)),
    Option("address_space_pages", 4096, "4096", "vm", "virtual pages in each address space (at most 2**20)",
           _int(1, 1 << 20)),
    Option("max_blocks", 1024, "1024", "vm", "blocks (ALLOCATE_BLOCK) that can exist at once", _int(1)),
    # the lock table (part "locks", runtime/locks.py)
    Option("max_locks", 1024, "1024", "locks", "locks ALLOCATE_LOCK can hand out", _int(1, (1 << 24) - 2)),
    Option("sync_slice", 0.25, "0.25", "locks, eventcounts",
           "longest single sleep in ACQUIRE and AWAIT, in seconds (a safety net: a wake-up is never lost)",
           _seconds),
    Option("sync_spin", True, "True", "locks, eventcounts",
           "ACQUIRE and AWAIT spin briefly before they sleep when the thread has a core", _bool),
    # eventcounts and sequencers (part "eventcounts", runtime/eventcounts.py)
    Option("max_eventcounts", 1024, "1024", "eventcounts",
           "eventcounts and sequencers (together) that can be allocated", _int(1)),
    # bounded buffers (part "buffers", runtime/bounded_buffer.py)
    Option("max_buffers", 256, "256", "buffers", "bounded buffers that can exist at once", _int(1)),
    Option("buffer_bias", True, "True", "buffers",
           "a buffer's side locks stay with the thread that used them last (faster; needs membarrier)", _bool),
    Option("buffer_malloc_tuning", True, "True", "buffers",
           "raise glibc's trim and mmap thresholds in processes that receive large messages", _bool),
]}


def check_part_settings(settings):
    """Kernel(**part_settings) at the door: every name known, every value valid."""
    for name, value in settings.items():
        option = PART_OPTIONS.get(name)
        if option is None:
            import difflib
            close = difflib.get_close_matches(name, PART_OPTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"Kernel got an unknown option {name!r}{hint}; docs/REFERENCE.md lists them all")
        option.check(name, value)
