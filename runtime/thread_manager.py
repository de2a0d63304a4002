"""The thread manager: ALLOCATE_THREAD, EXIT_THREAD, DESTROY_THREAD, YIELD, join.

Each thread is a virtual processor: a real OS process, started through
`multiprocessing` (fork by default on Linux; spawn and forkserver work too,
because a new VP receives everything it needs as arguments and re-attaches to
the arenas by name).  Any thread may create threads; the new process is the
creator's child, and the kernel process is made a "child subreaper" (Linux) so
that a VP orphaned by its creator's exit is still reaped by the kernel.

A thread ends in one of four ways, recorded in its entry's `reason`:

    exit        the procedure returned, or called EXIT_THREAD(status)
    exception   an uncaught exception (traceback kept for join)
    fault       an uncaught memory fault (SegmentationFault, ProtectionFault, ...)
    destroyed   DESTROY_THREAD, or its process died (SIGKILL from outside)

The first code of a new VP (its bootstrap) is in vp.py.

Dying cleanly is the thread's own job (write status, give back what it holds,
publish EXITED).  A thread that cannot do it (killed) is *buried* by whoever
notices first, a joiner, a destroyer or a waiter, using the same steps; the
DYING state makes sure exactly one burier does them.  Burying runs the
kernel's death hooks, through which the lock manager marks the dead thread's
locks owner-died.
"""

import os
import pickle
import select
import signal
import time

from . import atomics, checks
from .context import current
from .errors import KernelError, NotPicklable, OutOfResources, ThreadFailed
from .threads import (DESTROYED, DONE, DYING, EXCEPTION, FAULTED, FLAG_DESTROY, FLAG_POOLED, FREE, LIVE, O_FLAGS,
                      O_PID, O_REASON, O_STATE, REASON_NAMES, WAIT_JOIN, pid_alive)
from .vp import exit_process, vp_main


class ThreadManager:
    """Thread calls.  One instance per process per kernel; all state is in the
    thread table except `_procs`, this process's own multiprocessing.Process
    objects (private to this process, reset in every new VP)."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.threads = kernel.threads
        self._procs = {}

    # --- ALLOCATE_THREAD -----------------------------------------------------

    def allocate(self, procedure, as_id, args):
        """Create a thread running procedure(*args) in address space as_id.
        Returns its tid at once.  Raises TypeError, NoSuchAddressSpace,
        NotPicklable (spawn only), OutOfResources."""
        if not callable(procedure):
            raise checks.refused("ALLOCATE_THREAD", "a procedure to run (a function, or any callable)", procedure)
        checks.integer("ALLOCATE_THREAD", "an address-space id (an int from CREATE_ADDRESS_SPACE or "
                       "k.address_space)", as_id)
        k = self.kernel
        k.check_address_space(as_id)
        payload = None
        if k.config.start_method != "fork":
            try:
                payload = pickle.dumps((procedure, args))
            except Exception as e:
                raise NotPicklable(
                    f"cannot send {getattr(procedure, '__qualname__', procedure)!r} and its arguments to a new "
                    f"process under the {k.config.start_method!r} start method: {e}. Use a module-level "
                    "function and picklable arguments (handles, numbers, bytes, ...)") from None
        ctx = current()
        name = getattr(procedure, "__qualname__", None) or getattr(procedure, "__name__", None) or type(procedure).__name__
        tid = self.threads.reserve(name, as_id, ctx.tid)
        self._reap_finished()
        if k.pool.capacity and self._pooled(tid, procedure, args, ctx):
            return tid
        mp = k.mp_context()
        if payload is None:
            proc = mp.Process(target=vp_main, args=(k, tid, procedure, args), name=f"vos-vp-{tid}")
        else:   # a spawned VP re-attaches the kernel by name first (Kernel.vp_spawned)
            proc = mp.Process(target=type(k).vp_spawned, args=(k.handle(), tid, payload), name=f"vos-vp-{tid}")
        try:
            proc.start()
        except OSError as e:
            self.threads.put32(self.threads.off(tid, O_STATE), FREE)
            raise OutOfResources(f"the host refused a new process for thread {tid}: {e}") from None
        self.threads.put64(self.threads.off(tid, O_PID), proc.pid)
        self._procs[tid] = proc
        return tid

    def _pooled(self, tid, procedure, args, ctx):
        """Start thread tid in a pool VP (pool.py): an idle one, or, from the
        kernel process, a new one.  False: fork a plain VP instead."""
        k = self.kernel
        t = self.threads
        pid = k.pool.hand_over(tid, procedure, args, ctx.tid)
        reused = pid is not None
        if pid is None and os.getpid() == k.kernel_pid():
            started = k.pool.start_vp((tid, procedure, args))      # a fresh fork, that stays in the pool
            pid = started[0].pid if started else None
        if pid is None:
            return False
        o = t.off(tid)
        t.put64(o + O_PID, pid)
        if reused:                                                  # `started`: "pool" in thread_info
            atomics.fetch_or(t.addr + (o - t.base) + O_FLAGS, FLAG_POOLED)
        return True

    def _reap_finished(self):
        """Reap the zombies of threads that someone else joined.  Joined threads
        are reaped by join itself, so this only runs when many pile up."""
        if len(self._procs) < 32:
            return
        for tid, proc in list(self._procs.items()):
            if proc.exitcode is not None:  # polls waitpid(WNOHANG): reaps the zombie
                del self._procs[tid]

    # --- EXIT_THREAD / YIELD -------------------------------------------------

    def yield_(self):
        """Give the processor to the next thread in line, if any waits."""
        ctx = current()
        if not ctx.is_vp:
            return
        if not ctx.switch(voluntary=True):
            os.sched_yield() if hasattr(os, "sched_yield") else time.sleep(0)

    # --- join ----------------------------------------------------------------

    def join(self, tid, timeout=None):
        """Wait for thread tid to end; return its exit status or raise
        ThreadFailed.  TimeoutError if `timeout` seconds pass first.  Frees the
        thread's slot (a tid can be joined once; again: NoSuchThread)."""
        ctx = current()
        checks.integer("k.join", "a thread id (an int from ALLOCATE_THREAD)", tid)
        checks.timeout("k.join", timeout)
        if tid == ctx.tid:
            raise KernelError(f"thread {tid} cannot join itself")
        if tid == 0:
            raise KernelError("thread 0 is the boot program; it is never joined")
        t = self.threads
        o = t.off(tid)
        deadline = None if timeout is None else time.monotonic() + timeout
        if t.get32(o + O_STATE) not in DONE:
            with ctx.waiting(WAIT_JOIN, tid):
                while True:
                    word = t.get32(o + O_STATE)
                    if word in DONE:
                        break
                    if word in LIVE:
                        pid = t.get64(o + O_PID)
                        if pid and not pid_alive(pid):
                            self.bury(tid, DESTROYED, "ProcessDied",
                                      f"the process (pid {pid}) of thread {tid} died without exiting")
                            continue
                    slice_ = 0.2
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise TimeoutError(f"thread {tid} did not end within {timeout} s "
                                               f"(it is {t.snapshot_one(tid)['state']})")
                        slice_ = min(slice_, left)
                    atomics.futex_wait(t.addr + (o - t.base), word, slice_)
                    ctx.check_kernel()
        status = t.read_status(tid)
        reason = t.get32(o + O_REASON)
        if not t.release_slot(tid):
            raise KernelError(f"thread {tid} was joined by another thread at the same time")
        self._reap(tid)
        if status[0] == "exit":
            return status[1]
        _, exc_type, message, tb = status
        raise ThreadFailed(tid, REASON_NAMES[reason], exc_type, message, tb)

    def _reap(self, tid, timeout=5.0):
        proc = self._procs.pop(tid, None)
        if proc is not None:
            proc.join(timeout)

    # --- DESTROY_THREAD and burying --------------------------------------------

    def destroy(self, tid):
        """End thread tid from outside: SIGKILL its process, then bury it (its
        locks become owner-died).  Returns once it is dead.  NoSuchThread for
        an unknown tid; a thread that already ended is left as it is."""
        ctx = current()
        t = self.threads
        o = t.off(tid)
        if tid == 0:
            raise KernelError("thread 0 is the boot program: leave the `with Kernel` block to end it")
        if tid == ctx.tid:
            self.end_self(("failed", "Destroyed", f"thread {tid} destroyed itself", ""), FAULTED, DESTROYED)
            exit_process(0)
        if t.get32(o + O_STATE) in DONE + (DYING,):
            return
        atomics.fetch_or(t.addr + (o - t.base) + O_FLAGS, FLAG_DESTROY)
        pid = self._wait_for_pid(o)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._wait_dead(tid, pid)
        self.bury(tid, DESTROYED, "Destroyed", f"thread {tid} was destroyed by thread {ctx.tid}")

    def _wait_for_pid(self, o, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not (pid := self.threads.get64(o + O_PID)) and time.monotonic() < deadline:
            time.sleep(0.0005)  # the creator records it right after fork; never more than a moment
        return pid

    def _wait_dead(self, tid, pid, timeout=5.0):
        proc = self._procs.get(tid)
        if proc is not None:
            proc.join(timeout)
            return
        wait_pid_exit(pid, timeout)

    def bury(self, tid, reason, exc_type, message):
        """Do the dying for a thread whose process is dead.  Any process; exactly
        one caller does the work."""
        t = self.threads
        if not t.claim_dead(tid):
            return
        t.write_status(tid, ("failed", exc_type, message, ""))
        self.kernel.processors.release_for_dead(tid, current().tid)
        self.kernel.run_death_hooks(tid)
        t.finish(tid, FAULTED, reason)

    def end_self(self, payload, state, reason):
        """The calling VP's own death: status, hooks, processor, publish.
        Returns; the VP's process then ends (vp.vp_main) or goes back to
        its pool (pool.py)."""
        k = self.kernel
        ctx = current()
        ctx.disarm_clock()
        if payload[0] == "exit":
            try:
                pickle.dumps(payload)
            except Exception as e:  # a returned value that cannot cross to the joiner
                payload = ("failed", "NotPicklable", f"thread {ctx.tid} returned {checks.describe(payload[1])}, "
                           f"which cannot be pickled ({type(e).__name__}: {e}): return a value that pickles", "")
                state, reason = FAULTED, EXCEPTION
        t = self.threads
        t.write_status(ctx.tid, payload)
        k.processors.account(ctx.tid, time.process_time_ns())
        k.run_death_hooks(ctx.tid)
        k.processors.release(ctx.tid)
        t.finish(ctx.tid, state, reason)
        if ctx.gate is not None:         # a controlled run: the EXIT step is done; hand the baton on
            ctx.gate.done()
            ctx.gate.depart()

    # --- the end of a run, the end of the machine (kernel process) ------------------

    def recycle(self, timeout=2.0):
        """The end of a controlled run (Kernel.restart): every VP of the run
        leaves its gate (Recycle) and goes back to its pool or ends; what has
        not within `timeout` is killed."""
        from .sched import board
        k = self.kernel
        b = k.sched
        b.put(board.H_ABORT, board.ABORT_RECYCLE)
        live = [(slot, tid, pid) for slot, tid, pid, st in self.threads.live_slots()
                if slot != 0 and pid > 0 and st not in DONE]       # (ended threads' VPs need nothing)
        if not live:
            return
        for slot, _tid, _pid in live:
            atomics.store(b.turn_addr(slot), 1)
            atomics.futex_wake(b.turn_addr(slot), 1)
        pooled = set(k.pool.pids())
        deadline = time.monotonic() + timeout
        for _slot, tid, pid in live:
            proc = self._procs.pop(tid, None)
            if pid in pooled:
                continue
            if proc is not None:
                proc.join(max(0.0, deadline - time.monotonic()))
            else:
                wait_pid_exit(pid, max(0.0, deadline - time.monotonic()))
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                wait_pid_exit(pid, 5)
                reap(pid)
        if not k.pool.settle(max(0.1, deadline - time.monotonic())):
            for pid in k.pool.pids():                  # stuck in the program's own code: replaced later
                if k.pool.busy(pid):
                    os.kill(pid, signal.SIGKILL)
            k.pool.sweep()

    def end_all(self):
        """Kernel shutdown: SIGKILL every VP (a VP holds nothing the host must clean) and reap it."""
        victims = [(tid, pid) for slot, tid, pid, state in self.threads.live_slots() if slot != 0 and pid > 0]
        for _tid, pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        procs = self._procs
        for tid, pid in victims:
            proc = procs.pop(tid, None)
            if proc is not None:
                proc.join(5)
            else:
                wait_pid_exit(pid, 5)
                reap(pid)
        for proc in procs.values():
            proc.join(5)
        procs.clear()


def reap(pid):
    """Collect a child's exit status if it has one (no zombie left)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_pid_exit(pid, timeout):
    """Wait until process pid (any process, not only a child) has exited."""
    deadline = time.monotonic() + timeout
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        except OSError:
            fd = None
        if fd is not None:
            try:
                select.select([fd], [], [], timeout)
            finally:
                os.close(fd)
            return
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.001)
