"""A pool of ready virtual processors: empty containers, kept warm.

The lecture builds a thread in two moves: first an empty container with an
empty stack (生成一个空的线程(容器)), then a program loaded into it.  A VP
that is a freshly forked process pays for the container every time (a few
milliseconds: the fork, the new process's start, its exit, the reaping).
`Kernel(pool=N)` keeps up to N containers ready: processes that wait for a
program, run it as a thread, and come back.

Handing a thread over.  ALLOCATE_THREAD reserves the thread's entry, then
claims an IDLE pool VP (CAS IDLE -> CLAIMED), writes the procedure and its
arguments into the VP's entry as a pickle -- by reference: a module-level
function travels as its module and name -- and publishes ASSIGNED (a store
and a futex wake).  The VP unpickles, runs the thread (vp.run_thread: its
Context, processor, clock, the procedure, its death), restores itself and
goes back to IDLE.  A procedure that cannot travel by name (a lambda, a
closure, arguments that do not pickle) falls back to a fresh fork, and so
does a thread created when no VP is idle -- from the boot program the fresh
process is a new pool VP, from any other thread a plain VP.  The thread
table says which (`started`: "pool" or "fork"), and so does `vos top`.

Clean between threads.  A pool VP remembers how it was before its first
thread (its Baseline) and puts itself back after each one: the signal
handlers and the interval timer, the working directory, the environment,
sys.path and the standard streams, the globals of the program's own modules
(a rebinding is undone; a module the thread imported is forgotten), the
file descriptors it opened, and the runtime's per-process caches (the TLB,
the mapped rings).  Locks the thread still held and stream ends it kept are
its death's business, as for any thread: they are marked owner-died and
closed.  What a Python process cannot undo is said plainly: an object
changed in place (a list a module owns, appended to) stays changed.

Never a processor, never an orphan.  An idle VP holds no processor and is
not a thread (it has no thread-table entry).  Pool VPs are children of the
kernel process, so the host kills them when it dies (PR_SET_PDEATHSIG), and
they also check that the kernel lives while idle; shutdown SIGKILLs them
with the other VPs.  A pool VP killed (DESTROY_THREAD, SIGKILL) leaves its
entry, which the next claimer finds dead and empties.  (A VP killed in the
instant it is handed a thread takes that thread with it, as a fresh VP
killed before its first instruction does: the joiner gets ThreadFailed.)

Section layout (part "pool", main arena):

    header, 64 bytes
      0  8  capacity   boot: entries in the table
      8  8  keep       boot: Kernel(pool=N)
    entries, ENTRY bytes each
      0  8  state      futex word: EMPTY, STARTING, IDLE, CLAIMED, ASSIGNED, RUNNING,
                       RESTORING (its thread ended; it puts itself back);
                       CAS by a claimer (IDLE -> CLAIMED), stores by the VP itself
      8  8  pid        the VP, at start
     16  8  tid        the claimer: the thread to run (with the payload)
     24  8  claimer    the claimer's tid (a dead claimer's claim is undone by the VP)
     32  8  length     the claimer: payload bytes
     40  8  runs       the VP: threads it ran
     64  PAYLOAD       the claimer: pickle of (procedure, args)
"""

import _signal
import ctypes
import os
import pickle
import signal
import struct
import sys
import time

from . import atomics
from .errors import KernelError
from .memory import pager

EMPTY, STARTING, IDLE, CLAIMED, ASSIGNED, RUNNING, RESTORING = range(7)
STATE_NAMES = ["empty", "starting", "idle", "claimed", "assigned", "running", "restoring"]
RESTORE_WAIT = 0.02      # a claimer waits this long for a VP starting or putting itself back:
                         # forking another would take as long, and leave one more process
E_STATE, E_PID, E_TID, E_CLAIMER, E_LENGTH, E_RUNS, E_PAYLOAD = 0, 8, 16, 24, 32, 40, 64
PAYLOAD = 16384
ENTRY = E_PAYLOAD + PAYLOAD
_w = struct.Struct("<q")


class Pool:
    """The part "pool": this process's view of the table, and (kernel process)
    the pool VPs' Process objects."""

    @staticmethod
    def section_size(config):
        keep = config.get("pool")
        return 64 + ENTRY * _capacity(keep, config.max_threads) if keep else 64

    def __init__(self, kernel, offset):
        self.kernel = kernel
        self.buf = kernel.arena.buf
        self.base = offset
        self.addr = kernel.arena.addr + offset
        self.keep = kernel.config.get("pool") or 0
        if not isinstance(self.keep, int) or isinstance(self.keep, bool) or not 0 <= self.keep <= 64:
            raise ValueError(f"pool must be an int from 0 to 64 (idle VPs kept ready), not {self.keep!r}")
        self.capacity = _capacity(self.keep, kernel.config.max_threads) if self.keep else 0
        self._procs = {}          # entry -> multiprocessing.Process (kernel process only)

    def boot(self):
        _w.pack_into(self.buf, self.base, self.capacity)
        _w.pack_into(self.buf, self.base + 8, self.keep)

    def enter_vp(self):
        self._procs = {}

    # --- the table -----------------------------------------------------------------

    def _off(self, e, field=0):
        return self.base + 64 + e * ENTRY + field

    def get(self, e, field):
        return _w.unpack_from(self.buf, self._off(e, field))[0]

    def put(self, e, field, value):
        self.buf[self._off(e, field):self._off(e, field) + 8].cast("q")[0] = value

    def _state_addr(self, e):
        return self.kernel.arena.addr + self._off(e)

    # --- handing a thread over (any process) ------------------------------------------

    def hand_over(self, tid, procedure, args, claimer):
        """Give thread tid to an idle pool VP.  Returns its pid, or None (no VP
        idle, or the procedure cannot travel by name: then fork)."""
        if not self.capacity:
            return None
        try:
            payload = pickle.dumps((procedure, args), protocol=5)
        except Exception:  # noqa: BLE001 - any pickling failure: a fresh fork instead
            return None
        if len(payload) > PAYLOAD:
            return None
        deadline = None
        while True:
            e = self._claim_idle()
            if e is not None:
                break
            if not any(self._coming_back(x) for x in range(self.capacity)):
                return None
            now = time.monotonic()               # one is putting itself back: worth a moment's
            if deadline is None:                 # wait, a fork costs far more
                deadline = now + RESTORE_WAIT
            elif now > deadline:
                return None
            os.sched_yield()
        o = self._off(e, E_PAYLOAD)
        self.buf[o:o + len(payload)] = payload
        self.put(e, E_LENGTH, len(payload))
        self.put(e, E_TID, tid)
        self.put(e, E_CLAIMER, claimer)
        atomics.store(self._state_addr(e), ASSIGNED)      # publish: the payload is visible before
        atomics.futex_wake(self._state_addr(e), 1)
        return self.get(e, E_PID)

    def _coming_back(self, e):
        """Is this VP about to be idle again (its thread has ended)?"""
        state = self.get(e, E_STATE)
        if state in (RESTORING, STARTING):
            return True
        if state != RUNNING:
            return False
        from .threads import DONE
        try:
            return self.kernel.threads.state(self.get(e, E_TID)) in DONE
        except KernelError:                               # joined already
            return True

    def _claim_idle(self):
        """CAS an idle, living entry to CLAIMED; its index, or None."""
        for e in range(self.capacity):
            if self.get(e, E_STATE) != IDLE:
                continue
            if atomics.compare_exchange(self._state_addr(e), IDLE, CLAIMED) != IDLE:
                continue
            if self._alive(e):
                return e
            self._empty(e, CLAIMED)                       # killed while idle
        return None

    def sweep(self):
        """Empty the entries of pool VPs that died (killed while they ran a
        thread or idled).  Any process; a few /proc reads."""
        for e in range(self.capacity):
            state = self.get(e, E_STATE)
            if state not in (EMPTY, STARTING) and not _alive(self.get(e, E_PID)):
                self._empty(e, state)

    def start_vp(self, work=None):
        """(kernel process) Start a new pool VP, with a first thread to run
        (tid, procedure, args), or idle.  Returns (Process, entry), or None
        when the table is full."""
        k = self.kernel
        self.sweep()
        for e in range(self.capacity):
            state = self.get(e, E_STATE)
            if state != EMPTY:
                continue
            if atomics.compare_exchange(self._state_addr(e), state, STARTING) != state:
                continue
            self._reap(e)
            mp = k.mp_context()
            if k.config.start_method == "fork":
                proc = mp.Process(target=pool_main, args=(k, e, work), name=f"vos-pool-{e}")
            else:
                if work is not None:
                    try:
                        work = pickle.dumps(work)
                    except Exception:  # noqa: BLE001
                        atomics.store(self._state_addr(e), EMPTY)
                        return None
                proc = mp.Process(target=type(k).pool_spawned, args=(k.handle(), e, work), name=f"vos-pool-{e}")
            try:
                proc.start()
            except OSError:
                atomics.store(self._state_addr(e), EMPTY)
                return None
            self._procs[e] = proc
            return proc, e
        return None

    def warm(self):
        """(kernel process) Start idle VPs until `keep` are idle, starting or
        coming back (their thread ended: they are putting themselves back).
        At boot, and between the commands of a shell session, which lose
        the VPs of stages destroyed by Ctrl-C or killed: a VP that died is
        neither: its entry is emptied here (its process reaped)."""
        ready = 0
        for e in range(self.capacity):
            state = self.get(e, E_STATE)
            if state == EMPTY:
                continue
            if state == STARTING and not self._died_starting(e):
                ready += 1
            elif not self._alive(e):
                self._empty(e, state)
            elif state == IDLE or self._coming_back(e):
                ready += 1
        for _ in range(self.keep - ready):
            if self.start_vp() is None:
                break

    def _alive(self, e):
        proc = self._procs.get(e)
        if proc is not None:
            return proc.is_alive()              # our child: waitpid(WNOHANG), no /proc read
        return _alive(self.get(e, E_PID))

    def _died_starting(self, e):
        """Did the VP this process started for entry e die before it was
        ready?  (Its pid is not in the entry yet: only our Process knows it.)"""
        proc = self._procs.get(e)
        return proc is not None and not proc.is_alive()

    def _empty(self, e, seen):
        """A pool VP that died (killed): empty its entry."""
        if atomics.compare_exchange(self._state_addr(e), seen, EMPTY) == seen:
            self._reap(e)

    def _reap(self, e):
        proc = self._procs.pop(e, None)
        if proc is not None:
            proc.join(0.1)

    def pids(self):
        """Pids of this kernel's pool VPs (shutdown ends them)."""
        return [self.get(e, E_PID) for e in range(self.capacity) if self.get(e, E_STATE) != EMPTY]

    def busy(self, pid):
        """Is pool VP `pid` anything but idle (running or restoring a thread)?"""
        return any(self.get(e, E_PID) == pid and self.get(e, E_STATE) != IDLE for e in range(self.capacity))

    def shutdown(self):
        """(kernel process) End every pool VP (they hold nothing: SIGKILL)."""
        for e, proc in list(self._procs.items()):
            if proc.is_alive():
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self._procs.values():
            proc.join(5)
        self._procs.clear()

    def settle(self, timeout=5.0):
        """(kernel process) Wait until no pool VP is running a thread or
        starting (they all went back to IDLE).  False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            busy = [e for e in range(self.capacity) if self.get(e, E_STATE) in (STARTING, CLAIMED, ASSIGNED,
                                                                                RUNNING, RESTORING)]
            busy = [e for e in busy if (not self._died_starting(e) if self.get(e, E_STATE) == STARTING
                                        else _alive(self.get(e, E_PID)))]
            if not busy:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0002)

    def statistics(self):
        rows = []
        for e in range(self.capacity):
            state = self.get(e, E_STATE)
            if state != EMPTY:
                rows.append(dict(entry=e, state=STATE_NAMES[state], pid=self.get(e, E_PID),
                                 tid=self.get(e, E_TID) if state in (ASSIGNED, RUNNING) else None,
                                 runs=self.get(e, E_RUNS)))
        return {"keep": self.keep, "capacity": self.capacity, "vps": rows}

    # --- the pool VP's side ---------------------------------------------------------

    def wait_for_work(self, e):
        """(the pool VP) Sleep until a thread is handed over; returns (tid,
        procedure, args).  Ends the process when the kernel is gone."""
        addr = self._state_addr(e)
        claimed_since = None
        while True:
            state = atomics.load(addr) & 0xFFFFFFFF
            if state == ASSIGNED:
                break
            if state == CLAIMED:
                claimed_since = claimed_since or time.monotonic()
                if time.monotonic() - claimed_since > 1.0 and not self._claimer_alive(e):
                    atomics.compare_exchange(addr, CLAIMED, IDLE)     # the claimer died half-way
                    claimed_since = None
            atomics.futex_wait(addr, state, 0.25)
            if not self.kernel.alive():
                os._exit(70)
            _reap_children()
        n = self.get(e, E_LENGTH)
        o = self._off(e, E_PAYLOAD)
        tid = self.get(e, E_TID)
        self.put(e, E_STATE, RUNNING)
        procedure, args = pickle.loads(bytes(self.buf[o:o + n]))     # may import the program's module
        return tid, procedure, args

    def _claimer_alive(self, e):
        from .mutex import holder_alive
        return holder_alive(self.kernel.threads, self.get(e, E_CLAIMER))

    def went_idle(self, e, ran=True):
        """(the pool VP) Its thread ended and it is clean again."""
        if ran:
            self.put(e, E_RUNS, self.get(e, E_RUNS) + 1)
        atomics.store(self._state_addr(e), IDLE)


def _capacity(keep, max_threads):
    return min(max_threads - 1, max(keep, 4) * 2, 64)


def _alive(pid):
    from .threads import pid_alive
    return pid > 0 and pid_alive(pid)


def _reap_children():
    """Reap this process's ended children (VPs its threads forked)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _set_pdeathsig():
    """Linux: die with the kernel process (our parent)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# --- the pool VP's life ----------------------------------------------------------------

def pool_main(kernel, e, work=None):
    """A pool VP: wait for a thread, run it, restore itself, again.  Does not return."""
    from .vp import exit_process, run_thread
    signal.signal(signal.SIGINT, signal.SIG_IGN)         # Ctrl-C is the kernel's to handle
    if kernel.config.start_method != "forkserver":        # (a forkserver's child is the server's)
        _set_pdeathsig()
        if os.getppid() != kernel.kernel_pid():
            os._exit(70)                                  # the kernel died before we could tie to it
    kernel.enter_vp()
    pool = kernel.pool
    pool.put(e, E_PID, os.getpid())
    baseline = Baseline()
    if work is None:
        pool.went_idle(e, ran=False)
    else:
        pool.put(e, E_TID, work[0])
        pool.put(e, E_STATE, RUNNING)
    try:
        while True:
            if work is None:
                work = pool.wait_for_work(e)
                baseline.adopt()                  # modules the payload imported are clean as they are
            tid, procedure, args = work
            work = None
            run_thread(kernel, tid, procedure, args, pooled=True)
            pool.put(e, E_STATE, RESTORING)
            os.sched_yield()        # the thread's end woke its joiner: let it run before our
                                    # tenth of a millisecond of restoring (on a 2-core host the
                                    # shell's join waited for both stages' VPs to restore)
            baseline.restore(kernel)
            pool.went_idle(e)
    finally:
        exit_process(0)


class Baseline:
    """How a pool VP was before its first thread, to be put back after each."""

    def __init__(self):
        self.cwd = os.getcwd()
        self.environ = dict(_environ_data())
        self.path = list(sys.path)
        self.streams = (sys.stdin, sys.stdout, sys.stderr)
        self.handlers = {}
        for s in signal.valid_signals():
            if s in (signal.SIGKILL, signal.SIGSTOP):
                continue
            try:
                self.handlers[int(s)] = _signal.getsignal(s)      # the C call: no enum per signal
            except (ValueError, OSError):
                pass
        self.modules = set(sys.modules)
        self.globals = {name: dict(m.__dict__) for name, m in sys.modules.items() if _is_program_module(m)}
        self.fds = _open_fds()

    def adopt(self):
        """Program modules imported since (to unpickle a payload: the program's
        own module, clean) become part of the baseline, so that they are
        restored rather than imported again for every thread."""
        for name in set(sys.modules) - self.modules:
            m = sys.modules.get(name)
            self.modules.add(name)
            if m is not None and _is_program_module(m):
                self.globals[name] = dict(m.__dict__)

    def restore(self, kernel):
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        for s, h in self.handlers.items():
            try:
                if _signal.getsignal(s) is not h and h is not None:
                    _signal.signal(s, h)
            except (ValueError, OSError, TypeError):
                pass
        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)
        if _environ_data() != self.environ:
            os.environ.clear()
            for key, value in self.environ.items():
                os.environ[os.fsdecode(key)] = os.fsdecode(value)
        sys.path[:] = self.path
        sys.stdin, sys.stdout, sys.stderr = self.streams
        for name in list(sys.modules):
            if name not in self.modules and _is_program_module(sys.modules[name]):
                del sys.modules[name]                     # imported by the thread: forgotten
        for name, saved in self.globals.items():
            m = sys.modules.get(name)
            if m is not None and m.__dict__ != saved:
                m.__dict__.clear()
                m.__dict__.update(saved)
        pager.reset()
        kernel.buffers.detach()                           # unmap the rings this thread used
        kernel.locks.forget()
        kernel.eventcounts.forget()
        for fd in _open_fds(self.fds) - self.fds:
            try:
                os.close(fd)
            except OSError:
                pass


_STD_PREFIXES = tuple({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                    os.path.dirname(os.path.dirname(os.__file__)))})
_RUNTIME = os.path.dirname(os.path.realpath(__file__))


_program_file = {}        # file -> is it the program's (a cache: realpath is a few system calls)


def _is_program_module(m):
    """A module of the program itself (not the standard library, an installed
    package, or vos): its globals are the thread's to change and ours to restore."""
    f = getattr(m, "__file__", None)
    if not f:
        return getattr(m, "__name__", "") == "__main__"
    mine = _program_file.get(f)
    if mine is None:
        real = os.path.realpath(f)
        mine = _program_file[f] = not real.startswith(_STD_PREFIXES) and not real.startswith(_RUNTIME) \
            and "site-packages" not in real
    return mine


def _environ_data():
    """os.environ's own dict (bytes to bytes on POSIX), compared at C speed."""
    return getattr(os.environ, "_data", os.environ)


def _open_fds(known=frozenset()):
    """This process's open file descriptors (not the one the listing itself
    used: each fd not in `known` is checked with fstat)."""
    try:
        listed = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return set()
    out = set()
    for fd in listed:
        if fd in known:
            out.add(fd)
            continue
        try:
            os.fstat(fd)
            out.add(fd)
        except OSError:
            pass
    return out


__all__ = ["Pool", "pool_main", "Baseline"]
