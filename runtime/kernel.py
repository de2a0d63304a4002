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
      0   8  magic       b"VOSKERN2": the layout's version (bump it when the layout changes)
      8   8  pid         the kernel process
     16   8  pid_start   its start time in clock ticks since boot (tells pid reuse apart)
     24   8  state       RUNNING=1, SHUTDOWN=2
     32   8  next_id     fetch_add by anyone: ids for side arenas
"""

import inspect
import multiprocessing
import os
import pickle
import signal
import struct
import sys
import threading

from . import atomics, checks
from .arena import Arena, Layout, new_name
from .config import Config, check_settings
from .context import Context, current_or_none
from .errors import KernelError, NoSuchAddressSpace
from .processors import Processors
from .buffer_table import Buffers
from .bundle import Bundles
from .eventcounts import EventcountTable
from .locks import LockTable
from .memory.vm import VirtualMemory
from .pool import Pool, pool_main
from .thread_manager import ThreadManager
from .threads import ThreadTable, pid_alive
from .vp import ThreadExit, vp_main
from . import sched
from .sched import board, strategies, wiring
from . import race_wiring, racelog
from .sched.board import MAX_CONTROLLED_THREADS

MAGIC = b"VOSKERN2"   # 2: the thread table has a header.  A monitor (vos top, vos clean) of another
                      # version refuses the arena (ValueError) instead of misreading it
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
    ("bundles", Bundles),
    ("pool", Pool),
]


class Kernel:
    """The machine.  docs/REFERENCE.md describes every call and every option.

    Kernel(processors=None, frames=256, page_size=4096, swap=None, seed=None,
           max_threads=None, quantum=0.01, start_method=None, schedule=None,
           max_steps=None, **part_settings)

    schedule: None (free running) or a controlled run (sched/): "rr",
    "random", "pct", "pct:D", a replay token "vos1:...", or a sched.Schedule.
    A controlled kernel runs one thread at a time, allows at most 64 threads
    (max_threads defaults to 64 there, 256 otherwise) and max_steps steps
    (20000 by default).

    part_settings: the names in config.PART_SETTINGS.  An unknown option or a bad
    value is a TypeError / ValueError at once, naming it.
    """

    def __init__(self, processors=None, frames=256, page_size=4096, swap=None, seed=None, *,
                 max_threads=None, quantum=0.01, start_method=None, schedule=None, max_steps=None,
                 **part_settings):
        check_settings(part_settings, [p for p in inspect.signature(Kernel.__init__).parameters
                                       if p not in ("self", "part_settings")])
        checks.part_settings(part_settings)
        checks.optional_integer("Kernel", "processors as an int >= 1, or None for no limit", processors, 1)
        checks.integer("Kernel", "frames as an int from 1 to 2**31 - 1", frames, 1, (1 << 31) - 1)
        checks.integer("Kernel", "page_size as a power of two from 64 to 2**20", page_size, 64, 1 << 20)
        if page_size & (page_size - 1):
            raise ValueError(f"Kernel needs page_size as a power of two from 64 to 2**20, not {page_size}")
        if swap is not None and not isinstance(swap, (str, os.PathLike)):
            raise checks.refused("Kernel", "swap as a file path (a str), or None for a temporary file", swap)
        checks.optional_integer("Kernel", "seed as an int, or None", seed)
        checks.optional_integer("Kernel", "max_threads as an int from 2 to 65536, or None", max_threads, 2, 65536)
        checks.number("Kernel", "quantum as a number of seconds > 0", quantum)
        self._schedule = None
        if schedule is not None:
            self._schedule = sched.parse(schedule, seed)
            if max_threads is None:
                max_threads = MAX_CONTROLLED_THREADS
            if max_threads > MAX_CONTROLLED_THREADS:
                raise ValueError(f"Kernel needs max_threads of at most {MAX_CONTROLLED_THREADS} in a controlled "
                                 f"kernel (schedule=...), not {max_threads}")
            if max_steps is None:
                max_steps = sched.DEFAULT_MAX_STEPS
            checks.integer("Kernel", "max_steps as an int from 1 to 10,000,000", max_steps, 1, 10_000_000)
            part_settings["schedule"] = self._schedule.strategy
            part_settings["max_steps"] = max_steps
        elif max_steps is not None:
            raise ValueError("Kernel(max_steps=...) limits a controlled run: give schedule= too "
                             "(e.g. schedule='random')")
        if max_threads is None:
            max_threads = 256
        methods = multiprocessing.get_all_start_methods()
        if start_method is None:
            start_method = "fork" if sys.platform.startswith("linux") else "spawn"
        if not isinstance(start_method, str):
            raise checks.refused("Kernel", f"start_method as one of {methods}, or None", start_method)
        if start_method not in methods:
            raise ValueError(f"Kernel needs start_method as one of {methods}, or None, not {start_method!r}")
        self.config = Config(processors, frames, page_size, swap, seed, max_threads, quantum,
                             start_method, tuple(sorted(part_settings.items())))
        self.arena = None
        self.sched = None
        self.sched_check = None
        self._affinity = None
        self._last_run = None          # (trace, token) of a controlled run, kept after shutdown
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
        lay.add("sched", board.section_size(c))
        lay.add("racelog", racelog.section_size(c))
        return lay

    def _wire(self, arena, layout):
        c = self.config
        self.arena = arena
        self.layout = layout
        sec = layout.sections
        controlled = c.get("schedule") is not None
        self.threads = ThreadTable(arena, sec["threads"][0], sec["status"][0], c.max_threads)
        # a controlled run runs one thread at a time: no processor limit to enforce
        self.processors = Processors(arena, sec["processors"][0], self.threads, None if controlled else c.processors)
        self.thread_manager = ThreadManager(self)
        self.parts = []
        for name, cls in PARTS:
            part = cls(self, sec[name][0])
            setattr(self, name, part)
            self.parts.append(part)
        self.sched = board.Board(arena, sec["sched"][0], c) if controlled else None
        self.sched_check = getattr(self, "sched_check", None)
        if controlled:
            wiring.install(self)
        self.racelogs = None
        if sec["racelog"][1]:                      # races=True, running freely: every thread logs
            self.racelogs = racelog.RaceLogs(self, sec["racelog"][0])
            race_wiring.install(self)

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
    def pool_spawned(cls, handle, entry, work):
        """Entry of a pool VP started by spawn/forkserver (pool.py)."""
        try:
            kernel = cls.attach(handle)
        except FileNotFoundError:
            os._exit(70)
        pool_main(kernel, entry, pickle.loads(work) if work is not None else None)

    def kernel_pid(self):
        """The kernel process's pid (from the arena header; any process)."""
        return _i64.unpack_from(self.arena.buf, H_PID)[0]

    @classmethod
    def attach_by_name(cls, name):
        """A read-mostly view of the kernel whose main arena is `name`, from any
        process (the monitor).  FileNotFoundError if it is gone, ValueError if
        it is not a kernel of this version of vos or is still booting."""
        a = Arena.attach(name)
        try:
            if bytes(a.buf[H_MAGIC:H_MAGIC + 8]) != MAGIC:
                raise ValueError(f"{name} is not a vos kernel arena of this version of vos")
            o = 64  # the config section follows the header
            n = _i64.unpack_from(a.buf, o)[0]
            try:
                config = pickle.loads(bytes(a.buf[o + 8:o + 8 + n]))
            except (pickle.UnpicklingError, EOFError, ImportError, AttributeError) as e:
                # booting (a half-written config), or made by another version of
                # vos whose config names classes this one does not have
                raise ValueError(f"{name}: its config does not unpickle here ({e})") from None
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
            if self.sched is not None:
                self._boot_controlled()
            self.pool.warm()
            Context(self, 0).install()
            _set_subreaper(True)
            if threading.current_thread() is threading.main_thread():
                self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_exit)
        except BaseException:
            self._teardown()
            raise

    def _boot_controlled(self, pin=True):
        """The board of a controlled run: strategy, choices, thread 0 holding
        the baton; every VP pinned with this process to one core."""
        s, b = self._schedule, self.sched
        strategies.boot(b, sched.STRATEGIES[s.strategy], s.seed, s.depth, s.horizon)
        b.put(board.H_MAX_STEPS, self.config.get("max_steps"))
        b.put(board.H_SLEEP_AT, s.sleep_at)
        b.put(board.H_SLEEP_ADD, sum(1 << (t % self.config.max_threads) for t in s.sleep_add))
        b.put(board.H_ABORT_SLOT, -1)
        b.put(board.H_RUN, b.get(board.H_RUN) + 1)
        b.set_prefix(list(s.choices))
        b.set_rec(0, board.R_TURN, 1)
        b.set_rec(0, board.R_FLAGS, board.STARTED)
        from .sched.trace import FileCheck          # (controlled runs only: json, hashlib, zlib)
        self.sched_check = FileCheck(dict(s.files)) if s.strategy == "replay" and s.files else None
        if pin and hasattr(os, "sched_setaffinity"):
            self._affinity = os.sched_getaffinity(0)
            cpus = sorted(self._affinity)
            os.sched_setaffinity(0, {cpus[os.getpid() % len(cpus)]})   # the VPs inherit it

    def restart(self, schedule=None, seed=None):
        """Begin a new controlled run on this machine (thread 0, kernel
        process, at the end of a run): every thread of the last run is
        recycled -- a pool VP goes back to its pool, any other VP ends --,
        every table is as at boot, and the board holds the new schedule.
        The explorer's fast path: no arena, no process is made again."""
        if self.sched is None:
            raise KernelError("restart() begins a new controlled run: boot the Kernel with schedule=...")
        if self._owner_pid != os.getpid() or current_or_none() is None or current_or_none().tid != 0:
            raise KernelError("restart() is for thread 0 of the kernel, between runs")
        if schedule is not None:
            self._schedule = sched.parse(schedule, seed)
        self.thread_manager.recycle()
        self.threads.reset()
        self.processors.boot()
        for part in self.parts:
            if hasattr(part, "reset"):
                part.reset()
        self.threads.install_boot_thread(os.getpid(), self.address_space)
        self.sched.reset()
        self._boot_controlled(pin=False)
        ctx = current_or_none()
        ctx.gate.inside = False

    def shutdown(self):
        """End every VP, remove every segment and swap file.  Idempotent."""
        if self.arena is None or self._owner_pid != os.getpid():
            return
        if self.sched is not None:
            try:
                from .races import of_kernel as races_of
                from .sched.trace import kernel_token, read_trace
                self._last_run = (read_trace(self), kernel_token(self),
                                  races_of(self) if self.config.get("races") else [])
            except Exception as e:  # noqa: BLE001 - the kernel must come down whatever happened
                print(f"vos: could not keep the controlled run's trace: {e}", file=sys.stderr)
        elif self.config.get("races"):
            from .races import of_kernel as races_of
            self._last_races = races_of(self)
        _i64.pack_into(self.arena.buf, H_STATE, SHUTDOWN)
        try:
            self.thread_manager.end_all()
        finally:
            self._teardown()

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
        if self._affinity is not None:
            os.sched_setaffinity(0, self._affinity)
            self._affinity = None
        if self.sched is not None:
            self.sched.release()
        if getattr(self, "racelogs", None) is not None:
            self.racelogs.release()
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

    # --- controlled runs -------------------------------------------------------------

    @property
    def controlled(self):
        """Does this kernel run one thread at a time on a schedule (sched/)?"""
        return self.config.get("schedule") is not None

    def trace(self):
        """The steps of this controlled run so far (or of the whole run, after
        the `with` block): a list of sched.trace.Step."""
        if self.sched is None and self._last_run is None:
            raise KernelError("trace(): this kernel runs freely; boot it with schedule=... for a trace")
        if self.arena is None:
            return list(self._last_run[0]) if self._last_run else []
        from .sched.trace import read_trace
        return read_trace(self)

    def races(self):
        """The data races of this run so far (or of the whole run, after the
        `with` block), one per pair of sites: runtime.races.Race, each
        naming both accesses.  Needs Kernel(races=True)."""
        if not self.config.get("races"):
            raise KernelError("races(): boot the Kernel with races=True to have them reported")
        if self.arena is None:
            return list(self._last_run[2] if self._last_run else getattr(self, "_last_races", []))
        from .races import of_kernel as races_of
        return races_of(self)

    @property
    def token(self):
        """A token that replays this controlled run ("vos1:..."): pass it as
        Kernel(schedule=token) or to `vos replay`."""
        if self.sched is None and self._last_run is None:
            raise KernelError("token: this kernel runs freely; boot it with schedule=... for a token")
        if self.arena is None:
            return self._last_run[1] if self._last_run else None
        from .sched.trace import kernel_token
        return kernel_token(self)

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
