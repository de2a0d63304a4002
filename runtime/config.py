"""The machine's configuration: what Kernel() was given, as data.

`Config` is pickled into the main arena (kernel.py, section "config"), so a
spawned VP or a monitor (`vos top`) attached by name derives the same layout.
`PART_SETTINGS` is the one list of the parts' own options: Kernel() refuses
any other keyword, naming the closest valid one (a typo such as
`polcy="lru"` must not boot a machine that silently runs with the default).
"""

import dataclasses
import difflib

# The parts' own settings, Kernel(**part_settings): name -> (default, what it sets).
# This table is the only list of them: Kernel() refuses any other name with a
# TypeError that names the closest valid one (a typo such as `polcy="lru"`
# must not boot a machine that silently runs with the default), and
# Config.get() refuses to read an undeclared one.  A new setting is one line
# here; its part reads it with config.get(name) and checks its value.
PART_SETTINGS = {
    "policy": ("clock", "page replacement: clock, fifo, lru or random (memory/policies.py)"),
    "resident_limit": (0, "most frames one address space may hold (0: no limit)"),
    "page_limit": (0, "most pages one address space may map (0: no limit)"),
    "max_address_spaces": (64, "address-space table size"),
    "address_space_pages": (4096, "virtual pages per address space"),
    "max_blocks": (1024, "block table size (ALLOCATE_BLOCK)"),
    "swap_pages": (None, "pages of swap (default: max(16384, 4 * frames))"),
    "max_locks": (1024, "lock table size"),
    "max_eventcounts": (1024, "eventcount and sequencer table size"),
    "sync_slice": (0.25, "longest single futex sleep of ACQUIRE and AWAIT, in seconds"),
    "sync_spin": (True, "ACQUIRE and AWAIT spin a little before they sleep"),
    "max_buffers": (256, "bounded-buffer table size"),
    "buffer_bias": (True, "bounded-buffer side locks are biased (buffer_ring.py)"),
    "buffer_malloc_tuning": (True, "tune glibc malloc for large messages (bounded_buffer.py)"),
    "max_bundles": (8, "bundle table size (bundle.py: ALLOCATE_BUNDLE)"),
    "bundle_senders": (64, "sending threads a bundle can number over its life (bundle.py)"),
    "pool": (0, "idle VPs kept ready for ALLOCATE_THREAD (pool.py); 0: a process is forked per thread"),
    "races": (False, "report data races: k.races() (races.py)"),
    # set by Kernel(schedule=..., max_steps=...), not given directly:
    "schedule": (None, "the strategy of a controlled run (sched/), None when it runs freely"),
    "max_steps": (None, "a controlled run's step budget (StepLimit beyond it)"),
}


def check_settings(part_settings, params):
    """TypeError for keywords that are neither `params` (the parameters of
    Kernel()) nor part settings, naming each one and the closest valid name."""
    valid = params + list(PART_SETTINGS)
    unknown = sorted(set(part_settings) - set(PART_SETTINGS))
    if not unknown:
        return
    words = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1)
        words.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    s = "s" if len(unknown) > 1 else ""
    message = f"Kernel() got unexpected keyword argument{s} {', '.join(words)}"
    if not all(difflib.get_close_matches(name, valid, n=1) for name in unknown):
        message += f"; the options are {', '.join(valid)}"
    raise TypeError(message)


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a process needs to rebuild the kernel's layout.  Picklable."""
    processors: int | None = None
    frames: int = 256
    page_size: int = 4096
    swap: str | None = None
    seed: int | None = None
    max_threads: int = 256
    quantum: float = 0.01
    start_method: str = "fork"
    extra: tuple = ()          # (name, value) pairs for the parts' own settings

    def get(self, name, default=None):
        """A part setting: the value given to Kernel(), else `default`, else the
        default in PART_SETTINGS.  KeyError for a name PART_SETTINGS lacks."""
        if name not in PART_SETTINGS:
            raise KeyError(f"{name!r} is not a Kernel setting: declare it in config.PART_SETTINGS")
        given = dict(self.extra)
        if name in given:
            return given[name]
        return PART_SETTINGS[name][0] if default is None else default



__all__ = ["Config", "PART_SETTINGS", "check_settings"]
