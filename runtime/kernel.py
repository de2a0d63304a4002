"""The kernel: boots the machine, wires its parts together, and tears it down.

It owns no algorithm.  It builds the layout of the main arena from its
configuration, creates the arena (kernel process) or maps it (a spawned VP),
and hands each part its section:

    header       this file (below)
    threads      the thread table            (threads.py)
    status       exit statuses               (threads.py)
    processors   the dispatcher              (processors.py)
    ...          the parts in PARTS          (coordination, buffers, memory)

Lifecycle.  `with Kernel(...) as k:` boots the machine and makes the boot
program thread 0.  Leaving the block, normally, by an exception, by Ctrl-C
(KeyboardInterrupt) or by SIGTERM (turned into SystemExit(143)), ends every
virtual processor (SIGKILL; a VP holds nothing the host must clean) and
removes every segment and swap file.  If the kernel process itself is killed,
its VPs notice within about a second (their clock interrupt checks that the
kernel lives) and end themselves; `vos clean` removes what is left.

Header layout (first 64 bytes of the main arena; written only by the kernel
process, read by anyone):

    off size field
      0   8  magic       b"VOSKERN1"
      8   8  pid         the kernel process
     16   8  pid_start   its start time in clock ticks since boot (tells pid reuse apart)
     24   8  state       RUNNING=1, SHUTDOWN=2
     32   8  next_id     fetch_add by anyone: ids for side arenas
"""

import dataclasses
import multiprocessing
import os
import pickle
import signal
import struct
import sys
import threading

from . import atomics, checks
from .arena import Arena, Layout, new_name
from .context import Context, current_or_none
from .errors import KernelError, NoSuchAddressSpace
from .options import PART_OPTIONS, check_part_settings
from .processors import Processors
from .bounded_buffer import Buffers
from .eventcounts import EventcountTable
from .locks import LockTable
from .memory.vm import VirtualMemory
from .thread_manager import ThreadManager, wait_pid_exit
from .threads import ThreadTable, pid_alive
from .vp import ThreadExit, vp_main

MAGIC = b"VOSKERN1"
CONFIG_SIZE = 4096  # the pickled Config, so that `vos top` can attach to any kernel by name
RUNNING, SHUTDOWN = 1, 2
H_MAGIC, H_PID, H_START, H_STATE, H_NEXT_ID = 0, 8, 16, 24, 32
_i64 = struct.Struct("<q")

# Parts that live in the main arena, in layout order: (attribute, class).
# Each class has section_size(config) -> int, __init__(kernel, offset), and may
# have boot() (kernel process, once), enter_vp() (first thing in a new VP),
# on_thread_death(tid) (any process: the dying thread itself or its burier),
# statistics() and shutdown() (kernel process, at the end).
PARTS = [
    ("vm", VirtualMemory),
    ("locks", LockTable),
    ("eventcounts", EventcountTable),
    ("buffers", Buffers),
]


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
        """A part setting (runtime/options.py lists them all), or default."""
        if name not in PART_OPTIONS:
            raise KeyError(f"part setting {name!r} is not in runtime/options.py: add it there "
                           "(and to docs/REFERENCE.md)")
        return dict(self.extra).get(name, default)


class Kernel:
    """The machine.  docs/REFERENCE.md describes every call and every option.

    Kernel(processors=None, frames=256, page_size=4096, swap=None, seed=None,
           max_threads=256, quantum=0.01, start_method=None, **part_settings)

    part_settings: the parts' own settings, listed in runtime/options.py.
    TypeError / ValueError at once for an unknown option or a bad value.
    """

    def __init__(self, processors=None, frames=256, page_size=4096, swap=None, seed=None, *,
                 max_threads=256, quantum=0.01, start_method=None, **part_settings):
        checks.optional_integer("Kernel", "processors as an int >= 1, or None for no limit", processors, 1)
        checks.integer("Kernel", "frames as an int from 1 to 2**31 - 1", frames, 1, (1 << 31) - 1)
        checks.integer("Kernel", "page_size as a power of two from 64 to 2**20", page_size, 64, 1 << 20)
        if page_size & (page_size - 1):
            raise ValueError(f"Kernel needs page_size as a power of two from 64 to 2**20, not {page_size}")
        if swap is not None and not isinstance(swap, (str, os.PathLike)):
            raise checks.refused("Kernel", "swap as a file path (a str), or None for a temporary file", swap)
        checks.optional_integer("Kernel", "seed as an int, or None", seed)
        checks.integer("Kernel", "max_threads as an int from 2 to 65536", max_threads, 2, 65536)
        checks.number("Kernel", "quantum as a number of seconds > 0", quantum)
        methods = multiprocessing.get_all_start_methods()
        if start_method is None:
            start_method = "fork" if sys.platform.startswith("linux") else "spawn"
        if not isinstance(start_method, str):
            raise checks.refused("Kernel", f"start_method as one of {methods}, or None", start_method)
        if start_method not in methods:
            raise ValueError(f"Kernel needs start_method as one of {methods}, or None, not {start_method!r}")
        check_part_settings(part_settings)
        self.config = Config(processors, frames, page_size, swap, seed, max_threads, quantum,
                             start_method, tuple(sorted(part_settings.items())))
        self.arena = None
        self._owner_pid = None
        self._old_sigterm = None

    # --- building ------------------------------------------------------------

    def _layout(self):
        c = self.config
        lay = Layout()
        lay.add("header", 64)
        lay.add("config", CONFIG_SIZE)
        threads_size, status_size = ThreadTable.sizes(c.max_threads)
        lay.add("threads", threads_size)
        lay.add("status", status_size)
        lay.add("processors", Processors.section_size(c.max_threads))
        for name, cls in PARTS:
            lay.add(name, cls.section_size(c))
        return lay

    def _wire(self, arena, layout):
        c = self.config
        self.arena = arena
        self.layout = layout
        sec = layout.sections
        self.threads = ThreadTable(arena, sec["threads"][0], sec["status"][0], c.max_threads)
        self.processors = Processors(arena, sec["processors"][0], self.threads, c.processors)
        self.thread_manager = ThreadManager(self)
        self.parts = []
        for name, cls in PARTS:
            part = cls(self, sec[name][0])
            setattr(self, name, part)
            self.parts.append(part)

    @classmethod
    def attach(cls, handle):
        """A non-owning view of a running kernel, for a spawned VP."""
        name, config = handle
        self = cls.__new__(cls)
        self.config = config
        self._owner_pid = None
        self._wire(Arena.attach(name), self._layout())
        return self

    @classmethod
    def vp_spawned(cls, handle, tid, payload):
        """Entry of a VP started by spawn/forkserver: re-attach, then run
        (vp.vp_main).  Does not return."""
        try:
            kernel = cls.attach(handle)
        except FileNotFoundError:
            os._exit(70)  # the kernel is already gone
        procedure, args = pickle.loads(payload)
        vp_main(kernel, tid, procedure, args)

    @classmethod
    def attach_by_name(cls, name):
        """A read-mostly view of the kernel whose main arena is `name`, from any
        process (the monitor).  FileNotFoundError if it is gone."""
        a = Arena.attach(name)
        try:
            if bytes(a.buf[H_MAGIC:H_MAGIC + 8]) != MAGIC:
                raise ValueError(f"{name} is not a vos kernel arena")
            o = 64  # the config section follows the header
            n = _i64.unpack_from(a.buf, o)[0]
            config = pickle.loads(bytes(a.buf[o + 8:o + 8 + n]))
        finally:
            a.close()
        return cls.attach((name, config))

    def detach(self):
        """Unmap a view made by attach/attach_by_name (never removes anything)."""
        if self._owner_pid != os.getpid() and self.arena is not None:
            self.buffers.detach()
            self.arena.close()
            self.arena = None

    def handle(self):
        """What a spawned VP needs to find this kernel: (arena name, config)."""
        return (self.arena.name, self.config)

    def mp_context(self):
        return multiprocessing.get_context(self.config.start_method)

    # --- boot and shutdown (kernel process) ------------------------------------

    def __enter__(self):
        self.boot()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.shutdown()
        return exc_type is not None and issubclass(exc_type, ThreadExit)

    def boot(self):
        """Create the arena and the parts; the caller becomes thread 0."""
        if current_or_none() is not None:
            raise KernelError("a kernel is already running in this process; leave its `with` block first")
        atomics.require()
        layout = self._layout()
        arena = Arena.create(new_name(), layout.size)
        self._owner_pid = os.getpid()
        try:
            self._wire(arena, layout)
            buf = arena.buf
            buf[H_MAGIC:H_MAGIC + 8] = MAGIC
            _i64.pack_into(buf, H_PID, os.getpid())
            _i64.pack_into(buf, H_START, _start_ticks(os.getpid()))
            _i64.pack_into(buf, H_STATE, RUNNING)
            cfg = pickle.dumps(self.config)
            if len(cfg) > CONFIG_SIZE - 8:
                raise ValueError("the kernel's settings are too large to record")
            o = layout.sections["config"][0]
            _i64.pack_into(buf, o, len(cfg))
            buf[o + 8:o + 8 + len(cfg)] = cfg
            self.processors.boot()
            for part in self.parts:
                if hasattr(part, "boot"):
                    part.boot()
            self.threads.install_boot_thread(os.getpid(), self.address_space)
            Context(self, 0).install()
            _set_subreaper(True)
            if threading.current_thread() is threading.main_thread():
                self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_exit)
        except BaseException:
            self._teardown()
            raise

    def shutdown(self):
        """End every VP, remove every segment and swap file.  Idempotent."""
        if self.arena is None or self._owner_pid != os.getpid():
            return
        _i64.pack_into(self.arena.buf, H_STATE, SHUTDOWN)
        try:
            self._end_all_vps()
        finally:
            self._teardown()

    def _end_all_vps(self):
        victims = [(tid, pid) for slot, tid, pid, state in self.threads.live_slots() if slot != 0 and pid > 0]
        for _tid, pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        procs = self.thread_manager._procs
        for tid, pid in victims:
            proc = procs.pop(tid, None)
            if proc is not None:
                proc.join(5)
            else:
                wait_pid_exit(pid, 5)
                _reap(pid)
        for proc in procs.values():
            proc.join(5)
        procs.clear()

    def _teardown(self):
        for part in reversed(getattr(self, "parts", [])):
            if hasattr(part, "shutdown"):
                try:
                    part.shutdown()
                except Exception as e:  # keep going: the arena must go whatever happens
                    print(f"vos: shutdown of {type(part).__name__} failed: {e}", file=sys.stderr)
        ctx = current_or_none()
        if ctx is not None and ctx.kernel is self:
            Context.uninstall()
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        _set_subreaper(False)
        arena, self.arena = self.arena, None
        if arena is not None:
            arena.close()
            arena.unlink()

    # --- what VPs ask of the kernel ---------------------------------------------

    def alive(self):
        """Does the kernel still run?  (Any process; a few microseconds.)"""
        if self.arena is None or self.arena.buf is None:
            return False
        buf = self.arena.buf
        if _i64.unpack_from(buf, H_STATE)[0] != RUNNING:
            return False
        return pid_alive(_i64.unpack_from(buf, H_PID)[0])

    def enter_vp(self):
        """First thing in a new VP: drop the creator's process-private state."""
        self.thread_manager._procs = {}
        self._owner_pid = None
        for part in self.parts:
            if hasattr(part, "enter_vp"):
                part.enter_vp()

    def run_death_hooks(self, tid):
        for part in self.parts:
            if hasattr(part, "on_thread_death"):
                part.on_thread_death(tid)

    def next_id(self):
        return atomics.fetch_add(self.arena.addr + H_NEXT_ID, 1)

    @property
    def address_space(self):
        """Thread 0's address space id."""
        vm = getattr(self, "vm", None)
        return vm.boot_address_space if vm is not None else 1

    def check_address_space(self, as_id):
        vm = getattr(self, "vm", None)
        if vm is not None:
            vm.check_address_space(as_id)
        elif as_id != 1:
            raise NoSuchAddressSpace(f"no address space {as_id!r}")

    # --- the boot program's conveniences ----------------------------------------

    def _running(self, call):
        if self.arena is None:
            raise KernelError(f"{call}: this kernel is not running (use it inside `with Kernel(...) as k:`)")

    @property
    def page_size(self):
        """Bytes in a page (Kernel(page_size=...), 4096 by default)."""
        return self.config.page_size

    def address(self, page, offset=0):
        """The virtual address of byte `offset` of virtual page `page`:
        page * page_size + offset.  Pure arithmetic (any process, any time).
        TypeError, ValueError for a page outside the address space or an
        offset outside the page."""
        vpages, ps = self.config.get("address_space_pages", 4096), self.config.page_size
        checks.integer("k.address", f"an int page from 0 to {vpages - 1}", page, 0, vpages - 1)
        checks.integer("k.address", f"an int offset from 0 to {ps - 1} (a byte within the page)", offset, 0, ps - 1)
        return page * ps + offset

    def join(self, tid, timeout=None):
        """Wait for thread tid; its exit status, or ThreadFailed / TimeoutError."""
        self._running("k.join")
        return self.thread_manager.join(tid, timeout)

    def thread_info(self):
        """One dict per thread (state, waits_for, run time, switches, ...), lock-free."""
        self._running("k.thread_info")
        return self.threads.snapshot()

    def _check_invariants(self):
        """Check every part's internal invariants (tests call this)."""
        self.threads._check_invariants()
        self.processors._check_invariants()
        for part in self.parts:
            if hasattr(part, "_check_invariants"):
                part._check_invariants()

    def statistics(self):
        """A snapshot of every part: threads, processors, vm, locks,
        eventcounts, buffers (see docs/REFERENCE.md).  Lock-free."""
        self._running("k.statistics")
        stats = {"threads": self.thread_info()}
        busy, waiting = self.processors.in_use()
        stats["processors"] = {"count": self.config.processors, "busy": busy, "waiting": waiting}
        for name, _ in PARTS:
            part = getattr(self, name)
            if hasattr(part, "statistics"):
                stats[name] = part.statistics()
        return stats

    def __repr__(self):
        state = "running" if self.arena is not None else "not booted"
        return f"<Kernel {state} processors={self.config.processors} frames={self.config.frames}>"


def _sigterm_to_exit(signum, frame):
    raise SystemExit(128 + signum)


def _start_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _set_subreaper(on):
    """Linux: orphaned VPs (whose creating VP exited) are re-parented to the
    kernel process, which reaps them, instead of to init."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    try:
        ctypes.CDLL(None).prctl(36, int(on), 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


__all__ = ["Kernel", "Config"]
