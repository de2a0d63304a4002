"""A virtual processor's life inside its own process: the VP bootstrap.

A VP is a real OS process started by `multiprocessing` (thread_manager.py
decides when and with which start method).  Its first code is `vp_main`:
drop what the creator's process owned, become the thread (install the
Context), record the pid, take a processor, arm the clock interrupt, run
the procedure, and die cleanly whatever happens -- the exit status, or the
exception with its traceback, is written to the thread table and the
thread manager's `end_self` ends the process.  Nothing returns from here.

Ctrl-C belongs to the kernel (the boot program's process): a VP ignores
SIGINT, and learns of the end from its kernel (SIGKILL at shutdown, or the
liveness check of context.py if the kernel itself was killed).

A VP started by spawn or forkserver has none of the creator's memory: it
re-attaches the kernel by name first (Kernel.vp_spawned), then comes here.
"""

import os
import signal
import sys
import time
import traceback

from .context import Context
from .errors import MemoryFault
from .sched.gate import Recycle
from .sched.ops import EXIT as EXIT_OP, START as START_OP, THREAD, target
from .threads import EXCEPTION, EXIT, EXITED, FAULT, FAULTED, FLAG_DESTROY, O_FLAGS, O_PID, REASON_NAMES


def exit_target(tid):
    return target(THREAD, tid)


class ThreadExit(BaseException):
    """Raised by EXIT_THREAD; caught by the VP bootstrap (or the Kernel, in thread 0)."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


def vp_main(kernel, tid, procedure, args):
    """Run one thread in this (new) process.  Does not return."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the kernel's to handle
    kernel.enter_vp()
    run_thread(kernel, tid, procedure, args)
    exit_process(0)


def run_thread(kernel, tid, procedure, args, pooled=False):
    """Be thread tid in this process until it ends: Context, processor,
    clock, the procedure, then its death (status, hooks, EXITED).  Returns
    when it has ended (a pooled VP then goes back to its pool, pool.py)."""
    ctx = Context(kernel, tid).install()
    if pooled:
        ctx.cpu_base = time.process_time_ns()       # this thread's CPU time starts now, not at the VP's birth
    t = kernel.threads
    o = t.off(tid)
    t.put64(o + O_PID, os.getpid())
    if t.get32(o + O_FLAGS) & FLAG_DESTROY or not (pooled or kernel.alive()):   # (a pool VP dies with the
        os._exit(0)  # destroyed before it ran: the destroyer buries it             # kernel: PR_SET_PDEATHSIG)
    ctx.take_processor()
    ctx.arm_clock()
    gate = ctx.gate                 # a controlled run: wait to be chosen (sched/gate.py)
    try:
        _run(kernel, ctx, tid, procedure, args, gate)
    except Recycle:                 # the controlled run was abandoned; the kernel resets the tables
        ctx.disarm_clock()
    ctx.uninstall()


def _run(kernel, ctx, tid, procedure, args, gate):
    if gate is not None:
        gate.start()
    log = ctx.racelog                # a free kernel with races=True (racelog.py): start and exit are events
    if log is not None:
        log.sync(START_OP, exit_target(tid))
    try:
        status = procedure(*args)
        payload, state, reason = ("exit", status), EXITED, EXIT
    except ThreadExit as e:
        payload, state, reason = ("exit", e.status), EXITED, EXIT
    except Recycle:
        raise
    except BaseException as e:  # noqa: BLE001 - an uncaught exception ends only this thread
        ctx.disarm_clock()
        tb = traceback.format_exc()
        kind = FAULT if isinstance(e, MemoryFault) else EXCEPTION
        payload, state, reason = ("failed", type(e).__name__, str(e), tb), FAULTED, kind
        if gate is None:            # a controlled run's failures are its result: the explorer reports them
            sys.stderr.write(f"vos: thread {tid} ({getattr(procedure, '__qualname__', procedure)}) "
                             f"ended by {REASON_NAMES[kind]}:\n{tb}")
    if gate is not None:
        gate.inside = False
        gate.point(EXIT_OP, exit_target(tid))      # the exit is a step too
    if log is not None:
        log.sync(EXIT_OP, exit_target(tid))
    kernel.thread_manager.end_self(payload, state, reason)


def exit_process(code):
    """End this VP's process now, its output flushed (no atexit, no finalizers:
    a VP holds nothing the host must clean)."""
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    os._exit(code)


__all__ = ["ThreadExit", "vp_main", "run_thread", "exit_process"]
