"""The current thread: which kernel and which thread this process is running.

Like xv6's `myproc()`, every process needs to know "who am I": the kernel it
belongs to and its thread id.  That is the one piece of per-process state in
the runtime, and it is set explicitly: by `Kernel.__enter__` in the boot
process (thread 0) and by the VP bootstrap in every virtual processor.  After
a fork the child's copy is replaced before any user code runs, so no state is
ever silently inherited.

This module also owns the VP's clock interrupt (the SIGALRM handler) and the
`waiting()` bracket that every blocking call wraps around its sleep: record
what we wait for, give the processor up, sleep, take a processor back.
"""

import os
import signal
import time
from contextlib import contextmanager

from .errors import KernelError
from .sched.gate import Gate
from .threads import O_INVOL, O_VOL, O_WAIT_KIND, O_WAIT_OBJ, O_WAIT_VALUE, WAITING

_current = None

_LIVENESS_PERIOD = 0.5  # seconds between checks that the kernel still lives


def current():
    """The calling process's Context.  Raises KernelError outside a kernel."""
    if _current is None:
        raise KernelError("no kernel is running in this process: call this inside `with Kernel(...):` "
                          "or in a thread created by ALLOCATE_THREAD")
    return _current


def current_or_none():
    return _current


class Context:
    """Who this process is.  Private to one process."""

    def __init__(self, kernel, tid):
        self.kernel = kernel
        self.tid = tid
        self.is_vp = tid != 0
        self.in_dispatch = False   # inside the dispatcher: the clock handler must not re-enter it
        self.on_cpu = False        # holds a processor (set by take_processor, cleared by waiting)
        self._last_check = time.monotonic()
        self._clock_armed = False
        self.cpu_base = 0          # process CPU time before this thread (a pool VP's earlier life)
        self.gate = None           # a controlled kernel's gateway (sched/gate.py)
        if getattr(kernel, "sched", None) is not None:
            self.gate = Gate(kernel, self)
        logs = getattr(kernel, "racelogs", None)
        self.racelog = logs.open(tid) if logs is not None else None   # a free kernel's race log (racelog.py)

    # --- entering and leaving ------------------------------------------------

    def install(self):
        global _current
        _current = self
        if self.gate is not None:
            time.sleep = self.gate.sleep          # virtual time (sched/gate.py)
        return self

    @staticmethod
    def uninstall():
        global _current
        if _current is not None and _current.gate is not None:
            time.sleep = _current.gate._real_sleep
        _current = None

    def cpu_ns(self):
        """The thread's CPU time so far: its process's, less what the process
        spent before the thread began (a pool VP runs thread after thread)."""
        return time.process_time_ns() - self.cpu_base

    # --- liveness ------------------------------------------------------------

    def check_kernel(self):
        """In a VP: end this process at once if its kernel is gone; the kernel
        cannot be told anything any more, and nothing should outlive it."""
        if not self.is_vp:
            return
        now = time.monotonic()
        if now - self._last_check < _LIVENESS_PERIOD:
            return
        self._last_check = now
        if not self.kernel.alive():
            os._exit(70)

    # --- blocking ----------------------------------------------------------------

    @contextmanager
    def waiting(self, kind, obj=0, value=0):
        """Bracket a sleep: the thread shows as WAITING on (kind, obj, value) and
        holds no processor until the bracket ends.  Blocks (at the end) until a
        processor is free again."""
        k = self.kernel
        t = k.threads
        o = t.off(self.tid)
        t.put64(o + O_WAIT_OBJ, obj)
        t.put64(o + O_WAIT_VALUE, value)
        t.put32(o + O_WAIT_KIND, kind)
        t.put64(o + O_VOL, t.get64(o + O_VOL) + 1)
        self.in_dispatch = True
        try:
            self.on_cpu = False
            k.processors.account(self.tid, self.cpu_ns())
            k.processors.release(self.tid, WAITING)
        finally:
            self.in_dispatch = False
        try:
            yield
        finally:
            t.put32(o + O_WAIT_KIND, 0)
            self.take_processor()

    def take_processor(self):
        self.in_dispatch = True
        try:
            self.kernel.processors.acquire(self.tid, self.check_kernel)
            self.on_cpu = True
            self._restart_quantum()
        finally:
            self.in_dispatch = False
        self.check_kernel()   # a thread that waits often may never see a clock tick

    def switch(self, voluntary):
        """Give the processor to the next thread in line and queue for it again."""
        k = self.kernel
        if not k.processors.contended():
            return False
        self.in_dispatch = True
        try:
            k.processors.account(self.tid, self.cpu_ns())
            k.processors.release(self.tid)
            k.processors.acquire(self.tid, self.check_kernel)
            self._restart_quantum()
        finally:
            self.in_dispatch = False
        t = k.threads
        o = t.off(self.tid, O_VOL if voluntary else O_INVOL)
        t.put64(o, t.get64(o) + 1)
        return True

    # --- the clock interrupt -------------------------------------------------

    def arm_clock(self):
        """Start this VP's interval timer (VPs only)."""
        signal.signal(signal.SIGALRM, self._tick)
        self._clock_armed = True
        self._restart_quantum(arming=True)

    def _restart_quantum(self, arming=False):
        """A thread that just got a processor gets a whole quantum: restart the
        timer from now (timers armed in lockstep would preempt newcomers at once).
        With no processor limit the clock only checks that the kernel lives:
        it is armed once and never restarted, or a thread that waits more
        often than the period (a page fault loop) would never hear it."""
        if not self._clock_armed:
            return
        if self.kernel.processors.limited:
            period = self.kernel.config.quantum
        elif arming:
            period = _LIVENESS_PERIOD / 2
        else:
            return
        signal.setitimer(signal.ITIMER_REAL, period, period)

    def disarm_clock(self):
        self._clock_armed = False
        signal.setitimer(signal.ITIMER_REAL, 0, 0)

    def _tick(self, signum, frame):
        """SIGALRM handler: the clock interrupt.  Runs between two bytecodes of
        whatever the thread is doing."""
        self.kernel.processors.account(self.tid, self.cpu_ns())
        self.check_kernel()
        if self.in_dispatch or not self.on_cpu:
            return
        self.switch(voluntary=False)
